"""The registry of dataset families, and what is done to a task's datasets through its family.

`FAMILIES` lists every family by the name a task gives as its `data_format`; each family's module
(benchmark.data.voc, .coco, .cityscapes, .imagenet) builds it. `register_datasets`,
`validate_layout` and `task_datasets` take a `benchmark.tasks.Task` (names are resolved once, where
the user gives them: the CLI, the runner's prepare); this package never imports benchmark.tasks,
which imports it (`Task.family`).

Pure Python: importing this module imports neither torch nor detectron2 (the families' modules
import detectron2 inside the functions that need it).
"""
import os
from pathlib import Path
from types import MappingProxyType

from benchmark.data.checks import DOC, DatasetLayoutError
from benchmark.data.cityscapes import FAMILY as CITYSCAPES
from benchmark.data.coco import FAMILY as COCO
from benchmark.data.family import DatasetFamily
from benchmark.data.imagenet import FAMILY as IMAGENET
from benchmark.data.mafl import FAMILY as MAFL
from benchmark.data.miniimagenet import FAMILY as MINIIMAGENET
from benchmark.data.voc import FAMILY as VOC

FAMILIES = MappingProxyType({f.name: f for f in (VOC, COCO, CITYSCAPES, IMAGENET, MINIIMAGENET, MAFL)})


def get_family(name) -> DatasetFamily:
    """The family called `name` ("voc", "coco", "cityscapes", "imagenet"); a DatasetFamily is returned as it is."""
    if isinstance(name, DatasetFamily):
        return name
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown data format {name!r}; known: {', '.join(FAMILIES)}") from None


def family_of_dataset(name: str) -> DatasetFamily:
    """The family that places protocol dataset `name` under a data root."""
    for family in FAMILIES.values():
        if name in family.datasets:
            return family
    known = sorted(n for f in FAMILIES.values() for n in f.datasets)
    raise ValueError(f"dataset {name!r} has no known layout; known: {', '.join(known)}")


def registered_name(name: str, root) -> str:
    """The detectron2 catalog name of protocol dataset `name` under data root `root` (pure; see
    DatasetFamily.registered_name); a dataset no family places is refused."""
    return family_of_dataset(name).registered_name(name, root)


def write_synthetic(data_format: str, root, **kwargs) -> Path:
    """Write the synthetic dataset of family `data_format` under `root` (benchmark.data.synthetic.write)."""
    return get_family(data_format).write_synthetic(root, **kwargs)


def task_datasets(task) -> list:
    """The protocol dataset names of a task, train first, without repeats."""
    return list(dict.fromkeys(tuple(task.train) + tuple(task.test)))


def register_datasets(task, data_root) -> dict:
    """Register every dataset of `task` under `data_root` with detectron2.

    Returns {protocol name: registered name}, train datasets first; put the registered names into
    cfg.DATASETS.TRAIN / TEST. Idempotent; another root gets other names.
    """
    family = get_family(task.data_format)
    return {name: family.register(name, data_root) for name in task_datasets(task)}


def validate_layout(task, data_root) -> None:
    """Check every train and test dataset of `task` under `data_root`; raise DatasetLayoutError."""
    data_root = Path(os.path.expanduser(str(data_root)))
    if not data_root.is_dir():
        raise DatasetLayoutError(
            f"data root {data_root} does not exist (pass --data-root or set $DETECTRON2_DATASETS; see {DOC})")
    family = get_family(task.data_format)
    for name in task_datasets(task):
        family.validate(name, data_root)


def validate_settings(task, data_root, cfg) -> None:
    """Check that the run's settings `cfg` fit the data of `task` under `data_root` (its layout checked):
    an episode's classes and images, a crop inside the images, a head's outputs for the classes, ...;
    raise DatasetLayoutError naming the option and the file."""
    family = get_family(task.data_format)
    for name in task_datasets(task):
        family.validate_settings(name, Path(os.path.expanduser(str(data_root))), cfg)
