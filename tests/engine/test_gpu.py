"""What only a GPU can check (marked `gpu`, skipped without CUDA; benchmarks/gpu_acceptance.py runs
them on a lent GPU): the AMP path, naiveSyncBN in one process, and a resume on CUDA whose record's
`exact` flag tells the truth."""
import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from benchmark.records import results
from tests.helpers.tools import tool

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def work(module_tmp, synthetic_checkpoint):
    from benchmark.weights.convert import prepare_weights

    root = module_tmp / "gpu"
    prepared = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache")
    return SimpleNamespace(root=root, pkl=prepared.path, cache=root / "cache")


def smoke(work, name, *extra):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(work.cache))
        rc = tool("run_transfer")(["--task", "voc07", "--smoke", "--weights", str(work.pkl), "--name", "moco",
                                   "--output", str(work.root / name), *map(str, extra)])
    return rc, work.root / name / "trial_0"


def losses(trial):
    rows = [json.loads(line) for line in (trial / "metrics.json").read_text().splitlines()]
    return {r["iteration"]: r["total_loss"] for r in rows if "total_loss" in r}


@pytest.fixture(scope="module")
def fp32_run(work):
    return smoke(work, "fp32")


def test_amp_run_on_cuda_trains_and_says_so(work, fp32_run):
    rc, trial = smoke(work, "amp", "--amp")
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert (record.status, record.amp, record.iterations) == ("finished", True, 16)
    assert record.environment["cuda_available"] is True and record.environment["device"] == torch.cuda.get_device_name(0)
    assert "mixed precision (AMP) training; the protocol trains in FP32" in record.deviations
    amp, fp32 = losses(trial), losses(fp32_run[1])
    assert sorted(amp) == list(range(16)) and all(torch.isfinite(torch.tensor(v)) for v in amp.values())
    # same data, seeds and weights: the first loss differs from FP32's only by float16 rounding
    assert amp[0] == pytest.approx(fp32[0], rel=0.05)


def test_naive_sync_bn_in_one_process_is_batchnorm_on_cuda():
    from detectron2.layers import NaiveSyncBatchNorm

    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6, device="cuda") * 3 + 1
    naive, plain = NaiveSyncBatchNorm(8).cuda().train(), torch.nn.BatchNorm2d(8).cuda().train()
    y_naive, y_plain = naive(x), plain(x)
    assert torch.allclose(y_naive, y_plain, atol=1e-5)
    assert torch.allclose(naive.running_mean, plain.running_mean, atol=1e-6)
    assert torch.allclose(naive.running_var, plain.running_var, atol=1e-5)
    assert naive.running_mean.abs().max() > 0.05  # the statistics moved: the check compares something


def test_resume_on_cuda_is_close_and_its_exact_flag_is_true(work, fp32_run):
    rc, full = fp32_run
    assert rc == 0
    trial = work.root / "resumed" / "trial_0"
    trial.mkdir(parents=True)
    for name in ("model_0000009.pth", "config.yaml"):
        shutil.copy(full / name, trial)
    (trial / "last_checkpoint").write_text("model_0000009.pth")
    rc, trial = smoke(work, "resumed")
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert (record.status, record.iterations, record.resume.count) == ("finished", 16, 1)
    # one process, the checkpoint's own world size: RNG states (CUDA's included) are restored
    assert record.resume.exact is True and record.resume.note is None
    again, first = losses(trial), losses(full)
    assert sorted(again) == list(range(10, 16))
    for it in range(10, 16):  # cuDNN's kernels need not be deterministic: close, not equal
        assert again[it] == pytest.approx(first[it], rel=0.05, abs=0.02), it
