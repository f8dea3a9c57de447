"""A task's evaluator: its dataset family's official one, with the detection error analyses beside it.

`build_evaluator(task, ...)` is the entry point the trainer calls. The official evaluator is the
task's family's (`DatasetFamily.build_evaluator`, wired in benchmark.data.voc, .coco, .cityscapes,
.imagenet: detectron2's own evaluators, constructed with their public arguments). Tasks that
report the "errors" group (benchmark.tasks.errors.error_metrics: the detection tasks) also run
`DetectionErrorsEvaluator` beside it (detectron2's `DatasetEvaluators`): TIDE's error breakdown of
the same detections, the run record's metrics group "errors". VOC tasks (fp_analysis.fp_metrics)
also run `FalsePositiveEvaluator`: Hoiem et al.'s false-positive analysis (benchmark.tasks.fp_analysis),
the record's group "fp", with its per-class and per-group detail written beside the official
evaluator's output (fp_analysis.DETAIL_NAME). Neither changes the official numbers.

Nothing here changes detectron2's modules: a detectron2 project that imports the suite keeps its
own evaluators exactly as they were.
"""
import logging
import os
from itertools import chain

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.evaluation.pascal_voc_evaluation import parse_rec
from detectron2.structures import BoxMode
from detectron2.utils import comm

from benchmark.fileio import write_json_atomic
from benchmark.tasks import fp_analysis
from benchmark.tasks.errors import ERROR_GROUP, ImageDetections, analyse, error_metrics

logger = logging.getLogger(__name__)


def _xywh(boxes_xyxy):
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def detection_ground_truth(dataset_name, voc_difficult=False) -> dict:
    """{image_id: (boxes XYWH, contiguous classes, ignore flags)} of a registered detection dataset.

    From its dataset dicts: the boxes and class ids the model was trained to predict, in the same
    frame. Ignore regions: COCO's crowd annotations; with `voc_difficult`, VOC's "difficult"
    objects, read from the Annotations XML as detectron2's VOC evaluator reads them (its loader
    keeps them in the dicts, in the XML's order, without the flag).
    """
    meta = MetadataCatalog.get(dataset_name)
    out = {}
    for d in DatasetCatalog.get(dataset_name):
        anns = d.get("annotations", [])
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
        ignore = [bool(a.get("iscrowd", 0)) for a in anns]
        if voc_difficult:
            xml = os.path.join(meta.dirname, "Annotations", f"{d['image_id']}.xml")
            objects = parse_rec(xml)
            if len(objects) != len(anns):
                raise ValueError(f"{xml}: {len(objects)} objects, but its dataset dict has {len(anns)} annotations")
            ignore = [i or bool(o["difficult"]) for i, o in zip(ignore, objects)]
        out[d["image_id"]] = (_xywh(boxes), np.array([a["category_id"] for a in anns], np.int64), np.array(ignore, bool))
    return out


class DetectionErrorsEvaluator(DatasetEvaluator):
    """TIDE's error breakdown (benchmark.tasks.errors) of one detection dataset's predictions, as
    {"errors": {"cls", "loc", "both", "dupe", "bkg", "miss", "fp", "fn": dAP}}.

    Every process keeps the detections of its own images; evaluate() gathers them on rank 0
    (comm.gather, as detectron2's evaluators do; one process is the 1-rank case), which alone
    computes and returns the group against the dataset's ground truth (detection_ground_truth).
    """

    def __init__(self, dataset_name, voc_difficult=False):
        self._dataset_name = dataset_name
        self._voc_difficult = voc_difficult
        self.reset()

    def reset(self):
        self._detections = []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            if "instances" not in out:
                continue
            inst = out["instances"].to("cpu")
            self._detections.append((inp["image_id"], _xywh(inst.pred_boxes.tensor.numpy()),
                                     inst.scores.numpy().astype(np.float64), inst.pred_classes.numpy()))

    def _gathered_images(self) -> list | None:
        """Every process's detections with the dataset's ground truth, as ImageDetections, on rank 0
        (None on the other ranks)."""
        gathered = comm.gather(self._detections, dst=0)
        if not comm.is_main_process():
            return None
        detections = {image_id: rest for image_id, *rest in chain.from_iterable(gathered)}
        none = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
        return [ImageDetections(boxes, classes, *detections.get(image_id, none), gt_ignore=ignore)
                for image_id, (boxes, classes, ignore) in
                detection_ground_truth(self._dataset_name, self._voc_difficult).items()]

    def evaluate(self):
        images = self._gathered_images()
        if images is None:
            return {}
        breakdown = analyse(images)
        logger.info("TIDE error breakdown of %s (dAP; TIDE's AP50 %s): %s", self._dataset_name,
                    "undefined" if breakdown.ap is None else f"{breakdown.ap:.2f}",
                    ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in breakdown.errors.items()))
        return {ERROR_GROUP: breakdown.metrics()}


class FalsePositiveEvaluator(DetectionErrorsEvaluator):
    """Hoiem et al.'s false-positive analysis (benchmark.tasks.fp_analysis) of one VOC dataset's
    predictions, as {"fp": record_metrics}; gathered on rank 0 as DetectionErrorsEvaluator does.
    With `output_dir`, the full analysis (per class, per group, the chart's curves) is written
    there as fp_analysis.DETAIL_NAME, which the leaderboard's page draws."""

    def __init__(self, dataset_name, output_dir=None):
        super().__init__(dataset_name, voc_difficult=True)  # the toolbox ignores difficult objects
        self._output_dir = output_dir

    def evaluate(self):
        images = self._gathered_images()
        if images is None:
            return {}
        result = fp_analysis.analyse(images, MetadataCatalog.get(self._dataset_name).thing_classes)
        metrics = fp_analysis.record_metrics(result)
        if self._output_dir:
            write_json_atomic(os.path.join(self._output_dir, fp_analysis.DETAIL_NAME),
                              {"dataset": self._dataset_name, **result})
        logger.info("Hoiem false-positive analysis of %s (%% of top false positives; AP gain): %s", self._dataset_name,
                    ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        return {fp_analysis.FP_GROUP: metrics}


class WithErrorAnalysis(DatasetEvaluators):
    """A family's official evaluator (`official`), TIDE's breakdown of the same detections (`errors`,
    a DetectionErrorsEvaluator) and, for VOC, Hoiem's false-positive analysis (`fp`, a
    FalsePositiveEvaluator, else None): their results side by side, as DatasetEvaluators gives them."""

    def __init__(self, official, errors, fp=None):
        super().__init__([official, errors] + ([fp] if fp is not None else []))
        self.official, self.errors, self.fp = official, errors, fp


def build_evaluator(task, dataset_name, output_dir=None, distributed=True):
    """The evaluator of `task` (a Task) for registered dataset `dataset_name`: its family's official
    one, and for detection tasks TIDE's breakdown (and for VOC Hoiem's analysis) beside it (`WithErrorAnalysis`)."""
    family = task.family
    official = family.build_evaluator(dataset_name, output_dir=output_dir, distributed=distributed)
    if not error_metrics(task):
        return official
    # Both gather over all ranks themselves (comm.gather); one process is the 1-rank case.
    fp = FalsePositiveEvaluator(dataset_name, output_dir) if fp_analysis.fp_metrics(task) else None
    return WithErrorAnalysis(official, DetectionErrorsEvaluator(dataset_name, voc_difficult=family.difficult_is_ignored), fp)
