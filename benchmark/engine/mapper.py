"""Semantic segmentation: DeepLab's training augmentations and a mapper that checks label ids."""
import detectron2.data.transforms as T
from detectron2.data import DatasetMapper


def sem_seg_train_augmentations(cfg):
    """DeepLab's training augmentation: random scale, crop of exactly CROP.SIZE, flip.

    As detectron2 projects/DeepLab/train_net.py builds it; the crop must be the exact size
    because DeepLabV3's ASPP image pooling kernel is derived from INPUT.CROP.SIZE.
    """
    return [
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                             cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING),
        T.RandomCrop_CategoryAreaConstraint(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE,
                                            cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                                            cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE),
        T.RandomFlip(),
    ]


class LabelCheckedMapper(DatasetMapper):
    """DatasetMapper for semantic segmentation that refuses label ids the model cannot learn.

    A label outside 0..NUM_CLASSES-1 and the ignore value (labelIds given where labelTrainIds are
    expected, a corrupt PNG) otherwise ends in an index error deep inside the loss. Checked here,
    where the labels are decoded anyway, the error names the file.
    """

    def __init__(self, cfg, is_train=True, augmentations=None):
        super().__init__(cfg, is_train=is_train, augmentations=augmentations)
        self._num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        self._ignore = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE

    def __call__(self, dataset_dict):
        path = dataset_dict.get("sem_seg_file_name")
        out = super().__call__(dataset_dict)
        seg = out.get("sem_seg")
        if seg is not None:
            bad = seg[(seg != self._ignore) & ((seg < 0) | (seg >= self._num_classes))]
            if bad.numel():
                ids = ", ".join(str(int(v)) for v in bad.unique()[:5])
                raise ValueError(f"{path}: label ids {ids} are outside 0..{self._num_classes - 1} and the ignore "
                                 f"value {self._ignore} (labelTrainIds expected; see datasets.md)")
        return out
