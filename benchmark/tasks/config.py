"""A task's detectron2 config: protocol files + smoke overlay + checkpoint input settings + options.

`build_config` is the one place a run's config is assembled, and it says in words how the result
departs from the task's published protocol (`deviations`, written into the run record):

  configs/<task leaf>.yaml  (inherits a Base-*.yaml)      the protocol
  configs/smoke/<kind>.yaml when smoke                    synthetic data, tiny schedule
  weights input settings                                  from the converted file's provenance
  --norm, --amp                                           command-line choices
  KEY VALUE options                                       command-line overrides
  world-size adjustment                                   protocols assume 16 images on 8 GPUs

How many images each process trains on is one rule, `images_per_process` (see there), used both
to build the config and to word its deviation.
"""
import dataclasses
import hashlib
import math
from pathlib import Path

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer
from detectron2.projects.deeplab import add_deeplab_config

from benchmark.tasks import (
    Task,
    classification,  # noqa: F401  (registers the linear readoff's meta-architecture)
    fewshot,  # noqa: F401  (registers the few-shot feature extractor's meta-architecture)
    landmarks,  # noqa: F401  (registers the landmark regressor's meta-architecture)
    modeling,  # noqa: F401  (registers the model pieces our configs name)
)

NORMS = ("naiveSyncBN", "SyncBN", "BN")


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
    # Images per process set by hand (--ims-per-gpu); 0: from the device's memory (images_per_process).
    cfg.BENCHMARK.IMS_PER_GPU = 0
    # Training memory (GB) one full-size image needs on a GPU, set per model by the task configs with
    # its source; 0: unknown, CUDA processes then take the CPU rule below.
    cfg.BENCHMARK.TRAIN_GB_PER_IMAGE = 0.0
    # GB of a device not available to images: CUDA context, cuDNN workspace, the model's weights,
    # gradients and momentum (~0.4 GB for an R50-C4).
    cfg.BENCHMARK.TRAIN_GB_FIXED = 1.0
    # CPU processes (no device memory to size by): most images per process for which the total batch
    # is kept; beyond it each process takes the protocol's share (16 / 8) and LR and schedule are scaled.
    cfg.BENCHMARK.MAX_IMS_PER_PROCESS = 4
    # Period (iterations) of metrics.json / console writes, also their smoothing window.
    cfg.BENCHMARK.LOG_PERIOD = 20
    # Period (iterations) of the finite-weights check that stops a diverged run (0: off).
    cfg.BENCHMARK.NONFINITE_CHECK_PERIOD = 20
    # Periodic checkpoints (model_NNNNNNN.pth) kept on disk; older ones are deleted as new ones
    # are written (0: keep all, detectron2's behaviour). model_final.pth is always kept.
    cfg.BENCHMARK.CHECKPOINTS_TO_KEEP = 1
    # The linear readoff (imagenet_linear, benchmark.engine.linear): a schedule counted in epochs,
    # as MoCo's main_lincls.py counts it, and its input sizes (the detection ones are per side).
    cfg.BENCHMARK.LINEAR = CfgNode()
    cfg.BENCHMARK.LINEAR.NUM_CLASSES = 1000  # outputs of the one linear layer (ImageNet-1k)
    cfg.BENCHMARK.LINEAR.EPOCHS = 100  # passes over the training images
    cfg.BENCHMARK.LINEAR.LR_STEPS = (60, 80)  # epochs at whose start the LR is multiplied by SOLVER.GAMMA
    cfg.BENCHMARK.LINEAR.TRAIN_CROP = 224  # RandomResizedCrop output side
    cfg.BENCHMARK.LINEAR.TEST_RESIZE = 256  # shorter side before the centre crop at test
    cfg.BENCHMARK.LINEAR.TEST_CROP = 224  # CenterCrop side at test
    cfg.BENCHMARK.LINEAR.INIT_STD = 0.01  # std of the normal init of the linear weights (bias 0)
    # Few-shot evaluation (fewshot_miniimagenet, benchmark.engine.fewshot): frozen features once, then
    # EPISODES episodes per shot count, each with a fresh head (configs/fewshot_miniimagenet.yaml: sources).
    cfg.BENCHMARK.FEWSHOT = CfgNode()
    cfg.BENCHMARK.FEWSHOT.HEAD = "baseline"  # "baseline" (CloserLookFewShot's linear layer) | "rfs" (logistic regression)
    cfg.BENCHMARK.FEWSHOT.WAYS = 5  # classes per episode
    cfg.BENCHMARK.FEWSHOT.SHOTS = (1, 5)  # support images per class; one metric "<n>shot" each
    cfg.BENCHMARK.FEWSHOT.QUERIES = 15  # query images per class
    cfg.BENCHMARK.FEWSHOT.EPISODES = 600  # per shot count
    cfg.BENCHMARK.FEWSHOT.EPOCHS = 100  # passes of the baseline head over the support set
    cfg.BENCHMARK.FEWSHOT.BATCH = 4  # support images per SGD step of the baseline head
    cfg.BENCHMARK.FEWSHOT.LR = 0.01
    cfg.BENCHMARK.FEWSHOT.MOMENTUM = 0.9
    cfg.BENCHMARK.FEWSHOT.DAMPENING = 0.9
    cfg.BENCHMARK.FEWSHOT.WEIGHT_DECAY = 0.001
    cfg.BENCHMARK.FEWSHOT.RFS_C = 1.0  # inverse L2 strength of the rfs head's LogisticRegression
    cfg.BENCHMARK.FEWSHOT.RFS_MAX_ITER = 1000  # lbfgs iterations of the rfs head
    cfg.BENCHMARK.FEWSHOT.RESIZE = 257  # both sides, before the centre crop
    cfg.BENCHMARK.FEWSHOT.CROP = 224  # centre crop side
    cfg.BENCHMARK.FEWSHOT.WORKERS = 0  # local processes per trial process for the episodes on CPU (0: one per core)
    cfg.BENCHMARK.FEWSHOT.LOG_PERIOD_S = 10.0  # seconds between progress lines (episodes done, ETA)
    # The landmark regressor (mafl_landmarks, benchmark.engine.landmarks / benchmark.tasks.landmarks):
    # DVE's preprocessing (a square crop of the aligned image, resized) and keypoint head, epochs.
    cfg.BENCHMARK.LANDMARKS = CfgNode()
    cfg.BENCHMARK.LANDMARKS.CROP_TOP = 30  # rows cut off the top of the aligned image
    cfg.BENCHMARK.LANDMARKS.CROP_LEFT = 0  # columns cut off its left
    cfg.BENCHMARK.LANDMARKS.CROP_SIZE = 178  # side of the square crop (landmarks shifted alike)
    cfg.BENCHMARK.LANDMARKS.INPUT_SIZE = 224  # side the crop is resized to (landmarks scaled alike)
    cfg.BENCHMARK.LANDMARKS.PIXEL_MEAN = [0.5084, 0.4224, 0.3769]  # RGB, of 0..1 images
    cfg.BENCHMARK.LANDMARKS.PIXEL_STD = [0.2599, 0.2371, 0.2323]
    cfg.BENCHMARK.LANDMARKS.NUM_LANDMARKS = 5  # annotated points
    cfg.BENCHMARK.LANDMARKS.NUM_INTERMEDIATE = 50  # soft-argmax points per annotated one
    cfg.BENCHMARK.LANDMARKS.SOFTARGMAX_MUL = 100.0  # softmax temperature of the heatmaps (its inverse)
    cfg.BENCHMARK.LANDMARKS.LOSS_SCALE = 10.0  # smooth L1 on coordinates in [-1, 1] times this
    cfg.BENCHMARK.LANDMARKS.AMSGRAD = True  # Adam's amsgrad variant
    cfg.BENCHMARK.LANDMARKS.EPOCHS = 20  # passes over the training images
    # Keep each training image's frozen features after its first epoch (no augmentation: they never change).
    cfg.BENCHMARK.LANDMARKS.CACHE_FEATURES = True
    return cfg


def _flatten(cfg: CfgNode, prefix="") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, CfgNode):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


MAX_MESSAGE = 300  # characters of a config error kept on its one line (yacs' messages can dump whole nodes)


def _merge_pairs(cfg: CfgNode, pairs, what: str) -> None:
    pairs = list(pairs)
    for key in pairs[::2]:
        node = _node_at(cfg, str(key))
        if isinstance(node, CfgNode):  # yacs would answer with the whole node, dumped over dozens of lines
            keys = sorted(node)
            raise ConfigError(f"{what}: {key} is a group of {len(keys)} keys ({', '.join(keys[:4])}"
                              f"{', ...' if len(keys) > 4 else ''}), not one value; set one of them, e.g. "
                              f"{key}.{keys[0]} VALUE")
    try:
        cfg.merge_from_list(pairs)
    except (KeyError, ValueError, AssertionError, TypeError) as exc:
        msg = " ".join(str(exc.args[0] if exc.args else exc).split())
        if len(msg) > MAX_MESSAGE:
            msg = msg[:MAX_MESSAGE - 3] + "..."
        raise ConfigError(f"{what}: {msg}") from None


def _node_at(cfg: CfgNode, key: str):
    """The value at dotted `key` of `cfg`, or None where the path does not exist."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            return None
        node = node[part]
    return node


def protocol_config(task: Task) -> CfgNode:
    """The task's published protocol alone (no smoke, no weights, no options)."""
    cfg = add_benchmark_config(get_cfg())
    cfg.merge_from_file(str(task.config_path))
    cfg.BENCHMARK.TASK = task.name
    return cfg


# The aspect of a "real size" image where the protocol fixes only the short side: 4:3, the usual
# landscape photo of VOC and COCO [suite: an assumption for memory and loader measurements, no
# protocol value]. Its long side stays within the config's MAX_SIZE_TRAIN, so nothing is resized down.
REAL_ASPECT = 4 / 3


def real_image_size(family_name: str) -> tuple:
    """(height, width) of synthetic images at the size the protocol trains on, read from the first
    registered task of the family (benchmarks/gpu_acceptance.py measures memory and loader
    speed on them; `make_synthetic.py --size real`):
      detection (voc, coco): short side the largest INPUT.MIN_SIZE_TRAIN, REAL_ASPECT, so that the
        largest training input is reached without resizing (the worst case the memory rule must hold);
      cityscapes: the full images, INPUT.MIN_SIZE_TEST x MAX_SIZE_TEST (1024x2048, cityscapes.yaml);
      imagenet: short side the linear readoff's BENCHMARK.LINEAR.TEST_RESIZE, REAL_ASPECT;
      other families: their smoke size (no protocol size to read).
    """
    from benchmark.data.families import get_family
    from benchmark.tasks.registry import list_tasks

    tasks = [t for t in list_tasks() if t.data_format == family_name]
    family = get_family(family_name)
    if not tasks:
        return tuple(family.smoke_image_size)
    cfg = protocol_config(tasks[0])
    if family_name == "cityscapes":
        return int(cfg.INPUT.MIN_SIZE_TEST), int(cfg.INPUT.MAX_SIZE_TEST)
    if family_name == "imagenet":
        short = int(cfg.BENCHMARK.LINEAR.TEST_RESIZE)
        return short, round(short * REAL_ASPECT)
    if family_name in ("voc", "coco"):
        short = max(cfg.INPUT.MIN_SIZE_TRAIN)
        return int(short), min(int(cfg.INPUT.MAX_SIZE_TRAIN), round(short * REAL_ASPECT))
    return tuple(family.smoke_image_size)


@dataclasses.dataclass(frozen=True)
class Split:
    """How a run's batch is split: `per_process` images on each process, `capacity` the most one
    process is taken to hold, `basis` why (the words the deviation uses)."""
    per_process: int
    capacity: int
    basis: str


def images_per_process(cfg: CfgNode, world_size: int, device_memory_gb=None) -> Split:
    """THE images-per-process rule: how many images each of `world_size` processes trains on.

    Capacity (the most images one process holds): BENCHMARK.IMS_PER_GPU when set (--ims-per-gpu);
    else, on a GPU of `device_memory_gb` GB, floor((memory - TRAIN_GB_FIXED) / TRAIN_GB_PER_IMAGE)
    (at least 1), the per-image figure being the task's (its config says where it comes from; it is
    an estimate, not a measurement of this run); else (CPU processes, or no figure) MAX_IMS_PER_PROCESS.
    The protocol's total batch is kept whenever it splits evenly into shares of at most the capacity:
    with a synchronized norm nothing of the protocol changes then (batch, LR, schedule, BN statistics).
    Otherwise each process takes as many as it holds (on CPU processes: the protocol's own share,
    IMS_PER_BATCH / PROTOCOL_WORLD_SIZE), and `adjust_world_size` scales LR and schedule to that batch.
    """
    if world_size < 1:
        raise ConfigError(f"world size must be at least 1, got {world_size}")
    batch, b = int(cfg.SOLVER.IMS_PER_BATCH), cfg.BENCHMARK
    per_image, fixed = float(b.TRAIN_GB_PER_IMAGE), float(b.TRAIN_GB_FIXED)
    sized_by_memory = device_memory_gb is not None and per_image > 0
    if b.IMS_PER_GPU > 0:
        capacity, basis = int(b.IMS_PER_GPU), f"--ims-per-gpu {b.IMS_PER_GPU}"
    elif sized_by_memory:
        capacity = max(1, math.floor((float(device_memory_gb) - fixed) / per_image))
        basis = (f"{float(device_memory_gb):.1f} GB per device holds {capacity} images of ~{per_image:g} GB + {fixed:g} GB "
                 "(an estimate; --ims-per-gpu overrides)")
    else:
        capacity = int(b.MAX_IMS_PER_PROCESS)
        basis = f"CPU processes: at most {capacity} images each"
    if batch % world_size == 0 and batch // world_size <= capacity:
        return Split(batch // world_size, capacity, basis)
    if b.IMS_PER_GPU > 0 or sized_by_memory:
        return Split(max(1, min(capacity, batch // world_size)), capacity, basis)
    ref = int(b.PROTOCOL_WORLD_SIZE)
    if batch % ref:
        raise ConfigError(f"SOLVER.IMS_PER_BATCH {batch} does not split over BENCHMARK.PROTOCOL_WORLD_SIZE {ref}")
    return Split(batch // ref, capacity, basis + f", else the protocol's {batch // ref} per process")


def adjust_world_size(cfg: CfgNode, world_size: int, device_memory_gb=None) -> list:
    """Fit the protocol's batch to `world_size` processes (images_per_process); return the deviations.

    When the batch cannot be kept, LR is scaled linearly and iterations, steps, warmup and periods
    inversely to the new batch: detectron2's rule (DefaultTrainer.auto_scale_workers) applied as if
    each image were a worker, so that the scale is new batch / protocol batch whatever the split.
    """
    batch, ref = int(cfg.SOLVER.IMS_PER_BATCH), cfg.BENCHMARK.PROTOCOL_WORLD_SIZE
    split = images_per_process(cfg, world_size, device_memory_gb)
    new_batch = split.per_process * world_size
    if new_batch == batch:
        cfg.SOLVER.REFERENCE_WORLD_SIZE = 0  # the trainer must not rescale again
        return []
    before = _schedule(cfg, world_size)
    cfg.SOLVER.REFERENCE_WORLD_SIZE = batch  # one image per "worker": scale = new_batch / batch
    cfg.merge_from_other_cfg(DefaultTrainer.auto_scale_workers(cfg, new_batch))
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 0
    after = _schedule(cfg, world_size)
    changes = ", ".join(f"{what} {before[what]} -> {after[what]}" for what in before if before[what] != after[what])
    return [f"world size {world_size} (protocol: {batch} images on {ref} processes), {split.per_process} images per "
            f"process ({split.basis}): linear scaling (detectron2's REFERENCE_WORLD_SIZE rule): {changes}"]


def cuda_memory_gb(num_gpus: int):
    """GB (GiB) of the smallest of the first `num_gpus` CUDA devices; None without CUDA (CPU processes)."""
    if not torch.cuda.is_available():
        return None
    n = max(1, min(int(num_gpus), torch.cuda.device_count()))
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(n)) / 2**30


def images_per_bn_statistic(cfg: CfgNode, world_size: int) -> int:
    """How many images each BatchNorm statistic is computed over in training: the whole batch with a
    synchronized norm, one process's share with plain BN."""
    synced = cfg.MODEL.RESNETS.NORM in ("naiveSyncBN", "SyncBN")
    return int(cfg.SOLVER.IMS_PER_BATCH) if synced else int(cfg.SOLVER.IMS_PER_BATCH) // max(world_size, 1)


def _schedule(cfg: CfgNode, world_size: int) -> dict:
    """Every value the world-size rule can change, as the deviation names them."""
    return {"batch": int(cfg.SOLVER.IMS_PER_BATCH), "LR": f"{cfg.SOLVER.BASE_LR:g}", "iterations": int(cfg.SOLVER.MAX_ITER),
            "steps": list(cfg.SOLVER.STEPS), "warmup": int(cfg.SOLVER.WARMUP_ITERS),
            "checkpoint period": int(cfg.SOLVER.CHECKPOINT_PERIOD),
            "images per BN statistic": images_per_bn_statistic(cfg, world_size)}


def build_config(task, weights_settings=None, opts=(), smoke=False, num_gpus=1, norm=None, amp=False,
                 num_machines=1, device_memory_gb="auto"):
    """Assemble a run's config; return (frozen cfg, deviations from the protocol as sentences).

    `task`: a Task. `weights_settings`: the converted checkpoint's input settings
    ({"INPUT.FORMAT": "RGB", ...}), applied as given. `opts`: flat KEY VALUE list (strings are
    parsed as detectron2 does). `num_gpus` x `num_machines`: the world size. `norm`: one of NORMS.
    `device_memory_gb`: GB per device for the images-per-process rule; "auto" reads this machine's
    CUDA devices (None without CUDA: CPU processes).
    """
    cfg = protocol_config(task)
    protocol = _flatten(cfg)
    deviations = []
    if smoke:
        cfg.merge_from_file(str(smoke_overlay_path(task)))
        cfg.BENCHMARK.SMOKE = True
        deviations.append("smoke run: synthetic data, tiny images and schedule (not comparable to references)")
    if weights_settings:
        check_weights_settings(weights_settings)
        _merge_pairs(cfg, [x for kv in weights_settings.items() for x in kv], "checkpoint input settings")
        for key in sorted(ARCHITECTURE_KEYS & set(weights_settings)):
            if _flatten(cfg)[key] != protocol[key]:
                deviations.append(f"{key}: {protocol[key]!r} in the protocol, {_flatten(cfg)[key]!r} from the weights "
                                  "(the architecture of the checkpoint)")
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
    check_options(opts[::2])
    before = _flatten(cfg)
    _merge_pairs(cfg, opts, "command-line option")
    after = _flatten(cfg)
    for key in dict.fromkeys(opts[::2]):  # a key given twice (an overlay's, then the user's) is one deviation
        if after[key] != before[key] and key not in _SPLIT_KEYS:  # their effect is the world-size line
            deviations.append(f"{key}: {protocol.get(key)!r} in the protocol, {after[key]!r} from the command line")
    _check_values(cfg)
    check_basic_blocks(cfg, task.name)
    if cfg.SOLVER.AMP.ENABLED:
        deviations.append("mixed precision (AMP) training; the protocol trains in FP32")
    if device_memory_gb == "auto":
        device_memory_gb = cuda_memory_gb(num_gpus)
    deviations += adjust_world_size(cfg, num_gpus * num_machines, device_memory_gb)
    cfg.freeze()
    return cfg, deviations


# How the batch is split over processes, not what is trained: never a deviation by themselves (the
# world-size line names what they change), and not part of a config's digest.
_SPLIT_KEYS = ("BENCHMARK.IMS_PER_GPU", "BENCHMARK.TRAIN_GB_PER_IMAGE", "BENCHMARK.TRAIN_GB_FIXED",
               "BENCHMARK.MAX_IMS_PER_PROCESS")


# Values whose type yacs checks but whose range it does not: 0 or a negative number would train
# nothing (or divide by zero in the world-size rule, or in a period) and still write a "finished" record.
# The linear readoff's too: EPOCHS 0 would record an untrained head as "finished", a size or class count
# of 0 or a negative INIT_STD fails only once the data is loaded.
_POSITIVE = ("SOLVER.MAX_ITER", "SOLVER.IMS_PER_BATCH", "SOLVER.BASE_LR", "SOLVER.CHECKPOINT_PERIOD",
             "BENCHMARK.PROTOCOL_WORLD_SIZE", "BENCHMARK.MAX_IMS_PER_PROCESS", "BENCHMARK.LOG_PERIOD",
             "BENCHMARK.LINEAR.EPOCHS", "BENCHMARK.LINEAR.NUM_CLASSES", "BENCHMARK.LINEAR.TRAIN_CROP",
             "BENCHMARK.LINEAR.TEST_RESIZE", "BENCHMARK.LINEAR.TEST_CROP",
             "BENCHMARK.FEWSHOT.WAYS", "BENCHMARK.FEWSHOT.QUERIES", "BENCHMARK.FEWSHOT.EPISODES",
             "BENCHMARK.FEWSHOT.EPOCHS", "BENCHMARK.FEWSHOT.BATCH", "BENCHMARK.FEWSHOT.LR", "BENCHMARK.FEWSHOT.RFS_C",
             "BENCHMARK.FEWSHOT.RFS_MAX_ITER", "BENCHMARK.FEWSHOT.RESIZE", "BENCHMARK.FEWSHOT.CROP")
_NON_NEGATIVE = ("BENCHMARK.NONFINITE_CHECK_PERIOD", "BENCHMARK.CHECKPOINTS_TO_KEEP", "SOLVER.WARMUP_ITERS",
                 "BENCHMARK.IMS_PER_GPU", "BENCHMARK.TRAIN_GB_PER_IMAGE", "BENCHMARK.TRAIN_GB_FIXED",
                 "BENCHMARK.LINEAR.INIT_STD", "BENCHMARK.FEWSHOT.WORKERS", "BENCHMARK.FEWSHOT.MOMENTUM",
                 "BENCHMARK.FEWSHOT.DAMPENING", "BENCHMARK.FEWSHOT.WEIGHT_DECAY")
# Schedules' milestones: yacs checks that they are a tuple, not what it holds. fvcore's multi-step schedule
# refuses an iteration <= 0 only when training starts; the linear readoff's epochs are cut to whole numbers
# (1.5 -> 1) and a negative one is never reached. Key: (least value, unit named in the refusal).
FEWSHOT_HEADS = ("baseline", "rfs")  # BENCHMARK.FEWSHOT.HEAD (benchmark.engine.fewshot)
_POSITIVE += ("BENCHMARK.LANDMARKS.CROP_SIZE", "BENCHMARK.LANDMARKS.INPUT_SIZE", "BENCHMARK.LANDMARKS.EPOCHS",
              "BENCHMARK.LANDMARKS.NUM_LANDMARKS", "BENCHMARK.LANDMARKS.NUM_INTERMEDIATE",
              "BENCHMARK.LANDMARKS.SOFTARGMAX_MUL", "BENCHMARK.LANDMARKS.LOSS_SCALE")
_NON_NEGATIVE += ("BENCHMARK.LANDMARKS.CROP_TOP", "BENCHMARK.LANDMARKS.CROP_LEFT")
_MILESTONES = {"SOLVER.STEPS": (1, "iterations"), "BENCHMARK.LINEAR.LR_STEPS": (0, "epochs")}


def _check_values(cfg: CfgNode) -> None:
    flat = _flatten(cfg)
    for key in _POSITIVE:
        value = flat[key]
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{key} must be a positive number, got {value!r}")
    for key in _NON_NEGATIVE:
        if not math.isfinite(flat[key]) or flat[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {flat[key]!r}")
    if cfg.BENCHMARK.FEWSHOT.HEAD not in FEWSHOT_HEADS:
        raise ConfigError(f"BENCHMARK.FEWSHOT.HEAD must be one of {', '.join(FEWSHOT_HEADS)}, "
                          f"got {cfg.BENCHMARK.FEWSHOT.HEAD!r}")
    if not cfg.BENCHMARK.FEWSHOT.SHOTS or not all(isinstance(v, int) and v >= 1 for v in cfg.BENCHMARK.FEWSHOT.SHOTS):
        raise ConfigError(f"BENCHMARK.FEWSHOT.SHOTS must hold whole numbers >= 1, got {cfg.BENCHMARK.FEWSHOT.SHOTS!r}")
    for crop, resize in (("BENCHMARK.FEWSHOT.CROP", "BENCHMARK.FEWSHOT.RESIZE"),
                         ("BENCHMARK.LINEAR.TEST_CROP", "BENCHMARK.LINEAR.TEST_RESIZE")):
        if flat[crop] > flat[resize]:  # torchvision's CenterCrop would pad the image with black to the crop
            raise ConfigError(f"{crop} {flat[crop]} must not exceed {resize} {flat[resize]}")
    for key in ("BENCHMARK.LANDMARKS.PIXEL_MEAN", "BENCHMARK.LANDMARKS.PIXEL_STD"):
        values = flat[key]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        if len(values) != 3 or not numbers or (
                key.endswith("STD") and not all(v > 0 for v in values)):
            raise ConfigError(f"{key} must hold 3 finite numbers (R, G, B){', each > 0' if key.endswith('STD') else ''}, "
                              f"got {list(values)!r}")
    for key, (least, unit) in _MILESTONES.items():
        steps = flat[key]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in steps):
            raise ConfigError(f"{key} must hold whole numbers >= {least} ({unit}), got {steps!r}")


# ResNet-18/34 (basic blocks) fit a model only where detectron2's build_resnet_backbone builds the whole
# ResNet and nothing else needs a bottleneck: it asserts RES5_DILATION 1, NUM_GROUPS 1 and no deformable
# stage for them; DeepLab's backbone builder knows depths 50/101/152 only; the C4 ROI head
# (Res5ROIHeads) builds its own bottleneck res5 stage on res4's output. Tasks that read the backbone's
# features (imagenet_linear, fewshot_miniimagenet, mafl_landmarks) take them.
BASIC_BLOCK_DEPTHS = (18, 34)
BASIC_BLOCK_TASKS = ("imagenet_linear", "fewshot_miniimagenet", "mafl_landmarks")


def basic_block_conflicts(cfg: CfgNode) -> list:
    """What in `cfg` needs a bottleneck ResNet, as phrases ([] when a ResNet-18/34 can be built into it)."""
    from detectron2.modeling import ROI_HEADS_REGISTRY
    from detectron2.modeling.roi_heads import Res5ROIHeads

    conflicts = []
    r = cfg.MODEL.RESNETS
    if cfg.MODEL.BACKBONE.NAME != "build_resnet_backbone":
        conflicts.append(f"its backbone {cfg.MODEL.BACKBONE.NAME} builds bottleneck ResNets only")
    if r.RES5_DILATION != 1:
        conflicts.append(f"it dilates res5 (MODEL.RESNETS.RES5_DILATION {r.RES5_DILATION}; detectron2 builds "
                         "ResNet-18/34 with 1 only)")
    if r.NUM_GROUPS != 1 or any(r.DEFORM_ON_PER_STAGE):
        conflicts.append("it uses grouped or deformable convolutions (MODEL.RESNETS.NUM_GROUPS, DEFORM_ON_PER_STAGE)")
    if cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN":
        head = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
        if isinstance(head, type) and issubclass(head, Res5ROIHeads):
            conflicts.append(f"its R50-C4 ROI head ({cfg.MODEL.ROI_HEADS.NAME}) builds a bottleneck res5 stage on res4")
    return conflicts


def check_basic_blocks(cfg: CfgNode, task_name: str = "") -> None:
    """Refuse, before compute, a basic-block ResNet (MODEL.RESNETS.DEPTH 18 or 34, from the weights or
    an option) in a model that needs bottleneck blocks (`basic_block_conflicts`), naming why and what fits."""
    depth = cfg.MODEL.RESNETS.DEPTH
    if depth not in BASIC_BLOCK_DEPTHS:
        return
    conflicts = basic_block_conflicts(cfg)
    if conflicts:
        task = f"task {task_name}" if task_name else "this task"
        raise ConfigError(f"ResNet-{depth} weights (basic blocks) cannot be used for {task}: {'; '.join(conflicts)}. "
                          f"Use bottleneck ResNet-50/101/152 weights for it; ResNet-18/34 weights fit "
                          f"{', '.join(BASIC_BLOCK_TASKS)}")


# What a checkpoint format may set through the converted file's provenance: how the network sees
# its input, and its architecture (so a ResNet-101 is built as one). Nothing else: a provenance is
# data from a file, and keys like DATASETS.PROPOSAL_FILES_TRAIN make detectron2 unpickle (run) files.
INPUT_KEYS = frozenset({"INPUT.FORMAT", "MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD", "MODEL.RESNETS.STRIDE_IN_1X1"})
ARCHITECTURE_KEYS = frozenset({"MODEL.RESNETS.DEPTH", "MODEL.RESNETS.STEM_OUT_CHANNELS", "MODEL.RESNETS.RES2_OUT_CHANNELS",
                               "MODEL.RESNETS.WIDTH_PER_GROUP", "MODEL.RESNETS.NUM_GROUPS"})
WEIGHTS_SETTING_KEYS = INPUT_KEYS | ARCHITECTURE_KEYS


class WeightsSettingsError(ConfigError):
    """A converted file whose provenance names config keys no checkpoint format may set."""


def check_weights_settings(settings) -> None:
    if not isinstance(settings, dict):
        raise WeightsSettingsError(f"its input settings are a {type(settings).__name__}, not a mapping of config keys")
    refused = sorted(str(k) for k in settings if k not in WEIGHTS_SETTING_KEYS)
    if refused:
        raise WeightsSettingsError(
            f"its provenance sets {', '.join(refused)}, which a checkpoint may not set (only "
            f"{', '.join(sorted(WEIGHTS_SETTING_KEYS))}); refused, nothing was loaded. Convert the original "
            "checkpoint again with tools/convert.py")


# Options the engine sets itself, or that would make detectron2 load files we do not check: refused
# with the flag to use instead, so that no option is listed as applied while something else ran.
REFUSED_OPTIONS = {
    "MODEL.WEIGHTS": "the weights come from --weights (converted and checked)",
    "OUTPUT_DIR": "use --output (each trial writes OUTPUT/trial_k)",
    "SEED": "use --seed (trial k runs seed S+k)",
    "DATASETS.TRAIN": "a task's datasets are part of its protocol; use --data-root to point at them",
    "DATASETS.TEST": "a task's datasets are part of its protocol; use --data-root to point at them",
    "BENCHMARK.TASK": "use --task",
    "BENCHMARK.SMOKE": "use --smoke",
    "MODEL.LOAD_PROPOSALS": "precomputed proposals are in no protocol, and detectron2 unpickles proposal files",
    "DATASETS.PROPOSAL_FILES_TRAIN": "detectron2 unpickles proposal files (a pickle can run code); not loaded",
    "DATASETS.PROPOSAL_FILES_TEST": "detectron2 unpickles proposal files (a pickle can run code); not loaded",
    "SOLVER.AMP.ENABLED": "use --amp",
}


def check_options(keys) -> None:
    for key in keys:
        if str(key) in REFUSED_OPTIONS:
            raise ConfigError(f"option {key} is refused: {REFUSED_OPTIONS[str(key)]}")


# The BENCHMARK group of settings that only the trainer of one meta-architecture reads
# (benchmark.engine.worker.TRAINERS); the digest of any other config leaves the group out.
SETTINGS_GROUP_OF = {"LinearClassifier": "LINEAR", "FewShotFeatures": "FEWSHOT", "LandmarkRegressor": "LANDMARKS"}


def config_digest(cfg: CfgNode, seed: bool = True) -> str:
    """sha256 of the config that ran, less where it wrote and where its weights file lay.

    Two trials with equal digests ran the same configuration (seed included). OUTPUT_DIR and
    MODEL.WEIGHTS are paths, not settings: the weights are identified by their sha256 in the run
    record, and a cache or output folder moved elsewhere must not make the same run look different.
    `seed=False` blanks SEED too: the protocol digest, equal for all trials of one protocol (the
    record's `protocol_digest`, what the leaderboard pools by).
    """
    same = cfg.clone()
    same.defrost()
    same.OUTPUT_DIR, same.MODEL.WEIGHTS = "", ""
    # How the batch was split (like the world size, which no config holds) is not what ran: 16
    # images as 8 x 2 or 1 x 16 train the same protocol; a batch that changed shows in SOLVER.
    for key in _SPLIT_KEYS:
        if "BENCHMARK" in same and key.split(".")[-1] in same.BENCHMARK:
            setattr(same.BENCHMARK, key.split(".")[-1], type(same.BENCHMARK[key.split(".")[-1]])(0))
    # A group of settings that one trainer alone reads is no part of another trainer's run: without this,
    # each task added to the suite (with its group) would change every other task's digest, and runs that
    # are the same would stop being reused or pooled (`SETTINGS_GROUP_OF`).
    for architecture, group in SETTINGS_GROUP_OF.items():
        if architecture != same.MODEL.META_ARCHITECTURE and "BENCHMARK" in same and group in same.BENCHMARK:
            del same.BENCHMARK[group]
    if not seed:
        same.SEED = -1  # detectron2's "no seed"; every trial of the protocol alike
    # One YAML round trip first: a dump shares YAML anchors between equal lists, a loaded dump does
    # not, so a config and the config.yaml it wrote only digest alike in this normal form.
    return hashlib.sha256(CfgNode.load_cfg(same.dump()).dump().encode()).hexdigest()


def smoke_overlay_path(task: Task) -> Path:
    """The smoke overlay of the task's dataset family (configs/smoke/<family.smoke_overlay>)."""
    return task.family.smoke_overlay_path
