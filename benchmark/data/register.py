"""Dataset registration by data root, with detectron2's own loaders and metadata, under our own names.

`detectron2.data.datasets.builtin` registers the standard names (voc_2007_trainval,
coco_2017_train, cityscapes_fine_sem_seg_train, ...) at import time against $DETECTRON2_DATASETS.
The suite takes `--data-root` instead, and must not change those entries (a detectron2 project
that imports the suite keeps its own registrations). So each protocol dataset under a root is
registered under `registered_name(name, root)` (`benchmark:<root digest>:voc_2007_trainval`), with
the same loader and the same metadata detectron2 gives the builtin name. Where each name lives
under a root is the family's (benchmark.data.families).
"""
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_pascal_voc
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata
from detectron2.data.datasets.cityscapes import load_cityscapes_semantic

from benchmark.data.families import family_of_dataset, get_family, registered_name, resolve, task_datasets

# Each family's function registers one dataset as detectron2's builtin.py does for its names;
# register_dataset then sets the family's evaluator_type, as builtin.py does.

def register_voc(registered, *, dirname, split, year):
    """As detectron2's register_all_pascal_voc does for one split."""
    register_pascal_voc(registered, dirname, split, year)


def register_coco(registered, *, image_root, json_file):
    """As detectron2's register_all_coco does for one instances split (metadata of the 80 classes)."""
    register_coco_instances(registered, _get_builtin_metadata("coco"), json_file, image_root)


def register_cityscapes_sem_seg(registered, *, image_dir, gt_dir):
    """As detectron2's register_all_cityscapes does for one semantic-segmentation split."""
    DatasetCatalog.register(registered, lambda x=image_dir, y=gt_dir: load_cityscapes_semantic(x, y))
    MetadataCatalog.get(registered).set(image_dir=image_dir, gt_dir=gt_dir, ignore_label=255,
                                        **_get_builtin_metadata("cityscapes"))


def register_imagefolder(registered, *, image_dir, classes_dir):
    """An ImageFolder split as dataset dicts {"file_name", "label", "image_id"}, labels indexing the
    sorted class folders of `classes_dir` (the training split), as torchvision's ImageFolder does."""
    from benchmark.data.validate import imagefolder_classes, imagefolder_files

    def load(image_dir=image_dir, classes_dir=classes_dir):
        index = {c: i for i, c in enumerate(imagefolder_classes(classes_dir))}
        return [{"file_name": path, "label": index[cls], "image_id": k}
                for k, (path, cls) in enumerate(imagefolder_files(image_dir))]

    DatasetCatalog.register(registered, load)
    MetadataCatalog.get(registered).set(image_dir=image_dir, classes_dir=classes_dir)


def register_dataset(name, data_root, family=None) -> str:
    """Register protocol dataset `name` under `data_root`; return its registered name.

    The registered name is a pure function of (name, absolute root) and always means the same
    files, so a name already in the catalog is left as it is (idempotent).
    """
    family = family_of_dataset(name) if family is None else get_family(family)
    registered = registered_name(name, data_root)
    paths = family.paths(name, data_root)  # raises for a dataset not of this family
    if registered not in DatasetCatalog:
        resolve(family.register_with)(registered, **paths)
        MetadataCatalog.get(registered).set(evaluator_type=family.evaluator_type)
    return registered


def register_datasets(task, data_root) -> dict:
    """Register every dataset of `task` (a Task or its name) under `data_root`.

    Returns {protocol name: registered name}, train datasets first; put the registered names into
    cfg.DATASETS.TRAIN / TEST. Idempotent; another root gets other names.
    """
    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    family = get_family(task.data_format)
    return {name: register_dataset(name, data_root, family) for name in task_datasets(task)}
