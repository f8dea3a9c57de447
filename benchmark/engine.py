"""The fine-tuning engine: one task, one checkpoint, K trials -> one `results.json` per trial.

`run(options)` does, in this order, everything that can fail on bad input before any compute:
resolve the task, convert/verify the weights (`benchmark.convert.prepare_weights`), check the
dataset layout, build the config (`benchmark.config.build_config`). Then, per trial, it launches
N processes (detectron2's `launch`: NCCL on GPUs, gloo CPU processes without CUDA), each of which
registers the datasets, trains with `Trainer` (a detectron2 `DefaultTrainer`), evaluates with the
task's official evaluator, and rank 0 writes the run record atomically. A run that fails
(exception, NaN/Inf loss, diverged weights) writes a record with status failed and the reason.
"""
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import re
import shutil
import time
import weakref
from pathlib import Path
from unittest import mock

import torch

import benchmark  # noqa: F401  (makes detectron2 importable, registers model pieces)
from benchmark import d2, results
from benchmark.config import ConfigError, build_config, config_digest
from benchmark.tasks import UnknownTaskError, get_task

import detectron2.data.transforms as T  # noqa: E402
import detectron2.engine.defaults as d2_defaults  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data import DatasetMapper, build_detection_train_loader  # noqa: E402
from detectron2.engine import DefaultTrainer, HookBase, hooks, launch  # noqa: E402
from detectron2.projects.deeplab import build_lr_scheduler as deeplab_build_lr_scheduler  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.env import seed_all_rng  # noqa: E402
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

logger = logging.getLogger(__name__)

CHECKPOINT_POINTER = "last_checkpoint"  # detectron2's file naming the latest checkpoint


class RunError(Exception):
    """Bad input found before training (one line: what and where); the CLI exits 1."""


class RunFailed(Exception):
    """A run that started and failed; its record (status failed, reason) is already written."""


# ----------------------------------------------------------------------------- model loading

class _AtomicWrites:
    """iopath's PathManager, except that files opened for writing are written atomically.

    fvcore writes checkpoints and the `last_checkpoint` pointer in place: a job killed or a disk
    filling up mid-write leaves a torn file under the final name, and `--resume` then fails on it.
    Through `atomic_write` a reader sees the previous file or the complete new one.
    """

    def __init__(self, inner):
        self._inner = inner

    def open(self, path, mode="r", **kwargs):
        if "w" in mode:
            from benchmark.fileio import atomic_write

            return atomic_write(path, mode)
        return self._inner.open(path, mode, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class SafeCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that never unpickles arbitrary code and never leaves a torn file.

    detectron2 `pickle.load`s .pkl files, which runs whatever they contain; the suite's converter
    writes .pkl files that `benchmark.convert.load_converted` reads with a restricted unpickler.
    Every other file (our own training checkpoints) goes through torch.load with weights_only=True,
    said explicitly so that $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD cannot turn it off. Saves are atomic.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.path_manager = _AtomicWrites(self.path_manager)

    def save(self, name, **kwargs):
        try:
            super().save(name, **kwargs)
        except (OSError, RuntimeError) as exc:
            # torch's zip writer turns a failed write (full disk, quota) into an opaque RuntimeError
            # ("unexpected pos"); say what happened and how much room there is.
            free = shutil.disk_usage(self.save_dir).free / 2**20
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
            raise OSError(getattr(exc, "errno", None) or errno.EIO,
                          f"checkpoint {name}.pth not saved in {self.save_dir} ({detail}; {free:.0f} MiB free there); "
                          "the previous checkpoint is intact") from None

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            from benchmark.convert import load_converted

            data = dict(load_converted(filename))
            data.setdefault("matching_heuristics", True)
            self.logger.info("Reading converted weights from '%s' (%s)", filename, data["__author__"])
            return data
        if filename.endswith(".pyth"):  # detectron2 would torch.load it without weights_only
            raise ValueError(f"{filename}: pycls .pyth files are not read; convert the checkpoint with tools/convert.py")
        return super()._load_file(filename)

    def _torch_load(self, f):
        return torch.load(f, map_location=torch.device("cpu"), weights_only=True)


# ----------------------------------------------------------------------------- hooks

_PERIODIC_CHECKPOINT = re.compile(r"model_\d{7}\.pth")


def _limit_periodic_checkpoints(hook, output_dir: str, keep: int) -> None:
    """Keep only the newest `keep` periodic checkpoints (0: all); model_final.pth is never removed.

    detectron2 keeps every one: a COCO 1x run saves 18 of ~260 MiB (weights and momentum), a
    45-run table hundreds of GB, when resuming needs only the latest. The ones already on disk
    count too, so a resumed run prunes what its killed predecessor left.
    """
    if keep <= 0:
        return
    hook.max_to_keep = keep
    hook.recent_checkpoints = [os.path.join(output_dir, name) for name in sorted(os.listdir(output_dir))
                               if _PERIODIC_CHECKPOINT.fullmatch(name)]


class NonFiniteGuard(HookBase):
    """Stops a diverged run within `period` iterations: every rank checks its weights are finite.

    detectron2 raises FloatingPointError when the (gathered) loss is NaN/Inf, but only on rank 0
    and only for the loss; a huge LR can also blow up weights or BN statistics first. Parameters
    and buffers are identical across ranks under DDP + SyncBN, so each rank reaches the same
    verdict without communicating, and all raise together.
    """

    def __init__(self, period: int):
        self._period = period

    def after_step(self):
        if self._period <= 0 or (self.trainer.iter + 1) % self._period:
            return
        model = self.trainer.model
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise FloatingPointError(
                    f"weights became infinite or NaN at iteration={self.trainer.iter} ({name})")


# ----------------------------------------------------------------------------- trainer

def _sem_seg_train_augmentations(cfg):
    """DeepLab's training augmentation: random scale, crop of exactly CROP.SIZE, flip.

    As detectron2 projects/DeepLab/train_net.py builds it; the crop must be the exact size
    because DeepLabV3's ASPP image pooling kernel is derived from INPUT.CROP.SIZE.
    """
    return [
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                             cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING),
        T.RandomCrop_CategoryAreaConstraint(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE,
                                            cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                                            cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE),
        T.RandomFlip(),
    ]


class LabelCheckedMapper(DatasetMapper):
    """DatasetMapper for semantic segmentation that refuses label ids the model cannot learn.

    A label outside 0..NUM_CLASSES-1 and the ignore value (labelIds given where labelTrainIds are
    expected, a corrupt PNG) otherwise ends in an index error deep inside the loss. Checked here,
    where the labels are decoded anyway, the error names the file.
    """

    def __init__(self, cfg, is_train=True, augmentations=None):
        super().__init__(cfg, is_train=is_train, augmentations=augmentations)
        self._num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        self._ignore = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE

    def __call__(self, dataset_dict):
        path = dataset_dict.get("sem_seg_file_name")
        out = super().__call__(dataset_dict)
        seg = out.get("sem_seg")
        if seg is not None:
            bad = seg[(seg != self._ignore) & ((seg < 0) | (seg >= self._num_classes))]
            if bad.numel():
                ids = ", ".join(str(int(v)) for v in bad.unique()[:5])
                raise ValueError(f"{path}: label ids {ids} are outside 0..{self._num_classes - 1} and the ignore "
                                 f"value {self._ignore} (labelTrainIds expected; see datasets.md)")
        return out


class Trainer(DefaultTrainer):
    """detectron2's DefaultTrainer with the task's evaluator, schedule, loader and safety hooks."""

    def __init__(self, cfg):
        # detectron2 wraps the model in DDP with device_ids=[local rank], which torch refuses for
        # CPU modules; CPU processes over gloo need device_ids=None (the only change).
        patch = contextlib.nullcontext()
        if comm.get_world_size() > 1 and cfg.MODEL.DEVICE == "cpu":
            patch = mock.patch.object(d2_defaults, "create_ddp_model",
                                      functools.partial(d2_defaults.create_ddp_model, device_ids=None))
        with patch:
            super().__init__(cfg)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        from benchmark.evaluation import build_evaluator

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return build_evaluator(cfg.BENCHMARK.TASK, dataset_name, output_folder, distributed=True)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        # DeepLab's builder adds WarmupPolyLR and defers to detectron2's for the other schedules.
        return deeplab_build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
            mapper = LabelCheckedMapper(cfg, is_train=True, augmentations=_sem_seg_train_augmentations(cfg))
            return build_detection_train_loader(cfg, mapper=mapper)
        return super().build_train_loader(cfg)

    def build_hooks(self):
        # Called by DefaultTrainer.__init__ right after it made its checkpointer: swap in ours
        # first, so that both loading and the PeriodicCheckpointer use it.
        self.checkpointer = SafeCheckpointer(self.checkpointer.model, self.cfg.OUTPUT_DIR,
                                             trainer=weakref.proxy(self))
        ret = super().build_hooks()
        for hook in ret:
            if isinstance(hook, hooks.PeriodicWriter):
                hook._period = self.cfg.BENCHMARK.LOG_PERIOD  # detectron2 hard-codes 20
            elif isinstance(hook, hooks.PeriodicCheckpointer):  # main process only
                _limit_periodic_checkpoints(hook, self.cfg.OUTPUT_DIR, self.cfg.BENCHMARK.CHECKPOINTS_TO_KEEP)
        ret.insert(2, NonFiniteGuard(self.cfg.BENCHMARK.NONFINITE_CHECK_PERIOD))
        return ret

    def build_writers(self):
        period = self.cfg.BENCHMARK.LOG_PERIOD
        return [
            CommonMetricPrinter(self.max_iter),
            # One line per LOG_PERIOD iterations, each the median over that period (raw at 1).
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=period),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=period),
        ]


# ----------------------------------------------------------------------------- one run, per rank

@dataclasses.dataclass
class Job:
    """Everything a worker process needs for one trial (picklable: sent to spawned processes)."""
    task: str
    cfg: object  # frozen CfgNode with OUTPUT_DIR, SEED, MODEL.WEIGHTS set
    data_root: str
    weights: dict  # {"name", "sha256", "source"} for the record
    seed: int
    trial: int
    resume: bool
    eval_only: bool
    deviations: list
    world_size: int = 1

    @property
    def output_dir(self) -> Path:
        return Path(self.cfg.OUTPUT_DIR)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, FloatingPointError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "non-finite values"
        return f"training diverged: {first}"
    text = str(exc)
    if "Original Traceback" in text:  # raised in a DataLoader worker: its own error is the last line
        text = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
    text = " ".join(text.split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:2000]


def _write(job: Job, status: str, reason, metrics, iterations: int, duration: float) -> Path:
    cfg = job.cfg
    record = results.new_record(
        task=job.task, weights=job.weights, seed=job.seed, trial=job.trial, status=status,
        reason=reason, metrics=metrics or {}, iterations=int(iterations),
        world_size=job.world_size, ims_per_batch=int(cfg.SOLVER.IMS_PER_BATCH),
        amp=bool(cfg.SOLVER.AMP.ENABLED), deviations=list(job.deviations),
        duration_s=round(float(duration), 3), config_digest=config_digest(cfg),
        environment={**d2.environment(), "data_root": str(job.data_root)},
    )
    return results.write_record(job.output_dir, record)


def _write_failed(job: Job, reason: str, iterations: int, duration: float) -> str:
    """Write the failed record; when even that fails (a full disk), say so in the reason instead
    of letting the write's error hide why the run failed. Returns the reason to report."""
    try:
        _write(job, "failed", reason, {}, iterations, duration)
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


@contextlib.contextmanager
def _run_logging(output_dir: Path, rank: int):
    """detectron2's console logging once per process; a log file per run (rank 0: log.txt)."""
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


def _metrics_of(res) -> dict:
    """The evaluator's {group: {metric: value}} (detectron2 nests by dataset when several)."""
    if not res:
        return {}
    return {g: dict(v) for g, v in res.items() if isinstance(v, dict)}


def run_one(job: Job) -> dict:
    """Train + evaluate one trial on this process (all ranks call it); rank 0 writes the record.

    Raises RunFailed (after writing the failed record) when the run fails, so that the launcher
    ends the other processes.
    """
    from benchmark.data import register_datasets

    rank, cfg = comm.get_rank(), job.cfg
    start = time.perf_counter()
    with _run_logging(job.output_dir, rank):
        register_datasets(job.task, job.data_root)
        seed_all_rng(job.seed + rank)  # per-rank augmentation streams, reproducible per trial
        if rank == 0:
            _remove_stale_temporaries(job.output_dir)
            (job.output_dir / "config.yaml").write_text(cfg.dump())
        iterations, metrics, trainer = 0, {}, None
        try:
            if job.eval_only:
                model = Trainer.build_model(cfg)
                extra = SafeCheckpointer(model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS,
                                                                               resume=job.resume)
                iterations = int(extra.get("iteration", -1)) + 1
                metrics = _metrics_of(Trainer.test(cfg, model))
            else:
                trainer = Trainer(cfg)
                trainer.resume_or_load(resume=job.resume)
                logger.info("trial %d: training from iteration %d to %d", job.trial, trainer.start_iter,
                            trainer.max_iter)
                trainer.train()
                iterations = trainer.iter  # TrainerBase.train leaves it at max_iter when done
                metrics = _metrics_of(getattr(trainer, "_last_eval_results", None))
        except Exception as exc:  # noqa: BLE001  (every failure becomes a failed record)
            reason = _failure_reason(exc)
            iterations = trainer.iter if trainer is not None else iterations
            logger.exception("run failed: %s", reason)
            if rank == 0:
                reason = _write_failed(job, reason, iterations, time.perf_counter() - start)
            raise RunFailed(reason) from None
        if rank == 0:
            path = _write(job, "finished", None, metrics, iterations, time.perf_counter() - start)
            logger.info("run record: %s", path)
        return metrics


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
    norm: str = None
    amp: bool = False
    name: str = None
    opts: list = dataclasses.field(default_factory=list)


def synthetic_root(data_format: str) -> Path:
    """The shared synthetic dataset of `data_format` for --smoke (written once, reused)."""
    from benchmark.data import write_synthetic
    from benchmark.download import cache_dir

    root = cache_dir() / "synthetic" / data_format
    # Cityscapes keeps its 1:2 aspect so that smoke test features divide by the ASPP pool kernel.
    size = (128, 256) if data_format == "cityscapes" else (128, 160)
    return write_synthetic(data_format, root, image_size=size)


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
    from benchmark.convert import ConversionError, prepare_weights
    from benchmark.data import DatasetLayoutError, validate_layout
    from benchmark.download import DownloadError

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
    if opts.num_machines > 1 and (not opts.dist_url or opts.dist_url == "auto"):
        raise RunError("--num-machines > 1 needs --dist-url tcp://HOST:PORT of machine 0")
    if cuda and opts.num_gpus > torch.cuda.device_count():
        raise RunError(f"--num-gpus {opts.num_gpus} but only {torch.cuda.device_count()} GPUs are visible")
    try:
        weights = prepare_weights(opts.weights)
    except (ConversionError, DownloadError, OSError, ValueError, KeyError, ImportError) as exc:
        raise RunError(f"weights {opts.weights}: {exc}" if str(opts.weights) not in str(exc) else str(exc)) from None
    if opts.data_root:
        data_root = Path(opts.data_root)
    elif opts.smoke:
        try:
            data_root = synthetic_root(task.data_format)
        except (OSError, ValueError) as exc:
            raise RunError(f"synthetic {task.data_format} dataset for --smoke: {exc}") from None
    else:
        from benchmark.data import default_data_root

        data_root = default_data_root()
    try:
        validate_layout(task, data_root)
    except DatasetLayoutError as exc:
        raise RunError(str(exc)) from None
    try:
        cfg, deviations = build_config(task, weights.input_settings, list(opts.opts), smoke=opts.smoke,
                                       num_gpus=opts.num_gpus, num_machines=opts.num_machines,
                                       norm=opts.norm, amp=opts.amp)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if opts.eval_only:
        deviations = deviations + ["evaluation only: no fine-tuning in this run"]
    name = opts.name or weights.name
    output = Path(opts.output) if opts.output else Path("output") / task.name / name
    jobs = []
    for k in trials:
        trial_cfg = cfg.clone()
        trial_cfg.defrost()
        trial_cfg.OUTPUT_DIR = str(output / f"trial_{k}")
        trial_cfg.SEED = opts.seed + k
        trial_cfg.MODEL.WEIGHTS = str(weights.path)
        trial_cfg.freeze()
        resume = opts.resume or len(trials) > 1 or opts.trial is not None
        jobs.append(Job(task.name, trial_cfg, str(data_root),
                        {"name": name, "sha256": weights.sha256, "source": str(weights.source)},
                        opts.seed + k, k, resume, opts.eval_only, deviations,
                        opts.num_gpus * opts.num_machines))
    return jobs


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
            reason = _write_failed(job, reason, 0, time.perf_counter() - start)
        logger.error("trial %d failed: %s", job.trial, reason)
        return "failed"


def run(opts) -> int:
    """The whole command: 0 when every trial finished, 1 on bad input or a failed trial."""
    jobs = prepare(opts)  # RunError propagates: nothing has run yet
    failed = []
    for job in jobs:
        if not job.eval_only and results.is_finished(job.output_dir):
            logger.info("trial %d: %s is finished, skipped", job.trial, job.output_dir / results.RECORD_NAME)
            print(f"trial {job.trial}: finished earlier, skipped ({job.output_dir})")
            continue
        status = launch_job(job, opts)
        print(f"trial {job.trial}: {status} ({job.output_dir / results.RECORD_NAME})")
        if status != "finished":
            failed.append(job.trial)
    return 1 if failed else 0
