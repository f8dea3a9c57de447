"""benchmark.d2: detectron2 imports without compiled ops, and the missing ops fail clearly."""
import subprocess
import sys

import pytest

from benchmark import d2


def test_missing_op_raises_naming_the_op():
    if d2.HAS_COMPILED_OPS:
        # Where detectron2 is compiled, the stand-in is not installed; exercise it directly.
        ops = d2.MissingCompiledOps()
    else:
        from detectron2 import _C as ops

        assert isinstance(ops, d2.MissingCompiledOps)
    with pytest.raises(RuntimeError, match="'COCOevalAccumulate' is not available"):
        ops.COCOevalAccumulate({}, {})
    with pytest.raises(AttributeError):
        ops.__file_that_does_not_exist__


def test_detectron2_modules_that_import_C_still_import():
    from detectron2.evaluation import COCOEvaluator  # noqa: F401  (imports fast_eval_api -> _C)
    from detectron2.layers import DeformConv  # noqa: F401

    assert d2.ensure() is d2.HAS_COMPILED_OPS


def test_env_report_names_versions_and_compiled_ops():
    out = subprocess.run(
        [sys.executable, "-m", "benchmark.env"], capture_output=True, text=True, check=True
    ).stdout
    import torch

    for key in ("python", "torch", "torchvision", "detectron2", "detectron2_compiled_ops", "cuda_devices", "data_root"):
        assert key in out
    assert torch.__version__ in out
    assert f"detectron2_compiled_ops  {d2.HAS_COMPILED_OPS}" in out
