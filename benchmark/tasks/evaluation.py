"""Evaluators: detectron2's own, constructed with their public arguments, one per dataset family.

Each family (benchmark.data.families) names its constructor here; `build_evaluator(task, ...)`
is the entry point the trainer calls, and it asks the task's family.

- voc: `PascalVOCDetectionEvaluator` (11-point AP for VOC2007, as the protocol says).
- coco: `COCOEvaluator` for bbox and segm. Which COCOeval scores it is chosen through the
  evaluator's own `use_fast_impl` argument: pycocotools (the official implementation) by default,
  detectron2's compiled fast evaluation (same numbers, faster) with `BENCHMARK_COCO_EVAL=detectron2`
  where the compiled ops are installed. `coco_eval_backend()` says which one ran (run record).
- cityscapes: `CityscapesSemSegEvaluator` (cityscapesscripts), also reporting "mIoU":
  cityscapesscripts calls the class-mean IoU "IoU", our tasks name it sem_seg/mIoU.

They read the dataset's metadata (VOC: dirname, year, split; COCO: json_file; Cityscapes: gt_dir),
which registration under our names sets as detectron2 sets it for its builtin names. Nothing here
changes detectron2's modules: a detectron2 project that imports the suite keeps its own
evaluators exactly as they were.
"""
import os

from detectron2.evaluation import CityscapesSemSegEvaluator, COCOEvaluator, PascalVOCDetectionEvaluator

from benchmark.env import has_compiled_ops

COCO_EVAL_BACKENDS = ("pycocotools", "detectron2")


def coco_eval_backend() -> str:
    """The COCO evaluation backend in use: "pycocotools" | "detectron2" (for run records)."""
    choice = os.environ.get("BENCHMARK_COCO_EVAL") or "pycocotools"
    if choice not in COCO_EVAL_BACKENDS:
        raise ValueError(f"unknown COCO evaluation backend BENCHMARK_COCO_EVAL={choice!r}; choose one of "
                         f"{', '.join(COCO_EVAL_BACKENDS)}")
    if choice == "detectron2" and not has_compiled_ops():
        raise ValueError("BENCHMARK_COCO_EVAL=detectron2 needs detectron2's compiled ops, absent here; "
                         "unset it to evaluate with pycocotools")
    return choice


class CityscapesMIoUEvaluator(CityscapesSemSegEvaluator):
    """`CityscapesSemSegEvaluator` that also reports "mIoU" (its "IoU": mean IoU over the 19 classes)."""

    def evaluate(self):
        results = super().evaluate()
        if results and "sem_seg" in results:
            results["sem_seg"]["mIoU"] = results["sem_seg"]["IoU"]
        return results


def voc_evaluator(dataset_name, output_dir=None, distributed=True):
    # It gathers over all ranks itself (comm.gather); one process is the 1-rank case.
    return PascalVOCDetectionEvaluator(dataset_name)


def coco_evaluator(dataset_name, output_dir=None, distributed=True):
    return COCOEvaluator(dataset_name, tasks=("bbox", "segm"), distributed=distributed, output_dir=output_dir,
                         use_fast_impl=coco_eval_backend() == "detectron2")


def cityscapes_evaluator(dataset_name, output_dir=None, distributed=True):
    # Every rank writes its predictions into one shared temporary folder (one machine only); rank 0
    # scores them with cityscapesscripts.
    return CityscapesMIoUEvaluator(dataset_name)


def build_evaluator(task, dataset_name, output_dir=None, distributed=True):
    """The evaluator of `task` (a Task or its name) for registered dataset `dataset_name`: its family's."""
    from benchmark.data.families import get_family

    if isinstance(task, str):
        from benchmark.tasks import get_task

        task = get_task(task)
    return get_family(task.data_format).build_evaluator(dataset_name, output_dir=output_dir,
                                                        distributed=distributed)
