"""Evaluator wiring: known predictions through reset/process/evaluate give known numbers.

Predictions are detectron2 `Instances` fed to the evaluator the way the trainer's inference loop
feeds them (one process, so distributed or not makes no difference).
"""
import json

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks
from PIL import Image

import benchmark
from benchmark.tasks import evaluation
from benchmark.data import register_datasets, write_synthetic
from benchmark.tasks.evaluation import BenchmarkCOCOEvaluator, build_evaluator, coco_eval_backend

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


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


# ----------------------------------------------------------------------------- VOC

def test_voc_ground_truth_scores_100(root):
    register_datasets("voc07", root)
    dicts = DatasetCatalog.get("voc_2007_test")
    assert len({a["category_id"] for d in dicts for a in d["annotations"]}) == 20  # all classes present
    ev = build_evaluator("voc07", "voc_2007_test", None, distributed=False)
    res = _evaluate(ev, dicts, [_instances(d, masks=False) for d in dicts])
    assert res["bbox"] == {"AP": pytest.approx(100.0), "AP50": pytest.approx(100.0), "AP75": pytest.approx(100.0)}


def _hand_voc(tmp_path):
    """VOC2007 test: a 600x600 image with 4 dogs and one object of each other class, on a grid, and
    an empty image (detectron2's VOC loader cannot read a one-line image list)."""
    from benchmark.data.synthetic import VOC_CLASSES, _voc_xml

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
    register_datasets("voc07", tmp_path)
    return DatasetCatalog.get("voc_2007_test")[0], dog


@pytest.mark.parametrize("wrong_score,dog_ap", [
    # The moved dog box is ranked last: 3 hits at precision 1, recall stops at 3/4; the 11-point
    # AP takes precision 1 at recall 0, .1, ..., .7 (8 points) and 0 at .8, .9, 1.
    (0.5, 8 / 11),
    # Ranked first: precisions 1/2, 2/3, 3/4 at recalls 1/4, 2/4, 3/4; the interpolated precision
    # at each of those 8 points is the best at or beyond it, 3/4.
    (1.0, 8 / 11 * 3 / 4),
])
def test_voc_one_wrong_box_lowers_ap_by_the_expected_amount(tmp_path, wrong_score, dog_ap):
    d, dog = _hand_voc(tmp_path)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    scores = [0.9] * len(boxes)
    i = next(k for k, a in enumerate(d["annotations"]) if a["category_id"] == dog)
    boxes[i] = [540.0, 500.0, 590.0, 590.0]  # empty corner: IoU 0 with every box
    scores[i] = wrong_score
    ev = build_evaluator("voc07", "voc_2007_test", None, distributed=False)
    empty = DatasetCatalog.get("voc_2007_test")[1]
    res = _evaluate(ev, [d, empty], [_instances(d, boxes, scores, masks=False), _instances(empty, masks=False)])
    expected = (19 * 100 + 100 * dog_ap) / 20  # mean over the 20 classes, same at every IoU threshold
    for key in ("AP", "AP50", "AP75"):
        assert res["bbox"][key] == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- COCO

def _size_expectation(areas):
    """100 for each COCO size range that holds ground truth (by annotation area), None for the others."""
    out = {}
    for key, lo, hi in (("APs", 0, 32 ** 2), ("APm", 32 ** 2, 96 ** 2), ("APl", 96 ** 2, 1e10)):
        out[key] = 100.0 if any(lo <= a < hi for a in areas) else None
    return out


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_coco_ground_truth_scores_100(root, tmp_path, backend):
    register_datasets("coco", root)
    dicts = DatasetCatalog.get("coco_2017_val")
    areas = [a["area"] for a in json.loads((root / "coco/annotations/instances_val2017.json").read_text())["annotations"]]
    sizes = _size_expectation(areas)
    assert sizes["APs"] == sizes["APm"] == 100.0  # the synthetic val set spans sizes
    ev = BenchmarkCOCOEvaluator("coco_2017_val", distributed=False, output_dir=str(tmp_path), backend=backend)
    res = _evaluate(ev, dicts, [_instances(d) for d in dicts])
    for task in ("bbox", "segm"):
        for key in ("AP", "AP50", "AP75"):
            assert res[task][key] == pytest.approx(100.0)
        for key, want in sizes.items():
            assert res[task][key] == pytest.approx(100.0) if want else np.isnan(res[task][key])
        present = {a["category_id"] for d in dicts for a in d["annotations"]}
        per_class = {k: v for k, v in res[task].items() if k.startswith("AP-") and not np.isnan(v)}
        assert len(per_class) == len(present) and set(per_class.values()) == {100.0}


def test_build_evaluator_coco_is_ours(root, tmp_path):
    register_datasets("coco", root)
    ev = build_evaluator("coco", "coco_2017_val", str(tmp_path), distributed=False)
    assert isinstance(ev, BenchmarkCOCOEvaluator)
    assert ev._tasks == ("bbox", "segm") and ev._use_fast_impl is False
    assert ev.backend == coco_eval_backend() == "faster"  # installed here


def _hand_coco(tmp_path):
    """One 300x300 image: 3 dogs and 1 car, rectangles far apart."""
    from benchmark.data.synthetic import coco_categories

    boxes = [(10, 10, 60, 50), (100, 10, 50, 60), (10, 100, 70, 40), (150, 150, 80, 80)]
    cats = [18, 18, 18, 3]
    anns = [{"id": k + 1, "image_id": 1, "category_id": c, "bbox": list(b), "area": float(b[2] * b[3]),
             "iscrowd": 0, "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0], b[1] + b[3]]]}
            for k, (b, c) in enumerate(zip(boxes, cats))]
    data = {"info": {}, "licenses": [], "categories": coco_categories(), "annotations": anns,
            "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 300, "width": 300}]}
    (tmp_path / "coco/annotations").mkdir(parents=True)
    (tmp_path / "coco/annotations/instances_val2017.json").write_text(json.dumps(data))
    register_datasets("coco", tmp_path)
    return DatasetCatalog.get("coco_2017_val")[0]


@pytest.mark.parametrize("backend", ["pycocotools", "faster"])
def test_coco_one_wrong_box_lowers_bbox_ap_only(tmp_path, backend):
    d = _hand_coco(tmp_path)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]]
    boxes[0] = [250.0, 10.0, 290.0, 60.0]  # a dog box moved where nothing is: IoU 0
    scores = [0.5, 0.9, 0.9, 0.9]  # ... and ranked last
    ev = BenchmarkCOCOEvaluator("coco_2017_val", distributed=False, output_dir=str(tmp_path), backend=backend)
    res = _evaluate(ev, [d], [_instances(d, boxes, scores)])
    # dog: recall reaches 2/3 at precision 1; COCO's 101 recall points 0, .01, ..., .66 (67 of
    # them) get precision 1, the rest 0. car: 100. AP is the mean over the two classes.
    dog = 100 * 67 / 101
    assert res["bbox"]["AP-dog"] == pytest.approx(dog)
    for key in ("AP", "AP50", "AP75", "APm"):  # all four boxes are medium (1024 <= area < 9216)
        assert res["bbox"][key] == pytest.approx((dog + 100) / 2)
    for key in ("AP", "AP50", "AP75", "APm"):  # the masks were left right
        assert res["segm"][key] == pytest.approx(100.0)


def _imperfect(dicts, seed=0):
    """Jittered boxes and shifted masks, random scores, a missed object and a false positive per image."""
    rng = np.random.default_rng(seed)
    outs = []
    for d in dicts:
        h, w = d["height"], d["width"]
        inst = _instances(d)
        n = len(inst)
        boxes = inst.pred_boxes.tensor.numpy()
        sizes = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        boxes = boxes + rng.normal(0, 0.06, size=boxes.shape) * sizes
        masks = inst.pred_masks.numpy()
        masks = np.stack([np.roll(m, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1)) for m in masks])
        fp_box = np.array([[0, 0, w / 3, h / 3]], np.float32)
        fp_mask = np.zeros((1, h, w), bool)
        fp_mask[0, : h // 3, : w // 3] = True
        keep = np.arange(n) != rng.integers(n)  # miss one
        out = Instances((h, w))
        out.pred_boxes = Boxes(torch.tensor(np.concatenate([boxes[keep], fp_box]), dtype=torch.float32))
        out.pred_masks = torch.from_numpy(np.concatenate([masks[keep], fp_mask]))
        out.scores = torch.tensor(rng.uniform(0.05, 1.0, size=int(keep.sum()) + 1), dtype=torch.float32)
        out.pred_classes = torch.cat([inst.pred_classes[torch.from_numpy(keep)],
                                      inst.pred_classes[:1]])
        outs.append(out)
    return outs


def test_faster_coco_eval_agrees_with_pycocotools(tmp_path):
    root = write_synthetic("coco", tmp_path / "data", num_train=2, num_test=24, image_size=(256, 320))
    register_datasets("coco", root)
    dicts = DatasetCatalog.get("coco_2017_val")
    outs = _imperfect(dicts)
    res = {}
    for backend in ("pycocotools", "faster"):
        ev = BenchmarkCOCOEvaluator("coco_2017_val", distributed=False, output_dir=str(tmp_path / backend),
                                    backend=backend)
        res[backend] = _evaluate(ev, dicts, outs)
    for task in ("bbox", "segm"):
        ref, fast = res["pycocotools"][task], res["faster"][task]
        assert all(5 < ref[k] < 95 for k in COCO_KEYS)  # imperfect, and every size range present
        for key in COCO_KEYS:
            assert fast[key] == pytest.approx(ref[key], abs=1e-4), (task, key)
        for key, v in ref.items():  # per-class APs too
            assert (np.isnan(v) and np.isnan(fast[key])) or fast[key] == pytest.approx(v, abs=1e-4)


def test_backend_class_is_used_and_restored(root, tmp_path, monkeypatch):
    from detectron2.evaluation import coco_evaluation
    from faster_coco_eval import COCOeval_faster

    used = []

    class Spy(COCOeval_faster):
        def evaluate(self):
            used.append(self.params.iouType)
            return super().evaluate()

    monkeypatch.setattr(evaluation, "cocoeval_class", lambda backend: Spy)
    original = coco_evaluation.COCOeval
    register_datasets("coco", root)
    dicts = DatasetCatalog.get("coco_2017_val")
    ev = BenchmarkCOCOEvaluator("coco_2017_val", distributed=False, output_dir=str(tmp_path), backend="faster")
    _evaluate(ev, dicts, [_instances(d) for d in dicts])
    assert used == ["bbox", "segm"]
    assert coco_evaluation.COCOeval is original


def test_backend_switch(monkeypatch):
    monkeypatch.delenv("BENCHMARK_COCO_EVAL", raising=False)
    assert coco_eval_backend() == "faster"
    monkeypatch.setenv("BENCHMARK_COCO_EVAL", "pycocotools")
    assert coco_eval_backend() == "pycocotools"
    from pycocotools.cocoeval import COCOeval

    assert evaluation.cocoeval_class() is COCOeval
    monkeypatch.setattr(evaluation, "COCO_EVAL_BACKEND", "faster")  # the module switch wins
    assert coco_eval_backend() == "faster"
    monkeypatch.setattr(evaluation, "COCO_EVAL_BACKEND", "detectron2")
    if benchmark.d2.HAS_COMPILED_OPS:  # a machine with detectron2's compiled build
        assert coco_eval_backend() == "detectron2"
    else:
        with pytest.raises(ValueError, match="needs detectron2's compiled ops"):
            coco_eval_backend()
    monkeypatch.setattr(evaluation, "COCO_EVAL_BACKEND", "fast")
    with pytest.raises(ValueError, match="unknown COCO evaluation backend 'fast'"):
        coco_eval_backend()


# ----------------------------------------------------------------------------- Cityscapes

def _train_ids(d):
    return torch.from_numpy(np.asarray(Image.open(d["sem_seg_file_name"]), dtype=np.int64))


def _logits(train_ids):
    return torch.nn.functional.one_hot(train_ids.clamp(max=19), 20).permute(2, 0, 1)[:19].float()


def _cityscapes_eval(dicts, preds):
    ev = build_evaluator("cityscapes", "cityscapes_fine_sem_seg_val", None, distributed=False)
    ev.reset()
    for d, p in zip(dicts, preds):
        ev.process([d], [{"sem_seg": _logits(p)}])
    return ev.evaluate()["sem_seg"]


def test_cityscapes_ground_truth_scores_miou_100(root):
    register_datasets("cityscapes", root)
    dicts = DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    res = _cityscapes_eval(dicts, [_train_ids(d) for d in dicts])
    assert res["mIoU"] == res["IoU"] == pytest.approx(100.0)
    assert res["iIoU"] == res["IoU_sup"] == pytest.approx(100.0)


def test_cityscapes_miou_of_a_known_confusion(root):
    # Every "car" pixel predicted as "road": car IoU 0, road IoU |road| / (|road| + |car|), other
    # classes 100; mIoU is the mean over the classes that occur (cityscapesscripts skips the rest).
    register_datasets("cityscapes", root)
    dicts = DatasetCatalog.get("cityscapes_fine_sem_seg_val")
    gts = [_train_ids(d) for d in dicts]
    road, car = 0, 13
    preds = [torch.where(g == car, torch.tensor(road), g) for g in gts]
    n_road = sum(int((g == road).sum()) for g in gts)
    n_car = sum(int((g == car).sum()) for g in gts)
    present = {int(c) for g in gts for c in g.unique() if c != 255}
    assert car in present and road in present
    ious = [0.0 if c == car else n_road / (n_road + n_car) if c == road else 1.0 for c in present]
    res = _cityscapes_eval(dicts, preds)
    assert res["mIoU"] == pytest.approx(100 * np.mean(ious), abs=1e-6)
