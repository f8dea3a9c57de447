"""The fine-tuning command: prepare every trial's job, then for each trial reuse, refuse or launch it.

`run(options)` does, in this order, everything that can fail on bad input before any compute
(`benchmark.engine.jobs.prepare`). Then, per trial, under the trial folder's lock, it reuses a
finished trial of this very run (benchmark.engine.trials says when), refuses a folder holding
another run, or launches N processes (detectron2's `launch`: NCCL on GPUs, gloo CPU processes
without CUDA), each of which runs `benchmark.engine.worker.run_one`. A trial's reported status
(and the exit status) is its record's: a process that dies after rank 0 wrote this run's finished
record leaves the trial finished; any other death is a failed trial with a failed record.
"""
import contextlib
import logging
import re
import time
from pathlib import Path

from detectron2.engine import launch

from benchmark.engine import trials as trial_folder
from benchmark.engine.jobs import Job, Options, RunError, prepare
from benchmark.engine.worker import RunFailed, failure_reason, run_one, write_failed
from benchmark.records import results
from benchmark.tasks.config import config_digest

logger = logging.getLogger(__name__)


def run(opts: Options) -> int:
    """The whole command: 0 when every trial finished, 1 on bad input (RunError) or a failed trial."""
    return run_jobs(prepare(opts), opts)


def run_jobs(jobs: list, opts: Options) -> int:
    """Run prepared jobs one trial after the other; 0 when every trial finished, else 1."""
    failed = []
    for job in jobs:
        # Machine 0 owns the trial folder; the other machines of a multi-machine run write nothing there.
        lock = trial_folder.locked(job.output_dir) if opts.machine_rank == 0 else contextlib.nullcontext()
        try:
            with lock:
                if not job.eval_only and _reuse_finished(job):
                    print(f"trial {job.trial}: finished earlier, skipped ({job.output_dir})")
                    continue
                if job.eval_only and job.resume:  # it evaluates the folder's last checkpoint: of this config only
                    _refuse_foreign_checkpoints(job)
                status = launch_job(job, opts)
        except trial_folder.TrialBusy as exc:
            raise RunError(str(exc)) from None
        print(f"trial {job.trial}: {status} ({job.record_dir / results.RECORD_NAME})")
        if status != "finished":
            failed.append(job.trial)
    return 1 if failed else 0


def launch_job(job: Job, opts: Options) -> str:
    """Run one trial on num_gpus x num_machines processes; return its status."""
    record = job.output_dir / results.RECORD_NAME
    before = record.stat().st_mtime_ns if record.exists() else None
    start = time.perf_counter()
    try:
        if opts.world_size == 1:
            run_one(job)  # in this process, as detectron2's launch would do
        else:
            launch(run_one, opts.num_gpus, num_machines=opts.num_machines, machine_rank=opts.machine_rank,
                   dist_url=opts.dist_url or "auto", args=(job,))
        return "finished"
    except RunFailed:
        return "failed"
    except Exception as exc:  # noqa: BLE001  (a worker died: say why in the record)
        reason = _reason_from_launch(exc)
        fresh = record.exists() and record.stat().st_mtime_ns != before
        if fresh and _finished_record_of(job, record):
            # Rank 0 writes "finished" only after the evaluation that every rank took part in, so the numbers
            # are whole; a process that died after that (at teardown) does not undo them, and the next run
            # would reuse the record anyway. The exit status follows the record.
            logger.warning("trial %d: a process failed after the finished record was written (%s); the record "
                           "stands", job.trial, reason)
            return "finished"
        if opts.machine_rank == 0 and not fresh:
            # Another rank failed first and the launcher ended rank 0 before it could write.
            duration, resume = time.perf_counter() - start, None
            if not job.eval_only:  # what rank 0 logged of this and earlier attempts
                log = trial_folder.AttemptLog(job.output_dir, job.digest)
                duration, resume = max(duration, log.total_duration()), log.resume_summary()
            reason = write_failed(job, reason, 0, duration, resume)
        logger.error("trial %d failed: %s", job.trial, reason)
        return "failed"


def _reason_from_launch(exc: BaseException) -> str:
    """The one-line reason a spawned worker gave (RunFailed), else the exception's last line."""
    found = re.findall(r"RunFailed: (.+)", str(exc))
    if found:
        return found[-1].strip()
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else failure_reason(exc)


def _finished_record_of(job: Job, path: Path) -> bool:
    """True when `path` holds a finished record of this very run (what _reuse_finished would reuse)."""
    try:
        record = results.read_record(path)
    except results.RecordError:
        return False
    return record.status == "finished" and trial_folder.same_run_problem(
        record, task=job.task.name, sha256=job.weights["sha256"], digest=job.digest, kind=job.kind.value) is None


def _reuse_finished(job: Job) -> bool:
    """True when the trial folder holds this very run, finished; RunError when it holds another one."""
    path = job.output_dir / results.RECORD_NAME
    try:
        record = results.read_record(path)
    except results.RecordError:
        record = None  # none yet, or torn by a kill: the trial runs (again)
    if record is not None and record.status == "finished":
        problem = trial_folder.same_run_problem(record, task=job.task.name, sha256=job.weights["sha256"],
                                                digest=job.digest, kind=job.kind.value)
        if problem is None:
            logger.info("trial %d: %s is this run, finished; skipped", job.trial, path)
            return True
        raise RunError(f"{path}: a finished trial of another run is there ({problem}); it is kept as it is. "
                       "Choose another --output, or delete that folder to run this one there")
    _refuse_foreign_checkpoints(job)
    return False


def _refuse_foreign_checkpoints(job: Job) -> None:
    problem = trial_folder.foreign_checkpoint_problem(job.output_dir, job.digest, digest_of_config_file)
    if problem:
        raise RunError(f"{job.output_dir}: {problem}; not resumed. Choose another --output, or delete that folder")


def digest_of_config_file(path) -> str:
    """The config digest of a trial folder's config.yaml (what its checkpoints were trained with)."""
    from detectron2.config import CfgNode

    return config_digest(CfgNode.load_cfg(Path(path).read_text()))
