"""Model pieces the transfer protocols need, registered with detectron2 on import."""
from detectron2.layers import get_norm
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import Res5ROIHeads


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """Res5ROIHeads with a norm layer after res5, as in the MoCo detection protocol.

    Pretrained backbones fine-tuned with SyncBN keep BN everywhere; detectron2's C4 head runs
    res5 on each ROI, and MoCo adds one more norm after it so that the box head sees normalized
    features (MoCo, detection/train_net.py).
    """

    @classmethod
    def _build_res5_block(cls, cfg):
        seq, out_channels = super()._build_res5_block(cfg)
        seq.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, out_channels))
        return seq, out_channels
