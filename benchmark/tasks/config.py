"""A task's detectron2 config: protocol files + smoke overlay + checkpoint input settings + options.

`build_config` is the one place a run's config is assembled, and it says in words how the result
departs from the task's published protocol (`deviations`, written into the run record):

  configs/<task leaf>.yaml  (inherits a Base-*.yaml)      the protocol
  configs/smoke/<kind>.yaml when smoke                    synthetic data, tiny schedule
  weights input settings                                  from the converted file's provenance
  --norm, --amp                                           command-line choices
  KEY VALUE options                                       command-line overrides
  world-size adjustment                                   protocols assume 16 images on 8 GPUs
"""
import hashlib
import math
from pathlib import Path

import torch

from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer
from detectron2.projects.deeplab import add_deeplab_config

from benchmark.tasks import CONFIG_DIR, Task, get_task
from benchmark.tasks import modeling  # noqa: F401  (registers the model pieces our configs name)

NORMS = ("naiveSyncBN", "SyncBN", "BN")
# Which smoke overlay each data format gets (COCO's differs from VOC's only by the task's mask head).
SMOKE_OVERLAYS = {"voc": "smoke/detection.yaml", "coco": "smoke/detection.yaml",
                  "cityscapes": "smoke/cityscapes.yaml"}


class ConfigError(ValueError):
    """A config that cannot be built: bad KEY VALUE options, an unusable world size or norm."""


def add_benchmark_config(cfg: CfgNode) -> CfgNode:
    """Add every key the suite adds to detectron2's config (and DeepLab's, so one schema fits all)."""
    add_deeplab_config(cfg)
    cfg.BENCHMARK = CfgNode()
    # Registered task name, so a dumped config says which protocol it is.
    cfg.BENCHMARK.TASK = ""
    # True for --smoke runs: synthetic data and a tiny schedule, never comparable to references.
    cfg.BENCHMARK.SMOKE = False
    # World size the protocol's IMS_PER_BATCH assumes (16 images on 8 GPUs in every protocol here).
    cfg.BENCHMARK.PROTOCOL_WORLD_SIZE = 8
    # Most images per process for which the total batch is kept on fewer processes; beyond it LR
    # and schedule are scaled instead (4 is twice the protocols' 2 per GPU: memory grows linearly).
    cfg.BENCHMARK.MAX_IMS_PER_PROCESS = 4
    # Period (iterations) of metrics.json / console writes, also their smoothing window.
    cfg.BENCHMARK.LOG_PERIOD = 20
    # Period (iterations) of the finite-weights check that stops a diverged run (0: off).
    cfg.BENCHMARK.NONFINITE_CHECK_PERIOD = 20
    # Periodic checkpoints (model_NNNNNNN.pth) kept on disk; older ones are deleted as new ones
    # are written (0: keep all, detectron2's behaviour). model_final.pth is always kept.
    cfg.BENCHMARK.CHECKPOINTS_TO_KEEP = 1
    return cfg


def _flatten(cfg: CfgNode, prefix="") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, CfgNode):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _merge_pairs(cfg: CfgNode, pairs, what: str) -> None:
    try:
        cfg.merge_from_list(list(pairs))
    except (KeyError, ValueError, AssertionError, TypeError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        raise ConfigError(f"{what}: {msg}") from None


def protocol_config(task: Task) -> CfgNode:
    """The task's published protocol alone (no smoke, no weights, no options)."""
    cfg = add_benchmark_config(get_cfg())
    cfg.merge_from_file(str(task.config_path))
    cfg.BENCHMARK.TASK = task.name
    return cfg


def adjust_world_size(cfg: CfgNode, world_size: int) -> list:
    """Fit the protocol's batch to `world_size` processes; return the deviations it causes.

    With SyncBN every protocol value (total batch, LR, schedule, BN statistics over the whole
    batch) is unchanged when the total batch is only split differently, so that is done whenever
    it splits evenly into at most MAX_IMS_PER_PROCESS images per process. Otherwise the per-process
    load of the protocol is kept and LR is scaled linearly, iterations and steps inversely
    (detectron2's SOLVER.REFERENCE_WORLD_SIZE / DefaultTrainer.auto_scale_workers).
    """
    batch, ref = cfg.SOLVER.IMS_PER_BATCH, cfg.BENCHMARK.PROTOCOL_WORLD_SIZE
    if world_size < 1:
        raise ConfigError(f"world size must be at least 1, got {world_size}")
    if batch % world_size == 0 and batch // world_size <= cfg.BENCHMARK.MAX_IMS_PER_PROCESS:
        cfg.SOLVER.REFERENCE_WORLD_SIZE = 0  # the trainer must not rescale again
        return []
    if batch % ref:
        raise ConfigError(f"SOLVER.IMS_PER_BATCH {batch} does not split over BENCHMARK.PROTOCOL_WORLD_SIZE {ref}")
    before = (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS))
    cfg.SOLVER.REFERENCE_WORLD_SIZE = ref
    scaled = DefaultTrainer.auto_scale_workers(cfg, world_size)
    cfg.merge_from_other_cfg(scaled)
    return [
        f"world size {world_size} (protocol: {batch} images on {ref} processes): linear scaling to "
        f"batch {cfg.SOLVER.IMS_PER_BATCH}, LR {before[0]:g} -> {cfg.SOLVER.BASE_LR:g}, iterations "
        f"{before[1]} -> {cfg.SOLVER.MAX_ITER}, steps {list(before[2])} -> {list(cfg.SOLVER.STEPS)}"
    ]


def build_config(task, weights_settings=None, opts=(), smoke=False, num_gpus=1, norm=None, amp=False,
                 num_machines=1):
    """Assemble a run's config; return (frozen cfg, deviations from the protocol as sentences).

    `task`: a Task or its name. `weights_settings`: the converted checkpoint's input settings
    ({"INPUT.FORMAT": "RGB", ...}), applied as given. `opts`: flat KEY VALUE list (strings are
    parsed as detectron2 does). `num_gpus` x `num_machines`: the world size. `norm`: one of NORMS.
    """
    task = get_task(task) if isinstance(task, str) else task
    cfg = protocol_config(task)
    protocol = _flatten(cfg)
    deviations = []
    if smoke:
        cfg.merge_from_file(str(CONFIG_DIR / SMOKE_OVERLAYS[task.data_format]))
        cfg.BENCHMARK.SMOKE = True
        deviations.append("smoke run: synthetic data, tiny images and schedule (not comparable to references)")
    if weights_settings:
        _merge_pairs(cfg, [x for kv in weights_settings.items() for x in kv], "checkpoint input settings")
    if norm is not None:
        if norm not in NORMS:
            raise ConfigError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        cfg.MODEL.RESNETS.NORM = norm
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
            cfg.MODEL.SEM_SEG_HEAD.NORM = norm
        if norm == "BN" and num_gpus * num_machines > 1:
            deviations.append("norm BN: batch statistics per process, not synchronized over the whole batch")
    if amp:
        cfg.SOLVER.AMP.ENABLED = True
    if not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"  # detectron2 defaults to cuda; where there is none, CPU processes
    if len(opts) % 2:
        raise ConfigError(f"options must be KEY VALUE pairs, got an odd count: {' '.join(map(str, opts))}")
    before = _flatten(cfg)
    _merge_pairs(cfg, opts, "command-line option")
    after = _flatten(cfg)
    for key in opts[::2]:
        if after[key] != before[key]:
            deviations.append(f"{key}: {protocol.get(key)!r} in the protocol, {after[key]!r} from the command line")
    _check_values(cfg)
    if cfg.SOLVER.AMP.ENABLED:
        deviations.append("mixed precision (AMP) training; the protocol trains in FP32")
    deviations += adjust_world_size(cfg, num_gpus * num_machines)
    cfg.freeze()
    return cfg, deviations


# Values whose type yacs checks but whose range it does not: 0 or a negative number would train
# nothing (or divide by zero in the world-size rule) and still write a "finished" record.
_POSITIVE = ("SOLVER.MAX_ITER", "SOLVER.IMS_PER_BATCH", "SOLVER.BASE_LR", "SOLVER.CHECKPOINT_PERIOD")


def _check_values(cfg: CfgNode) -> None:
    flat = _flatten(cfg)
    for key in _POSITIVE:
        value = flat[key]
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{key} must be a positive number, got {value!r}")


def config_digest(cfg: CfgNode) -> str:
    """sha256 of the full config dump: runs with equal digests ran the same configuration."""
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def smoke_overlay_path(task: Task) -> Path:
    return CONFIG_DIR / SMOKE_OVERLAYS[task.data_format]
