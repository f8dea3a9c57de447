"""Datasets: registration by root, layout validation, synthetic datasets."""
import os
from pathlib import Path


def default_data_root() -> Path:
    """`$DETECTRON2_DATASETS` when set, else `datasets/` in the working directory (detectron2's rule)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))
