"""The one place that makes detectron2 importable, and the environment report.

detectron2 installed from its Python sources alone (see DESIGN.md) has no compiled extension
`detectron2._C`. None of the registered tasks needs it (rotated boxes, deformable convolution and
the fast COCO evaluation do), but a few detectron2 modules import it at load time. `ensure()`
makes `detectron2._C` resolve to a module whose functions raise a clear error naming the op,
and logs one line saying so. `benchmark/__init__.py` calls it before anything else imports
detectron2, so every other module may import detectron2 directly.
"""
import importlib.util
import logging
import os
import platform
import sys
import types
import warnings

logger = logging.getLogger(__name__)

HAS_COMPILED_OPS: bool = False
_ensured = False


class MissingCompiledOps(types.ModuleType):
    """Stands in for `detectron2._C`: any op fetched from it raises when called."""

    def __init__(self):
        super().__init__("detectron2._C", "stand-in for detectron2's missing compiled ops")
        self.__file__ = None

    def __getattr__(self, op):
        if op.startswith("__"):
            raise AttributeError(op)

        def missing(*args, **kwargs):
            raise RuntimeError(
                f"detectron2 compiled op '{op}' is not available: this detectron2 was installed "
                "from its Python sources only, without the compiled extension detectron2._C. "
                "No registered task needs it; to use it, build detectron2 from source "
                "(pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git')."
            )

        missing.__name__ = op
        return missing


def ensure() -> bool:
    """Make detectron2 importable; return whether its compiled ops are present."""
    global HAS_COMPILED_OPS, _ensured
    if _ensured:
        return HAS_COMPILED_OPS
    if importlib.util.find_spec("detectron2") is None:
        raise ImportError(
            "detectron2 is not installed in this interpreter "
            f"({sys.executable}); run `make env` (or `python tools/setup_env.py`)."
        )
    # detectron2 scripts a few helpers with torch.jit.script, which torch 2.14 deprecates with a
    # FutureWarning at import time: detectron2's business, not something a user can act on.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import detectron2

    HAS_COMPILED_OPS = importlib.util.find_spec("detectron2._C") is not None
    if not HAS_COMPILED_OPS:
        stub = MissingCompiledOps()
        sys.modules["detectron2._C"] = stub
        detectron2._C = stub
        logger.info(
            "detectron2 %s runs without its compiled ops (Python sources only); "
            "registered tasks do not need them", detectron2.__version__
        )
    _ensured = True
    return HAS_COMPILED_OPS


def environment() -> dict:
    """Versions and devices, as recorded in every run record and printed by `benchmark.env`."""
    import detectron2
    import torch
    import torchvision

    ensure()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    from benchmark.data import default_data_root
    from benchmark.evaluation import coco_eval_backend

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "detectron2": detectron2.__version__,
        "detectron2_compiled_ops": HAS_COMPILED_OPS,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": devices,
        "device": devices[0] if devices else f"cpu ({os.cpu_count()} cores)",
        "coco_eval": coco_eval_backend(),  # which COCOeval scored COCO runs
        "data_root": str(default_data_root()),
    }
