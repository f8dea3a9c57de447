"""TIDE's detection error breakdown: how many AP points each kind of error costs.

Bolya, Foley, Hays, Hoffman, "TIDE: A General Toolbox for Identifying Object Detection Errors",
ECCV 2020 (section 2: the error types and their oracles); reference code tidecv 1.0.1
(github.com/dbolya/tide), whose rules this module follows one for one. RULE: for each error
type, dAP = TIDE's AP after the oracle fixes every error of that type alone, minus TIDE's AP,
clipped at 0 (tidecv TIDERun.fix_main_errors); all in AP points (0-100), boxes only.

Why not the `tidecv` package itself: it installs and gives these numbers on numpy 2.3 / Python
3.11 (checked in a scratch venv), but every one of its modules imports cv2 (opencv-python, ~290 MB
installed) and its plotting imports pandas and seaborn; none is in the suite's environment, and a
lent GPU machine (no network) would have to be sent them. So the definitions are implemented here
on numpy alone; tests/tasks/test_errors.py checks them on constructed cases and against tidecv
wherever tidecv is importable.

The rules (tidecv quantify.py TIDEExample / TIDERun._eval_image, errors/main_errors.py):
- AP: per class, precision-recall of the score-sorted detections, interpolated (the running max
  from the right), sampled at the 101 recall points 0, .01, ..., 1 (COCO's); mean over the
  classes that have ground truth or detections (a class with detections but no ground truth
  counts as AP 0). Foreground threshold t_f = 0.5, background threshold t_b = 0.1.
- Matching, per image: detections by descending score (at most `max_dets`), each takes the
  unmatched same-class ground truth of highest IoU if that IoU >= t_f. An unmatched detection of
  the class of an ignore region (COCO crowd; VOC "difficult", the suite's choice: VOC's own
  evaluation neither counts nor penalises those) whose IoU-over-detection-area with it exceeds
  t_f is ignored in AP. IoU is of [x, y, w, h] boxes as pycocotools computes it.
- Every unmatched detection gets the first type that applies, in this order:
  loc  (localization): its best same-class IoU (matched ground truth included) is in [t_b, t_f];
  cls  (classification): IoU >= t_f with a ground truth of another class;
  dupe (duplicate): IoU >= t_f with a same-class ground truth already matched;
  bkg  (background): IoU <= t_b with every ground truth (also: the image has none);
  both (classification and localization): anything else.
  miss: an unmatched ground truth that no loc or cls error points at.
- Oracles: a loc (cls) error pointing at an unmatched ground truth becomes a true positive of
  the detection's (the ground truth's) class, but only the highest-scored loc/cls error on one
  ground truth; the other errors of that type are removed. dupe, bkg and both errors are removed.
  A miss removes its ground truth from the count.
- Special errors (TIDE's "FalsePos"/"FalseNeg", not clipped): fp = AP with every false positive
  scored 0 and every true positive 1, minus AP; fn = AP with every unmatched ground truth
  removed from the count, minus AP.
A value that TIDE's AP leaves undefined (no class with ground truth or detections left) is None
(NaN in the evaluator's results, null in the run record).
"""
import math
from dataclasses import dataclass, field

import numpy as np

POS_THRESHOLD = 0.5  # t_f, TIDE's default (paper section 2; tidecv TIDE(pos_threshold=0.5))
BACKGROUND_THRESHOLD = 0.1  # t_b, TIDE's default (tidecv TIDE(background_threshold=0.1))
MAX_DETS = 100  # per image, tidecv's COCO default (Data(max_dets=100)); detectron2 keeps 100 too
MAIN_ERRORS = ("cls", "loc", "both", "dupe", "bkg", "miss")  # TIDE's order: Cls Loc Both Dupe Bkg Miss
SPECIAL_ERRORS = ("fp", "fn")
ERROR_GROUP = "errors"  # the run record's metrics group
ERROR_METRICS = tuple(f"{ERROR_GROUP}/{k}" for k in MAIN_ERRORS + SPECIAL_ERRORS)
ERROR_FAMILIES = ("voc", "coco")  # dataset families whose runs carry the group


def error_metrics(task) -> tuple:
    """The "errors/<type>" metrics a `Task`'s run records carry (empty for non-detection tasks)."""
    return ERROR_METRICS if task.data_format in ERROR_FAMILIES else ()


@dataclass
class ImageDetections:
    """One image: ground truth and detections, boxes [x, y, w, h] in one coordinate frame."""
    gt_boxes: np.ndarray  # (N, 4)
    gt_classes: np.ndarray  # (N,)
    det_boxes: np.ndarray  # (M, 4)
    det_scores: np.ndarray  # (M,)
    det_classes: np.ndarray  # (M,)
    gt_ignore: np.ndarray = None  # (N,) bool: ignore regions (crowd, difficult)

    def __post_init__(self):
        self.gt_boxes = np.asarray(self.gt_boxes, np.float64).reshape(-1, 4)
        self.gt_classes = np.asarray(self.gt_classes, np.int64).reshape(-1)
        self.det_boxes = np.asarray(self.det_boxes, np.float64).reshape(-1, 4)
        self.det_scores = np.asarray(self.det_scores, np.float64).reshape(-1)
        self.det_classes = np.asarray(self.det_classes, np.int64).reshape(-1)
        n = len(self.gt_boxes)
        self.gt_ignore = np.zeros(n, bool) if self.gt_ignore is None else np.asarray(self.gt_ignore, bool).reshape(-1)
        if not (len(self.gt_classes) == len(self.gt_ignore) == n
                and len(self.det_scores) == len(self.det_classes) == len(self.det_boxes)):
            raise ValueError("ImageDetections: boxes, classes, scores and ignore flags differ in length")


def box_iou(dets, gts, crowd=False):
    """(M, N) IoU of [x, y, w, h] boxes; `crowd`: intersection over the detection's area (pycocotools)."""
    dets, gts = np.asarray(dets, np.float64).reshape(-1, 4), np.asarray(gts, np.float64).reshape(-1, 4)
    w = np.minimum(dets[:, None, 0] + dets[:, None, 2], gts[None, :, 0] + gts[None, :, 2]) - np.maximum(
        dets[:, None, 0], gts[None, :, 0])
    h = np.minimum(dets[:, None, 1] + dets[:, None, 3], gts[None, :, 1] + gts[None, :, 3]) - np.maximum(
        dets[:, None, 1], gts[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    det_area = (dets[:, 2] * dets[:, 3])[:, None]
    union = np.broadcast_to(det_area, inter.shape) if crowd else det_area + (gts[:, 2] * gts[:, 3])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class _APData:
    """Per class: data points {detection id: (score, true positive)} in arrival order, and the
    number of ground truth positives (tidecv ap.ClassedAPDataObject)."""

    def __init__(self):
        self.points, self.gt = {}, {}

    def push(self, cls, det_id, score, tp):
        self.points.setdefault(cls, {})[det_id] = (score, tp)
        self.gt.setdefault(cls, 0)

    def add_gt(self, cls, n):
        self.gt[cls] = self.gt.get(cls, 0) + n
        self.points.setdefault(cls, {})

    def mean_ap(self):
        aps = [class_ap(list(self.points[c].values()), self.gt[c]) for c in self.gt if self.points[c] or self.gt[c]]
        return sum(aps) / len(aps) if aps else None


def class_ap(points, num_gt) -> float:
    """TIDE's AP (0-100) of one class: `points` [(score, true positive)], `num_gt` positives."""
    if num_gt == 0 or not points:
        return 0.0
    order = sorted(range(len(points)), key=lambda i: -points[i][0])  # stable, as tidecv's list.sort
    tp = np.cumsum([points[i][1] for i in order], dtype=np.float64)
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, np.arange(101) / 100, side="left")
    y = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sum(y.tolist()) / 101 * 100)


@dataclass
class _Error:
    kind: str
    det_id: int | None = None
    original: tuple | None = None  # (class, (score, False)): its false positive as pushed
    fixed: tuple | None = None  # (class, (score, True)) | (class, -1) for a miss | None: removed
    target: dict | None = None  # loc/cls: the ground truth it points at
    det: tuple | None = None  # (class, score)


@dataclass
class Breakdown:
    """TIDE's AP and the dAP of each error type (None where undefined); `counts` errors per type."""
    ap: float | None
    errors: dict
    counts: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """The run record's "errors" group: {type: dAP}, NaN where undefined (as evaluators say it;
        the record keeps NaN as null)."""
        return {k: math.nan if v is None else v for k, v in self.errors.items()}


def analyse(images, pos_thresh=POS_THRESHOLD, bg_thresh=BACKGROUND_THRESHOLD, max_dets=MAX_DETS) -> Breakdown:
    """TIDE's breakdown of `images` (an iterable of ImageDetections)."""
    run = _Run(pos_thresh, bg_thresh, max_dets)
    for image in images:
        run.add(image)
    for e in run.errors:  # the oracle's fix, once every ground truth's best error is known
        g = e.target
        if g is not None and not g["used"] and g["best_id"] == e.det_id:
            e.fixed = ((e.det[0] if e.kind == "loc" else g["cls"]), (e.det[1], True))
    return run.breakdown()


class _Run:
    """The state of one analysis over images: the AP data, the errors found and the missed ground truth."""

    def __init__(self, pos_thresh, bg_thresh, max_dets):
        self.pos_thresh, self.bg_thresh, self.max_dets = pos_thresh, bg_thresh, max_dets
        self.base, self.errors, self.false_neg = _APData(), [], {}
        self.next_id = 0  # detection ids run over all images, as tidecv numbers them

    def add(self, image) -> None:
        """One image: match its detections (tidecv's greedy rule), classify each unmatched one."""
        keep = ~image.gt_ignore
        gts = [{"cls": int(c), "used": False, "usable": False, "best": -1.0, "best_id": None}
               for c in image.gt_classes[keep]]
        for g in gts:
            self.base.add_gt(g["cls"], 1)
        order = np.argsort(-image.det_scores, kind="stable")[:self.max_dets]
        scores, classes, boxes = image.det_scores[order], image.det_classes[order], image.det_boxes[order]
        ids = list(range(self.next_id, self.next_id + len(order)))
        self.next_id += len(order)
        if len(order):
            iou = box_iou(boxes, image.gt_boxes[keep])
            same = classes[:, None] == image.gt_classes[keep][None, :]
            used = self._matched(iou * same, gts, boxes, classes, image.gt_boxes[~keep], image.gt_classes[~keep])
            for i in range(len(order)):
                c, s = int(classes[i]), float(scores[i])
                if used[i] is not None:
                    self.base.push(c, ids[i], s, bool(used[i]))
            self._classify(iou, same, gts, used, ids, classes, scores)
        for g in gts:
            if not g["used"]:
                self.false_neg.setdefault(g["cls"], []).append(g)
                if not g["usable"]:
                    self.errors.append(_Error("miss", fixed=(g["cls"], -1)))

    def _matched(self, cls_iou, gts, boxes, classes, ign_boxes, ign_cls) -> list:
        """Per detection: True matched (its ground truth marked used), None ignored by a crowd box, else False."""
        used = [False] * len(boxes)
        if gts:
            buf = cls_iou.copy()
            for i in range(len(boxes)):
                j = int(np.argmax(buf[i]))
                if buf[i, j] >= self.pos_thresh:
                    used[i] = gts[j]["used"] = True
                    buf[:, j] = 0
        if len(ign_boxes):
            crowd = box_iou(boxes, ign_boxes, crowd=True)
            for r in range(len(ign_boxes)):
                for i in range(len(boxes)):
                    if not used[i] and crowd[i, r] > self.pos_thresh and ign_cls[r] == classes[i]:
                        used[i] = None
        return used

    def _classify(self, iou, same, gts, used, ids, classes, scores) -> None:
        """The error of each unmatched detection, by its best IoUs: same class, other class, a used one, any."""
        if gts:
            cls_iou, noncls_iou = iou * same, iou * ~same
            gt_used = np.array([g["used"] for g in gts], bool)[None, :]
            best = [cls_iou.max(1), noncls_iou.max(1), (cls_iou * gt_used).max(1), iou.max(1)]
            cls_arg, noncls_arg = cls_iou.argmax(1).tolist(), noncls_iou.argmax(1).tolist()
            cls_max, noncls_max, used_max, any_max = (b.tolist() for b in best)
        for i in range(len(ids)):
            if used[i]:
                continue
            c, s = int(classes[i]), float(scores[i])
            err = _Error("", ids[i], None if used[i] is None else (c, (s, False)), det=(c, s))
            if not gts:
                err.kind = "bkg"
            elif self.bg_thresh <= cls_max[i] <= self.pos_thresh:
                err.kind, err.target = "loc", gts[cls_arg[i]]
            elif noncls_max[i] >= self.pos_thresh:
                err.kind, err.target = "cls", gts[noncls_arg[i]]
            elif used_max[i] >= self.pos_thresh:
                err.kind = "dupe"
            elif any_max[i] <= self.bg_thresh:
                err.kind = "bkg"
            else:
                err.kind = "both"
            g = err.target
            if g is not None and not g["used"]:  # tidecv BestGTMatch: the highest score wins the ground truth
                g["usable"] = True
                if g["best"] < s:
                    g["best"], g["best_id"] = s, ids[i]
            self.errors.append(err)

    def breakdown(self) -> Breakdown:
        """dAP of fixing each error type (and all false positives, all false negatives), and the counts."""
        base, errors = self.base, self.errors
        ap = base.mean_ap()
        out = {}
        for kind in MAIN_ERRORS:
            fixed = _fix(base, errors, lambda e, k=kind: e.kind == k).mean_ap()
            out[kind] = None if fixed is None or ap is None else max(fixed - ap, 0.0)
        fp = _fix(base, errors, transform=lambda s, tp: (1.0, True) if tp else (0.0, False)).mean_ap()
        fn = _fix(base, errors, false_neg=self.false_neg).mean_ap()
        out["fp"] = None if fp is None or ap is None else fp - ap
        out["fn"] = None if fn is None or ap is None else fn - ap
        counts = {k: sum(e.kind == k for e in errors) for k in MAIN_ERRORS}
        return Breakdown(ap, out, counts)


def _fix(base, errors, condition=lambda e: False, transform=None, false_neg=None) -> _APData:
    """The AP data with the errors for which `condition` holds fixed (tidecv TIDERun.fix_errors)."""
    gt = dict(base.gt)
    new = _APData()
    for e in errors:
        cls, point = (e.fixed if condition(e) else e.original) or (None, None)
        if isinstance(point, int):  # a fixed miss: one ground truth fewer
            gt[cls] += point
            continue
        if point is not None:
            new.push(cls, e.det_id, *(transform(*point) if transform else point))
    for cls in gt:
        for det_id, (score, tp) in base.points[cls].items():
            if tp:
                new.push(cls, det_id, *(transform(score, tp) if transform else (score, tp)))
    for cls, n in gt.items():
        new.add_gt(cls, n - len((false_neg or {}).get(cls, ())))
    return new
