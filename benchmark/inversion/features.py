"""The features an image is reconstructed from: a checkpoint's frozen ResNet, read at one layer.

RECIPE (Good_transfer `reconstruction.py` + `customized_resnet.py` at 060ba39): the target is the
ResNet's `layer4` map (detectron2's res5) of a Resize(256) + CenterCrop(224) image normalised with
the ImageNet mean/std; `--which_layer` also reads layer1..3 (res2..res4) and `avgpool` (here
"pooled": the global average of res5). The network is in eval mode: BatchNorm uses its running
statistics (detectron2's FrozenBatchNorm, FREEZE_AT 5 as in benchmark/tasks/fewshot.py).

The checkpoint comes through the suite's own weights stage (`prepare_weights`: any --weights spec,
converted to detectron2's names and checked, never unpickled beyond the safe loaders), and the backbone
is detectron2's `build_resnet_backbone` built from the checkpoint's own input settings (depth, width,
stride placement, channel order, mean/std), like every task of the suite.

Normalised space: the generator's output is the network's normalised input, as in the authors' code
(they de-normalise it for the picture): ((255 x RGB in [0, 1]) in INPUT.FORMAT order - PIXEL_MEAN) /
PIXEL_STD, which for a torchvision-style checkpoint is exactly torchvision's Normalize(ImageNet).

Defect fixed: the authors' forward keeps `bn1`'s output and then runs an in-place ReLU over it, so the
"bn1" features were ReLU'd. Here every layer read is the tensor the backbone returns for it
(detectron2's stages never write into a tensor they have returned), and `features` returns fresh tensors.
"""
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.inversion.recipe import LAYERS


class FeatureExtractor(nn.Module):
    """A frozen detectron2 ResNet from converted weights, giving one layer of normalised images."""

    def __init__(self, prepared, layer: str):
        from detectron2.config import get_cfg
        from detectron2.layers import ShapeSpec
        from detectron2.modeling import build_resnet_backbone

        from benchmark.tasks.config import check_weights_settings
        from benchmark.weights.loading import load_converted

        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"layer {layer!r}: expected one of {', '.join(LAYERS)}")
        self.layer = layer
        settings = dict(prepared.input_settings)
        check_weights_settings(settings)
        cfg = get_cfg()
        cfg.merge_from_list([x for kv in settings.items() for x in kv])
        cfg.MODEL.BACKBONE.FREEZE_AT = 5  # every stage frozen: nothing of the network learns
        cfg.MODEL.RESNETS.NORM = "FrozenBN"  # running statistics, as the authors' eval()
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res5" if layer == "pooled" else layer]
        self.stage = cfg.MODEL.RESNETS.OUT_FEATURES[0]
        self.backbone = build_resnet_backbone(cfg, ShapeSpec(channels=3))
        weights = load_converted(prepared.path)["model"]
        own = self.backbone.state_dict()
        missing = sorted(k for k in own if k not in weights)
        if missing:
            raise ValueError(f"{prepared.path}: lacks {len(missing)} tensors of the backbone, e.g. {missing[0]}")
        self.backbone.load_state_dict({k: torch.as_tensor(weights[k]).reshape(own[k].shape) for k in own})
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        # (x * 255)[order] - mean) / std as one affine map per channel of an RGB [0, 1] image
        self.order = [2, 1, 0] if cfg.INPUT.FORMAT == "BGR" else [0, 1, 2]
        self.register_buffer("mean", torch.tensor(cfg.MODEL.PIXEL_MEAN, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(cfg.MODEL.PIXEL_STD, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # never batch statistics

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W RGB in [0, 1] -> the network's input."""
        return (rgb[:, self.order] * 255.0 - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's input -> RGB in [0, 1], clamped (the authors' postp())."""
        bgr_or_rgb = (x * self.std + self.mean) / 255.0
        return bgr_or_rgb[:, self.order].clamp(0.0, 1.0)  # the order is its own inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's features of normalised input `x` (gradients flow to `x`, never to the network)."""
        out = self.backbone(x)[self.stage]
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1) if self.layer == "pooled" else out
