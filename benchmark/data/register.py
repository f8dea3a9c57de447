"""Dataset registration by data root, with detectron2's own loaders and metadata.

`detectron2.data.datasets.builtin` registers the standard names (voc_2007_trainval,
coco_2017_train, cityscapes_fine_sem_seg_train, ...) at import time against $DETECTRON2_DATASETS.
The suite takes `--data-root` instead, so `register_datasets(task, root)` removes those names and
registers them again under `root`, with the same loaders and the same metadata detectron2 sets.
The table below is the single description of where each name lives under a root; the layout
validator reads it too.
"""
import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_pascal_voc
from detectron2.data.datasets.cityscapes import load_cityscapes_semantic
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

# name -> (kind, *paths relative to the data root, extra)
_VOC = {
    f"voc_{year}_{split}": ("voc", f"VOC{year}", split, year)
    for year, splits in ((2007, ("trainval", "train", "val", "test")), (2012, ("trainval", "train", "val")))
    for split in splits
}
_COCO = {
    f"coco_2017_{split}": ("coco", f"coco/{split}2017", f"coco/annotations/instances_{split}2017.json")
    for split in ("train", "val")
}
_CITYSCAPES = {
    f"cityscapes_fine_sem_seg_{split}": ("cityscapes_sem_seg", f"cityscapes/leftImg8bit/{split}",
                                         f"cityscapes/gtFine/{split}")
    for split in ("train", "val")
}
DATASETS = {**_VOC, **_COCO, **_CITYSCAPES}


def dataset_spec(name):
    """(kind, ...) of a dataset name the suite knows how to place under a data root."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"dataset {name!r} has no known layout; known: {', '.join(sorted(DATASETS))}") from None


def task_datasets(task):
    """The dataset names of a task (a Task or a task name), train first, without repeats."""
    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    return list(dict.fromkeys(tuple(task.train) + tuple(task.test)))


def _forget(name):
    DatasetCatalog.pop(name, None)
    MetadataCatalog.pop(name, None)


def register_dataset(name, data_root):
    """(Re-)register one dataset name under `data_root` exactly as detectron2's builtin does."""
    spec = dataset_spec(name)
    root = os.path.expanduser(str(data_root))
    _forget(name)
    kind = spec[0]
    if kind == "voc":
        _, dirname, split, year = spec
        register_pascal_voc(name, os.path.join(root, dirname), split, year)
        MetadataCatalog.get(name).evaluator_type = "pascal_voc"
    elif kind == "coco":
        _, image_root, json_file = spec
        register_coco_instances(name, _get_builtin_metadata("coco"), os.path.join(root, json_file),
                                os.path.join(root, image_root))
    elif kind == "cityscapes_sem_seg":
        _, image_dir, gt_dir = spec
        image_dir, gt_dir = os.path.join(root, image_dir), os.path.join(root, gt_dir)
        DatasetCatalog.register(name, lambda x=image_dir, y=gt_dir: load_cityscapes_semantic(x, y))
        MetadataCatalog.get(name).set(image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_sem_seg",
                                      ignore_label=255, **_get_builtin_metadata("cityscapes"))
    return name


def register_datasets(task, data_root):
    """Make every dataset of `task` resolve under `data_root`; idempotent, re-points on a new root."""
    data_root = Path(data_root)
    return [register_dataset(name, data_root) for name in task_datasets(task)]
