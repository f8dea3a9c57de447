"""Launchers for a reproduction's runs: one after another here, or one SLURM job each (submitit).

Both run the same thing for a run: the `python -m benchmark.cli.run_transfer` command line the
reproduction built, as a subprocess, its output in a log file, and report its exit status. Going
through the CLI (not importing the engine) keeps a launcher's process free of the training's
state and makes a run here and a run on the cluster the very same command. The record a run
writes (results.json) is the result; the exit status only says whether to look for a reason
elsewhere.
"""
import dataclasses
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Launched:
    """What became of one command: its exit status (None: the job itself died) and why, if known."""
    returncode: int | None
    log: str
    error: str | None = None
    seconds: float = 0.0


def run_command(argv, log_path, multi_node=False) -> int:
    """Run `argv`, output to `log_path`; the job function of both launchers (picklable, top level).

    On a multi-node SLURM job every node runs it; each adds detectron2's machine options from
    submitit's job environment (node 0's host as the rendezvous), and only node 0 logs to log_path.
    """
    argv = list(argv)
    log_path = Path(log_path)
    if multi_node:
        import submitit

        env = submitit.JobEnvironment()
        port = 20000 + zlib.crc32(str(env.job_id).encode()) % 20000  # the same on every node of the job
        argv += ["--num-machines", str(env.num_nodes), "--machine-rank", str(env.node),
                 "--dist-url", f"tcp://{env.hostnames[0]}:{port}"]
        if env.node:
            log_path = log_path.with_name(f"{log_path.stem}.node{env.node}{log_path.suffix}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=child_env()).returncode


def launch_local(commands, say=print) -> list[Launched]:
    """Run each (label, argv, log_path) here, one after another (each may use several GPUs)."""
    out = []
    for i, (label, argv, log) in enumerate(commands, 1):
        start = time.perf_counter()
        rc = run_command(argv, log)
        took = time.perf_counter() - start
        say(f"[{i}/{len(commands)}] {label}: {'finished' if rc == 0 else f'exit {rc}'} ({took:.0f} s, log {log})")
        out.append(Launched(rc, str(log), None, took))
    return out


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    folder: str  # submitit's own logs and pickles
    partition: str | None = None
    account: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    cpus_per_task: int | None = None
    timeout_min: int = 24 * 60
    cluster: str | None = None  # None: slurm when available (submitit decides); "local": its local executor


def make_executor(opts: SlurmOptions, name="reproduce"):
    import submitit

    executor = submitit.AutoExecutor(folder=str(Path(opts.folder) / "%j"), cluster=opts.cluster)
    executor.update_parameters(
        name=name, timeout_min=opts.timeout_min, nodes=opts.nodes, gpus_per_node=opts.gpus_per_node,
        tasks_per_node=1, cpus_per_task=opts.cpus_per_task,
        slurm_partition=opts.partition, slurm_account=opts.account)  # ignored by the local executor
    return executor


def launch_slurm(commands, opts: SlurmOptions, say=print, name="reproduce") -> list[Launched]:
    """Submit one job per (label, argv, log_path) with submitit, wait for all, and collect them."""
    executor = make_executor(opts, name)
    jobs = []
    with executor.batch():
        for _, argv, log in commands:
            jobs.append(executor.submit(run_command, list(argv), str(log), opts.nodes > 1))
    say(f"submitted {len(jobs)} jobs ({executor.cluster}): {', '.join(str(j.job_id) for j in jobs[:5])}"
        + (" ..." if len(jobs) > 5 else "") + f"; submitit logs in {opts.folder}")
    out = []
    for i, ((label, _, log), job) in enumerate(zip(commands, jobs), 1):
        start = time.perf_counter()
        try:
            codes = job.results()  # one per node; waits
            rc, error = max(codes), None
        except Exception as exc:  # noqa: BLE001  (submitit raises its own types for dead/timed-out jobs)
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            rc, error = None, f"job {job.job_id} did not complete: {lines[-1] if lines else type(exc).__name__}"
        state = "finished" if rc == 0 else (error or f"exit {rc}")
        say(f"[{i}/{len(commands)}] {label}: {state} (job {job.job_id}, log {log})")
        out.append(Launched(rc, str(log), error, time.perf_counter() - start))
    return out


def python_module_command(module, *args) -> list:
    """[this interpreter, -m, module, args...]: jobs run with the interpreter the reproduction runs
    on, and find the module through the package (child_env), not through a file of a checkout."""
    return [sys.executable, "-m", module, *map(str, args)]


def child_env() -> dict:
    """The environment of a run: this one, plus the folder holding this copy of `benchmark` on
    PYTHONPATH when the interpreter would not find it by itself (a checkout run through tools/
    without installing), so that `python -m benchmark.cli...` runs the very copy that launched it.
    An installed copy (site-packages, or pip install --target DIR with DIR on PYTHONPATH) is left
    as it is: adding site-packages to PYTHONPATH would put it before the standard library."""
    import site

    import benchmark

    env = dict(os.environ)
    root = str(Path(benchmark.__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    found_anyway = {str(Path(p).resolve()) for p in [*paths, *site.getsitepackages(), site.getusersitepackages()]}
    if root not in found_anyway:
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env
