"""The reproduce command: plan the runs of a paper table, launch what is not finished, gather their
records (one pool per cell), judge them against the paper and write the report.

Exit status of reproduce(opts): 0 when every judged cell and check holds, else 1 (also when runs were planned and
none finished: a table whose runs all failed judged nothing, and is no PASS).
"""
import dataclasses
from pathlib import Path

from benchmark.fileio import atomic_write, unusable_output
from benchmark.records import results
from benchmark.records.pooling import Failure, aggregate, one_pool_per_cell
from benchmark.reproduce import launch, paper
from benchmark.reproduce.judge import judge, passed
from benchmark.reproduce.plan import (
    Options,
    PlannedRun,
    ReproduceError,
    check_tolerances,
    format_plan,
    plan,
    run_state,
    runs_dir,
    selected_tasks,
)
from benchmark.reproduce.report import summary_line, to_csv, to_markdown

# Runs go through the command line, as a module of the installed package (not a file of a checkout):
# an installed copy (pip install, pip install --target DIR) launches them from any directory.
RUN_TRANSFER_MODULE = "benchmark.cli.run_transfer"


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
                                          width=int(row.synthetic.get("width", 64)),
                                          init="random")  # the machinery tables' rows keep the weights they were written with


def reproduce(opts: Options, say=print) -> int:
    """The whole command: with --dry-run only the plan is shown (`say`); otherwise the unfinished runs
    are launched, the report written to OPTIONS.output, and 0 returned when every judged cell and check
    holds, else 1. Bad input raises ReproduceError or paper.TableError before anything is launched."""
    table = paper.load_table(opts.table)
    check_tolerances(table, opts.tolerance)
    table = dataclasses.replace(table, tolerance={**table.tolerance, **opts.tolerance})
    if opts.launcher not in ("local", "slurm"):
        raise ReproduceError(f"unknown launcher {opts.launcher!r}; known: local, slurm")
    problem = unusable_output(opts.output, "--output")
    if problem:  # before the plan (it names paths under it) and before any checkpoint, dataset or run is made
        raise ReproduceError(problem)
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
    records = [r for r in records if (r.weights.name, r.task, r.trial) in planned]
    records, unpooled = one_pool_per_cell(records, "smoke" if opts.smoke else "full")
    stats, failures = aggregate(records)
    failures += unpooled
    have = {(r.weights.name, r.task, r.trial) for r in records}
    for run, done in zip(todo, launched):
        if (run.row, run.task, run.trial) not in have:  # died before writing a record
            why = done.error or f"exit status {done.returncode} and no run record"
            failures.append(Failure(run.row, run.task, run.trial, f"{why}; see {done.log}", ""))
    tasks = selected_tasks(table, opts)
    cells, checks = judge(table, stats, tasks, {r.row for r in runs})
    # every run failed: nothing was measured, so nothing passed
    none_finished = bool(runs) and not any(r.status == "finished" for r in records)
    counts = f"{len(runs)} runs planned, {len(runs) - len(todo)} reused, {len(todo)} launched ({opts.launcher})"
    out = Path(opts.output)
    with atomic_write(out / f"{table.name}.md", "w") as f:
        f.write(to_markdown(table, cells, checks, failures, problems, opts, counts, none_finished))
    with atomic_write(out / f"{table.name}.csv", "w") as f:
        f.write(to_csv(cells, checks))
    say(f"wrote {out / (table.name + '.md')} and {out / (table.name + '.csv')}")
    say(summary_line(cells, checks, none_finished))
    return 0 if passed(cells, checks) and not none_finished else 1
