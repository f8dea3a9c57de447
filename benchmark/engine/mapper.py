"""Training mappers: each image's augmentation seeded by its global sample index; DeepLab's
augmentations and a mapper that checks semantic-segmentation label ids.

RULE (augmentation): the random choices made for an image (scale, crop, flip) are a function of
(SEED, the image's global sample index) only (`benchmark.engine.sampler`), never of the process,
the DataLoader worker or what was mapped before: the same on 1 or N processes, and in a resumed
run the same as in the uninterrupted one. detectron2's augmentations draw from numpy's global
RNG, so each image is mapped with numpy's, python's and torch's global RNGs seeded for it, and
their previous states are put back afterwards.
"""
import contextlib
import random

import detectron2.data.transforms as T
import numpy as np
import torch
from detectron2.data import DatasetMapper

from benchmark.engine.sampler import GLOBAL_INDEX_KEY, derived_seed


@contextlib.contextmanager
def seeded_global_rngs(seed: int):
    """numpy's, python's and torch's (CPU) global RNGs seeded with `seed` inside, as they were after."""
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.set_rng_state(torch_state)


class GlobalSeededMapper:
    """Calls `mapper` on a record of `benchmark.engine.sampler.GlobalOrderDataset` with the global
    RNGs seeded from (`seed`, the record's global sample index); the index is removed first."""

    def __init__(self, mapper, seed: int):
        self.mapper, self.seed = mapper, int(seed)

    def __call__(self, dataset_dict):
        dataset_dict = dict(dataset_dict)
        g = dataset_dict.pop(GLOBAL_INDEX_KEY)
        with seeded_global_rngs(derived_seed("augment", self.seed, g)):
            return self.mapper(dataset_dict)


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
