"""Datasets: registration by root, layout validation, synthetic datasets."""
import os
from pathlib import Path


def default_data_root() -> Path:
    """`$DETECTRON2_DATASETS` when set, else `datasets/` in the working directory (detectron2's rule)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


# Imported after default_data_root: benchmark.d2.environment() imports it from here.
from benchmark.data.register import register_datasets  # noqa: E402
from benchmark.data.synthetic import write_synthetic  # noqa: E402
from benchmark.data.validate import DatasetLayoutError, validate_layout  # noqa: E402

__all__ = ["default_data_root", "register_datasets", "validate_layout", "DatasetLayoutError",
           "write_synthetic"]
