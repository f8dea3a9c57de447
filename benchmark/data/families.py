"""Dataset families: one object per family (VOC, COCO, Cityscapes, ImageNet) that knows all about it.

A `DatasetFamily` says which protocol dataset names the family places under a data root and where
(`datasets`, `tops`), and how to register one with detectron2, validate a root, write synthetic
data, which smoke overlay and smoke image size its tasks use, and how to build its evaluator. A
task names its family (`Task.data_format`); every place that depends on the family asks
`get_family(task.data_format)` instead of matching strings of its own.

Registered names: the suite never touches detectron2's builtin catalog entries (`voc_2007_trainval`,
`coco_2017_train`, ... registered by `detectron2.data.datasets.builtin` on import). Each protocol
dataset under a root is registered under a name of ours, `registered_name(name, root)`:
`benchmark:<digest of the absolute root>:<protocol name>`, which no detectron2 project uses and
which always means the same files.

Pure Python: importing this module imports neither torch nor detectron2. The work is done by
functions in `benchmark.data.register`, `.validate`, `.synthetic` and `benchmark.tasks.evaluation`,
named below as "module:function" and imported when first called.
"""
import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from benchmark import CONFIG_DIR

REGISTERED_PREFIX = "benchmark"
# Layout keys that are paths relative to the data root (the others: VOC's split and year).
PATH_KEYS = ("dirname", "image_root", "json_file", "image_dir", "gt_dir", "classes_dir")


def resolve(ref: str):
    """The function a "module:function" reference names (its module imported now)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _absolute(root) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


@dataclass(frozen=True, eq=False)  # one object per family: compared and hashed by identity
class DatasetFamily:
    """One dataset family: where its datasets live under a data root and what to do with them.

    `datasets` maps each protocol dataset name to its layout: keyword arguments of the family's
    functions, named as detectron2's metadata names them; those in PATH_KEYS are paths relative
    to the data root (`paths(name, root)` makes them absolute).
    """
    name: str
    datasets: MappingProxyType  # protocol dataset name -> {layout keyword: value}
    tops: tuple  # the folders it places directly under a data root
    smoke_image_size: tuple  # (height, width) of the synthetic images of --smoke runs
    smoke_overlay: str  # file name under configs/smoke/
    evaluator_type: str  # detectron2's MetadataCatalog `evaluator_type` of its datasets
    register_with: str  # "module:function"(registered_name, **absolute layout)
    validate_with: str  # "module:function"(dataset name, **absolute layout); raises DatasetLayoutError
    synthesize_with: str  # "module:function"(folder, params): writes `tops` into folder
    evaluate_with: str  # "module:function"(dataset_name, output_dir, distributed) -> DatasetEvaluator

    def layout(self, name: str) -> dict:
        """The layout of protocol dataset `name` (paths relative to the data root)."""
        try:
            return dict(self.datasets[name])
        except KeyError:
            raise ValueError(f"dataset {name!r} has no known layout in the {self.name} family; known: "
                             f"{', '.join(sorted(self.datasets))}") from None

    def paths(self, name: str, root) -> dict:
        """The layout of `name` under `root`, its paths absolute."""
        root = _absolute(root)
        return {k: os.path.join(root, v) if k in PATH_KEYS else v for k, v in self.layout(name).items()}

    @property
    def smoke_overlay_path(self) -> Path:
        return CONFIG_DIR / "smoke" / self.smoke_overlay

    def register(self, name: str, root) -> str:
        """Register protocol dataset `name` under `root` with detectron2; return its registered name.

        Idempotent: the same name under the same root is registered once (the name means the same
        files). detectron2's builtin entries are left as they are.
        """
        from benchmark.data.register import register_dataset

        return register_dataset(name, root, family=self)

    def validate(self, name: str, root) -> None:
        """Check what detectron2's loader and evaluator will read of `name` under `root`."""
        resolve(self.validate_with)(name, **self.paths(name, root))

    def write_synthetic(self, root, **kwargs) -> Path:
        """`benchmark.data.synthetic.write_synthetic` of this family (`image_size` defaults to the smoke size)."""
        from benchmark.data.synthetic import write_synthetic

        return write_synthetic(self.name, root, **kwargs)

    def build_evaluator(self, dataset_name: str, output_dir=None, distributed=True):
        """detectron2's evaluator of this family for a registered dataset name."""
        return resolve(self.evaluate_with)(dataset_name, output_dir=output_dir, distributed=distributed)


def _frozen(table: dict) -> MappingProxyType:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})


VOC = DatasetFamily(
    name="voc",
    datasets=_frozen({
        f"voc_{year}_{split}": {"dirname": f"VOC{year}", "split": split, "year": year}
        for year, splits in ((2007, ("trainval", "train", "val", "test")), (2012, ("trainval", "train", "val")))
        for split in splits
    }),
    tops=("VOC2007", "VOC2012"),
    smoke_image_size=(128, 160),
    smoke_overlay="detection.yaml",
    evaluator_type="pascal_voc",
    register_with="benchmark.data.register:register_voc",
    validate_with="benchmark.data.validate:check_voc",
    synthesize_with="benchmark.data.synthetic:write_voc",
    evaluate_with="benchmark.tasks.evaluation:voc_evaluator",
)
COCO = DatasetFamily(
    name="coco",
    datasets=_frozen({
        f"coco_2017_{split}": {"image_root": f"coco/{split}2017",
                               "json_file": f"coco/annotations/instances_{split}2017.json"}
        for split in ("train", "val")
    }),
    tops=("coco",),
    smoke_image_size=(128, 160),
    smoke_overlay="detection.yaml",  # as VOC's: the tasks differ by their mask head only
    evaluator_type="coco",
    register_with="benchmark.data.register:register_coco",
    validate_with="benchmark.data.validate:check_coco",
    synthesize_with="benchmark.data.synthetic:write_coco",
    evaluate_with="benchmark.tasks.evaluation:coco_evaluator",
)
CITYSCAPES = DatasetFamily(
    name="cityscapes",
    datasets=_frozen({
        f"cityscapes_fine_sem_seg_{split}": {"image_dir": f"cityscapes/leftImg8bit/{split}",
                                             "gt_dir": f"cityscapes/gtFine/{split}"}
        for split in ("train", "val")
    }),
    tops=("cityscapes",),
    # The 1:2 aspect of Cityscapes, so that smoke test features divide by the ASPP pool kernel.
    smoke_image_size=(128, 256),
    smoke_overlay="cityscapes.yaml",
    evaluator_type="cityscapes_sem_seg",
    register_with="benchmark.data.register:register_cityscapes_sem_seg",
    validate_with="benchmark.data.validate:check_cityscapes",
    synthesize_with="benchmark.data.synthetic:write_cityscapes",
    evaluate_with="benchmark.tasks.evaluation:cityscapes_evaluator",
)

IMAGENET = DatasetFamily(
    name="imagenet",
    # The common ImageFolder layout: one folder per class (its WordNet id) in each split. Class
    # indices are the sorted class folders of the training split (`classes_dir`), val included.
    datasets=_frozen({
        "imagenet_train": {"image_dir": "imagenet/train", "classes_dir": "imagenet/train"},
        "imagenet_val": {"image_dir": "imagenet/val", "classes_dir": "imagenet/train"},
    }),
    tops=("imagenet",),
    smoke_image_size=(48, 48),  # the smoke overlay crops 32 px out of these
    smoke_overlay="imagenet_linear.yaml",
    evaluator_type="classification",
    register_with="benchmark.data.register:register_imagefolder",
    validate_with="benchmark.data.validate:check_imagefolder",
    synthesize_with="benchmark.data.synthetic:write_imagenet",
    evaluate_with="benchmark.tasks.classification:classification_evaluator",
)

FAMILIES = MappingProxyType({f.name: f for f in (VOC, COCO, CITYSCAPES, IMAGENET)})


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
    """The detectron2 catalog name of protocol dataset `name` under data root `root` (pure).

    `benchmark:<12 hex digits of sha256(absolute root)>:<name>`: it cannot collide with a
    detectron2 project's names, and two roots never share one.
    """
    family_of_dataset(name)
    digest = hashlib.sha256(_absolute(root).encode()).hexdigest()[:12]
    return f"{REGISTERED_PREFIX}:{digest}:{name}"


def protocol_name(name: str) -> str:
    """The protocol dataset name of a registered name (`voc_2007_test`); other names unchanged."""
    prefix, _, rest = name.partition(":")
    return rest.partition(":")[2] if prefix == REGISTERED_PREFIX and ":" in rest else name


def task_datasets(task) -> list:
    """The protocol dataset names of a task (a Task or a task name), train first, without repeats."""
    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    return list(dict.fromkeys(tuple(task.train) + tuple(task.test)))
