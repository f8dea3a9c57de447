"""`voc07 --smoke` and `coco --smoke` run records carry TIDE's error breakdown (metrics group "errors"),
and the VOC one Hoiem's false-positive analysis (group "fp", its detail file beside the evaluator's output),
computed from the run's own detections: for COCO it is recomputed here from the detections file the
run wrote (coco_instances_results.json) and the dataset's annotations, and must be the same."""
import json
import math

import pytest

from benchmark.records import results
from benchmark.tasks.errors import ERROR_METRICS, ImageDetections, analyse
from benchmark.tasks.fp_analysis import DETAIL_NAME, FP_GROUP, FP_METRICS
from tests.helpers.tools import tool

KEYS = sorted(m.split("/")[1] for m in ERROR_METRICS)


@pytest.fixture(scope="module")
def work(module_tmp, synthetic_checkpoint):
    from benchmark.weights.convert import prepare_weights

    root = module_tmp / "errors"
    return root, prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache").path


def smoke_record(work, task):
    root, pkl = work
    out = root / task
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(root / "cache"))
        assert tool("run_transfer")(["--task", task, "--smoke", "--weights", str(pkl), "--output", str(out)]) == 0
    return out / "trial_0", results.read_record(out / "trial_0" / "results.json")


def assert_error_group(record):
    errors = record.metrics["errors"]
    print(record.task, "bbox/AP", record.metrics["bbox"]["AP"], "errors", errors)  # pytest -rP shows it
    assert sorted(errors) == KEYS
    for k, v in errors.items():  # None where TIDE's AP is undefined (e.g. no detection at all)
        assert v is None or (math.isfinite(v) and (k in ("fp", "fn") or v >= 0.0)), (k, v)


@pytest.mark.slow
def test_voc07_smoke_record_carries_the_error_breakdown(work):
    trial, record = smoke_record(work, "voc07")
    assert record.status == "finished" and "bbox" in record.metrics
    assert_error_group(record)
    # and Hoiem's false-positive analysis: its group, equal to the detail the run wrote beside it
    fp = record.metrics[FP_GROUP]
    assert sorted(f"{FP_GROUP}/{k}" for k in fp) == sorted(FP_METRICS)
    (detail_file,) = (trial / "inference").glob(f"*/{DETAIL_NAME}")
    detail = json.loads(detail_file.read_text())
    counts = detail["all"]["counts"]["fp100"]
    n_fp = sum(counts[t] for t in ("loc", "sim", "oth", "bg"))
    print("fp", fp, "top false positives", counts)
    assert n_fp > 0 and sum(fp[t] for t in ("loc", "sim", "oth", "bg")) == pytest.approx(100.0)
    for t in ("loc", "sim", "oth", "bg"):
        assert fp[t] == pytest.approx(100.0 * counts[t] / n_fp)
    assert len(detail["classes"]) == 20 and set(detail["groups"]) == {"animals", "vehicles", "furniture"}


@pytest.mark.slow
def test_coco_smoke_record_carries_the_error_breakdown_of_its_detections(work):
    trial, record = smoke_record(work, "coco")
    assert record.status == "finished" and "bbox" in record.metrics
    assert_error_group(record)
    dets = json.loads((trial / "inference" / "coco_2017_val" / "coco_instances_results.json").read_text())
    (gt_file,) = (work[0] / "cache" / "synthetic").rglob("instances_val2017.json")  # what --smoke wrote
    gt = json.loads(gt_file.read_text())
    images = []
    for im in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == im["id"]]
        mine = [d for d in dets if d["image_id"] == im["id"]]
        images.append(ImageDetections([a["bbox"] for a in anns], [a["category_id"] for a in anns],
                                      [d["bbox"] for d in mine], [d["score"] for d in mine],
                                      [d["category_id"] for d in mine], [bool(a["iscrowd"]) for a in anns]))
    expected = analyse(images).errors
    print(f"{len(dets)} detections; recomputed: {expected}")
    for k in KEYS:
        got = record.metrics["errors"][k]
        assert (got is None) == (expected[k] is None) and (got is None or got == pytest.approx(expected[k], abs=1e-4)), k
