"""The eval section: VOC 11-point and COCO bbox+segm evaluation of synthetic images with imperfect
predictions.

COCO: pycocotools' COCOeval on the predictions as COCO results (what the suite's evaluator runs by
default), the suite's own evaluator on the same predictions (its numbers must be pycocotools'), and
faster-coco-eval's COCOeval_faster through its pycocotools-style API on the same results when it
is installed (interleaved; speed-up and largest difference of the numbers).
"""
import copy
import math
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import median, quiet_logs, quiet_stdout, spread, synthetic_data

SAME_NUMBERS = 1e-6  # largest difference (AP points) for two evaluations to count as the same numbers


def imperfect_predictions(dicts, seed=0, masks=False, false_positives=5):
    """Per image, detectron2 `Instances` a detector might output: jittered ground truth with one
    object missed, plus random false positives, all with random scores (masks shifted if asked)."""
    from detectron2.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks

    rng = np.random.default_rng(seed)
    outs = []
    for d in dicts:
        h, w, anns = d["height"], d["width"], d["annotations"]
        gt = np.array([BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns],
                      np.float32).reshape(-1, 4)
        n = len(anns)
        wh = np.concatenate([gt[:, 2:] - gt[:, :2]] * 2, axis=1)
        boxes = gt + rng.normal(0, 0.06, size=gt.shape).astype(np.float32) * wh
        keep = np.arange(n) != rng.integers(max(n, 1))
        xy = rng.uniform(0, 1, size=(false_positives, 2)) * [w * 0.7, h * 0.7]
        fp = np.concatenate([xy, xy + rng.uniform(0.1, 0.3, size=(false_positives, 2)) * [w, h]], 1)
        all_boxes = np.concatenate([boxes[keep], fp.astype(np.float32)])
        classes = np.concatenate([[a["category_id"] for a in anns],
                                  rng.integers(0, 20, size=false_positives)]).astype(np.int64)
        classes = np.concatenate([classes[:n][keep], classes[n:]])
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.from_numpy(all_boxes))
        inst.scores = torch.from_numpy(rng.uniform(0.05, 1.0, size=len(all_boxes)).astype(np.float32))
        inst.pred_classes = torch.from_numpy(classes)
        if masks:
            m = BitMasks.from_polygon_masks(PolygonMasks([a["segmentation"] for a in anns]), h, w).tensor.numpy()
            m = np.stack([np.roll(x, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1)) for x in m])[keep]
            fpm = np.zeros((false_positives, h, w), bool)
            for k, (x0, y0, x1, y1) in enumerate(fp.astype(int)):
                fpm[k, y0:y1, x0:x1] = True
            inst.pred_masks = torch.from_numpy(np.concatenate([m.reshape(-1, h, w), fpm]))
        outs.append(inst)
    return outs


def timed_evaluation(evaluator, dicts, outputs):
    """(evaluate() seconds, results): process() (the same whatever scores it) is not timed."""
    evaluator.reset()
    for d, out in zip(dicts, outputs):
        evaluator.process([d], [{"instances": out}])
    with quiet_stdout():
        t0 = time.perf_counter()
        res = evaluator.evaluate()
        return time.perf_counter() - t0, res


def coco_results(dicts, outputs, metadata) -> list:
    """The predictions as COCO results (detectron2's own conversion, as COCOEvaluator.process does),
    category ids mapped back to the dataset's, as COCOEvaluator does before scoring."""
    from detectron2.evaluation.coco_evaluation import instances_to_coco_json

    reverse = {v: k for k, v in metadata.thing_dataset_id_to_contiguous_id.items()}
    out = []
    for d, inst in zip(dicts, outputs):
        for r in instances_to_coco_json(inst, d["image_id"]):
            r["category_id"] = reverse[r["category_id"]]
            out.append(r)
    return out


COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[:6], as detectron2 names them


def faster_coco_eval():
    """faster-coco-eval's (COCO, COCOeval_faster, version), or None when it is not installed."""
    try:
        import faster_coco_eval
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        return None
    return COCO, COCOeval_faster, faster_coco_eval.__version__


def cocoeval_run(coco_gt, cocoeval_cls, results, iou_types=("bbox", "segm")):
    """(seconds, {iou type: {metric: AP points}}) of scoring `results` against `coco_gt`.

    The pycocotools API, as detectron2's COCOEvaluator drives it: loadRes, then COCOeval's
    evaluate, accumulate, summarize; for segm without the boxes (else cocoapi takes the box area
    as the instance's area). What is timed is loadRes onward; the copies of the results are not.
    """
    seconds, numbers = 0.0, {}
    for iou in iou_types:
        res = [{k: v for k, v in r.items() if not (iou == "segm" and k == "bbox")} for r in copy.deepcopy(results)]
        with quiet_stdout():
            t0 = time.perf_counter()
            ev = cocoeval_cls(coco_gt, coco_gt.loadRes(res), iou)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            seconds += time.perf_counter() - t0
        numbers[iou] = {m: float(ev.stats[i] * 100) if ev.stats[i] >= 0 else math.nan
                        for i, m in enumerate(COCO_METRICS)}
    return seconds, numbers


def max_abs_diff(a, b) -> float:
    """Largest |a - b| over every metric of every group of `a` (NaN in both counts as equal; NaN in
    one only, or a metric missing from `b`, as infinitely different)."""
    worst = 0.0
    for group, metrics in a.items():
        for key, va in metrics.items():
            vb = b.get(group, {}).get(key, math.nan)
            if math.isnan(va) and math.isnan(vb):
                continue
            worst = max(worst, abs(va - vb)) if not (math.isnan(va) or math.isnan(vb)) else math.inf
    return worst

def voc_figures(workdir, num_images, repeats) -> dict:
    """Seconds of the suite's VOC 11-point evaluator (detectron2's) on `num_images` synthetic images."""
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import pascal_voc_evaluation

    from benchmark.tasks import get_task
    from benchmark.tasks.evaluation import build_evaluator

    test = synthetic_data("voc07", Path(workdir) / "eval_voc", num_train=2, num_test=num_images,
                          image_size=(96, 128))["voc_2007_test"]
    dicts = DatasetCatalog.get(test)
    preds = imperfect_predictions(dicts, seed=1)
    times = []
    for _ in range(repeats):
        pascal_voc_evaluation.parse_rec.cache_clear()  # every run parses its XML, as a real run does
        t, res = timed_evaluation(build_evaluator(get_task("voc07"), test, distributed=False), dicts, preds)
        times.append(t)
    return {"voc_s": median(times), "voc_spread_s": spread(times),
            "voc_detections": int(sum(len(p) for p in preds)), "voc_AP50": float(res["bbox"]["AP50"])}


def coco_figures(workdir, num_images, repeats, progress=None) -> dict:
    """Seconds and numbers of COCO bbox+segm evaluation on `num_images` synthetic images: pycocotools,
    the suite's evaluator and faster-coco-eval (when installed), interleaved; see the module doc."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from benchmark.env import coco_eval_backend
    from benchmark.tasks import get_task
    from benchmark.tasks.evaluation import build_evaluator

    out = {}
    test = synthetic_data("coco", Path(workdir) / "eval_coco", num_train=2, num_test=num_images,
                          image_size=(96, 128))["coco_2017_val"]
    dicts = DatasetCatalog.get(test)  # also sets the metadata's id mapping
    meta = MetadataCatalog.get(test)
    preds = imperfect_predictions(dicts, seed=2, masks=True)
    results = coco_results(dicts, preds, meta)
    faster = faster_coco_eval()
    if progress:
        progress(f"eval: COCO bbox+segm on {num_images} synthetic images: pycocotools, the suite's evaluator, "
                 f"faster-coco-eval {faster[2] if faster else '(not installed)'} ...")
    with quiet_stdout():  # loaded once per implementation, untimed (the suite's evaluator: in its constructor)
        gt = {"pycocotools": COCO(meta.json_file), "faster": faster[0](meta.json_file) if faster else None}
    runs = {"pycocotools": lambda: cocoeval_run(gt["pycocotools"], COCOeval, results),
            "suite": lambda: timed_evaluation(build_evaluator(get_task("coco"), test, distributed=False), dicts, preds)}
    if faster:
        runs["faster"] = lambda: cocoeval_run(gt["faster"], faster[1], results)
    times, numbers = {name: [] for name in runs}, {}
    for r in range(repeats):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):  # interleaved, both directions
            t, numbers[name] = runs[name]()
            times[name].append(t)
    out["coco_detections"] = len(results)
    for name, ts in times.items():
        out[f"coco_{name}_s"] = median(ts)
        out[f"coco_{name}_spread_s"] = spread(ts)
    reference = numbers["pycocotools"]
    out["coco_bbox_AP"] = reference["bbox"]["AP"]
    out["coco_segm_AP"] = reference["segm"]["AP"]
    # every metric, NaN (no object of that size) as null: the report stays standard JSON
    out["coco_pycocotools"] = {g: {k: None if math.isnan(v) else v for k, v in m.items()}
                               for g, m in reference.items()}
    out["coco_suite_backend"] = coco_eval_backend()
    out["coco_suite_max_abs_diff"] = max_abs_diff(reference, numbers["suite"])
    out["faster_coco_eval"] = faster[2] if faster else None  # its version; None: not installed
    if faster:
        out["coco_speedup"] = out["coco_pycocotools_s"] / out["coco_faster_s"]  # > 1: it is faster
        out["coco_max_abs_diff"] = max_abs_diff(reference, numbers["faster"])
    return out


def eval_figures(workdir, *, num_images=300, repeats=3, progress=None) -> dict:
    """VOC (11-point) and COCO (bbox + segm) evaluation seconds; see the module doc."""
    out = {"images": num_images, "repeats": repeats}
    with quiet_logs():
        if progress:
            progress(f"eval: VOC 11-point on {num_images} synthetic images ...")
        out.update(voc_figures(workdir, num_images, repeats))
        out.update(coco_figures(workdir, num_images, repeats, progress))
    return out
