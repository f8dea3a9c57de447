"""Transfer benchmark suite: pretrained backbones fine-tuned on detectron2 tasks.

Importing the package makes detectron2 importable (see `benchmark.d2`) and registers the model
pieces with detectron2's registries.
"""
__version__ = "0.1.0"

from benchmark import d2 as _d2

_d2.ensure()

from benchmark import modeling  # noqa: E402,F401  (registers Res5ROIHeadsExtraNorm)
