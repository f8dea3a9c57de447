"""Reproduce a paper table: plan the runs, launch what is not finished, compare with the paper.

    plan(table, opts)      -> the matrix row x task x trial of runs (runnable rows only)
    format_plan(...)       -> the --dry-run text: weights (zoo URLs), status, estimated GPU-hours
    judge(table, records)  -> per-cell and per-check verdicts (benchmark.records.paper's tolerance rule)
    assumed(...)           -> the tasks whose protocol rests on an assumption (Task.assumptions): every
                              verdict judged on one says so beside it (report, CSV, --dry-run)
    write_report(...)      -> OUTPUT/NAME.md and OUTPUT/NAME.csv
    reproduce(opts)        -> the whole command; 0 when every judged cell and check holds, else 1

Runs live at OUTPUT/runs/ROW/TASK/trial_k (OUTPUT/runs_smoke/... with --smoke, so that smoke
records never pass for real ones) and are keyed by row name: a second reproduction into the same
OUTPUT, of this table or another naming the same rows, reuses every finished run.
"""
import ast
import csv
import dataclasses
import io
import math
from pathlib import Path

from tabulate import tabulate

from benchmark.fileio import atomic_write
from benchmark.records import cost, launch, paper, results
from benchmark.records.leaderboard import ALPHA, Failure, Stat, aggregate, describe_pool_difference, pool_key, welch

# Runs go through the command line, as a module of the installed package (not a file of a checkout):
# an installed copy (pip install, pip install --target DIR) launches them from any directory.
RUN_TRANSFER_MODULE = "benchmark.cli.run_transfer"


class ReproduceError(ValueError):
    """Bad input found before anything is launched; str() is one line."""


@dataclasses.dataclass
class Options:
    table: str
    tasks: list | None = None
    trials: int = 5
    seed: int = 0
    launcher: str = "local"
    dry_run: bool = False
    smoke: bool = False
    output: str = "output/reproduce"
    data_root: str | None = None
    num_gpus: int | None = None  # per run; default 1 (local) or --gpus-per-node (slurm)
    weights: dict = dataclasses.field(default_factory=dict)  # {row: spec}, overrides the table
    tolerance: dict = dataclasses.field(default_factory=dict)  # {(task, metric): value >= 0}, see parse_tolerances
    partition: str | None = None
    account: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    cpus_per_task: int | None = None
    timeout_min: int = 24 * 60
    cluster: str | None = None  # slurm launcher: None lets submitit pick; "local" runs its local executor
    opts: list = dataclasses.field(default_factory=list)  # KEY VALUE config overrides for every run


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    row: str
    task: str
    trial: int
    seed: int
    weights: str  # the --weights spec given to run_transfer (the record's weights.source)
    shown: str  # how the weights are shown (zoo URL, path, synthetic layout)
    output: Path  # run_transfer --output; the record is output/trial_k/results.json

    @property
    def record_dir(self) -> Path:
        return self.output / f"trial_{self.trial}"

    @property
    def label(self) -> str:
        return f"{self.row} {self.task} trial {self.trial}"


def runs_dir(opts) -> Path:
    return Path(opts.output) / ("runs_smoke" if opts.smoke else "runs")


def _weights_of(row, opts) -> tuple[str | None, str]:
    """(spec for run_transfer, how to show it) of a row; (None, why) when it cannot be run."""
    from benchmark.weights import zoo

    if row.name in opts.weights:
        return opts.weights[row.name], opts.weights[row.name]
    if row.synthetic:
        path = (Path(opts.output) / "checkpoints" / f"{row.name}.pth").resolve()
        return str(path), (f"synthetic ({row.synthetic.get('layout', 'moco')}, seed {row.synthetic.get('seed', 0)}, "
                           f"width {row.synthetic.get('width', 64)}) {path}")
    if row.zoo:
        return f"zoo:{row.zoo}", zoo.url_of(zoo.get(row.zoo))
    if row.weights:
        return str(row.weights), str(row.weights)
    return None, "no weights: reported only (give --weights {0}=SPEC to run it)".format(row.name)


TOLERANCE_FORM = "expected TASK:METRIC=VALUE (e.g. voc07:bbox/AP=1.0), VALUE a finite number >= 0"


def parse_tolerances(items) -> dict:
    """`--tolerance TASK:METRIC=VALUE ...` -> {(task, metric): value}; ReproduceError (one line) on a
    malformed item, a VALUE that is not a finite number >= 0, or a metric given twice. Whether
    TASK:METRIC is a column of the table is check_tolerances' job (it needs the table)."""
    out = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        task, colon, metric = key.partition(":")
        wrong = ("no '=' before VALUE" if not sep else "no ':' between TASK and METRIC" if not colon
                 else "TASK is empty" if not task else "METRIC is empty" if not metric
                 else "more than one ':'" if ":" in metric else None)
        if wrong:
            raise ReproduceError(f"--tolerance {item}: {wrong}; {TOLERANCE_FORM}")
        try:
            value = float(text)
        except ValueError:
            raise ReproduceError(f"--tolerance {item}: {text!r} is not a number; {TOLERANCE_FORM}") from None
        if not math.isfinite(value) or value < 0:
            raise ReproduceError(f"--tolerance {item}: {text} is not a finite number >= 0; {TOLERANCE_FORM}")
        if (task, metric) in out:
            raise ReproduceError(f"--tolerance {item}: {task}:{metric} is given twice; {TOLERANCE_FORM}")
        out[(task, metric)] = value
    return out


def check_tolerances(table, tolerance) -> None:
    """Refuse a tolerance (one line) on a task or metric that is not a column of the table: it
    would apply to nothing, and the verdicts would look as if it had."""
    for (task, metric), value in tolerance.items():
        item = f"--tolerance {task}:{metric}={value}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ReproduceError(f"{item}: not a finite number >= 0; {TOLERANCE_FORM}")
        if task not in table.tasks:
            raise ReproduceError(f"{item}: {task!r} is not a task of table {table.name} (its tasks: "
                                 f"{', '.join(table.tasks)}); {TOLERANCE_FORM}")
        metrics = [m for t, m in table.columns if t == task]
        if metric not in metrics:
            raise ReproduceError(f"{item}: {metric!r} is not a column of table {table.name} for {task} (its "
                                 f"{task} columns: {', '.join(metrics)}); {TOLERANCE_FORM}")


def selected_tasks(table, opts) -> tuple:
    if not opts.tasks:
        return table.tasks
    unknown = [t for t in opts.tasks if t not in table.tasks]
    if unknown:
        raise ReproduceError(f"table {table.name} has no task {', '.join(unknown)}; its tasks: {', '.join(table.tasks)}")
    return tuple(t for t in table.tasks if t in opts.tasks)


def plan(table, opts) -> tuple[list, list]:
    """(runs, not_run): the planned runs in row, task, trial order; not_run = [(row, why)]."""
    if opts.trials < 1:
        raise ReproduceError(f"--trials must be >= 1, got {opts.trials}")
    unknown = sorted(set(opts.weights) - {r.name for r in table.rows})
    if unknown:
        raise ReproduceError(f"--weights names no row of {table.name}: {', '.join(unknown)}")
    tasks = selected_tasks(table, opts)
    runs, not_run = [], []
    for row in table.rows:
        spec, shown = _weights_of(row, opts)
        if spec is None:
            not_run.append((row.name, shown))
            continue
        for task in tasks:
            for k in range(opts.trials):
                runs.append(PlannedRun(row.name, task, k, opts.seed + k, spec, shown, runs_dir(opts) / row.name / task))
    return runs, not_run


def run_state(run: PlannedRun) -> str:
    """'finished' | 'failed' | 'to run'; refuses a record of other weights in the run's folder."""
    path = run.record_dir / results.RECORD_NAME
    try:
        record = results.read_record(path)
    except results.RecordError:
        return "to run"
    if record["weights"].get("source") != run.weights or record["task"] != run.task or record["trial"] != run.trial:
        raise ReproduceError(
            f"{path}: holds a run of {record['weights'].get('source')} ({record['task']}, trial {record['trial']}) but "
            f"the plan puts {run.weights} ({run.task}, trial {run.trial}) there; use another --output")
    return record["status"]


# --------------------------------------------------------------------------- dry run

def _hours(x) -> str:
    return "?" if x is None else f"{x:.1f}"


def format_plan(table, runs, not_run, opts) -> str:
    tasks = selected_tasks(table, opts)
    rows_run = list(dict.fromkeys(r.row for r in runs))
    lines = [f"{table.name}: {table.title}",
             f"{len(rows_run)} rows x {len(tasks)} tasks ({', '.join(tasks)}) x {opts.trials} trials = {len(runs)} runs; "
             f"records under {runs_dir(opts)}"
             + ("  [--smoke: synthetic data, tiny schedule; GPU-hours below are for the real protocol]" if opts.smoke else ""),
             ""]
    head = ("row", "task", "trial", "seed", "status", "GPU-h", "weights")
    body, total, unknown, todo = [], 0.0, 0, 0
    for run in runs:
        state = run_state(run)
        hours = cost.run_gpu_hours(run.task)
        if state != "finished":
            todo += 1
            if hours is None:
                unknown += 1
            else:
                total += hours
        estimate = "*" if hours is not None and not cost.SPEED[run.task].measured else ""
        body.append((run.row, run.task, str(run.trial), str(run.seed), state, _hours(hours) + estimate, run.shown))
    lines.append(tabulate(body, headers=head, tablefmt="plain", disable_numparse=True,
                          colalign=("left", "left", "right", "right", "left", "right", "left")))
    for name, why in not_run:
        lines.append(f"not run: {name}: {why}")
    lines += ["", f"to run: {todo} of {len(runs)} runs; estimated {total:.1f} GPU-hours"
              + (f" + {unknown} runs of unknown cost" if unknown else "")
              + (" (estimate, see *)" if any(not cost.SPEED[t].measured for t in tasks) else "")]
    for task in tasks:
        fig = cost.SPEED[task]
        kind = "measured" if fig.measured else ("* estimate" if fig.seconds_per_iter else "no figure")
        per = (f"{fig.seconds_per_iter} s/iter x {cost.max_iter(task)} iterations x {fig.gpus} GPUs = "
               f"{_hours(cost.run_gpu_hours(task))} GPU-h per run" if fig.seconds_per_iter else "not estimated")
        lines.append(f"  {task}: {kind}: {per}; basis: {fig.basis}")
    lines += format_assumed(table, tasks)
    return "\n".join(lines) + "\n"


def format_assumed(table, tasks) -> list:
    """The --dry-run lines that mark what will be judged under an assumed protocol: each such task's
    assumptions, then every published cell and every check on one of those tasks."""
    under = assumed(tasks)
    if not under:
        return []
    lines = ["", "assumed protocols (no publication gives these values for the task; verdicts on them are marked "
                 "[assumed protocol: ID] in the report):"]
    lines += [f"  {task}: {a}" for task, items in under.items() for a in items]
    lines.append("cells and checks judged under an assumed protocol:")
    for row in table.rows:
        for (task, metric), ref in row.cells.items():
            if task in under and not ref.secondary:  # a secondary value is never judged
                what = "published" + ("" if row.runnable else ", reported only: no weights")
                lines.append(f"  cell {row.name} {task} {metric} = {ref.value:g} ({what}) "
                             f"[assumed protocol: {', '.join(_ids(under[task]))}]")
    for check in table.checks:
        if check.task in under:
            lines.append(f"  check {check.task} {check.metric}: {check.expr} "
                         f"[assumed protocol: {', '.join(_ids(under[check.task]))}]")
    return lines


# --------------------------------------------------------------------------- judging

@dataclasses.dataclass(frozen=True)
class CellVerdict:
    row: str
    task: str
    metric: str
    stat: Stat | None
    ref: paper.Reference | None
    diff: float | None
    tolerance: float | None
    basis: str
    verdict: str
    judged: bool
    ok: bool
    assumptions: tuple = ()  # IDs of the assumptions the task's protocol rests on, when judged


@dataclasses.dataclass(frozen=True)
class CheckVerdict:
    check: paper.Check
    values: dict  # {row: mean}
    verdict: str
    judged: bool
    ok: bool
    assumptions: tuple = ()


def assumed(tasks) -> dict:
    """{task: ('ID: why', ...)} for the tasks of `tasks` whose protocol rests on an assumption."""
    from benchmark.tasks import get_task

    return {t: get_task(t).assumptions for t in tasks if get_task(t).assumptions}


def _ids(assumptions) -> tuple:
    return tuple(str(a).split(":", 1)[0] for a in assumptions)


def marked(verdict: str, assumptions) -> str:
    """A verdict with the assumptions it was judged under beside it (as the report shows it)."""
    return f"{verdict} [assumed protocol: {', '.join(assumptions)}]" if assumptions else verdict


def judge(table, stats, tasks, runnable) -> tuple[list, list]:
    """Verdicts of every cell and check. `stats`: {(row, task): {metric: Stat}} (aggregate's),
    `tasks`: the tasks run, `runnable`: rows that had weights. A published value whose runs all
    failed is judged and does not hold; cells without a published value, and secondary values
    (docs/REFERENCES.md: shown, never judged pass/fail), are shown with their difference, not judged. A
    judged verdict on a task whose protocol rests on an assumption carries its IDs (`assumptions`)."""
    under = {t: _ids(a) for t, a in assumed(table.tasks).items()}
    cells = []
    for row in table.rows:
        for task, metric in table.columns:
            stat = stats.get((row.name, task), {}).get(metric)
            ref = row.cells.get((task, metric))
            diff = tol = None
            basis = ""
            if row.name not in runnable:
                verdict, judged = "not run: no weights", False
            elif task not in tasks:
                verdict, judged = "not run: task not selected", False
            elif ref is None:
                verdict, judged = "no reference", False
            elif stat is None:
                verdict, judged = ("no result (secondary value: not judged)", False) if ref.secondary else ("no result", True)
            else:
                diff = stat.mean - ref.value
                tol, basis = table.tolerance_for(task, metric, stat.n)
                if ref.secondary:  # docs/REFERENCES.md: shown, marked secondary, never judged pass/fail
                    verdict = ("within" if abs(diff) <= tol else "outside") + " tolerance (secondary value: not judged)"
                    judged = False
                else:
                    verdict, judged = ("holds" if abs(diff) <= tol else "differs"), True
            cells.append(CellVerdict(row.name, task, metric, stat, ref, diff, tol, basis, verdict, judged,
                                     verdict in ("holds",) or not judged, under.get(task, ()) if judged else ()))
    checks = []
    for check in table.checks:
        values = {n: stats.get((n, check.task), {}).get(check.metric) for n in check.names}
        values = {n: (s.mean if s else None) for n, s in values.items()}
        missing_weights = [n for n in check.names if n not in runnable]
        if missing_weights:
            checks.append(CheckVerdict(check, values, f"not run: {', '.join(missing_weights)} without weights", False, True))
        elif check.task not in tasks:
            checks.append(CheckVerdict(check, values, "not run: task not selected", False, True))
        elif any(v is None for v in values.values()):
            checks.append(CheckVerdict(check, values, "no result", True, False, under.get(check.task, ())))
        elif two_rows(check):
            verdict, judged, ok = tested_comparison(check, stats)
            checks.append(CheckVerdict(check, values, verdict, judged, ok, under.get(check.task, ()) if judged else ()))
        else:
            ok = paper.evaluate_check(check, values)
            checks.append(CheckVerdict(check, values, "holds" if ok else "does not hold", True, ok,
                                       under.get(check.task, ())))
    return cells, checks


def two_rows(check):
    """(a, strict, b) for a check that claims `a > b` / `a >= b` (or the same with < <=) of two rows;
    None for any other expression (judged on the means)."""
    node = ast.parse(check.expr, mode="eval").body
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.left, ast.Name)
            and isinstance(node.comparators[0], ast.Name)):
        return None
    a, op, b = node.left.id, node.ops[0], node.comparators[0].id
    if isinstance(op, (ast.Lt, ast.LtE)):
        a, b = b, a
    if not isinstance(op, (ast.Gt, ast.GtE, ast.Lt, ast.LtE)):
        return None
    return a, isinstance(op, (ast.Gt, ast.Lt)), b


def tested_comparison(check, stats) -> tuple[str, bool, bool]:
    """(verdict, judged, ok) of a two-row check, tested with Welch's t-test (leaderboard.welch).

    `a > b` holds only when a's mean is the larger and the difference is significant (p < ALPHA);
    `a >= b` ("b does not beat a") holds unless b's mean is the larger and significantly so. With
    fewer than 2 trials on either side nothing can be tested: "not enough trials", not judged.
    """
    a, strict, b = two_rows(check)
    sa, sb = (stats.get((n, check.task), {}).get(check.metric) for n in (a, b))
    if sa.n < 2 or sb.n < 2:
        return (f"not enough trials ({a}: {sa.n}, {b}: {sb.n}; a significance test needs >= 2 each)", False, True)
    p = welch(sa, sb)
    significant = p < ALPHA
    if strict:
        ok = sa.mean > sb.mean and significant
        why = "" if ok else (": the difference is not significant" if sa.mean > sb.mean else ": the mean is lower")
    else:
        ok = not (sb.mean > sa.mean and significant)
        why = "" if ok else f": {b} is significantly higher"
    return f"{'holds' if ok else 'does not hold'} (Welch p = {p:.3g}){why}", True, ok


def passed(cells, checks) -> bool:
    return all(c.ok for c in cells if c.judged) and all(c.ok for c in checks if c.judged)


# --------------------------------------------------------------------------- report

def _f(x, digits=2, sign=False) -> str:
    if x is None:
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _paper_value(ref) -> str:
    return "-" if ref is None else f"{ref.value:g}" + (" (secondary)" if ref.secondary else "")


def summary_line(cells, checks) -> str:
    jc = [c for c in cells if c.judged]
    jk = [c for c in checks if c.judged]
    verdict = "PASS" if passed(cells, checks) else "FAIL"
    return (f"{verdict}: {sum(c.ok for c in jc)}/{len(jc)} judged cells hold, {sum(c.ok for c in jk)}/{len(jk)} "
            f"judged checks hold; {len(cells) - len(jc)} cells and {len(checks) - len(jk)} checks not judged")


def to_markdown(table, cells, checks, failures, problems, opts, counts) -> str:
    esc = lambda s: " ".join(str(s).split()).replace("|", "\\|")  # noqa: E731
    out = [f"# Reproduction of {table.name}", "", f"{table.title}. Source: {table.source}.", ""]
    if opts.smoke:
        out += ["**--smoke: synthetic data and a tiny schedule. These numbers test the machinery; they are not a "
                "reproduction.**", ""]
    tasks = selected_tasks(table, opts)
    out += [f"Runs: tasks {', '.join(tasks)}; {opts.trials} trials (seeds {opts.seed}..{opts.seed + opts.trials - 1}); "
            f"{counts}.",
            "Ours: mean ± sample standard deviation (ddof=1) (n finished trials). "
            f"Tolerance: 2 x std x sqrt(1/n + 1/n_pub) + {paper.ROUNDING} with the published run-to-run std"
            + (f" ({table.std_source})" if table.std_source else "")
            + f", n_pub = {table.published_trials}, unless set per metric. A cell holds when |ours - paper| <= tolerance; "
              "cells without a published value are shown, not judged.", "",
            "| row | task | metric | ours | paper | source | diff | tolerance | verdict |",
            "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for c in cells:
        out.append(f"| {c.row} | {c.task} | {c.metric} | {c.stat.format() if c.stat else '-'} | {_paper_value(c.ref)} | "
                   f"{esc(c.ref.source) if c.ref else '-'} | {_f(c.diff, sign=True)} | {_f(c.tolerance)} | "
                   f"{marked(c.verdict, c.assumptions)} |")
    if checks:
        out += ["", "## Checks (direction only, on our means)" + (f": {table.check_source}" if table.check_source else ""), "",
                "| task | metric | check | claim | our means | verdict |", "| --- | --- | --- | --- | --- | --- |"]
        for k in checks:
            vals = ", ".join(f"{n} {_f(v)}" for n, v in k.values.items())
            out.append(f"| {k.check.task} | {k.check.metric} | `{esc(k.check.expr)}` | {esc(k.check.claim)} | {vals} | "
                       f"{marked(k.verdict, k.assumptions)} |")
    under = assumed(tasks)
    if under:
        out += ["", "## Assumed protocols", "",
                "A verdict marked [assumed protocol: ID] is judged on runs of a protocol that no publication gives "
                "for that task (configs/sources.yaml); it says how this suite's protocol compares, not "
                "necessarily the paper's.", ""]
        out += [f"- {task}: {esc(a)}" for task, items in under.items() for a in items]
    notes = [f"- {r.name}: {esc(r.note)}" for r in table.rows if r.note]
    notes += [f"- {r.name}: {esc(o['what'])} {o['value']:g} ({esc(o['source'])}"
              + ("; secondary" if o.get("secondary") else "") + "): no task of this suite, not judged"
              for r in table.rows for o in r.other]
    if notes:
        out += ["", "## Notes", ""] + notes
    if failures:
        out += ["", "## Failed runs", "", "| row | task | trial | reason | record |", "| --- | --- | ---: | --- | --- |"]
        out += [f"| {f.name} | {f.task} | {f.trial} | {esc(f.reason)} | {f.path or '-'} |" for f in failures]
    if problems:
        out += ["", "## Records refused", ""] + [f"- {esc(p)}" for p in problems]
    out += ["", f"**{summary_line(cells, checks)}**"]
    return "\n".join(out) + "\n"


def to_csv(cells, checks) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["kind", "row", "task", "metric", "ours_mean", "ours_std", "n", "paper", "paper_source", "secondary",
                "diff", "tolerance", "verdict", "check", "assumptions"])
    num = lambda x: "" if x is None else f"{x:.4f}"  # noqa: E731
    for c in cells:
        w.writerow(["cell", c.row, c.task, c.metric, num(c.stat.mean if c.stat else None), num(c.stat.std if c.stat else None),
                    c.stat.n if c.stat else 0, "" if c.ref is None else f"{c.ref.value:g}", c.ref.source if c.ref else "",
                    "" if c.ref is None else str(c.ref.secondary).lower(), num(c.diff), num(c.tolerance), c.verdict, "",
                    ";".join(c.assumptions)])
    for k in checks:
        w.writerow(["check", "", k.check.task, k.check.metric, "", "", "", "", "", "", "", "", k.verdict, k.check.expr,
                    ";".join(k.assumptions)])
    return buf.getvalue()


# --------------------------------------------------------------------------- the command

def command(run: PlannedRun, opts) -> list:
    args = ["--task", run.task, "--weights", run.weights, "--output", run.output, "--seed", opts.seed,
            "--trial", run.trial, "--name", run.row]
    if opts.smoke:
        args.append("--smoke")
    if opts.data_root:
        args += ["--data-root", opts.data_root]
    gpus = opts.num_gpus or (opts.gpus_per_node if opts.launcher == "slurm" else 1)
    args += ["--num-gpus", gpus]
    return launch.python_module_command(RUN_TRANSFER_MODULE, *args, *opts.opts)


def _make_synthetic(table, runs):
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    for row in table.rows:
        if row.synthetic:
            spec = next((r.weights for r in runs if r.row == row.name), None)
            if spec and not Path(spec).exists():
                make_synthetic_checkpoint(spec, layout=row.synthetic.get("layout", "moco"), seed=int(row.synthetic.get("seed", 0)),
                                          width=int(row.synthetic.get("width", 64)))


def one_pool_per_cell(records, kind):
    """The records a cell may average: of `kind`, and of the most common pool (leaderboard.pool_key)
    of their (row, task); each other record is a Failure naming how it differs, never pooled."""
    by_cell = {}
    for r in records:
        by_cell.setdefault((r["weights"]["name"], r["task"]), []).append(r)
    kept, unpooled = [], []
    for cell in sorted(by_cell):
        group = sorted(by_cell[cell], key=lambda r: (r["trial"], r.get("_path", "")))
        keys = [pool_key(r) for r in group if r.get("kind", "full") == kind]
        common = max(keys, key=keys.count) if keys else None
        for r in group:
            if pool_key(r) == common:
                kept.append(r)
            else:
                why = (f"a {r.get('kind')!r} run, this reproduction counts {kind!r} runs" if r.get("kind", "full") != kind
                       else f"not pooled with the other trials: {describe_pool_difference(pool_key(r), common)}")
                unpooled.append(Failure(r["weights"]["name"], r["task"], r["trial"], why, r.get("_path", "")))
    return kept, unpooled


def reproduce(opts: Options, say=print) -> int:
    table = paper.load_table(opts.table)
    check_tolerances(table, opts.tolerance)
    table = dataclasses.replace(table, tolerance={**table.tolerance, **opts.tolerance})
    if opts.launcher not in ("local", "slurm"):
        raise ReproduceError(f"unknown launcher {opts.launcher!r}; known: local, slurm")
    runs, not_run = plan(table, opts)
    if opts.dry_run:
        say(format_plan(table, runs, not_run, opts).rstrip("\n"))
        return 0
    states = {run: run_state(run) for run in runs}
    todo = [run for run in runs if states[run] != "finished"]
    say(f"{table.name}: {len(runs)} runs planned, {len(runs) - len(todo)} finished earlier (skipped), {len(todo)} to run")
    _make_synthetic(table, todo)
    commands = [(run.label, command(run, opts), Path(opts.output) / "logs" / run.row / run.task / f"trial_{run.trial}.log")
                for run in todo]
    if not commands:
        launched = []
    elif opts.launcher == "local":
        launched = launch.launch_local(commands, say=say)
    else:
        slurm = launch.SlurmOptions(str(Path(opts.output) / "slurm"), opts.partition, opts.account, opts.nodes,
                                    opts.gpus_per_node, opts.cpus_per_task, opts.timeout_min, opts.cluster)
        launched = launch.launch_slurm(commands, slurm, say=say, name=f"reproduce_{table.name}")
    records, problems = results.gather([runs_dir(opts)]) if runs_dir(opts).exists() else ([], [])
    planned = {(r.row, r.task, r.trial) for r in runs}
    records = [r for r in records if (r["weights"]["name"], r["task"], r["trial"]) in planned]
    records, unpooled = one_pool_per_cell(records, "smoke" if opts.smoke else "full")
    stats, failures = aggregate(records)
    failures += unpooled
    have = {(r["weights"]["name"], r["task"], r["trial"]) for r in records}
    for run, done in zip(todo, launched):
        if (run.row, run.task, run.trial) not in have:  # died before writing a record
            why = done.error or f"exit status {done.returncode} and no run record"
            failures.append(Failure(run.row, run.task, run.trial, f"{why}; see {done.log}", ""))
    tasks = selected_tasks(table, opts)
    cells, checks = judge(table, stats, tasks, {r.row for r in runs})
    counts = f"{len(runs)} runs planned, {len(runs) - len(todo)} reused, {len(todo)} launched ({opts.launcher})"
    out = Path(opts.output)
    with atomic_write(out / f"{table.name}.md", "w") as f:
        f.write(to_markdown(table, cells, checks, failures, problems, opts, counts))
    with atomic_write(out / f"{table.name}.csv", "w") as f:
        f.write(to_csv(cells, checks))
    say(f"wrote {out / (table.name + '.md')} and {out / (table.name + '.csv')}")
    say(summary_line(cells, checks))
    return 0 if passed(cells, checks) else 1
