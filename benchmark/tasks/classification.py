"""The linear readoff's model (imagenet_linear), registered with detectron2 on import.

RULE (frozen backbone, MoCo's main_lincls.py): only the linear layer learns. The backbone is
detectron2's ResNet (`build_resnet_backbone`, so converted weights load through the suite's
checkpointer with its checks) with every stage frozen (`FREEZE_AT 5`: BatchNorm becomes
FrozenBatchNorm, whose statistics are buffers no forward updates), and it is kept in eval mode
whatever `train()` is called with, as MoCo keeps its whole model in `eval()`. Its res5 output is
global-average-pooled (2048 channels for a ResNet-50) into one `nn.Linear`, initialised
normal(0, INIT_STD) with a zero bias, as MoCo does.

Inputs are detectron2's: images as 0..255 pixels in `INPUT.FORMAT` channel order, normalized in
the model by `MODEL.PIXEL_MEAN/STD` (the converted checkpoint's input settings); for a torchvision-
style checkpoint these are RGB and torchvision's mean/std x 255, which is exactly MoCo's
`Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])` of a ToTensor image.

A batch is a dict {"image": N x 3 x H x W uint8 tensor, "label": N int64 tensor}
(benchmark.engine.linear's loaders); in training the model returns {"loss_cls": cross entropy},
in eval the N x NUM_CLASSES logits, which the imagenet family's evaluator scores
(benchmark.data.evaluators.ClassificationEvaluator).
"""
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, build_resnet_backbone
from torch import nn


@META_ARCH_REGISTRY.register()
class LinearClassifier(nn.Module):
    """Frozen ResNet -> global average pool of res5 -> one linear layer (see the module's rule)."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.MODEL.BACKBONE.FREEZE_AT < 5:
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT {cfg.MODEL.BACKBONE.FREEZE_AT}: the linear readoff "
                             "freezes every stage (5)")
        self.backbone = build_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        if list(self.backbone.output_shape()) != ["res5"]:
            raise ValueError("MODEL.RESNETS.OUT_FEATURES must be ['res5'] for the linear readoff")
        for p in self.backbone.parameters():  # FREEZE_AT 5 already did; said here where the rule is
            p.requires_grad_(False)
        channels = self.backbone.output_shape()["res5"].channels
        self.fc = nn.Linear(channels, int(cfg.BENCHMARK.LINEAR.NUM_CLASSES))
        nn.init.normal_(self.fc.weight, mean=0.0, std=float(cfg.BENCHMARK.LINEAR.INIT_STD))
        nn.init.zeros_(self.fc.bias)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)
        self.train()

    @property
    def device(self):
        return self.pixel_mean.device

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # never batch statistics, never running-statistics updates
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """N x C pooled res5 features of a uint8 (or 0..255 float) image batch."""
        x = (images.to(self.device, non_blocking=True).float() - self.pixel_mean) / self.pixel_std
        with torch.no_grad():
            res5 = self.backbone(x)["res5"]
        return torch.flatten(F.adaptive_avg_pool2d(res5, 1), 1)

    def forward(self, batch):
        logits = self.fc(self.features(batch["image"]))
        if self.training:
            labels = batch["label"].to(self.device, non_blocking=True)
            return {"loss_cls": F.cross_entropy(logits, labels)}
        return logits
