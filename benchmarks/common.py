"""What every section of the bench shares: machine facts, quiet logs, torch threads, the synthetic
inputs (data, weights, the voc07 --smoke config) and the median/spread of repeated timings.

Not part of the installed package: the measurement scripts import it as `benchmarks.common` from
a checkout (benchmarks/run_bench.py puts the repository root on sys.path).
"""
import contextlib
import io
import logging
import os
import platform
import statistics
import sys
import warnings
from pathlib import Path

import torch


def median(values):
    """The median of repeated timings, as a float: robust to the outliers a shared machine adds."""
    return float(statistics.median(values))


def spread(values):
    """[min, max] of repeated timings: how steady the median is."""
    return [float(min(values)), float(max(values))]


@contextlib.contextmanager
def quiet_stdout():
    """Silence stdout, C/C++ prints included (pycocotools and faster-coco-eval print summaries)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# Loggers whose INFO/WARNING records say nothing about what is measured, and their level inside
# a section: detectron2's at INFO so that DefaultTrainer does not install its console handler (it
# does when INFO is off; with no handler of its own the records reach the unconfigured root logger,
# which prints only warnings); fvcore's checkpointer warns that the heads are not in a backbone
# checkpoint (expected here); torch.fx's deprecation notices come from inside detectron2.
_QUIET_LOGGERS = {"detectron2": logging.INFO,
                  "fvcore.common.checkpoint": logging.ERROR, "torch.fx._symbolic_trace": logging.ERROR}


@contextlib.contextmanager
def quiet_logs():
    """The levels above, and two deprecation notices from inside detectron2 and torch ignored,
    inside the block only: levels and warning filters are put back on exit, so that a test that
    calls a section leaves none behind."""
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid")
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")  # detectron2's imports
        for name, level in _QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(level)
        try:
            yield
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def torch_threads(n):
    """torch's intra-op threads set to `n` inside the block (None: left as they are), then put back."""
    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def machine() -> dict:
    """What the figures were measured on: they compare only with figures from the same machine."""
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}



# ----------------------------------------------------------------------------- shared inputs

def synthetic_data(task, root, num_train=8, num_test=4, image_size=(256, 320)) -> dict:
    """Synthetic data of `task`'s family under `root`, registered as the engine registers it.

    Returns {protocol dataset name: registered name} (benchmark:<root digest>:<name>; detectron2's
    builtin entries are left alone).
    """
    from benchmark.data import register_datasets, write_synthetic
    from benchmark.tasks import get_task

    path = write_synthetic(get_task(task).data_format, Path(root), num_train=num_train, num_test=num_test,
                           image_size=image_size)
    return register_datasets(get_task(task), path)


def synthetic_weights(workdir):
    """A synthetic MoCo ResNet-50 checkpoint converted as the engine converts it (PreparedWeights)."""
    from benchmark.weights.convert import prepare_weights
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    ckpt = make_synthetic_checkpoint(Path(workdir) / "moco.pth", "moco", seed=0)
    return prepare_weights(ckpt, cache_dir=Path(workdir) / "cache")


def smoke_cfg(output_dir, datasets, opts=(), input_settings=None, weights=None, seed=0):
    """voc07 --smoke config plus KEY VALUE `opts`, set up as the engine sets up a trial (frozen).

    `datasets`: {protocol name: registered name} (`synthetic_data`), put into DATASETS.TRAIN/TEST
    as the engine does; OUTPUT_DIR, SEED and MODEL.WEIGHTS (refused as options) are set after
    build_config, as the engine sets them. `input_settings`: a converted checkpoint's (default:
    the MoCo format's, as the bench converts).
    """
    from benchmark.tasks import get_task
    from benchmark.tasks.config import build_config
    from benchmark.weights.convert import SOURCES

    settings = SOURCES["moco"].input_settings if input_settings is None else input_settings
    cfg, _ = build_config(get_task("voc07"), settings, list(opts), smoke=True)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR, cfg.SEED = str(output_dir), seed
    if weights is not None:
        cfg.MODEL.WEIGHTS = str(weights)
    cfg.DATASETS.TRAIN = tuple(datasets.get(n, n) for n in cfg.DATASETS.TRAIN)
    cfg.DATASETS.TEST = tuple(datasets.get(n, n) for n in cfg.DATASETS.TEST)
    cfg.freeze()
    return cfg

