"""A paper table -> the runs to make: options, tolerances given by hand, the matrix row x task x
trial, each run's state on disk, and the --dry-run text (weights, status, estimated GPU-hours).

Runs live at OUTPUT/runs/ROW/TASK/trial_k (OUTPUT/runs_smoke/... with --smoke, so that smoke
records never pass for real ones) and are keyed by row name: a second reproduction into the same
OUTPUT, of this table or another naming the same rows, reuses every finished run.
"""
import dataclasses
import math
from pathlib import Path

from tabulate import tabulate

from benchmark.records import results
from benchmark.reproduce import cost
from benchmark.reproduce.assumed import assumed, assumption_ids
from benchmark.reproduce.paper import direction_lines, other_work_lines


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


# tools/run_transfer.py's cap (benchmark.engine.jobs.MAX_TRIALS, kept equal by a test; not imported, so that
# planning a table needs neither torch nor detectron2)
MAX_TRIALS = 1000


def plan(table, opts) -> tuple[list, list]:
    """(runs, not_run): the planned runs in row, task, trial order; not_run = [(row, why)]."""
    if not 1 <= opts.trials <= MAX_TRIALS:  # every run is planned (an object each) before any starts: 10**10 is a MemoryError
        raise ReproduceError(f"--trials must be >= 1 and at most {MAX_TRIALS}, got {opts.trials}")
    if opts.seed < 0 or opts.seed + opts.trials - 1 >= 2**32:  # numpy's range: else each run would fail on its own, late
        raise ReproduceError(f"--seed must be in 0..2**32-1 for every trial (seed + trial), got {opts.seed}")
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
    if record.weights.source != run.weights or record.task != run.task or record.trial != run.trial:
        raise ReproduceError(
            f"{path}: holds a run of {record.weights.source} ({record.task}, trial {record.trial}) but "
            f"the plan puts {run.weights} ({run.task}, trial {run.trial}) there; use another --output")
    return record.status


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
    if not runs and not_run:  # a table of unreleased checkpoints (table4): say how to give them
        lines.append(f"nothing to run: every row needs its weights, given as --weights ROW=SPEC (SPEC: a path, URL or "
                     f"zoo:NAME), e.g. --weights {not_run[0][0]}=/path/to/{not_run[0][0]}.pth")
        lines += [f"  {r.name}: {r.note}" for r in table.rows if r.note and r.name in dict(not_run)]
    lines += ["", f"to run: {todo} of {len(runs)} runs; estimated {total:.1f} GPU-hours"
              + (f" + {unknown} runs of unknown cost" if unknown else "")
              + (" (estimate, see *)" if any(not cost.SPEED[t].measured for t in tasks) else "")]
    for task in tasks:
        fig = cost.SPEED[task]
        kind = "measured" if fig.measured else ("* estimate" if cost.run_gpu_hours(task) is not None else "no figure")
        if fig.hours_per_run is not None:
            per = f"{fig.how} = {_hours(fig.hours_per_run)} GPU-h per run"
        elif fig.seconds_per_iter:
            per = (f"{fig.seconds_per_iter} s/iter x {cost.max_iter(task)} iterations x {fig.gpus} GPUs = "
                   f"{_hours(cost.run_gpu_hours(task))} GPU-h per run")
        else:
            per = "not estimated"
        lines.append(f"  {task}: {kind}: {per}; basis: {fig.basis}")
    directions = direction_lines(table, tasks)
    if directions:
        lines += ["", "direction:"] + [f"  {d}" for d in directions]
    others = other_work_lines(table, tasks)
    if others:
        lines += ["", "other works (shown in the report and on the leaderboard, never judged):"]
        lines += [f"  {o}" for o in others]
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
                             f"[assumed protocol: {', '.join(assumption_ids(under[task]))}]")
    for check in table.checks:
        if check.task in under:
            lines.append(f"  check {check.task} {check.metric}: {check.expr} "
                         f"[assumed protocol: {', '.join(assumption_ids(under[check.task]))}]")
    return lines
