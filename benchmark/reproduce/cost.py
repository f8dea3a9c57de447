"""What a run costs in GPU-hours, for `tools/reproduce.py --dry-run` (before anything is launched).

GPU-hours of one run = seconds per iteration x MAX_ITER (from the task's config) x GPUs the
figure was taken on / 3600. Evaluation time is not included.
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
    if fig is None or fig.seconds_per_iter is None:
        return None
    return fig.seconds_per_iter * max_iter(task_name) * fig.gpus / 3600.0
