"""Datasets, one module per family: layout, registration with detectron2, layout check, synthetic data, evaluator.

    families.py    FAMILIES (the registry), get_family, registered_name, and what is done to a task's
                   datasets: task_datasets, register_datasets, validate_layout, validate_settings;
                   write_synthetic by name
    family.py      the DatasetFamily type (layouts, paths, register/validate/write/evaluate one dataset),
                   protocol_name
    voc.py         PASCAL VOC 2007/2012: its layout, registration, check, synthetic writer, evaluator
    coco.py        COCO 2017 instances: the same
    cityscapes.py  Cityscapes fine semantic segmentation: the same
    imagenet.py    ImageNet as an ImageFolder (the linear readoff): the same
    checks.py      DatasetLayoutError and the file, JSON and image checks the families share
    drawing.py     the seeded textures and class-styled shapes the synthetic writers share
    synthetic.py   writing a family's synthetic tree under a root safely, once; the learning-check rule
    evaluators.py  the evaluator classes of ours the families build (Cityscapes mIoU, classification)

Importing this package imports neither torch nor detectron2: the families' modules import
detectron2 inside the functions that need it, and evaluators.py is imported when an evaluator is built.
"""
from benchmark.data.checks import DatasetLayoutError
from benchmark.data.families import (
    FAMILIES,
    family_of_dataset,
    get_family,
    register_datasets,
    registered_name,
    task_datasets,
    validate_layout,
    validate_settings,
    write_synthetic,
)
from benchmark.data.family import DatasetFamily, protocol_name

__all__ = ["FAMILIES", "DatasetFamily", "DatasetLayoutError", "family_of_dataset", "get_family", "protocol_name",
           "register_datasets", "registered_name", "task_datasets", "validate_layout", "validate_settings",
           "write_synthetic"]
