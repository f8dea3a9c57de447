"""Hoiem's false-positive analysis of VOC detections: which kind of mistake the top detections make.

Hoiem, Chodpathumwan, Dai, "Diagnosing Error in Object Detectors", ECCV 2012, and its public MATLAB
toolbox (dhoiem's detection analysis code): this module follows, rule for rule, the VOC branch of
its `analyzeFalsePositives.m` (`analyzeFalsePositives_VOC`), of `matchDetectionsWithGroundTruth.m`
(`matchDetectionsWithGroundTruth_VOC`) and the `case 'voc'` of `setDatasetParameters.m` (its class
order, similar-category sets, summary sets and thresholds). The Zhao et al. (ICLR 2021) paper runs
this toolbox on VOC07 transfer detections (shared/REFERENCES.md, "Detection error analysis").

The rules, per class c, over every test image (boxes [x, y, w, h] as in benchmark.tasks.errors):
- Detections of class c are sorted by descending score (stable, as MATLAB's sort).
- Matching against the ground truth of one class k (matchDetectionsWithGroundTruth_VOC): in score
  order, a detection takes, among the ground truth of its image not yet taken whose IoU with it is
  >= the threshold, the one of highest IoU; it is labelled 1 (0 when that object is "difficult":
  neither a true nor a false positive). Otherwise it is labelled -1, and is a *duplicate* when its
  best IoU with any ground truth of its image (taken ones included) reaches the threshold.
  "Strong" matching: IoU >= 0.5; "weak": IoU >= 0.1, and there duplicates are labelled 0
  (setDatasetParameters: iuthresh_strong 0.5, iuthresh_weak 0.1, idthresh 0 i.e. unused).
- correct (Cor): strong label >= 0 with class c's ground truth (a detection of a difficult object
  counts as correct in the counts, as the toolbox's `iscorrect = det.label>=0`);
  localization (Loc): strong label -1 but weak label >= 0 (poorly localized, or a duplicate);
  confusion with an object: not Cor, not Loc, and weak label >= 0 against the ground truth of
  another class k (matched as if the detection were of class k). In the topN counts the object
  is the class of highest such IoU: similar (Sim) when that class is in one of c's
  similar-category sets, other (Oth) otherwise; background (BG): everything else.
  In the AP removals (the toolbox's `issim`/`isother`/`isbg_notobj`): Sim is any weak match with a
  similar class; Oth any with another one; BG the rest (the toolbox's 'ignorebg' removes Oth and
  BG together; here each is removed alone, and the record says which).
- topN (the toolbox's `topN = [-100 sum(~[gt.isdiff])]`): the counts of each type among the top
  detections up to the 100th false positive ("fp100"), and among as many top detections as class c
  has (non-difficult) positives ("npos"). Where the class has fewer than 100 false positives (or
  fewer detections than positives) the point takes every detection (the toolbox would stop with
  an error there).
- AP gain of removing a type: AP with that type's detections removed (their score set to -Inf,
  as the toolbox does) minus AP, in points. AP is VOC2007's 11-point AP over the class's
  non-difficult ground truth, the task's own metric (detectron2's voc_ap, use_07_metric); the
  toolbox's `averagePrecisionNormalized` (its normalized AP) is not used.
- Groups: the toolbox's VOC summary sets (animals, vehicles, furniture). A group's (and the whole
  set's) counts are the sums of its classes' counts at each class's topN points; its AP gains the
  mean over its classes that have positives; its curve (the chart) merges its classes' false
  positives by score.
Deliberate departure: IoU of continuous box coordinates (detectron2's boxes), not the toolbox's
inclusive-pixel `+1` areas, which suit VOC's integer pixel boxes only.
"""
import math

import numpy as np

from benchmark.tasks.errors import box_iou

STRONG_IOU = 0.5  # setDatasetParameters.m, case 'voc': iuthresh_strong
WEAK_IOU = 0.1  # setDatasetParameters.m, case 'voc': iuthresh_weak
TOP_FP = 100  # analyzeFalsePositives.m: topN = [-100 ...], the top 100 false positives
TYPES = ("cor", "loc", "sim", "oth", "bg")
FP_TYPES = TYPES[1:]
FP_GROUP = "fp"  # the run record's metrics group
# The record's flat summary: share (%) of each type among the top false positives (fp100 point,
# all classes), and the mean over classes of the AP points gained by removing each type.
FP_METRICS = tuple(f"{FP_GROUP}/{k}" for k in FP_TYPES) + tuple(f"{FP_GROUP}/dap_{k}" for k in FP_TYPES)
FP_FAMILIES = ("voc",)  # dataset families whose runs carry the group (the toolbox's VOC set-up)
DETAIL_NAME = "fp_analysis.json"  # the full per-class/per-group detail, beside the evaluator's output

# setDatasetParameters.m, case 'voc': objnames_all (1-based indices below), similar_classes and
# summary_sets with their names.
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
_SIMILAR_IDX = ([3, 8, 10, 12, 13, 15, 17],  # animals + person
                [1, 4, 6, 7, 19, 2, 14],  # all vehicles
                [2, 14],  # bicycle, motorbike
                [9, 11, 18],  # chair, table, sofa
                [1, 3])  # bird, aeroplane
SIMILAR_SETS = tuple(frozenset(VOC_CLASSES[i - 1] for i in s) for s in _SIMILAR_IDX)
SUMMARY_SETS = {name: tuple(VOC_CLASSES[i - 1] for i in s) for name, s in
                (("animals", [3, 8, 10, 12, 13, 17]), ("vehicles", [1, 4, 6, 7, 19, 2, 14]), ("furniture", [9, 11, 18]))}


def fp_metrics(task) -> tuple:
    """The "fp/<key>" metrics a `Task`'s run records carry (empty outside the VOC family)."""
    return FP_METRICS if task.data_format in FP_FAMILIES else ()


def similar_classes(name) -> frozenset:
    """The classes similar to `name`: the others of every similar-category set holding it."""
    return frozenset().union(*(s for s in SIMILAR_SETS if name in s)) - {name}


def voc07_ap(tp, fp, npos) -> float | None:
    """VOC2007 11-point AP (0-100) of score-sorted true/false positive flags; None without positives."""
    if npos == 0:
        return None
    tp, fp = np.cumsum(tp, dtype=np.float64), np.cumsum(fp, dtype=np.float64)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return float(np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0 for t in np.arange(0.0, 1.1, 0.1)]) * 100)


def _match(iou, difficult, thresh, weak):
    """matchDetectionsWithGroundTruth_VOC in one image: (labels, overlaps) of score-sorted detections
    (rows of `iou`) against one class's ground truth (columns)."""
    n_det, n_gt = iou.shape
    labels, ov = [-1] * n_det, [0.0] * n_det
    if n_gt:
        # plain lists: an image holds a handful of objects, where numpy's per-call cost dominates
        taken, diff = [False] * n_gt, difficult.tolist()
        for d, row in enumerate(iou.tolist()):
            j_best, best = -1, -1.0
            for j, v in enumerate(row):  # the untaken object of highest IoU >= thresh, the first on ties
                if not taken[j] and v >= thresh and v > best:
                    j_best, best = j, v
            if j_best >= 0:
                ov[d], labels[d], taken[j_best] = best, 0 if diff[j_best] else 1, True
            else:
                ov[d] = max(row)
                if weak and ov[d] >= thresh > 0:  # a duplicate: ignored under weak matching
                    labels[d] = 0
    return np.array(labels, np.int64), np.array(ov, np.float64)


def _image_labels(image, cls):
    """For the detections of class `cls` in one image (score-sorted): scores, strong and weak labels
    against their own class, and per other class present the weak label and overlap."""
    order = np.argsort(-image.det_scores, kind="stable")
    order = order[image.det_classes[order] == cls]
    boxes, scores = image.det_boxes[order], image.det_scores[order]
    out = {"scores": scores, "others": {}, "strong": np.zeros(0, np.int64), "weak": np.zeros(0, np.int64)}
    if not len(order):
        return out
    own = image.gt_classes == cls
    iou = box_iou(boxes, image.gt_boxes)
    out["strong"], _ = _match(iou[:, own], image.gt_ignore[own], STRONG_IOU, weak=False)
    out["weak"], _ = _match(iou[:, own], image.gt_ignore[own], WEAK_IOU, weak=True)
    for k in np.unique(image.gt_classes):
        if k != cls:
            sel = image.gt_classes == k
            out["others"][int(k)] = _match(iou[:, sel], image.gt_ignore[sel], WEAK_IOU, weak=True)
    return out


def _class_labels(images, cls, names):
    """Class `cls` over all images: its detections' scores and labels, sorted by descending score."""
    scores, strong, weak, obj_ov = [], [], [], []
    n_cls = len(names)
    for image in images:
        r = _image_labels(image, cls)
        n = len(r["scores"])
        ov = np.zeros((n, n_cls))
        for k, (lab, o) in r["others"].items():
            ov[:, k] = np.where(lab >= 0, np.maximum(o, 1e-12), 0.0)  # weakly matched to class k
        scores.append(r["scores"]), strong.append(r["strong"]), weak.append(r["weak"]), obj_ov.append(ov)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-scores, kind="stable")

    def ranked(xs, shape):
        return (np.concatenate(xs) if xs else np.zeros(shape))[order]
    return (scores[order], ranked(strong, 0).astype(np.int64), ranked(weak, 0).astype(np.int64),
            ranked(obj_ov, (0, n_cls)))


def analyse_class(images, cls, names) -> tuple:
    """(result, scores, kinds): the analysis of class index `cls` (names: the dataset's class names,
    index = class id), and its false positives' scores and types in rank order."""
    name = names[cls]
    scores, strong, weak, obj_ov = _class_labels(images, cls, names)
    npos = int(sum(((im.gt_classes == cls) & ~im.gt_ignore).sum() for im in images))
    cor = strong >= 0
    loc = (strong == -1) & (weak >= 0)
    obj = ~cor & ~loc & (obj_ov > 0).any(1) if len(scores) else np.zeros(0, bool)
    sim_cls = [k for k, n in enumerate(names) if n in similar_classes(name)]
    # topN counts: the object confused with is the class of highest overlap (confuse_count)
    best = np.argmax(obj_ov, 1) if len(scores) else np.zeros(0, np.int64)
    is_sim_best = np.isin(best, sim_cls)
    kind = np.full(len(scores), "bg", object)
    kind[cor], kind[loc] = "cor", "loc"
    kind[obj & is_sim_best], kind[obj & ~is_sim_best] = "sim", "oth"
    fp = kind != "cor"
    n_fp = int(fp.sum())
    top_fp = int(np.flatnonzero(np.cumsum(fp) == TOP_FP)[0]) + 1 if n_fp >= TOP_FP else len(scores)
    points = {"fp100": top_fp, "npos": min(npos, len(scores))}
    counts = {p: {t: int((kind[:n] == t).sum()) for t in TYPES} | {"total": n} for p, n in points.items()}
    # AP removals (issim / isother / isbg_notobj): similar first, then other, then background
    false = strong == -1
    any_sim = (obj_ov[:, sim_cls] > 0).any(1) if sim_cls and len(scores) else np.zeros(len(scores), bool)
    remove = {"loc": loc, "sim": any_sim & false & ~loc}
    remove["oth"] = obj & ~remove["sim"]
    remove["bg"] = false & ~loc & ~remove["sim"] & ~remove["oth"]
    ap = voc07_ap(strong == 1, false, npos)
    ap_without = {t: voc07_ap((strong == 1) & ~m, false & ~m, npos) for t, m in remove.items()}
    gain = {t: None if ap is None else v - ap for t, v in ap_without.items()}
    return {"name": name, "npos": npos, "detections": len(scores), "ap": ap, "ap_gain": gain, "counts": counts,
            "curve": _curve(kind[fp])}, scores[fp], kind[fp]


def _curve(fp_kinds, points=40) -> dict:
    """Cumulative counts of each false-positive type after the first n false positives, at n on a
    log grid (the toolbox's chart: fraction of each type against the number of false positives)."""
    n = len(fp_kinds)
    if n == 0:
        return {"n": [], **{t: [] for t in FP_TYPES}}
    grid = np.unique(np.round(np.geomspace(1, n, min(points, n))).astype(np.int64))
    return {"n": grid.tolist(), **{t: np.cumsum(fp_kinds == t)[grid - 1].tolist() for t in FP_TYPES}}


def _summary(name, members, fps) -> dict:
    """A group of class results: counts summed, AP gains averaged, false positives merged by score."""
    counts = {p: {t: sum(m["counts"][p][t] for m in members) for t in TYPES + ("total",)} for p in ("fp100", "npos")}
    gain = {}
    for t in FP_TYPES:
        vals = [m["ap_gain"][t] for m in members if m["ap_gain"][t] is not None]
        gain[t] = sum(vals) / len(vals) if vals else None
    scores = np.concatenate([s for s, _ in fps]) if fps else np.zeros(0)
    kinds = np.concatenate([k for _, k in fps]) if fps else np.zeros(0, object)
    order = np.argsort(-scores, kind="stable")
    return {"name": name, "classes": [m["name"] for m in members], "ap_gain": gain, "counts": counts,
            "curve": _curve(kinds[order])}


def analyse(images, names) -> dict:
    """The full analysis: {"classes": {name: ...}, "groups": {name: ...}, "all": ...}.

    `images`: ImageDetections (benchmark.tasks.errors) with `gt_ignore` the difficult flags;
    `names`: the class names, index = class id (the toolbox's sets are matched by name)."""
    images = list(images)
    classes, fps = {}, {}
    for cls, name in enumerate(names):
        classes[name], scores, kinds = analyse_class(images, cls, names)
        fps[name] = (scores, kinds)
    groups = {g: _summary(g, [classes[c] for c in members if c in classes], [fps[c] for c in members if c in classes])
              for g, members in SUMMARY_SETS.items() if any(c in classes for c in members)}
    whole = _summary("all", list(classes.values()), list(fps.values()))
    return {"classes": classes, "groups": groups, "all": whole}


def record_metrics(result) -> dict:
    """The run record's "fp" group from `analyse`'s result: share (%) of each false-positive type
    among every class's top false positives (fp100), and the mean AP gain of removing each type.
    NaN where undefined (no false positive; no class with positives), as evaluators say it."""
    counts = result["all"]["counts"]["fp100"]
    n_fp = sum(counts[t] for t in FP_TYPES)
    out = {t: 100.0 * counts[t] / n_fp if n_fp else math.nan for t in FP_TYPES}
    out |= {f"dap_{t}": math.nan if v is None else v for t, v in result["all"]["ap_gain"].items()}
    return out
