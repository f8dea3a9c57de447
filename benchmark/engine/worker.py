"""One trial on one process: register the data, train (or only evaluate), and rank 0 writes the record.

Every process of a trial calls `run_one(job)`. A run that fails (an exception, a NaN/Inf loss,
diverged weights) still ends with a record: status failed and the reason, written by rank 0, and
`RunFailed` raised so that the launcher ends the other processes. The record's `duration_s` and
`resume` come from the trial's attempts log (benchmark.engine.trials.AttemptLog), so a resumed
trial costs the time of all its attempts and says where it resumed.
"""
import contextlib
import logging
import time
from pathlib import Path

from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from benchmark.engine import trials as trial_folder
from benchmark.engine.checkpointer import pinned_weights
from benchmark.engine.hooks import AttemptClock, prune_periodic_checkpoints
from benchmark.engine.jobs import Job
from benchmark.engine.logs import run_logging
from benchmark.env import environment
from benchmark.records import results
from benchmark.tasks.config import config_digest

logger = logging.getLogger(__name__)


class RunFailed(Exception):
    """A run that started and failed; its record (status failed, reason) is already written."""


def run_one(job: Job) -> dict:
    """Train + evaluate one trial on this process (all ranks call it); rank 0 writes the record.

    Raises RunFailed (after writing the failed record) when the run fails. MODEL.WEIGHTS is pinned
    to the sha256 it had when prepared: the checkpointer refuses other bytes
    (benchmark.engine.checkpointer), so the record's hash is that of what was loaded.
    """
    with pinned_weights(job.cfg.MODEL.WEIGHTS, job.weights["sha256"]):
        metrics = _run_one(job)
    _leave_process_group()
    return metrics


def _leave_process_group() -> None:
    """End a multi-process trial cleanly: wait until every process is done (rank 0 has written the
    record), then destroy the process group. detectron2's launch leaves it to the process's exit, where
    gloo's threads can be torn down mid-flight ("terminate called without an active exception", SIGABRT),
    and the launcher then reports a trial whose record says finished as a failed one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        comm.synchronize()
        dist.destroy_process_group()


def _run_one(job: Job) -> dict:
    from benchmark.data import register_datasets

    rank = comm.get_rank()
    attempt = _Attempt(job, rank)
    with run_logging(job.record_dir, rank):
        cfg = _with_registered_datasets(job.cfg, register_datasets(job.task, job.data_root))
        seed_all_rng(job.seed + rank)  # per-rank augmentation streams, reproducible per trial
        if rank == 0:
            remove_stale_temporaries(job.output_dir)
            prune_periodic_checkpoints(job.output_dir, cfg.BENCHMARK.CHECKPOINTS_TO_KEEP)
            (job.record_dir / "config.yaml").write_text(job.cfg.dump())  # protocol names: the digested config
        trainer_class, trainer = _trainer_class(cfg), None
        try:
            if job.eval_only:
                metrics, iterations = trainer_class.evaluate_only(cfg, job.resume)
            else:
                trainer = trainer_class(cfg)
                _start(trainer, job, attempt)
                metrics, iterations = trainer.train(), _iterations_done(trainer)
        except Exception as exc:  # noqa: BLE001  (every failure becomes a failed record)
            reason = failure_reason(exc)
            iterations = _iterations_done(trainer) if trainer is not None else 0
            logger.exception("run failed: %s", reason)
            if rank == 0:
                attempt.end(iterations, "failed")
                reason = write_failed(job, reason, iterations, attempt.total(), attempt.resume())
            raise RunFailed(reason) from None
        metrics = _metrics_of(metrics)
        if rank == 0:
            attempt.end(iterations, "finished")
            path = write_record(job, "finished", None, metrics, iterations, attempt.total(), attempt.resume())
            logger.info("run record: %s", path)
        return metrics


def _iterations_done(trainer) -> int:
    """Iterations trained, at most max_iter.

    TrainerBase.train leaves `iter` at max_iter after its loop, but sets it to start_iter and then adds 1
    when the loop does not run: a trial resumed from its final checkpoint (start_iter = max_iter) would
    count max_iter + 1. A failure inside the loop leaves `iter` at the iteration that failed, which is
    the number done before it.
    """
    return min(int(trainer.iter), int(trainer.max_iter))


def _start(trainer, job: Job, attempt: "_Attempt") -> None:
    """Load the weights or resume the trial's last checkpoint, and log the attempt's start."""
    trainer.resume_or_load(resume=job.resume)
    resumed = trainer.start_iter > 0
    if resumed and attempt.log is not None:
        dropped = trial_folder.drop_metrics_after(job.output_dir / "metrics.json", trainer.start_iter - 1)
        logger.info("trial %d: resumed at iteration %d (%d metrics.json rows of the interrupted run after its "
                    "checkpoint dropped)", job.trial, trainer.start_iter, dropped)
    logger.info("trial %d: training from iteration %d to %d", job.trial, trainer.start_iter, trainer.max_iter)
    if attempt.log is None:
        return
    # Each trainer says what its resume achieved (RESUME_EXACT, and why not, RESUME_NOTE).
    exact, note = (trainer.RESUME_EXACT, trainer.RESUME_NOTE) if resumed else (True, None)
    if not exact:
        logger.warning("trial %d: resumed, not exactly: %s", job.trial, note)
    attempt.begin(trainer.start_iter, exact, note)
    trainer.register_hooks([AttemptClock(attempt.log, attempt.elapsed, job.cfg.SOLVER.CHECKPOINT_PERIOD)])


class _Attempt:
    """This attempt at a trial: its clock and, on rank 0 of a fine-tuning run, the trial's attempts log."""

    def __init__(self, job: Job, rank: int):
        self._start = time.perf_counter()
        self.log = trial_folder.AttemptLog(job.output_dir, job.digest) if rank == 0 and not job.eval_only else None
        self._began = False  # this attempt is in the log (which then keeps its duration current)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def begin(self, start_iteration: int, exact: bool, note) -> None:
        self.log.begin(start_iteration, self.elapsed(), exact, note)
        self._began = True

    def end(self, iterations: int, status: str) -> None:
        """The attempt's end in the log; a failed write (a full disk) must not hide the run's own outcome."""
        if not self._began:
            return
        try:
            self.log.update(iterations, self.elapsed(), status)
        except OSError as exc:
            logger.error("attempts log not updated: %s", exc)

    def total(self) -> float:
        """Seconds of every attempt at the trial, this one included."""
        prior = self.log.total_duration() if self.log is not None else 0.0
        return prior if self._began else prior + self.elapsed()

    def resume(self):
        return self.log.resume_summary() if self.log is not None else None


# MODEL.META_ARCHITECTURE -> "module:class" of the trainer that runs it; any other: the fine-tuning Trainer.
TRAINERS = {
    "LinearClassifier": "benchmark.engine.linear:LinearTrainer",
    "FewShotFeatures": "benchmark.engine.fewshot:FewShotTrainer",
    "LandmarkRegressor": "benchmark.engine.landmarks:LandmarkTrainer",
}
FINE_TUNING_TRAINER = "benchmark.engine.trainer:Trainer"


def _trainer_class(cfg):
    """The trainer of a config (`TRAINERS`): the linear readoff's, the few-shot evaluation's, ..., or the
    fine-tuning Trainer.

    Each trains with `trainer_class(cfg).train()` and evaluates without training with
    `trainer_class.evaluate_only(cfg, resume) -> (metrics, iterations)`.
    """
    import importlib

    module, _, name = TRAINERS.get(cfg.MODEL.META_ARCHITECTURE, FINE_TUNING_TRAINER).partition(":")
    return getattr(importlib.import_module(module), name)


def _with_registered_datasets(cfg, names: dict):
    """`cfg` training and testing on our registrations of its datasets (benchmark:<root>:<name>).

    The job's config keeps the protocol's names, so that its digest does not depend on where the
    data lies; the names detectron2 resolves are ours, never its builtin ones.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TRAIN = tuple(names.get(n, n) for n in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(names.get(n, n) for n in cfg.DATASETS.TEST)
    cfg.freeze()
    return cfg


def _metrics_of(res) -> dict:
    """The evaluator's {group: {metric: value}} (detectron2 nests by dataset when several)."""
    if not res:
        return {}
    return {g: dict(v) for g, v in res.items() if isinstance(v, dict)}


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, FloatingPointError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "non-finite values"
        return f"training diverged: {first}"
    text = str(exc)
    if "Original Traceback" in text:  # raised in a DataLoader worker: its own error is the last line
        text = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
    text = " ".join(text.split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:2000]


def write_record(job: Job, status: str, reason, metrics, iterations: int, duration: float, resume=None) -> Path:
    """The run record. `duration`: seconds of all attempts of the trial; `resume`: the attempts log's summary."""
    cfg = job.cfg
    record = results.new_record(
        task=job.task.name, weights=dict(job.weights), seed=job.seed, trial=job.trial, status=status,
        reason=reason, metrics=metrics or {}, iterations=int(iterations),
        world_size=job.world_size, ims_per_batch=int(cfg.SOLVER.IMS_PER_BATCH),
        amp=bool(cfg.SOLVER.AMP.ENABLED), deviations=list(job.deviations),
        duration_s=round(float(duration), 3), config_digest=config_digest(cfg),
        environment={**environment(), "data_root": str(job.data_root)},
        kind=job.kind.value, protocol_digest=job.protocol_digest, assumptions=list(job.assumptions),
        resume=dict(resume or results.NOT_RESUMED),
    )
    return results.write_record(job.record_dir, record)


def write_failed(job: Job, reason: str, iterations: int, duration: float, resume=None) -> str:
    """Write the failed record; when even that fails (a full disk), say so in the reason instead
    of letting the write's error hide why the run failed. Returns the reason to report."""
    try:
        write_record(job, "failed", reason, {}, iterations, duration, resume)
    except OSError as exc:
        reason = f"{reason}; its failed record could not be written either ({exc.strerror or exc})"
        logger.error("trial %d: %s", job.trial, reason)
    return reason


def remove_stale_temporaries(output_dir: Path) -> None:
    """Remove what a killed predecessor's atomic writes left (.NAME.XXXX.tmp, checkpoints included).

    A run's folder has one writer (rank 0 of the one job running this trial), so any such file
    here belongs to a dead process; checkpoint temporaries are hundreds of MB each.
    """
    for tmp in output_dir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
