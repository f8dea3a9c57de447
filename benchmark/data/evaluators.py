"""The evaluators of ours that families build (imports torch and detectron2; loaded on first use).

- `CityscapesMIoUEvaluator` (cityscapes): detectron2's `CityscapesSemSegEvaluator`, also reporting
  "mIoU": cityscapesscripts calls the class-mean IoU "IoU", our tasks name it sem_seg/mIoU.
- `ClassificationEvaluator` (imagenet): top-1 and top-5 accuracy of the linear readoff.
- `LandmarkEvaluator` (mafl): DVE's inter-ocular error (`inter_ocular_error`) of the landmark regressor.

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


def inter_ocular_error(pred, target, left_eye=0, right_eye=1) -> float:
    """DVE's `inter_ocular_error` (model/metric.py; lmdis-rep's mean_error_IOD.m alike): the mean over images
    and landmarks of the L2 distance between predicted and true points divided by the image's distance
    between its two true eye landmarks, x100 (% of the inter-ocular distance). `pred`, `target`: N x K x 2
    (x, y) in any one frame per image that scales x and y alike (pixels, or [-1, 1] of a square crop)."""
    pred = torch.as_tensor(pred, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)}: both N x K x 2 expected")
    iod = (target[:, left_eye] - target[:, right_eye]).norm(dim=-1)  # N
    if bool((iod <= 0).any()):
        raise ValueError("an image whose two eye landmarks coincide: its inter-ocular distance is 0")
    error = (pred - target).norm(dim=-1) / iod[:, None]  # N x K
    return float(100.0 * error.mean())


class LandmarkEvaluator(DatasetEvaluator):
    """{"landmarks": {"iod_error"}} over every image the processes saw: `inputs["landmarks"]` (N x K x 2 true
    points) against the model's N x K x 2 outputs; each process keeps its share (benchmark.engine.landmarks
    shards the test set without repeats) and the shares are gathered, so every image counts once."""

    def __init__(self, distributed: bool = True):
        self.distributed = distributed
        self.reset()

    def reset(self):
        self.pred, self.target = [], []

    def process(self, inputs, outputs):
        self.pred.append(outputs.detach().to("cpu", torch.float64))
        self.target.append(inputs["landmarks"].detach().to("cpu", torch.float64))

    def evaluate(self):
        pred, target = self.pred, self.target
        if self.distributed and comm.get_world_size() > 1:
            pred = [p for part in comm.all_gather(pred) for p in part]
            target = [t for part in comm.all_gather(target) for t in part]
        if not pred:
            return {"landmarks": {"iod_error": None}}
        return {"landmarks": {"iod_error": inter_ocular_error(torch.cat(pred), torch.cat(target))}}
