"""The `DatasetFamily` type and the names the suite registers datasets under (pure Python).

A family (VOC, COCO, Cityscapes, ImageNet) says which protocol dataset names it places under a
data root and where (`datasets`, `tops`), and holds its module's functions that register one
with detectron2, check a root, write synthetic data and build its evaluator. Each family's module
(benchmark.data.voc, .coco, .cityscapes, .imagenet) builds its `FAMILY`; benchmark.data.families
lists them.

Registered names: the suite never touches detectron2's builtin catalog entries (`voc_2007_trainval`,
`coco_2017_train`, ... registered by `detectron2.data.datasets.builtin` on import). Each protocol
dataset under a root is registered under a name of ours, `registered_name(name, root)`:
`benchmark:<digest of the absolute root>:<protocol name>`, which no detectron2 project uses and
which always means the same files.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable

from benchmark import CONFIG_DIR

REGISTERED_PREFIX = "benchmark"
# Layout keys that are paths relative to the data root (the others: VOC's split and year).
PATH_KEYS = ("dirname", "image_root", "json_file", "image_dir", "gt_dir", "classes_dir", "csv_dir", "imagenet_dir",
             "celeba_dir", "mafl_dir")


def absolute(root) -> str:
    """`root` as an absolute path string, `~` expanded (what registered names and layouts use)."""
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def frozen_layouts(table: dict) -> MappingProxyType:
    """A read-only {dataset name: read-only layout} of a family's `datasets` table."""
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})


@dataclass(frozen=True, eq=False)  # one object per family: compared and hashed by identity
class DatasetFamily:
    """One dataset family: where its datasets live under a data root and what to do with them.

    `datasets` maps each protocol dataset name to its layout: keyword arguments of the family's
    functions, named as detectron2's metadata names them; those in PATH_KEYS are paths relative
    to the data root (`paths(name, root)` makes them absolute). The four functions are plain
    references into the family's module, which imports detectron2 inside them only.
    """
    name: str
    datasets: MappingProxyType  # protocol dataset name -> {layout keyword: value}
    tops: tuple  # the folders it places directly under a data root
    smoke_image_size: tuple  # (height, width) of the synthetic images of --smoke runs
    smoke_overlay: str  # file name under configs/smoke/
    evaluator_type: str  # detectron2's MetadataCatalog `evaluator_type` of its datasets
    register_split: Callable  # (registered name, **absolute layout): registers one dataset with detectron2
    check: Callable  # (dataset name, **absolute layout); raises benchmark.data.checks.DatasetLayoutError
    synthesize: Callable  # (folder, params): writes `tops` into folder (benchmark.data.synthetic calls it)
    evaluator: Callable  # (registered name, output_dir, distributed) -> its official DatasetEvaluator
    # Detection error analysis (benchmark.tasks.evaluation) treats objects the annotation marks
    # "difficult" as ignore regions, as the family's official evaluator does (VOC).
    difficult_is_ignored: bool = False
    # What a run's settings need of the data, found before compute rather than at its first batch (None: nothing
    # to check): (dataset name, cfg, **absolute layout); raises DatasetLayoutError naming the option and the file.
    check_settings: Callable | None = None

    def layout(self, name: str) -> dict:
        """The layout of protocol dataset `name` (paths relative to the data root)."""
        try:
            return dict(self.datasets[name])
        except KeyError:
            raise ValueError(f"dataset {name!r} has no known layout in the {self.name} family; known: "
                             f"{', '.join(sorted(self.datasets))}") from None

    def paths(self, name: str, root) -> dict:
        """The layout of `name` under `root`, its paths absolute."""
        root = absolute(root)
        return {k: os.path.join(root, v) if k in PATH_KEYS else v for k, v in self.layout(name).items()}

    @property
    def smoke_overlay_path(self) -> Path:
        return CONFIG_DIR / "smoke" / self.smoke_overlay

    def registered_name(self, name: str, root) -> str:
        """The detectron2 catalog name of protocol dataset `name` under data root `root` (pure).

        `benchmark:<12 hex digits of sha256(absolute root)>:<name>`: it cannot collide with a
        detectron2 project's names, and two roots never share one.
        """
        self.layout(name)  # raises for a dataset not of this family
        digest = hashlib.sha256(absolute(root).encode()).hexdigest()[:12]
        return f"{REGISTERED_PREFIX}:{digest}:{name}"

    def register(self, name: str, root) -> str:
        """Register protocol dataset `name` under `root` with detectron2; return its registered name.

        The registered name is a pure function of (name, absolute root) and always means the same
        files, so a name already in the catalog is left as it is (idempotent). detectron2's builtin
        entries are left as they are; the family's `evaluator_type` is set as detectron2's
        builtin.py sets it for its names.
        """
        from detectron2.data import DatasetCatalog, MetadataCatalog

        paths = self.paths(name, root)  # raises for a dataset not of this family
        registered = self.registered_name(name, root)
        if registered not in DatasetCatalog:
            self.register_split(registered, **paths)
            MetadataCatalog.get(registered).set(evaluator_type=self.evaluator_type)
        return registered

    def validate(self, name: str, root) -> None:
        """Check what detectron2's loader and evaluator will read of `name` under `root`."""
        self.check(name, **self.paths(name, root))

    def validate_settings(self, name: str, root, cfg) -> None:
        """Check that the run's settings `cfg` fit the data of `name` under `root` (after `validate`)."""
        if self.check_settings is not None:
            self.check_settings(name, cfg, **self.paths(name, root))

    def write_synthetic(self, root, **kwargs) -> Path:
        """Write this family's synthetic dataset under `root` (benchmark.data.synthetic.write; `image_size`
        defaults to the smoke size); return `root`."""
        from benchmark.data.synthetic import write

        return write(self, root, **kwargs)

    def build_evaluator(self, dataset_name: str, output_dir=None, distributed=True):
        """The family's official detectron2 evaluator for a registered dataset name."""
        return self.evaluator(dataset_name, output_dir=output_dir, distributed=distributed)


def protocol_name(name: str) -> str:
    """The protocol dataset name of a registered name (`voc_2007_test`); other names unchanged."""
    prefix, _, rest = name.partition(":")
    return rest.partition(":")[2] if prefix == REGISTERED_PREFIX and ":" in rest else name
