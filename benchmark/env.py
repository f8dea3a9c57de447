"""The environment a run executes in (recorded in every run record); `python -m benchmark.env` prints it."""
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

COCO_EVAL_BACKENDS = ("pycocotools", "detectron2")


def has_compiled_ops() -> bool:
    """Whether detectron2's compiled extension (`detectron2._C`) is installed.

    Without it (detectron2 installed from its Python sources, see README.md) every registered
    task still runs: detectron2 imports fine and its evaluators fall back to pycocotools. The
    suite asks, it never replaces the module.
    """
    try:
        return importlib.util.find_spec("detectron2._C") is not None
    except ModuleNotFoundError:  # detectron2 itself is missing
        return False


def default_data_root() -> Path:
    """`$DETECTRON2_DATASETS` when set, else `datasets/` in the working directory (detectron2's rule)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


def coco_eval_backend() -> str:
    """The COCO evaluation backend in use: "pycocotools" | "detectron2" (for run records).

    pycocotools (the official implementation) by default; detectron2's compiled fast evaluation
    (same numbers, faster) with `BENCHMARK_COCO_EVAL=detectron2` where the compiled ops are installed.
    The coco family passes the choice to `COCOEvaluator(use_fast_impl=...)`.
    """
    choice = os.environ.get("BENCHMARK_COCO_EVAL") or "pycocotools"
    if choice not in COCO_EVAL_BACKENDS:
        raise ValueError(f"unknown COCO evaluation backend BENCHMARK_COCO_EVAL={choice!r}; choose one of "
                         f"{', '.join(COCO_EVAL_BACKENDS)}")
    if choice == "detectron2" and not has_compiled_ops():
        raise ValueError("BENCHMARK_COCO_EVAL=detectron2 needs detectron2's compiled ops, absent here; "
                         "unset it to evaluate with pycocotools")
    return choice


def environment() -> dict:
    """Versions and devices, as recorded in every run record and printed by `python -m benchmark.env`."""
    import detectron2
    import torch
    import torchvision

    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "detectron2": detectron2.__version__,
        "detectron2_compiled_ops": has_compiled_ops(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": devices,
        "device": devices[0] if devices else f"cpu ({os.cpu_count()} cores)",
        "coco_eval": coco_eval_backend(),  # which COCOeval scored COCO runs
        "data_root": str(default_data_root()),
    }


def main(argv=None) -> int:
    env = environment()
    if argv and "--json" in argv:
        print(json.dumps(env, indent=2))
        return 0
    width = max(map(len, env))
    for key, value in env.items():
        if isinstance(value, list):
            value = ", ".join(value) or "none"
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
