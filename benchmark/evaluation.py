"""Evaluators by task: detectron2's own, with a fast COCO path and the metric names our tasks report.

- "voc": `PascalVOCDetectionEvaluator` (11-point AP for VOC2007, as the protocol says).
- "coco": `COCOEvaluator` for bbox and segm. detectron2's fast evaluation needs its compiled ops;
  without them the evaluator runs pycocotools' `COCOeval`, which is slow on big validation sets.
  When `faster-coco-eval` is installed its `COCOeval_faster` (C++ matching and accumulation, same
  numbers, see tests/test_evaluation.py) is used in pycocotools' place. pycocotools stays the
  reference: `BENCHMARK_COCO_EVAL=pycocotools` (or the module switch `COCO_EVAL_BACKEND`) forces it,
  and `coco_eval_backend()` says which one runs (for the run record).
- "cityscapes_sem_seg": `CityscapesSemSegEvaluator` (cityscapesscripts), also reporting "mIoU":
  cityscapesscripts calls the class-mean IoU "IoU", our tasks name it sem_seg/mIoU.
"""
import contextlib
import importlib.util
import os

from detectron2.evaluation import COCOEvaluator, CityscapesSemSegEvaluator, PascalVOCDetectionEvaluator
from detectron2.evaluation import coco_evaluation

from benchmark import d2

COCO_EVAL_BACKENDS = ("pycocotools", "faster", "detectron2")
# None: choose automatically (faster-coco-eval when installed, else detectron2's compiled fast
# evaluation when present, else pycocotools). Set it, or $BENCHMARK_COCO_EVAL, to force one.
COCO_EVAL_BACKEND = None


def _faster_available():
    return importlib.util.find_spec("faster_coco_eval") is not None


def coco_eval_backend() -> str:
    """The COCO evaluation backend in use: "faster" | "detectron2" | "pycocotools" (for run records)."""
    choice = COCO_EVAL_BACKEND or os.environ.get("BENCHMARK_COCO_EVAL") or "auto"
    if choice == "auto":
        if _faster_available():
            return "faster"
        return "detectron2" if d2.HAS_COMPILED_OPS else "pycocotools"
    if choice not in COCO_EVAL_BACKENDS:
        raise ValueError(f"unknown COCO evaluation backend {choice!r}; choose auto or one of "
                         f"{', '.join(COCO_EVAL_BACKENDS)}")
    if choice == "faster" and not _faster_available():
        raise ValueError("COCO evaluation backend 'faster' asked for, but faster-coco-eval is not installed "
                         "(pip install faster-coco-eval)")
    if choice == "detectron2" and not d2.HAS_COMPILED_OPS:
        raise ValueError("COCO evaluation backend 'detectron2' needs detectron2's compiled ops, absent here")
    return choice


def cocoeval_class(backend=None):
    """The `COCOeval` class a backend evaluates with (same constructor and results as pycocotools')."""
    backend = backend or coco_eval_backend()
    if backend == "faster":
        from faster_coco_eval import COCOeval_faster

        return COCOeval_faster
    if backend == "detectron2":
        from detectron2.evaluation.fast_eval_api import COCOeval_opt

        return COCOeval_opt
    from pycocotools.cocoeval import COCOeval

    return COCOeval


class BenchmarkCOCOEvaluator(COCOEvaluator):
    """`COCOEvaluator` whose `COCOeval` is the chosen backend's.

    detectron2 picks the class from its module globals when it evaluates (`COCOeval_opt` if fast,
    else `COCOeval`); we point `COCOeval` at the backend's class for the duration of our own
    evaluation only, so nothing else in the process sees the swap (evaluation is not threaded).
    """

    def __init__(self, dataset_name, tasks=("bbox", "segm"), distributed=True, output_dir=None,
                 *, backend=None, **kwargs):
        self.backend = backend or coco_eval_backend()
        # use_fast_impl=False: detectron2's own fast path is only used through backend "detectron2".
        super().__init__(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir,
                         use_fast_impl=False, **kwargs)

    def _eval_predictions(self, predictions, img_ids=None):
        self._logger.info(f"COCO evaluation backend: {self.backend}")
        with _patched(coco_evaluation, "COCOeval", cocoeval_class(self.backend)):
            return super()._eval_predictions(predictions, img_ids=img_ids)


@contextlib.contextmanager
def _patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


class CityscapesMIoUEvaluator(CityscapesSemSegEvaluator):
    """`CityscapesSemSegEvaluator` that also reports "mIoU" (its "IoU": mean IoU over the 19 classes)."""

    def evaluate(self):
        results = super().evaluate()
        if results and "sem_seg" in results:
            results["sem_seg"]["mIoU"] = results["sem_seg"]["IoU"]
        return results


def build_evaluator(task, dataset_name, output_dir=None, distributed=True):
    """The evaluator of `task` (a Task or its name) for `dataset_name`, by `task.evaluator`."""
    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    kind = task.evaluator
    if kind == "voc":
        # It gathers over all ranks itself (comm.gather); one process is the 1-rank case.
        return PascalVOCDetectionEvaluator(dataset_name)
    if kind == "coco":
        return BenchmarkCOCOEvaluator(dataset_name, tasks=("bbox", "segm"), distributed=distributed,
                                      output_dir=output_dir)
    if kind == "cityscapes_sem_seg":
        return CityscapesMIoUEvaluator(dataset_name)
    raise ValueError(f"task {task.name!r}: unknown evaluator type {kind!r}")
