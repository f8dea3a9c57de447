"""Evaluator wiring: known predictions through reset/process/evaluate give known numbers.

Predictions are detectron2 `Instances` fed to the evaluator the way the trainer's inference loop
feeds them (one process, so distributed or not makes no difference). The datasets are registered
as the engine registers them, under our own names (`register_datasets`).
"""
import importlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators, PascalVOCDetectionEvaluator
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks
from PIL import Image

from benchmark.data import register_datasets, write_synthetic
from benchmark.data.evaluators import CityscapesMIoUEvaluator
from benchmark.env import coco_eval_backend, has_compiled_ops
from benchmark.tasks import get_task
from benchmark.tasks.errors import MAIN_ERRORS
from benchmark.tasks.evaluation import DetectionErrorsEvaluator, FalsePositiveEvaluator, WithErrorAnalysis, build_evaluator
from benchmark.tasks.fp_analysis import DETAIL_NAME

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ERROR_KEYS = MAIN_ERRORS + ("fp", "fn")


def assert_errors(res, **nonzero):
    """The "errors" group (TIDE dAP): every type 0 but those named, which have these values."""
    want = {k: 0.0 for k in ERROR_KEYS} | nonzero
    assert set(res["errors"]) == set(want), res["errors"]
    for k, v in want.items():
        assert res["errors"][k] == pytest.approx(v, abs=1e-9), (k, res["errors"])


def _instances(d, boxes=None, scores=None, masks=True):
    """Ground truth of dataset dict `d` as predictions (boxes XYXY, optional overrides)."""
    anns = d["annotations"]
    gt = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
    inst = Instances((d["height"], d["width"]))
    inst.pred_boxes = Boxes(torch.tensor(gt if boxes is None else boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.ones(len(anns)) if scores is None else torch.as_tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
    if masks:
        polys = PolygonMasks([a["segmentation"] for a in anns])
        inst.pred_masks = BitMasks.from_polygon_masks(polys, d["height"], d["width"]).tensor
    return inst


def _evaluate(evaluator, dicts, outputs):
    evaluator.reset()
    for d, out in zip(dicts, outputs):
        evaluator.process([d], [{"instances": out}])
    return evaluator.evaluate()


@pytest.fixture(scope="module")
def root(module_tmp):
    r = module_tmp
    for fmt in ("voc", "coco", "cityscapes"):
        write_synthetic(fmt, r, num_train=2, num_test=4)
    return r


@pytest.mark.parametrize("task,cls", [("voc07", PascalVOCDetectionEvaluator), ("voc0712", PascalVOCDetectionEvaluator),
                                      ("coco", COCOEvaluator), ("coco_2x", COCOEvaluator),
                                      ("cityscapes", CityscapesMIoUEvaluator)])
def test_build_evaluator_is_the_familys(root, tmp_path, task, cls):
    test = register_datasets(get_task(task), root)
    name = test[list(test)[-1]]
    ev = build_evaluator(get_task(task), name, str(tmp_path), distributed=False)
    if cls is CityscapesMIoUEvaluator:
        assert type(ev) is cls
        return
    # Detection: the official evaluator, and TIDE's error breakdown beside it (detectron2's DatasetEvaluators).
    assert type(ev) is WithErrorAnalysis and isinstance(ev, DatasetEvaluators)
    assert type(ev.official) is cls and type(ev.errors) is DetectionErrorsEvaluator
    # and Hoiem's false-positive analysis for VOC only (the toolbox's VOC set-up)
    assert type(ev.fp) is (FalsePositiveEvaluator if task.startswith("voc") else type(None))


# ----------------------------------------------------------------------------- VOC

def test_voc_ground_truth_scores_100(root):
    name = register_datasets(get_task("voc07"), root)["voc_2007_test"]
    dicts = DatasetCatalog.get(name)
    assert len({a["category_id"] for d in dicts for a in d["annotations"]}) == 20  # all classes present
    ev = build_evaluator(get_task("voc07"), name, None, distributed=False)
    res = _evaluate(ev, dicts, [_instances(d, masks=False) for d in dicts])
    assert res["bbox"] == {"AP": pytest.approx(100.0), "AP50": pytest.approx(100.0), "AP75": pytest.approx(100.0)}
    assert_errors(res)  # nothing lost to any error type
    # no false positive at all: no share to give (NaN), nothing gained by removing any type
    assert all(np.isnan(res["fp"][k]) for k in ("loc", "sim", "oth", "bg"))
    assert {k: res["fp"][k] for k in ("dap_loc", "dap_sim", "dap_oth", "dap_bg")} == dict.fromkeys(
        ("dap_loc", "dap_sim", "dap_oth", "dap_bg"), 0.0)


def _hand_voc(tmp_path):
    """VOC2007 test: a 600x600 image with 4 dogs and one object of each other class, on a grid, and
    an empty image (detectron2's VOC loader cannot read a one-line image list)."""
    from benchmark.data.voc import annotation_xml as _voc_xml
    from benchmark.data.voc import classes

    VOC_CLASSES = classes()

    dog = VOC_CLASSES.index("dog")
    classes = [dog] * 3 + list(range(20))
    objects = []
    for k, cls in enumerate(classes):
        x0, y0 = 10 + 80 * (k % 7), 10 + 80 * (k // 7)
        objects.append((cls, (x0, y0, x0 + 60, y0 + 50), None))
    d = tmp_path / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (d / sub).mkdir(parents=True)
    (d / "Annotations/000001.xml").write_text(_voc_xml("VOC2007", "000001.jpg", 600, 600, objects))
    (d / "Annotations/000002.xml").write_text(_voc_xml("VOC2007", "000002.jpg", 600, 600, []))
    (d / "ImageSets/Main/test.txt").write_text("000001\n000002\n")
    name = register_datasets(get_task("voc07"), tmp_path)["voc_2007_test"]
    return name, DatasetCatalog.get(name), dog


@pytest.mark.parametrize("wrong_score,dog_ap", [
    # The moved dog box is ranked last: 3 hits at precision 1, recall stops at 3/4; the 11-point
    # AP takes precision 1 at recall 0, .1, ..., .7 (8 points) and 0 at .8, .9, 1.
    (0.5, 8 / 11),
    # Ranked first: precisions 1/2, 2/3, 3/4 at recalls 1/4, 2/4, 3/4; the interpolated precision
    # at each of those 8 points is the best at or beyond it, 3/4.
    (1.0, 8 / 11 * 3 / 4),
])
def test_voc_one_wrong_box_lowers_ap_by_the_expected_amount(tmp_path, wrong_score, dog_ap):
    name, (d, empty), dog = _hand_voc(tmp_path)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    scores = [0.9] * len(boxes)
    i = next(k for k, a in enumerate(d["annotations"]) if a["category_id"] == dog)
    boxes[i] = [540.0, 500.0, 590.0, 590.0]  # empty corner: IoU 0 with every box
    scores[i] = wrong_score
    ev = build_evaluator(get_task("voc07"), name, str(tmp_path / "inference"), distributed=False)
    res = _evaluate(ev, [d, empty], [_instances(d, boxes, scores, masks=False), _instances(empty, masks=False)])
    expected = (19 * 100 + 100 * dog_ap) / 20  # mean over the 20 classes, same at every IoU threshold
    for key in ("AP", "AP50", "AP75"):
        assert res["bbox"][key] == pytest.approx(expected, abs=1e-9)
    # TIDE: the moved box is a background error and its dog is missed. Dog AP on 101 recall points
    # (recall 3/4 reached): ranked last, precision 1 up to 3/4 (76 points); ranked first, 3/4 there.
    # Without the background error: 76/101 either way; without the miss (3 dogs): 100 or 3/4.
    dog, no_bkg, no_miss = {0.5: (7600 / 101, 7600 / 101, 100.0), 1.0: (5700 / 101, 7600 / 101, 75.0)}[wrong_score]
    assert_errors(res, bkg=(no_bkg - dog) / 20, miss=(no_miss - dog) / 20, fn=(no_miss - dog) / 20,
                  fp=(7600 / 101 - dog) / 20)
    # Hoiem: the one false positive is background; removing it gives the dog 11-point AP 8/11
    # either way, a gain of 0 (ranked last) or 8/11 / 4 (ranked first), over 20 classes.
    assert res["fp"] == pytest.approx({"loc": 0.0, "sim": 0.0, "oth": 0.0, "bg": 100.0, "dap_loc": 0.0,
                                       "dap_sim": 0.0, "dap_oth": 0.0, "dap_bg": (800 / 11 - 100 * dog_ap) / 20})
    detail = json.loads((tmp_path / "inference" / DETAIL_NAME).read_text())
    assert detail["classes"]["dog"]["counts"]["fp100"] == {"cor": 3, "loc": 0, "sim": 0, "oth": 0, "bg": 1, "total": 4}
    assert detail["classes"]["dog"]["ap"] == pytest.approx(100 * dog_ap)
    assert detail["groups"]["animals"]["counts"]["fp100"]["bg"] == 1


def test_voc_nothing_detected_leaves_the_miss_dap_undefined(root):
    # A model that detects nothing (a tiny smoke run may): TIDE's AP is 0, and with every object
    # missed and fixed away no class is left to average: NaN, which the run record keeps as null.
    name = register_datasets(get_task("voc07"), root)["voc_2007_test"]
    dicts = DatasetCatalog.get(name)
    ev = build_evaluator(get_task("voc07"), name, None, distributed=False)
    res = _evaluate(ev, dicts, [_instances(d, masks=False)[:0] for d in dicts])
    assert {k for k, v in res["errors"].items() if np.isnan(v)} == {"miss", "fn"}
    assert all(res["errors"][k] == 0.0 for k in ("cls", "loc", "both", "dupe", "bkg", "fp"))


def test_voc_difficult_objects_are_ignored_by_the_error_analysis(tmp_path):
    # As by VOC's own evaluation: a difficult object without a box is not missed.
    name, (d, empty), dog = _hand_voc(tmp_path)
    xml = tmp_path / "VOC2007/Annotations/000001.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    assert d["annotations"][0]["category_id"] == dog
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    keep = _instances(d, boxes, [0.9] * len(boxes), masks=False)[1:]  # no box for the difficult dog
    res = _evaluate(build_evaluator(get_task("voc07"), name, None, distributed=False), [d, empty], [keep, _instances(empty, masks=False)])
    assert res["bbox"]["AP50"] == pytest.approx(100.0)
    assert_errors(res)


# ----------------------------------------------------------------------------- COCO

def _size_expectation(areas):
    """100 for each COCO size range that holds ground truth (by annotation area), None for the others."""
    out = {}
    for key, lo, hi in (("APs", 0, 32 ** 2), ("APm", 32 ** 2, 96 ** 2), ("APl", 96 ** 2, 1e10)):
        out[key] = 100.0 if any(lo <= a < hi for a in areas) else None
    return out


def test_coco_ground_truth_scores_100(root, tmp_path):
    name = register_datasets(get_task("coco"), root)["coco_2017_val"]
    dicts = DatasetCatalog.get(name)
    areas = [a["area"] for a in json.loads((root / "coco/annotations/instances_val2017.json").read_text())["annotations"]]
    sizes = _size_expectation(areas)
    assert sizes["APs"] == sizes["APm"] == 100.0  # the synthetic val set spans sizes
    ev = build_evaluator(get_task("coco"), name, str(tmp_path), distributed=False)
    res = _evaluate(ev, dicts, [_instances(d) for d in dicts])
    for task in ("bbox", "segm"):
        for key in ("AP", "AP50", "AP75"):
            assert res[task][key] == pytest.approx(100.0)
        for key, want in sizes.items():
            assert res[task][key] == pytest.approx(100.0) if want else np.isnan(res[task][key])
        present = {a["category_id"] for d in dicts for a in d["annotations"]}
        per_class = {k: v for k, v in res[task].items() if k.startswith("AP-") and not np.isnan(v)}
        assert len(per_class) == len(present) and set(per_class.values()) == {100.0}
    assert (tmp_path / "coco_instances_results.json").is_file()  # output_dir reaches the evaluator
    assert_errors(res)


def _hand_coco(tmp_path):
    """One 300x300 image: 3 dogs and 1 car, rectangles far apart."""
    from benchmark.data.coco import categories as coco_categories

    boxes = [(10, 10, 60, 50), (100, 10, 50, 60), (10, 100, 70, 40), (150, 150, 80, 80)]
    cats = [18, 18, 18, 3]
    anns = [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": list(b), "area": float(b[2] * b[3]),
             "iscrowd": 0, "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0], b[1] + b[3]]]}
            for k, (b, c) in enumerate(zip(boxes, cats))]
    data = {"info": {}, "licenses": [], "categories": coco_categories(), "annotations": anns,
            "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 300, "width": 300}]}
    (tmp_path / "coco/annotations").mkdir(parents=True)
    (tmp_path / "coco/annotations/instances_val2017.json").write_text(json.dumps(data))
    name = register_datasets(get_task("coco"), tmp_path)["coco_2017_val"]
    return name, DatasetCatalog.get(name)[0]


def test_coco_one_wrong_box_lowers_bbox_ap_only(tmp_path):
    name, d = _hand_coco(tmp_path)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    boxes[0] = [250.0, 10.0, 290.0, 60.0]  # a dog box moved where nothing is: IoU 0
    scores = [0.5, 0.9, 0.9, 0.9]  # ... and ranked last
    ev = build_evaluator(get_task("coco"), name, str(tmp_path), distributed=False)
    res = _evaluate(ev, [d], [_instances(d, boxes, scores)])
    # dog: recall reaches 2/3 at precision 1; COCO's 101 recall points 0, .01, ..., .66 (67 of
    # them) get precision 1, the rest 0. car: 100. AP is the mean over the two classes.
    dog = 100 * 67 / 101
    assert res["bbox"]["AP-dog"] == pytest.approx(dog)
    for key in ("AP", "AP50", "AP75", "APm"):  # all four boxes are medium (1024 <= area < 9216)
        assert res["bbox"][key] == pytest.approx((dog + 100) / 2)
    for key in ("AP", "AP50", "AP75", "APm"):  # the masks were left right
        assert res["segm"][key] == pytest.approx(100.0)
    # TIDE (boxes): a background error ranked last costs nothing; the missed dog costs its class
    # 100 - 6700/101 (2 of 3 found: recall points 0 .. .66), half of that in the mean of 2 classes.
    assert_errors(res, miss=(100 - 6700 / 101) / 2, fn=(100 - 6700 / 101) / 2)


def test_coco_eval_backend_switch(monkeypatch):
    monkeypatch.delenv("BENCHMARK_COCO_EVAL", raising=False)
    assert coco_eval_backend() == "pycocotools"
    monkeypatch.setenv("BENCHMARK_COCO_EVAL", "pycocotools")
    assert coco_eval_backend() == "pycocotools"
    monkeypatch.setenv("BENCHMARK_COCO_EVAL", "detectron2")
    if has_compiled_ops():  # a machine with detectron2's compiled build
        assert coco_eval_backend() == "detectron2"
    else:
        with pytest.raises(ValueError, match="needs detectron2's compiled ops"):
            coco_eval_backend()
    monkeypatch.setenv("BENCHMARK_COCO_EVAL", "faster")
    with pytest.raises(ValueError, match="unknown COCO evaluation backend BENCHMARK_COCO_EVAL='faster'"):
        coco_eval_backend()


# A COCO evaluation with detectron2's stock evaluator and nothing of ours: run as a script in a
# fresh interpreter (the reference) and in the test process after importing all of our package.
STOCK_COCO_EVAL = '''
import json
import sys
from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks


def predictions(d, rng):
    """Jittered boxes, shifted masks, random scores, one missed object and one false positive."""
    h, w, anns = d["height"], d["width"], d["annotations"]
    boxes = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns], np.float64)
    sizes = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    boxes = boxes + rng.normal(0, 0.06, size=boxes.shape) * sizes
    masks = BitMasks.from_polygon_masks(PolygonMasks([a["segmentation"] for a in anns]), h, w).tensor.numpy()
    masks = np.stack([np.roll(m, tuple(int(s) for s in rng.integers(-3, 4, size=2)), axis=(0, 1)) for m in masks])
    keep = np.arange(len(anns)) != rng.integers(len(anns))
    fp_mask = np.zeros((1, h, w), bool)
    fp_mask[0, : h // 3, : w // 3] = True
    out = Instances((h, w))
    out.pred_boxes = Boxes(torch.tensor(np.concatenate([boxes[keep], [[0, 0, w / 3, h / 3]]]), dtype=torch.float32))
    out.pred_masks = torch.from_numpy(np.concatenate([masks[keep], fp_mask]))
    out.scores = torch.tensor(rng.uniform(0.05, 1.0, size=int(keep.sum()) + 1), dtype=torch.float32)
    classes = [a["category_id"] for a in anns]
    out.pred_classes = torch.tensor([c for c, k in zip(classes, keep) if k] + classes[:1], dtype=torch.int64)
    return out


def evaluate(name, json_file, image_root):
    register_coco_instances(name, {}, json_file, image_root)
    dicts = DatasetCatalog.get(name)
    rng = np.random.default_rng(0)
    evaluator = COCOEvaluator(name)  # detectron2's defaults: use_fast_impl=True, distributed=True
    evaluator.reset()
    for d in dicts:
        evaluator.process([d], [{"instances": predictions(d, rng)}])
    return json.loads(json.dumps(evaluator.evaluate()))


if __name__ == "__main__":
    results = evaluate(*sys.argv[1:4])
    assert not any(m.split(".")[0] == "benchmark" for m in sys.modules), "the reference imported the suite"
    print(json.dumps(results))
'''


def _all_our_modules():
    """Import every module of the package (found as files: a folder without __init__.py counts too)."""
    import benchmark

    top = Path(benchmark.__file__).parent
    names = []
    for path in sorted(top.rglob("*.py")):
        parts = path.relative_to(top.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        importlib.import_module(name)
        names.append(name)
    return names


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_stock_coco_evaluator_gives_the_same_numbers_after_importing_the_suite(tmp_path):
    data = write_synthetic("coco", tmp_path / "data", num_train=2, num_test=12, image_size=(256, 320))
    json_file, image_root = data / "coco/annotations/instances_val2017.json", data / "coco/val2017"
    script = tmp_path / "stock_coco_eval.py"
    script.write_text(STOCK_COCO_EVAL)
    fresh = subprocess.run([sys.executable, str(script), "test_only_stock_coco", str(json_file), str(image_root)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    reference = json.loads(fresh.stdout.strip().splitlines()[-1])

    imported = _all_our_modules()
    for package in ("benchmark.weights", "benchmark.tasks", "benchmark.data", "benchmark.engine",
                    "benchmark.records", "benchmark.cli"):
        assert any(m.startswith(package + ".") for m in imported), package
    stock = runpy.run_path(str(script), run_name="stock_coco_eval")
    here = stock["evaluate"](f"test_only_stock_coco_{tmp_path.name}", str(json_file), str(image_root))

    assert set(reference) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        assert all(5 < reference[task][k] < 95 for k in COCO_KEYS), reference[task]  # imperfect, all sizes
    assert json.dumps(here, sort_keys=True) == json.dumps(reference, sort_keys=True)  # exactly


# ----------------------------------------------------------------------------- Cityscapes

def _train_ids(d):
    return torch.from_numpy(np.asarray(Image.open(d["sem_seg_file_name"]), dtype=np.int64))


def _logits(train_ids):
    return torch.nn.functional.one_hot(train_ids.clamp(max=19), 20).permute(2, 0, 1)[:19].float()


def _cityscapes_eval(name, dicts, preds):
    ev = build_evaluator(get_task("cityscapes"), name, None, distributed=False)
    ev.reset()
    for d, p in zip(dicts, preds):
        ev.process([d], [{"sem_seg": _logits(p)}])
    return ev.evaluate()["sem_seg"]


def test_cityscapes_ground_truth_scores_miou_100(root):
    name = register_datasets(get_task("cityscapes"), root)["cityscapes_fine_sem_seg_val"]
    dicts = DatasetCatalog.get(name)
    res = _cityscapes_eval(name, dicts, [_train_ids(d) for d in dicts])
    assert res["mIoU"] == res["IoU"] == pytest.approx(100.0)
    assert res["iIoU"] == res["IoU_sup"] == pytest.approx(100.0)


def test_cityscapes_miou_of_a_known_confusion(root):
    # Every "car" pixel predicted as "road": car IoU 0, road IoU |road| / (|road| + |car|), other
    # classes 100; mIoU is the mean over the classes that occur (cityscapesscripts skips the rest).
    name = register_datasets(get_task("cityscapes"), root)["cityscapes_fine_sem_seg_val"]
    dicts = DatasetCatalog.get(name)
    gts = [_train_ids(d) for d in dicts]
    road, car = 0, 13
    preds = [torch.where(g == car, torch.tensor(road), g) for g in gts]
    n_road = sum(int((g == road).sum()) for g in gts)
    n_car = sum(int((g == car).sum()) for g in gts)
    present = {int(c) for g in gts for c in g.unique() if c != 255}
    assert car in present and road in present
    ious = [0.0 if c == car else n_road / (n_road + n_car) if c == road else 1.0 for c in present]
    res = _cityscapes_eval(name, dicts, preds)
    assert res["mIoU"] == pytest.approx(100 * np.mean(ious), abs=1e-6)


# ----------------------------------------------------------------------------- error analysis across processes

def _imperfect(d):
    """Ground truth of `d` with its first box shifted by 40% of its width and its last object missed."""
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    x0, y0, x1, y1 = boxes[0]
    boxes[0] = [x0 + 0.4 * (x1 - x0), y0, x1 + 0.4 * (x1 - x0), y1]
    inst = _instances(d, boxes, torch.linspace(0.9, 0.5, len(boxes)), masks=False)
    return inst[: len(boxes) - 1]


def _errors_on_ranks(root, out):
    """One rank of a 2-process (gloo) evaluation: each rank processes every other image."""
    from detectron2.utils import comm

    name = register_datasets(get_task("voc07"), root)["voc_2007_test"]
    dicts = DatasetCatalog.get(name)
    ev = DetectionErrorsEvaluator(name, voc_difficult=True)
    ev.reset()
    for d in dicts[comm.get_rank()::2]:
        ev.process([d], [{"instances": _imperfect(d)}])
    res = ev.evaluate()
    if comm.is_main_process():
        Path(out).write_text(json.dumps(res))
    else:
        assert res == {}


@pytest.mark.slow  # two fresh processes importing torch and detectron2
def test_error_analysis_gathers_every_rank_on_rank_0(root, tmp_path):
    from detectron2.engine import launch

    out = tmp_path / "errors.json"
    launch(_errors_on_ranks, 2, dist_url="auto", args=(str(root), str(out)))
    name = register_datasets(get_task("voc07"), root)["voc_2007_test"]
    dicts = DatasetCatalog.get(name)
    one = _evaluate(DetectionErrorsEvaluator(name, voc_difficult=True), dicts, [_imperfect(d) for d in dicts])
    assert json.loads(out.read_text()) == json.loads(json.dumps(one))
    assert one["errors"]["loc"] > 0 and one["errors"]["miss"] > 0  # the shifted and the missed boxes
