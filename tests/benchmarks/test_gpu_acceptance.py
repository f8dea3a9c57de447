"""benchmarks/gpu_acceptance.py cannot rot: its --tiny mode runs every section on the CPU as a user
runs it (a fresh interpreter), the JSON has the checked shape, and the figures agree with each other
and with the suite's constants. Speeds themselves are not asserted (benchmarks print them)."""
import copy
import json
import math
import subprocess
import sys

import pytest
import torch

from benchmark.reproduce.cost import SPEED, run_gpu_hours
from benchmarks import gpu_acceptance as ga
from tests.helpers.tools import ROOT, child_env


@pytest.fixture(scope="module")
def tiny(module_tmp):
    out = module_tmp / "tiny.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_acceptance.py"), "--tiny", "--json", str(out)],
                          cwd=module_tmp, env=child_env(), capture_output=True, text=True, timeout=900)
    return proc, json.loads(out.read_text()) if out.is_file() else None


def finite_positive(*values):
    for v in values:
        assert isinstance(v, float) and math.isfinite(v) and v > 0, v


@pytest.mark.slow
def test_tiny_runs_every_section_and_writes_the_checked_json(tiny):
    proc, report = tiny
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ga.check_schema(report)
    assert report["mode"] == "tiny" and set(report["sections"]) == set(ga.SECTIONS)
    assert all(not f["status"].startswith(("failed", "skipped: time")) for f in report["sections"].values())
    assert f"GPU acceptance (tiny) on {report['machine'].get('gpu', 'CPU only')}" in proc.stdout
    assert report["versions"]["torch"] == torch.__version__
    s = report["sections"]
    gpu_tests = s["correctness"]["gpu_tests"]
    assert gpu_tests["tests"] == 3 and gpu_tests["failed"] == gpu_tests["errors"] == 0
    if not torch.cuda.is_available():
        assert gpu_tests["skipped"] == 3 and set(gpu_tests["cases"].values()) == {"skipped"}
        assert s["memory"]["tasks"]["voc07"]["status"] == ga.NO_CUDA
        assert set(s["speed"]["tasks"]["voc07"]["s_per_iter"]) == {"fp32_cudnn_benchmark_off", "fp32_cudnn_benchmark_on"}
    # the constants the memory figures are compared with are the configs' (images-per-process rule)
    voc = s["memory"]["tasks"]["voc07"]
    assert (voc["train_gb_per_image_constant"], voc["train_gb_fixed_constant"]) == (3.0, 1.0)
    finite_positive(*voc["cpu_stand_in_s_per_iter"].values())
    for task in ga.DETECTION_TASKS:
        fig = s["speed"]["tasks"][task]
        assert fig["images_per_iter"] == 2  # the protocol's 16 images over 8 GPUs
        finite_positive(*fig["s_per_iter"].values())
        assert fig["speedup_cudnn_benchmark"] == pytest.approx(
            fig["s_per_iter"]["fp32_cudnn_benchmark_off"] / fig["s_per_iter"]["fp32_cudnn_benchmark_on"])
    assert set(s["data"]["workers"]) == {"0", "1"}
    finite_positive(*(w["images_per_s"] for w in s["data"]["workers"].values()))
    voc_speed = s["speed"]["tasks"]["voc07"]
    assert s["data"]["gpu_consumes_images_per_s"] == pytest.approx(2 / voc_speed["s_per_iter"]["fp32_cudnn_benchmark_off"])
    finite_positive(*s["linear"]["forward_images_per_s"].values(), *s["linear"]["loader_images_per_s"].values())
    cost = s["cost"]
    assert cost["estimate"]["gpu_hours_per_run"] == run_gpu_hours("voc07") and cost["estimate"]["gpus"] == SPEED["voc07"].gpus
    assert cost["measured"]["gpu_hours_per_run"] == pytest.approx(
        voc_speed["s_per_iter"]["fp32_cudnn_benchmark_off"] * 12500 * 8 / 3600)


def _report(**sections):
    base = {name: {"status": "ok"} for name in ga.SECTIONS}
    base.update(sections)
    return {"schema": ga.SCHEMA_VERSION, "mode": "full", "machine": {}, "budget_s": 480, "elapsed_s": 1.0,
            "versions": {"torch": "2", "detectron2": "0.7", "suite": "0.2"}, "sections": base}


def test_check_schema_refuses_what_the_readers_cannot_read():
    ga.check_schema(_report())
    bad = []
    missing = _report()
    del missing["sections"]["cost"]
    bad.append(missing)
    bad.append(_report(memory={"status": "fine"}))
    bad.append(_report(speed={"status": "ok", "s": float("nan")}))
    no_version = _report()
    no_version["versions"]["detectron2"] = None
    bad.append(no_version)
    for report in bad:
        with pytest.raises(ValueError):
            ga.check_schema(copy.deepcopy(report))


def test_an_out_of_memory_at_the_rules_batch_is_a_problem():
    oom = _report(memory={"status": "failed", "tasks": {"coco": {"status": "failed", "rule_run": "OUT OF MEMORY: x"}}})
    assert ga.problems(_report()) == []
    assert ga.problems(oom) == ["memory: failed", "memory coco: the rule's batch: OUT OF MEMORY: x"]


def test_a_relative_pythonpath_reaches_the_children_run_from_the_checkout(monkeypatch, tmp_path):
    """`PYTHONPATH=.gpu_site python3 .../gpu_acceptance.py` from another folder: the GPU-only tests and the
    --sanity run start in the checkout, where a relative entry would name nothing (pytest not found)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"SITE{ga.os.pathsep}/abs/other")
    env = ga.child_env(BENCHMARK_CACHE="x")
    assert env["PYTHONPATH"].split(ga.os.pathsep) == [str(tmp_path / "SITE"), "/abs/other"]
    assert env["BENCHMARK_CACHE"] == "x"
