"""benchmarks.bench's building blocks on a tiny setting: every figure tools/bench.py reports is
present and a finite positive number, and the comparisons carry real results (faster-coco-eval's
numbers equal pycocotools', the converter keeps every ResNet-50 tensor). Speeds are not asserted
here: tools/bench.py checks its targets itself."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from benchmarks import bench
from benchmark.weights.convert import expected_shapes

ROOT = Path(__file__).resolve().parents[1]


def positive(fig, *keys):
    for key in keys:
        value = fig[key]
        values = value if isinstance(value, list) else [value]
        for v in values:
            assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (key, value)


@pytest.fixture(scope="module")
def figures():
    """Filled by the tests below, read by the summary test (module order)."""
    return {"machine": bench.machine(), "load_after": [0.0, 0.0, 0.0]}


@pytest.mark.slow
def test_train_figures(tmp_path, figures):
    threads = torch.get_num_threads()
    try:
        fig = bench.train_figures(tmp_path, sizes=(64,), warmup=1, rounds=2, block=1, threads=1)
    finally:
        torch.set_num_threads(threads)
    assert fig["threads"] == 1 and fig["target"] == bench.TRAIN_TARGET and "DefaultTrainer" in fig["compared"]
    size = fig["sizes"]["64"]
    assert (size["image_size"], size["images_per_iter"], size["iterations_timed"], size["guard_period"]) == (64, 2, 2, 20)
    positive(size, "ours_s_per_iter", "plain_s_per_iter", "ours_spread_s", "plain_spread_s", "ours_run_step_s",
             "plain_run_step_s", "ours_hooks_s", "plain_hooks_s", "guard_check_s", "guard_amortized_s",
             "loop_ratio", "ratio", "ratio_of_medians", "round_ratio_spread", "ours_cpu_s_per_iter",
             "plain_cpu_s_per_iter", "cpu_ratio", "hook_ratio")
    assert size["ours_run_step_s"] < size["ours_s_per_iter"]  # hooks are timed apart from run_step
    assert size["ratio_of_medians"] == pytest.approx((size["ours_s_per_iter"] + size["guard_check_s"] / 20) / size["plain_s_per_iter"])
    lo, hi = size["round_ratio_spread"]
    assert lo <= size["ratio"] <= hi  # the median of the per-round ratios
    assert fig["ratio"] == size["ratio"] and fig["within_target"] == (fig["ratio"] <= 1.03)
    figures["train"] = fig


def test_eval_figures(tmp_path, figures):
    fig = bench.eval_figures(tmp_path, num_images=8, repeats=1)
    positive(fig, "images", "voc_s", "voc_spread_s", "voc_detections", "coco_pycocotools_s", "coco_faster_s",
             "coco_detections", "coco_speedup", "voc_AP50", "coco_bbox_AP", "coco_segm_AP")
    assert fig["images"] == 8
    # imperfect predictions (jitter, a missed object, false positives): AP strictly between 0 and 100
    assert all(0 < fig[k] < 100 for k in ("voc_AP50", "coco_bbox_AP", "coco_segm_AP"))
    assert fig["coco_max_abs_diff"] <= 1e-4  # same numbers from both COCO backends
    figures["eval"] = fig


def test_data_figures(tmp_path, figures):
    fig = bench.data_figures(tmp_path, workers=(0, 1), batches=3)
    assert set(fig["workers"]) == {"0", "1"} and fig["images_per_batch"] == 2
    for w in fig["workers"].values():
        assert w["images"] == 6
        positive(w, "images_per_s", "first_batch_s")
    figures["data"] = fig


def test_measure_convert(synthetic_checkpoint, figures):
    ckpt = synthetic_checkpoint("moco")
    fig = bench.measure_convert(ckpt)
    assert (fig["format"], fig["depth"], fig["tensors"]) == ("moco", 50, len(expected_shapes(50)))
    assert fig["checkpoint_mib"] == pytest.approx(ckpt.stat().st_size / 2**20)
    positive(fig, "wall_s", "peak_rss_growth_mib", "peak_rss_x_checkpoint", "traced_peak_mib")
    assert fig["within_target"] == (fig["wall_s"] < 2 and fig["peak_rss_x_checkpoint"] < 3)
    figures["convert"] = fig


def test_summary_and_problems(figures):
    text = bench.summary(figures)
    for label in ("eval VOC 11-point", "pycocotools | faster", "data loader, 0 workers", "convert R50 MoCo", "machine"):
        assert label in text
    if "train" in figures:  # absent when slow tests are deselected
        assert "train overhead (worst size)" in text
    over = {"machine": figures["machine"],
            "train": {"ratio": 1.10, "within_target": False, "sizes": {"128": {
                "ratio": 1.10, "ours_run_step_s": 1.0, "plain_run_step_s": 0.95, "ours_hooks_s": 0.05,
                "plain_hooks_s": 0.0, "guard_amortized_s": 0.002, "hook_ratio": 1.055, "cpu_ratio": 1.09,
                "round_ratio_spread": [1.05, 1.2]}}},
            "eval": {"coco_speedup": 0.9, "coco_max_abs_diff": 0.5}}
    found = bench.problems(over)
    assert len(found) == 3
    assert found[0] == ("training overhead 1.100 > 1.03 at 128 px. Profile: run_step (detectron2's code in both) "
                        "1.000 vs 0.950 s, hooks 50.00 vs 0.00 ms, our finite-weights guard 2.0 ms/iter amortized: "
                        "hooks-only ratio 1.0550; CPU-time ratio 1.090; per-round ratios 1.050..1.200")
    over["train"]["sizes"]["128"].update(hook_ratio=1.002, round_ratio_spread=[0.95, 1.2])
    assert "machine noise" in bench.problems(over)[0]
    assert "not faster" in found[1] and "differs from pycocotools by 0.5 AP" in found[2]


def test_cli_refuses_unknown_section(capsys):
    spec = importlib.util.spec_from_file_location("bench_cli", ROOT / "tools" / "bench.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--sections", "train,speed"])
    assert exc.value.code == 2
    assert "unknown section speed; choose from train,eval,data,convert" in capsys.readouterr().err
