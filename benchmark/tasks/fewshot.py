"""The few-shot evaluation's model (fewshot_miniimagenet): a frozen ResNet giving pooled res5 features.

RULE: as CloserLookFewShot's Baseline tests (configs/fewshot_miniimagenet.yaml cites it), the whole
backbone is frozen (FREEZE_AT 5: BatchNorm as FrozenBatchNorm) and kept in eval mode whatever `train()`
is called with; its res5 output is global-average-pooled (512-d for a ResNet-18). No head lives here:
benchmark.engine.fewshot trains a fresh one per episode on these features.

Inputs are detectron2's: a uint8 N x 3 x H x W batch in `INPUT.FORMAT` order, normalised in the model by
`MODEL.PIXEL_MEAN/STD` (the converted checkpoint's input settings; ImageNet mean/std x 255 for a
torchvision-style checkpoint, exactly CloserLookFewShot's Normalize of a ToTensor image).
"""
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, build_resnet_backbone
from torch import nn


@META_ARCH_REGISTRY.register()
class FewShotFeatures(nn.Module):
    """Frozen ResNet -> global average pool of res5 (see the module's rule)."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.MODEL.BACKBONE.FREEZE_AT < 5:
            raise ValueError(f"MODEL.BACKBONE.FREEZE_AT {cfg.MODEL.BACKBONE.FREEZE_AT}: the few-shot evaluation "
                             "freezes every stage (5)")
        self.backbone = build_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        if list(self.backbone.output_shape()) != ["res5"]:
            raise ValueError("MODEL.RESNETS.OUT_FEATURES must be ['res5'] for the few-shot evaluation")
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.feature_dim = self.backbone.output_shape()["res5"].channels
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(-1, 1, 1), False)
        self.eval()

    @property
    def device(self):
        return self.pixel_mean.device

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # never batch statistics
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """N x C pooled res5 features of a uint8 (or 0..255 float) image batch."""
        x = (images.to(self.device, non_blocking=True).float() - self.pixel_mean) / self.pixel_std
        return torch.flatten(F.adaptive_avg_pool2d(self.backbone(x)["res5"], 1), 1)
