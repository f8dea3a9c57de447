"""Datasets: the families (VOC, COCO, Cityscapes), registration by root, layout checks, synthetic data.

    families.py   DatasetFamily per family, get_family, registered_name (pure Python)
    register.py   register_datasets(task, root) -> {protocol name: registered name} (detectron2)
    validate.py   validate_layout(task, root), DatasetLayoutError
    synthetic.py  write_synthetic(data_format, root, ...)

Importing this package imports neither torch nor detectron2: `register_datasets`,
`validate_layout`, `write_synthetic` and `DatasetLayoutError` are loaded from their modules on
first use.
"""
import importlib
import os
from pathlib import Path

from benchmark.data.families import (  # noqa: F401
    FAMILIES,
    DatasetFamily,
    get_family,
    protocol_name,
    registered_name,
    task_datasets,
)


def default_data_root() -> Path:
    """`$DETECTRON2_DATASETS` when set, else `datasets/` in the working directory (detectron2's rule)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


_LAZY = {"register_datasets": "register", "write_synthetic": "synthetic",
         "validate_layout": "validate", "DatasetLayoutError": "validate"}
__all__ = ["default_data_root", "FAMILIES", "DatasetFamily", "get_family", "protocol_name", "registered_name",
           "task_datasets", *_LAZY]


def __getattr__(name):  # PEP 562: the heavy modules load when a name of theirs is first used
    if name in _LAZY:
        return getattr(importlib.import_module(f"benchmark.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
