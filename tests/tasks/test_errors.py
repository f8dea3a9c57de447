"""TIDE's error breakdown (benchmark.tasks.errors) on detections whose errors are known by construction.

One image per case, boxes [x, y, w, h]; the expected numbers are worked out by hand from TIDE's AP
(101 recall points, precision interpolated from the right, mean over classes):
- one true positive of two ground truths: precision 1 up to recall 0.5, 51 of the 101 points: 5100/101;
- a false positive ranked above the only true positive: precision 1/2 everywhere: 50.
"""
import math

import pytest

from benchmark.tasks import get_task
from benchmark.tasks.errors import ERROR_METRICS, MAIN_ERRORS, ImageDetections, analyse, box_iou, class_ap, error_metrics

A, B, FAR = [0.0, 0.0, 10.0, 10.0], [100.0, 0.0, 10.0, 10.0], [300.0, 300.0, 10.0, 10.0]
# A moved right by 10 * 0.7 / 1.3: intersection 10 * (10 - dx) = 0.6 / 1.3 * 100, IoU 0.3
A_IOU_03 = [70.0 / 13.0, 0.0, 10.0, 10.0]
HALF = 5100 / 101  # AP of one hit on two objects


def breakdown(gt, dets, ignore=None):
    """gt [(class, box)], dets [(class, score, box)] of one image -> Breakdown."""
    return analyse([ImageDetections([b for _, b in gt], [c for c, _ in gt], [b for _, _, b in dets],
                                    [s for _, s, _ in dets], [c for c, _, _ in dets], ignore)])


def errors(**nonzero):
    out = {k: 0.0 for k in MAIN_ERRORS + ("fp", "fn")}
    out.update(nonzero)
    return out


def assert_breakdown(result, ap, expected):
    assert result.ap == pytest.approx(ap, abs=1e-9)
    assert set(result.errors) == set(expected)
    for k, v in expected.items():
        assert result.errors[k] == pytest.approx(v, abs=1e-9), (k, result.errors)


def test_the_constructed_shift_has_iou_0_3():
    assert box_iou([A_IOU_03], [A])[0, 0] == pytest.approx(0.3, abs=1e-12)


def test_perfect_detections_lose_nothing():
    r = breakdown([(0, A), (1, B)], [(0, 0.9, A), (1, 0.8, B)])
    assert_breakdown(r, 100.0, errors())
    assert r.counts == dict.fromkeys(MAIN_ERRORS, 0)


CASES = {
    # A found; B's box shifted to IoU 0.3: fixed, B is found too (100). Nothing missed: the
    # localization error accounts for B. fn: B dropped from the count, A alone: 100.
    "localization": ([(0, A), (0, B)], [(0, 0.9, A), (0, 0.8, [100.0 + 70.0 / 13.0, 0.0, 10.0, 10.0])],
                     HALF, errors(loc=100 - HALF, fn=100 - HALF), "loc"),
    # B (class 1) boxed exactly, called class 0. Class 0 AP 100, class 1 AP 0: 50. Fixed: 100.
    # fn: class 1 loses its only ground truth and leaves the mean: 100.
    "classification": ([(0, A), (1, B)], [(0, 0.9, A), (0, 0.8, B)], 50.0, errors(cls=50.0, fn=50.0), "cls"),
    # A second box on A, ranked between A's and B's: precisions 1, 1/2, 2/3 at recalls .5, .5, 1;
    # interpolated 1 up to recall .5 (51 points), 2/3 beyond (50): (51 + 100/3) / 101. Removed: 100.
    # fp: the duplicate scored 0 falls below both hits: 100.
    "duplicate": ([(0, A), (0, B)], [(0, 0.9, A), (0, 0.8, A), (0, 0.7, B)],
                  100 * (51 + 100 / 3) / 101, errors(dupe=100 - 100 * (51 + 100 / 3) / 101,
                                                     fp=100 - 100 * (51 + 100 / 3) / 101), "dupe"),
    # A box on nothing, ranked above the only hit: precision 1/2 everywhere. Removed: 100.
    "background": ([(0, A)], [(0, 0.9, FAR), (0, 0.8, A)], 50.0, errors(bkg=50.0, fp=50.0), "bkg"),
    # B has no box: 5100/101. Dropped from the count: 100 (miss and fn alike).
    "missed": ([(0, A), (0, B)], [(0, 0.9, A)], HALF, errors(miss=100 - HALF, fn=100 - HALF), "miss"),
    # A (class 1) boxed at IoU 0.3 and called class 0, above class 0's one hit on B: class 0 AP 50,
    # class 1 AP 0, mean 25. Removed: class 0 AP 100, mean 50. A is not explained by a loc/cls
    # error, so it is also missed: without it class 1 leaves the mean, 50 (class 0's AP).
    "both": ([(1, A), (0, B)], [(0, 0.9, A_IOU_03), (0, 0.8, B)], 25.0,
             errors(both=25.0, miss=25.0, fp=25.0, fn=25.0), "both"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_error_type_costs_what_its_oracle_gives_back(case):
    gt, dets, ap, expected, kind = CASES[case]
    r = breakdown(gt, dets)
    assert_breakdown(r, ap, expected)
    assert r.counts[kind] == 1
    assert sum(r.counts.values()) == 1 + (kind == "both")  # "both": its ground truth is also missed


def test_two_errors_on_one_object_only_the_higher_scored_is_fixed():
    # Two localization errors on B: the oracle turns the 0.8 one into a hit and removes the 0.7 one.
    shifted = [100.0 + 70.0 / 13.0, 0.0, 10.0, 10.0]
    r = breakdown([(0, A), (0, B)], [(0, 0.9, A), (0, 0.8, shifted), (0, 0.7, shifted)])
    assert r.counts["loc"] == 2 and r.counts["miss"] == 0
    assert r.errors["loc"] == pytest.approx(100 - HALF)


def test_ignore_regions_neither_count_nor_penalise():
    # B is a crowd / difficult region: the box on it is ignored, B is not counted: A alone, 100.
    r = breakdown([(0, A), (0, B)], [(0, 0.9, B), (0, 0.8, A)], ignore=[False, True])
    assert_breakdown(r, 100.0, errors())


def test_undefined_values_are_none():
    empty = analyse([ImageDetections([], [], [], [], [])])
    assert empty.ap is None and set(empty.errors.values()) == {None}
    # No detections at all: AP 0; fixing the misses leaves no class to average (None), nothing else to fix.
    r = breakdown([(0, A)], [])
    assert r.ap == 0.0 and r.errors == errors(miss=None, fn=None)
    # As evaluators say "undefined": NaN, which the run record keeps as null.
    from benchmark.records.results import clean_metrics

    assert {k for k, v in r.metrics().items() if math.isnan(v)} == {"miss", "fn"}
    assert clean_metrics({"errors": r.metrics()})["errors"] == errors(miss=None, fn=None)


def test_several_images_pool_into_one_curve():
    # Image 1 perfect, image 2 misses its object: one class, 1 hit of 2.
    images = [ImageDetections([A], [0], [A], [0.9], [0]), ImageDetections([B], [0], [], [], [])]
    r = analyse(images)
    assert r.ap == pytest.approx(HALF) and r.errors["miss"] == pytest.approx(100 - HALF)


def test_class_ap_samples_101_recall_points():
    assert class_ap([(0.9, True)], 1) == 100.0
    assert class_ap([(0.9, True)], 2) == pytest.approx(HALF)
    assert class_ap([], 3) == class_ap([(0.5, False)], 0) == 0.0


def test_inconsistent_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        ImageDetections([A, B], [0], [], [], [])


def test_error_metrics_of_the_detection_tasks_only():
    assert error_metrics(get_task("voc07")) == error_metrics(get_task("coco")) == ERROR_METRICS
    assert ERROR_METRICS[:6] == ("errors/cls", "errors/loc", "errors/both", "errors/dupe", "errors/bkg", "errors/miss")
    assert error_metrics(get_task("cityscapes")) == error_metrics(get_task("imagenet_linear")) == ()


# ------------------------------------------------------------------ the paper's finding as a check

def test_table1_keeps_tides_localization_as_a_column_but_judges_hoiems():
    # The paper ran Hoiem et al.'s toolbox, not TIDE: its localization check is on "fp/loc"
    # (tests/tasks/test_fp_analysis.py); TIDE's "errors/loc" stays a column, a second view.
    from benchmark.reproduce import paper

    table = paper.load_table("table1")
    assert ("voc07", "errors/loc") in table.columns and ("voc07", "fp/loc") in table.columns
    assert [c.metric for c in table.checks if c.metric.startswith(("errors/", "fp/"))] == ["fp/loc"]


def test_a_table_column_on_errors_of_a_task_without_them_is_refused(tmp_path):
    from benchmark.reproduce import paper

    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {cityscapes: [errors/loc]}\nrows: [{name: a}]\n")
    with pytest.raises(paper.TableError, match="task cityscapes has no metric 'errors/loc'"):
        paper.load_table(bad)
