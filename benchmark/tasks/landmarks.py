"""The landmark regressor's model (mafl_landmarks), registered with detectron2 on import.

RULE (frozen backbone, assumption `landmark-head`: DVE's IntermediateKeypointPredictor, which
ContrastLandmark also runs on frozen features; shared/REFERENCES.md, Table 5): only the head learns.
The backbone is detectron2's ResNet with every stage frozen (FREEZE_AT 5, FrozenBatchNorm) and in
eval mode whatever `train()` is called with; its one output feature map (MODEL.RESNETS.OUT_FEATURES)
goes through
- a 1x1 convolution to NUM_LANDMARKS x NUM_INTERMEDIATE heatmaps (5 x 50),
- a spatial soft-argmax per heatmap: softmax(SOFTARGMAX_MUL x heatmap) over its H x W positions, the
  expected (x, y) of the position centres in [-1, 1] (the input crop's frame: -1 its left/top edge,
  +1 its right/bottom edge),
- a bias-free linear map per landmark from its 50 intermediate points to one point (the same weights
  for x and for y: a grouped Conv1d, as DVE's regressor).
Loss: smooth L1 between LOSS_SCALE x predicted and LOSS_SCALE x true coordinates in [-1, 1] (DVE).

Inputs: a batch {"image": N x 3 x S x S uint8 in INPUT.FORMAT order (the crop resized,
benchmark.engine.landmarks), "landmarks": N x 5 x 2 in [-1, 1]}. The images are normalised with
BENCHMARK.LANDMARKS.PIXEL_MEAN/STD (DVE's RGB values on 0..1 images), the protocol's normalisation
for every network, not the checkpoint's MODEL.PIXEL_MEAN/STD (reordered for a BGR checkpoint).
In training the model returns {"loss_landmarks"}, in eval the N x 5 x 2 predicted points.

Feature cache (BENCHMARK.LANDMARKS.CACHE_FEATURES): the backbone is frozen, in eval mode, and the
training images are not augmented, so an image's features are the same in every epoch; in training,
a batch that carries "index" (its images' dataset indices) takes the features computed the first time
each image was seen (held on the model's device, never saved) instead of running the backbone again.
"""
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, build_resnet_backbone
from torch import nn


def soft_argmax(heatmaps: torch.Tensor, multiplier: float) -> torch.Tensor:
    """N x M x H x W heatmaps -> N x M x 2 expected (x, y) of softmax(multiplier x heatmap) over the
    positions, each position at its centre in [-1, 1] ((2j + 1) / W - 1)."""
    n, m, h, w = heatmaps.shape
    prob = F.softmax(multiplier * heatmaps.reshape(n, m, h * w), dim=-1).reshape(n, m, h, w)
    xs = (2 * torch.arange(w, dtype=prob.dtype, device=prob.device) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=prob.dtype, device=prob.device) + 1) / h - 1
    x = (prob.sum(dim=2) * xs).sum(dim=-1)
    y = (prob.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


@META_ARCH_REGISTRY.register()
class LandmarkRegressor(nn.Module):
    """Frozen ResNet -> 1x1 conv to 5 x 50 heatmaps -> soft-argmax -> bias-free 50 -> 1 per landmark."""

    def __init__(self, cfg):
        super().__init__()
        lm = cfg.BENCHMARK.LANDMARKS
        if cfg.MODEL.BACKBONE.FREEZE_AT < 5:
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT {cfg.MODEL.BACKBONE.FREEZE_AT}: the landmark head reads "
                             "frozen features (every stage frozen: 5)")
        self.backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
        features = list(self.backbone.output_shape())
        if len(features) != 1:
            raise ValueError(f"MODEL.RESNETS.OUT_FEATURES {features}: the landmark head reads one feature map")
        self.feature = features[0]
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.num_landmarks, self.num_intermediate = int(lm.NUM_LANDMARKS), int(lm.NUM_INTERMEDIATE)
        channels = self.backbone.output_shape()[self.feature].channels
        self.heatmaps = nn.Conv2d(channels, self.num_landmarks * self.num_intermediate, kernel_size=1)
        self.regressor = nn.Conv1d(self.num_landmarks, self.num_landmarks, kernel_size=self.num_intermediate,
                                   groups=self.num_landmarks, bias=False)
        self.softargmax_mul, self.loss_scale = float(lm.SOFTARGMAX_MUL), float(lm.LOSS_SCALE)
        mean, std = [255.0 * float(v) for v in lm.PIXEL_MEAN], [255.0 * float(v) for v in lm.PIXEL_STD]
        if cfg.INPUT.FORMAT == "BGR":
            mean, std = mean[::-1], std[::-1]
        self.feature_cache = {} if bool(lm.CACHE_FEATURES) else None  # dataset index -> C x H x W features
        self.register_buffer("pixel_mean", torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(std).view(-1, 1, 1), False)
        self.train()

    @property
    def device(self):
        return self.pixel_mean.device

    def head_modules(self):
        """What learns (and what a checkpoint of the head holds)."""
        return {"heatmaps": self.heatmaps, "regressor": self.regressor}

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # never batch statistics, never running-statistics updates
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.device, non_blocking=True).float() - self.pixel_mean) / self.pixel_std
        with torch.no_grad():
            return self.backbone(x)[self.feature]

    def training_features(self, batch) -> torch.Tensor:
        """The features of a training batch: from the cache for images seen before (module's rule)."""
        if self.feature_cache is None or "index" not in batch:
            return self.features(batch["image"])
        indices = [int(i) for i in batch["index"]]
        new = [k for k, i in enumerate(indices) if i not in self.feature_cache]
        if new:
            for k, f in zip(new, self.features(batch["image"][new])):
                self.feature_cache[indices[k]] = f
        return torch.stack([self.feature_cache[i] for i in indices])

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """N x C x H x W features -> N x 5 x 2 points in [-1, 1]."""
        n = features.shape[0]
        points = soft_argmax(self.heatmaps(features), self.softargmax_mul)  # N x 250 x 2
        points = points.reshape(n, self.num_landmarks, self.num_intermediate, 2)
        x = self.regressor(points[..., 0])  # N x 5 x 1
        y = self.regressor(points[..., 1])
        return torch.cat([x, y], dim=-1)

    def forward(self, batch):
        if self.training:
            points = self.predict(self.training_features(batch))
            target = batch["landmarks"].to(self.device, non_blocking=True).float()
            return {"loss_landmarks": F.smooth_l1_loss(self.loss_scale * points, self.loss_scale * target)}
        return self.predict(self.features(batch["image"]))
