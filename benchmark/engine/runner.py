"""The fine-tuning engine: one task, one checkpoint, K trials -> one `results.json` per trial.

`run(options)` does, in this order, everything that can fail on bad input before any compute:
resolve the task, convert/verify the weights (`benchmark.weights.convert.prepare_weights`), check the
dataset layout, build the config (`benchmark.tasks.config.build_config`). Then, per trial, it launches
N processes (detectron2's `launch`: NCCL on GPUs, gloo CPU processes without CUDA), each of which
registers the datasets, trains with `Trainer` (detectron2's loop, `benchmark.engine.trainer`), evaluates with the
task's official evaluator, and rank 0 writes the run record atomically. A run that fails
(exception, NaN/Inf loss, diverged weights) writes a record with status failed and the reason.
"""
import contextlib
import dataclasses
import logging
import os
import re
import sys
import time
from pathlib import Path

import torch
from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from benchmark.engine import trials as trial_folder
from benchmark.engine.checkpointer import SafeCheckpointer, pinned_weights
from benchmark.engine.hooks import AttemptClock, prune_periodic_checkpoints
from benchmark.engine.trainer import Trainer
from benchmark.env import environment
from benchmark.records import results
from benchmark.tasks import UnknownTaskError, get_task
from benchmark.tasks.config import ConfigError, WeightsSettingsError, build_config, config_digest

logger = logging.getLogger(__name__)


class RunError(Exception):
    """Bad input found before training (one line: what and where); the CLI exits 1."""


class RunFailed(Exception):
    """A run that started and failed; its record (status failed, reason) is already written."""


# ----------------------------------------------------------------------------- one run, per rank

@dataclasses.dataclass
class Job:
    """Everything a worker process needs for one trial (picklable: sent to spawned processes)."""
    task: str
    cfg: object  # frozen CfgNode with OUTPUT_DIR, SEED, MODEL.WEIGHTS set
    data_root: str
    weights: dict  # {"name", "sha256" (of the .pkl loaded, pinned), "source", "source_sha256", "format"}
    seed: int
    trial: int
    resume: bool
    eval_only: bool
    deviations: list
    world_size: int = 1
    kind: str = "full"  # what the run measures: "full" | "smoke" | "sanity" | "eval-only" (never pooled across)
    assumptions: list = dataclasses.field(default_factory=list)  # the task's protocol assumptions

    @property
    def output_dir(self) -> Path:
        """The trial folder: checkpoints, config.yaml, metrics.json, and the fine-tuning record."""
        return Path(self.cfg.OUTPUT_DIR)

    @property
    def record_dir(self) -> Path:
        """Where this run's record and log go: an evaluation-only run never replaces a fine-tuning record."""
        return self.output_dir / trial_folder.EVAL_ONLY_DIR if self.eval_only else self.output_dir

    @property
    def digest(self) -> str:
        return config_digest(self.cfg)

    @property
    def protocol_digest(self) -> str:
        """The config's digest less its seed: equal for every trial of one protocol."""
        return config_digest(self.cfg, seed=False)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, FloatingPointError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "non-finite values"
        return f"training diverged: {first}"
    text = str(exc)
    if "Original Traceback" in text:  # raised in a DataLoader worker: its own error is the last line
        text = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
    text = " ".join(text.split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:2000]


NOT_RESUMED = {"count": 0, "from_iterations": [], "exact": True, "note": None}


def _write(job: Job, status: str, reason, metrics, iterations: int, duration: float, resume=None) -> Path:
    """The run record. `duration`: seconds of all attempts of the trial; `resume`: the attempts log's summary."""
    cfg = job.cfg
    record = results.new_record(
        task=job.task, weights=dict(job.weights), seed=job.seed, trial=job.trial, status=status,
        reason=reason, metrics=metrics or {}, iterations=int(iterations),
        world_size=job.world_size, ims_per_batch=int(cfg.SOLVER.IMS_PER_BATCH),
        amp=bool(cfg.SOLVER.AMP.ENABLED), deviations=list(job.deviations),
        duration_s=round(float(duration), 3), config_digest=config_digest(cfg),
        environment={**environment(), "data_root": str(job.data_root)},
        kind=job.kind, protocol_digest=job.protocol_digest, assumptions=list(job.assumptions),
        resume=dict(resume or NOT_RESUMED),
    )
    return results.write_record(job.record_dir, record)


def _write_failed(job: Job, reason: str, iterations: int, duration: float, resume=None) -> str:
    """Write the failed record; when even that fails (a full disk), say so in the reason instead
    of letting the write's error hide why the run failed. Returns the reason to report."""
    try:
        _write(job, "failed", reason, {}, iterations, duration, resume)
    except OSError as exc:
        reason = f"{reason}; its failed record could not be written either ({exc.strerror or exc})"
        logger.error("trial %d: %s", job.trial, reason)
    return reason


def _remove_stale_temporaries(output_dir: Path) -> None:
    """Remove what a killed predecessor's atomic writes left (.NAME.XXXX.tmp, checkpoints included).

    A run's folder has one writer (rank 0 of the one job running this trial), so any such file
    here belongs to a dead process; checkpoint temporaries are hundreds of MB each.
    """
    for tmp in output_dir.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _no_model_dump(record: logging.LogRecord) -> bool:
    """Console filter: detectron2 logs the whole model (~300 lines) when it builds it; keep that
    in log.txt, where it is useful, and off the terminal, where it buries the progress lines."""
    return not (isinstance(record.msg, str) and record.msg.startswith("Model:\n"))


def console_follows_stdout() -> None:
    """Point the console handlers of detectron2's and our loggers at the current sys.stdout.

    detectron2's setup_logger is cached per process and binds its handler to the sys.stdout of its
    first call. Where the suite is imported and run several times in one process (a notebook, a
    test harness that swaps sys.stdout per test), that stream may since have been replaced and
    closed, and every later message would end as a "--- Logging error ---" on stderr.
    """
    for name in ("detectron2", "benchmark"):
        for handler in logging.getLogger(name).handlers:
            # only a console handler whose stream is closed: one a user pointed elsewhere stays so
            if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
                handler.stream = sys.stdout  # not setStream: it would first flush the closed stream


@contextlib.contextmanager
def _run_logging(output_dir: Path, rank: int):
    """detectron2's console logging once per process; a log file per run (rank 0: log.txt)."""
    console_follows_stdout()
    for handler in setup_logger(distributed_rank=rank, name="detectron2").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            if _no_model_dump not in handler.filters:
                handler.addFilter(_no_model_dump)
    setup_logger(distributed_rank=rank, name="benchmark", abbrev_name="bm")
    output_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(output_dir / ("log.txt" if rank == 0 else f"log.txt.rank{rank}"))
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s"))
    targets = [logging.getLogger(n) for n in ("detectron2", "benchmark", "fvcore")]
    for lg in targets:
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg in targets:
            lg.removeHandler(handler)
        handler.close()


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


RESUME_NOT_EXACT = ("the resumed run's data order is not a function of the global iteration (the data loader "
                    "restarts its sample stream), so it sees other images than an uninterrupted run from there on")


def _resume_exactness(trainer):
    """(exact, note) of a resume: whether the trainer continues exactly as an uninterrupted run.

    The trainer (or benchmark.engine.sampler) says so with RESUME_EXACT (and why not, RESUME_NOTE).
    """
    exact = getattr(trainer, "RESUME_EXACT", None)
    note = getattr(trainer, "RESUME_NOTE", None)
    if exact is None:
        try:
            from benchmark.engine import sampler
        except ImportError:
            sampler = None
        exact = getattr(sampler, "RESUME_EXACT", False)
        note = note or getattr(sampler, "RESUME_NOTE", None)
    exact = bool(exact)
    return exact, None if exact else (note or RESUME_NOT_EXACT)


def run_one(job: Job) -> dict:
    """Train + evaluate one trial on this process (all ranks call it); rank 0 writes the record.

    Raises RunFailed (after writing the failed record) when the run fails, so that the launcher
    ends the other processes. MODEL.WEIGHTS is pinned to the sha256 it had when prepared: the
    checkpointer refuses other bytes (benchmark.engine.checkpointer).
    """
    with pinned_weights(job.cfg.MODEL.WEIGHTS, job.weights["sha256"]):
        return _run_one(job)


def _run_one(job: Job) -> dict:
    from benchmark.data import register_datasets

    rank = comm.get_rank()
    start = time.perf_counter()

    def clock():
        return time.perf_counter() - start

    with _run_logging(job.record_dir, rank):
        cfg = _with_registered_datasets(job.cfg, register_datasets(get_task(job.task), job.data_root))
        seed_all_rng(job.seed + rank)  # per-rank augmentation streams, reproducible per trial
        if rank == 0:
            _remove_stale_temporaries(job.output_dir)
            prune_periodic_checkpoints(job.output_dir, cfg.BENCHMARK.CHECKPOINTS_TO_KEEP)
            (job.record_dir / "config.yaml").write_text(job.cfg.dump())  # protocol names: the digested config
        iterations, metrics, trainer = 0, {}, None
        # The attempts log of a fine-tuning trial (rank 0): the record's resume and total duration.
        log = trial_folder.AttemptLog(job.output_dir, job.digest) if rank == 0 and not job.eval_only else None

        began = []  # this attempt is in the log (and its duration kept current there)

        def total():
            prior = log.total_duration() if log is not None else 0.0
            return prior if began else prior + clock()

        def resume():
            return log.resume_summary() if log is not None else None

        trainer_class = _trainer_class(cfg)
        try:
            if job.eval_only and hasattr(trainer_class, "evaluate_only"):  # its own checkpoint format
                metrics, iterations = trainer_class.evaluate_only(cfg, job.resume)
                metrics = _metrics_of(metrics)
            elif job.eval_only:
                model = Trainer.build_model(cfg)
                extra = SafeCheckpointer(model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS,
                                                                               resume=job.resume)
                iterations = int(extra.get("iteration", -1)) + 1
                metrics = _metrics_of(Trainer.test(cfg, model))
            else:
                trainer = trainer_class(cfg)
                trainer.resume_or_load(resume=job.resume)
                if trainer.start_iter > 0 and rank == 0:
                    dropped = trial_folder.drop_metrics_after(job.output_dir / "metrics.json", trainer.start_iter - 1)
                    logger.info("trial %d: resumed at iteration %d (%d metrics.json rows of the interrupted run "
                                "after its checkpoint dropped)", job.trial, trainer.start_iter, dropped)
                logger.info("trial %d: training from iteration %d to %d", job.trial, trainer.start_iter,
                            trainer.max_iter)
                if log is not None:
                    exact, note = _resume_exactness(trainer) if trainer.start_iter > 0 else (True, None)
                    if trainer.start_iter > 0 and not exact:
                        logger.warning("trial %d: resumed, not exactly: %s", job.trial, note)
                    log.begin(trainer.start_iter, clock(), exact, note)
                    began.append(True)
                    trainer.register_hooks([AttemptClock(log, clock, cfg.SOLVER.CHECKPOINT_PERIOD)])
                metrics = _metrics_of(trainer.train())
                iterations = trainer.iter  # TrainerBase.train leaves it at max_iter when done
        except Exception as exc:  # noqa: BLE001  (every failure becomes a failed record)
            reason = _failure_reason(exc)
            iterations = trainer.iter if trainer is not None else iterations
            logger.exception("run failed: %s", reason)
            if rank == 0:
                if began:
                    _quietly(log.update, iterations, clock(), "failed")
                reason = _write_failed(job, reason, iterations, total(), resume())
            raise RunFailed(reason) from None
        if rank == 0:
            if began:
                _quietly(log.update, iterations, clock(), "finished")
            path = _write(job, "finished", None, metrics, iterations, total(), resume())
            logger.info("run record: %s", path)
        return metrics


def _trainer_class(cfg):
    """The trainer of a config: the linear readoff's (benchmark.engine.linear) or the fine-tuning Trainer."""
    from benchmark.engine.linear import LinearTrainer, is_linear

    return LinearTrainer if is_linear(cfg) else Trainer


def _quietly(write, *args):
    """An attempts-log write that must not hide the failure being recorded (a full disk)."""
    try:
        write(*args)
    except OSError as exc:
        logger.error("attempts log not updated: %s", exc)


# ----------------------------------------------------------------------------- orchestration

@dataclasses.dataclass
class Options:
    """What tools/run_transfer.py passes in (argparse Namespace works too)."""
    task: str
    weights: str
    num_gpus: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"
    trials: int = 1
    trial: int = None
    seed: int = 0
    output: str = None
    data_root: str = None
    eval_only: bool = False
    resume: bool = False
    smoke: bool = False
    sanity: bool = False  # learning check (benchmark.engine.sanity): its data, overlay and kind "sanity"
    norm: str = None
    amp: bool = False
    name: str = None
    opts: list = dataclasses.field(default_factory=list)


def synthetic_root(data_format: str) -> Path:
    """The shared synthetic dataset of `data_format` for --smoke (written once, reused)."""
    from benchmark.data import get_family
    from benchmark.weights.download import cache_dir

    family = get_family(data_format)
    return family.write_synthetic(cache_dir() / "synthetic" / family.name)  # at the family's smoke image size


def _trials(opts) -> list:
    if opts.trial is not None:
        if opts.trial < 0:
            raise RunError(f"--trial must be >= 0, got {opts.trial}")
        return [opts.trial]
    if opts.trials < 1:
        raise RunError(f"--trials must be >= 1, got {opts.trials}")
    return list(range(opts.trials))


def prepare(opts):
    """Check every input and build the per-trial jobs, before any compute; raise RunError."""
    console_follows_stdout()  # config building logs (detectron2's auto-scaling message)
    from benchmark.data import DatasetLayoutError, validate_layout
    from benchmark.weights.convert import ConversionError, prepare_weights
    from benchmark.weights.download import DownloadError, redact_url

    try:
        task = get_task(opts.task)
    except UnknownTaskError as exc:
        raise RunError(str(exc)) from None
    trials = _trials(opts)
    if opts.seed < 0 or opts.seed + max(trials) >= 2**32:  # numpy's range; otherwise each trial fails late
        raise RunError(f"--seed must be in 0..2**32-1 for every trial (seed + trial), got {opts.seed}")
    cuda = torch.cuda.is_available()
    if opts.amp and not cuda:
        raise RunError("--amp needs CUDA (detectron2's AMPTrainer trains in float16 on GPUs only)")
    if opts.norm == "SyncBN" and not cuda:
        raise RunError("--norm SyncBN needs CUDA (torch's SyncBatchNorm); use naiveSyncBN, which also syncs CPU processes")
    if opts.num_gpus < 1 or opts.num_machines < 1:
        raise RunError(f"--num-gpus and --num-machines must be >= 1, got {opts.num_gpus} and {opts.num_machines}")
    if not 0 <= opts.machine_rank < opts.num_machines:  # otherwise the rendezvous waits forever
        raise RunError(f"--machine-rank must be in 0..{opts.num_machines - 1} (--num-machines {opts.num_machines}), "
                       f"got {opts.machine_rank}")
    if opts.num_machines > 1 and (not opts.dist_url or opts.dist_url == "auto"):
        raise RunError("--num-machines > 1 needs --dist-url tcp://HOST:PORT of machine 0")
    if cuda and opts.num_gpus > torch.cuda.device_count():
        raise RunError(f"--num-gpus {opts.num_gpus} but only {torch.cuda.device_count()} GPUs are visible")
    try:
        weights = prepare_weights(opts.weights)
    except (ConversionError, DownloadError, OSError, ValueError, KeyError, ImportError) as exc:
        # The user's spelling may carry URL secrets (user:password@, ?token=): only the redacted one is shown.
        shown = redact_url(str(opts.weights))
        message = str(exc).replace(str(opts.weights), shown)
        raise RunError(message if shown in message else f"weights {shown}: {message}") from None
    sanity = bool(getattr(opts, "sanity", False))
    if sanity and (opts.smoke or opts.eval_only):
        raise RunError("--sanity is a fine-tuning run of its own: it cannot be combined with --smoke or --eval-only")
    if sanity:  # its own synthetic data, written (once) into --data-root or the cache
        from benchmark.engine.sanity import write_data

        try:
            data_root = write_data(task, opts.data_root)
        except (OSError, ValueError) as exc:
            raise RunError(f"synthetic {task.data_format} data of the --sanity check: {exc}") from None
    elif opts.data_root:
        data_root = Path(opts.data_root)
    elif opts.smoke:
        try:
            data_root = synthetic_root(task.data_format)
        except (OSError, ValueError) as exc:
            raise RunError(f"synthetic {task.data_format} dataset for --smoke: {exc}") from None
    else:
        from benchmark.env import default_data_root

        data_root = default_data_root()
    try:
        validate_layout(task, data_root)
    except DatasetLayoutError as exc:
        raise RunError(str(exc)) from None
    if sanity:
        from benchmark.engine.sanity import build_sanity_config as build
    else:
        build = build_config
    try:
        cfg, deviations = build(task, weights.input_settings, list(opts.opts), smoke=opts.smoke,
                                num_gpus=opts.num_gpus, num_machines=opts.num_machines,
                                norm=opts.norm, amp=opts.amp)
    except WeightsSettingsError as exc:
        raise RunError(f"weights {weights.path}: {exc}") from None
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if opts.eval_only:
        deviations = deviations + ["evaluation only: no fine-tuning in this run"]
    record_weights = _record_weights(weights, opts.name or weights.name)
    name = opts.name or weights.name
    # A sanity run's default folder is apart from the real runs' (its kind and digest differ too).
    output = Path(opts.output) if opts.output else Path("output", *(["sanity"] if sanity else []), task.name, name)
    _check_writable(output)
    jobs = []
    for k in trials:
        trial_cfg = cfg.clone()
        trial_cfg.defrost()
        trial_cfg.OUTPUT_DIR = str(output / f"trial_{k}")
        trial_cfg.SEED = opts.seed + k
        trial_cfg.MODEL.WEIGHTS = str(weights.path)
        trial_cfg.freeze()
        # Fine-tuning always resumes an interrupted trial of the same config (trials.py says when
        # that is); --resume matters only to --eval-only, which then evaluates the last checkpoint.
        resume = opts.resume if opts.eval_only else True
        jobs.append(Job(task.name, trial_cfg, str(data_root), dict(record_weights),
                        opts.seed + k, k, resume, opts.eval_only, deviations,
                        opts.num_gpus * opts.num_machines, kind=run_kind(opts),
                        assumptions=[str(a) for a in getattr(task, "assumptions", ())]))
    return jobs


def run_kind(opts) -> str:
    """What a run measures (the record's `kind`): "eval-only", "smoke", "sanity" or "full"."""
    if getattr(opts, "eval_only", False):
        return "eval-only"
    if getattr(opts, "smoke", False):
        return "smoke"
    if getattr(opts, "sanity", False):
        return "sanity"
    return "full"


def _record_weights(weights, name: str) -> dict:
    """The record's weights: `sha256` is that of the converted file loaded, hashed here and pinned.

    The checkpointer loads MODEL.WEIGHTS only if its bytes still have this hash (`pinned_weights`).
    `source_sha256`: the original checkpoint's, when known (PreparedWeights.source_sha256; before
    that field existed PreparedWeights.sha256 was the source's).
    """
    from benchmark.weights.download import redact_url, sha256_file

    loaded = sha256_file(weights.path)
    if hasattr(weights, "source_sha256"):
        source_sha = weights.source_sha256
    else:
        source_sha = weights.sha256 if weights.sha256 != loaded else None
    return {"name": name, "sha256": loaded, "source": redact_url(weights.source), "source_sha256": source_sha,
            "format": getattr(weights, "format", None)}


def _check_writable(output: Path) -> None:
    """Refuse an output folder that cannot be made or written, before any compute and without creating it."""
    probe = output.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise RunError(f"--output {output}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"--output {output}: {probe} is not writable (read-only filesystem or no permission)")


def _reason_from_launch(exc: BaseException) -> str:
    """The one-line reason a spawned worker gave (RunFailed), else the exception's last line."""
    found = re.findall(r"RunFailed: (.+)", str(exc))
    if found:
        return found[-1].strip()
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else _failure_reason(exc)


def launch_job(job: Job, opts) -> str:
    """Run one trial on num_gpus x num_machines processes; return its status."""
    world = opts.num_gpus * opts.num_machines
    record = job.output_dir / results.RECORD_NAME
    before = record.stat().st_mtime_ns if record.exists() else None
    start = time.perf_counter()
    try:
        if world == 1:
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
        if opts.machine_rank == 0 and not fresh:
            # Another rank failed first and the launcher ended rank 0 before it could write.
            duration, resume = time.perf_counter() - start, None
            if not job.eval_only:  # what rank 0 logged of this and earlier attempts
                log = trial_folder.AttemptLog(job.output_dir, job.digest)
                duration, resume = max(duration, log.total_duration()), log.resume_summary()
            reason = _write_failed(job, reason, 0, duration, resume)
        logger.error("trial %d failed: %s", job.trial, reason)
        return "failed"


def run(opts) -> int:
    """The whole command: 0 when every trial finished, 1 on bad input or a failed trial."""
    jobs = prepare(opts)  # RunError propagates: nothing has run yet
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


def _reuse_finished(job: Job) -> bool:
    """True when the trial folder holds this very run, finished; RunError when it holds another one."""
    path = job.output_dir / results.RECORD_NAME
    try:
        record = results.read_record(path)
    except results.RecordError:
        record = None  # none yet, or torn by a kill: the trial runs (again)
    if record is not None and record["status"] == "finished":
        problem = trial_folder.same_run_problem(record, task=job.task, sha256=job.weights["sha256"], digest=job.digest,
                                                smoke=bool(job.cfg.BENCHMARK.SMOKE), kind=job.kind)
        if problem is None:
            logger.info("trial %d: %s is this run, finished; skipped", job.trial, path)
            return True
        raise RunError(f"{path}: a finished trial of another run is there ({problem}); it is kept as it is. "
                       "Choose another --output, or delete that folder to run this one there")
    _refuse_foreign_checkpoints(job)
    return False


def _refuse_foreign_checkpoints(job: Job) -> None:
    problem = trial_folder.foreign_checkpoint_problem(job.output_dir, job.digest, _digest_of_config_file)
    if problem:
        raise RunError(f"{job.output_dir}: {problem}; not resumed. Choose another --output, or delete that folder")


def _digest_of_config_file(path) -> str:
    from detectron2.config import CfgNode

    return config_digest(CfgNode.load_cfg(Path(path).read_text()))
