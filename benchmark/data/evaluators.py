"""The evaluators of ours that families build (imports torch and detectron2; loaded on first use).

- `CityscapesMIoUEvaluator` (cityscapes): detectron2's `CityscapesSemSegEvaluator`, also reporting
  "mIoU": cityscapesscripts calls the class-mean IoU "IoU", our tasks name it sem_seg/mIoU.
- `ClassificationEvaluator` (imagenet): top-1 and top-5 accuracy of the linear readoff.

The other families build detectron2's evaluators as they are (benchmark.data.voc, .coco). Nothing
here changes detectron2's modules: a detectron2 project that imports the suite keeps its own
evaluators exactly as they were.
"""
import torch
from detectron2.evaluation import CityscapesSemSegEvaluator, DatasetEvaluator
from detectron2.utils import comm


class CityscapesMIoUEvaluator(CityscapesSemSegEvaluator):
    """`CityscapesSemSegEvaluator` that also reports "mIoU" (its "IoU": mean IoU over the 19 classes)."""

    def evaluate(self):
        results = super().evaluate()
        if results and "sem_seg" in results:
            results["sem_seg"]["mIoU"] = results["sem_seg"]["IoU"]
        return results


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list:
    """How many of the N labels are among the k highest logits, for each k (k capped at the class count)."""
    labels = labels.to(logits.device)
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(labels.view(-1, 1))
    return [int(hits[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


class ClassificationEvaluator(DatasetEvaluator):
    """Top-1 and top-5 accuracy (percent) over every image the processes saw: {"cls": {"top1", "top5"}}.

    Each process counts its own share (benchmark.engine.linear shards the test set without repeats),
    and the counts are summed over processes, so every image counts once. With fewer than 5 classes,
    top-5 is top-(number of classes), i.e. 100.
    """

    def __init__(self, distributed: bool = True):
        self.distributed = distributed
        self.reset()

    def reset(self):
        self.counts = [0, 0, 0]  # top-1 hits, top-5 hits, images

    def process(self, inputs, outputs):
        top1, top5 = topk_correct(outputs, inputs["label"])
        self.counts = [self.counts[0] + top1, self.counts[1] + top5, self.counts[2] + len(inputs["label"])]

    def evaluate(self):
        counts = self.counts
        if self.distributed and comm.get_world_size() > 1:
            counts = [sum(c) for c in zip(*comm.all_gather(counts))]
        top1, top5, n = counts
        if n == 0:
            return {"cls": {"top1": None, "top5": None}}
        return {"cls": {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n}}
