"""What a run costs in GPU-hours, for `tools/reproduce.py --dry-run` (before anything is launched).

GPU-hours of one run = seconds per iteration x MAX_ITER (from the task's config) x GPUs the
figure was taken on / 3600. Evaluation time is not included.

Tasks that train no network by iterations (few-shot episodes on frozen features; a landmark head on a
frozen backbone) give GPU-hours per run directly (`hours_per_run`), with `how` they were reckoned.
"""
import dataclasses
from pathlib import Path

import yaml

from benchmark.tasks import get_task


@dataclasses.dataclass(frozen=True)
class SpeedFigure:
    seconds_per_iter: float | None  # wall seconds per training iteration at the protocol batch (16)
    gpus: int  # how many GPUs shared that batch
    measured: bool  # False: an estimate borrowed from elsewhere, until benchmarks/run_bench.py measures it
    basis: str
    hours_per_run: float | None = None  # GPU-hours of one run, for tasks not costed by iterations
    how: str = ""  # the reckoning that gives hours_per_run, shown by --dry-run


_D2_ZOO = "detectron2 MODEL_ZOO.md (8 V100, batch 16, PyTorch 1.3)"
_C4_NOTE = "ours adds SyncBN and an extra res5 norm, so it may be slower"
# One table of per-task training speeds. None is measured yet: each figure is detectron2's own
# published training speed for the closest model it lists, which is an ESTIMATE for our config.
# Replace an entry by a measurement (measured=True, basis = GPU, command, date) when one is made.
SPEED = {
    "voc07": SpeedFigure(0.537, 8, False, f"{_D2_ZOO}, PascalVOC-Detection faster_rcnn_R_50_C4; {_C4_NOTE}"),
    "voc0712": SpeedFigure(0.537, 8, False, f"{_D2_ZOO}, PascalVOC-Detection faster_rcnn_R_50_C4; {_C4_NOTE}"),
    "coco": SpeedFigure(0.584, 8, False, f"{_D2_ZOO}, mask_rcnn_R_50_C4_1x; {_C4_NOTE}"),
    "coco_2x": SpeedFigure(0.575, 8, False, f"{_D2_ZOO}, mask_rcnn_R_50_C4_3x; {_C4_NOTE}"),
    "cityscapes": SpeedFigure(None, 8, False, "no published figure for DeepLabV3 R50 at batch 16, 512x1024; "
                                              "not estimated until measured"),
    # MAX_ITER of imagenet_linear.yaml is its 100 epochs of 5005 iterations (ImageNet-1k at batch 256).
    "imagenet_linear": SpeedFigure(0.1, 8, False, "no published figure; assumed data-loading bound: ~2,500 JPEGs "
                                                  "decoded and cropped per second on an 8-GPU node, 256 per step "
                                                  "(the frozen ResNet-50 forward is faster); ~14 h on 8 GPUs"),
    # ESTIMATES, reckoned from the work a run does (no figure is published; replace by a measurement).
    "fewshot_miniimagenet": SpeedFigure(
        None, 1, False,
        "no published figure; estimate: feature extraction of the 12,000 test.csv images by a frozen ResNet-18 at "
        "~500 images/s (JPEG decoding bound; features cached once per run), then 1,200 episodes (600 1-shot of 200 "
        "SGD steps, 600 5-shot of 700) of a 512x5 linear head at ~1 ms per step",
        hours_per_run=0.2, how="(12,000 images / 500 per s + 540,000 head steps x 1 ms) on 1 GPU, rounded up"),
    "mafl_landmarks": SpeedFigure(
        None, 1, False,
        "no published figure; estimate: the landmark head trained on the 19,000 MAFL training faces over a frozen "
        "ResNet-50 forward at ~400 faces/s (~48 s per epoch); the epoch count is assumed (50, until the task's "
        "config fixes it), plus the 1,000 test faces",
        hours_per_run=0.7, how="50 epochs x 19,000 faces / 400 per s on 1 GPU, rounded up"),
}


def max_iter(task_name: str) -> int:
    """SOLVER.MAX_ITER of the task's config, following _BASE_ until a file sets it."""
    path = get_task(task_name).config_path
    while True:
        cfg = yaml.safe_load(path.read_text()) or {}
        value = (cfg.get("SOLVER") or {}).get("MAX_ITER")
        if value is not None:
            return int(value)
        if "_BASE_" not in cfg:
            raise ValueError(f"{path}: no SOLVER.MAX_ITER in it or its bases")
        path = Path(path).parent / cfg["_BASE_"]


def run_gpu_hours(task_name: str) -> float | None:
    """Estimated GPU-hours of one training run of the task; None when no figure is known."""
    fig = SPEED.get(task_name)
    if fig is not None and fig.hours_per_run is not None:
        return fig.hours_per_run
    if fig is None or fig.seconds_per_iter is None:
        return None
    return fig.seconds_per_iter * max_iter(task_name) * fig.gpus / 3600.0
