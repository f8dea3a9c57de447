"""LandmarkTrainer: the MAFL landmark regressor (mafl_landmarks) on detectron2's training loop, epoch by epoch.

The protocol (configs/mafl_landmarks.yaml, assumption `landmark-head`): DVE's preprocessing (a square
crop of CelebA's aligned image, top BENCHMARK.LANDMARKS.CROP_TOP, left CROP_LEFT, side CROP_SIZE,
resized to INPUT_SIZE; the landmarks shifted and scaled alike, to [-1, 1] of the crop), a frozen
ResNet in eval mode and DVE's keypoint head (benchmark.tasks.landmarks.LandmarkRegressor) trained
with Adam (amsgrad, SOLVER.BASE_LR, SOLVER.WEIGHT_DECAY) on MAFL's training list for EPOCHS, then
evaluated on its test list with DVE's inter-ocular error (benchmark.data.evaluators.LandmarkEvaluator).
No augmentation: DVE's recipe as REFERENCES.md gives it names none.

A frozen-backbone trainer like the linear readoff (benchmark.engine.epochs: the runner's interface, the
data order, the checkpoint after every epoch, the test sharding). RULE (resume): `landmark_checkpoint.pth`
holds the head and the optimizer (Adam's state); a resumed run with the same world size continues exactly
as an uninterrupted one (no random augmentation), with another, later epochs see other splits.
"""
import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from PIL import Image
from torch.utils.data import Dataset

from benchmark.data.evaluators import LandmarkEvaluator
from benchmark.engine.epochs import EpochLoader, FrozenBackboneTrainer, ShardSampler, data_loader
from benchmark.tasks.landmarks import LandmarkRegressor  # noqa: F401  (registers the model build_model names)

CHECKPOINT_NAME = "landmark_checkpoint.pth"


# ----------------------------------------------------------------------------- data

def crop_and_scale(points, cfg) -> np.ndarray:
    """Landmarks (x, y) in pixels of the aligned image -> [-1, 1] of the square crop (pixel i's centre
    is (2 (i - offset) + 1) / CROP_SIZE - 1: the frame of the model's soft-argmax); resizing the crop
    to INPUT_SIZE keeps these coordinates."""
    lm = cfg.BENCHMARK.LANDMARKS
    offset = np.array([float(lm.CROP_LEFT), float(lm.CROP_TOP)])
    return (2 * (np.asarray(points, np.float64) - offset) + 1) / float(lm.CROP_SIZE) - 1


class LandmarkSplit(Dataset):
    """Dataset dicts {"file_name", "landmarks"} -> (3 x S x S uint8 crop in `INPUT.FORMAT` order, 5 x 2 points,
    its index: the key of the model's feature cache)."""

    def __init__(self, dicts, cfg):
        if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT {cfg.INPUT.FORMAT!r}: the landmark regressor reads RGB or BGR images")
        lm = cfg.BENCHMARK.LANDMARKS
        top, left, size = int(lm.CROP_TOP), int(lm.CROP_LEFT), int(lm.CROP_SIZE)
        self.box, self.side, self.bgr = (left, top, left + size, top + size), int(lm.INPUT_SIZE), cfg.INPUT.FORMAT == "BGR"
        self.items = [(d["file_name"], torch.tensor(crop_and_scale(d["landmarks"], cfg), dtype=torch.float32))
                      for d in dicts]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, points = self.items[i]
        with Image.open(path) as im:
            img = im.convert("RGB").crop(self.box).resize((self.side, self.side), Image.BILINEAR)
        arr = np.array(img, dtype=np.uint8)
        if self.bgr:
            arr = np.ascontiguousarray(arr[:, :, ::-1])
        return torch.from_numpy(arr).permute(2, 0, 1), points, i


def collate(samples):
    images, points, indices = zip(*samples)
    return {"image": torch.stack(images), "landmarks": torch.stack(points),
            "index": torch.tensor(indices, dtype=torch.int64)}


# ----------------------------------------------------------------------------- the trainer

class LandmarkTrainer(FrozenBackboneTrainer):
    """One landmark regression: train the head on frozen features, evaluate the inter-ocular error at the end."""

    CHECKPOINT_NAME, HEAD = CHECKPOINT_NAME, "landmark head"
    DESCRIPTION = ("landmark regression", "training faces", "test faces")

    @property
    def regressor(self):
        return self.net

    @staticmethod
    def build_optimizer(cfg, model):
        params = [p for m in model.head_modules().values() for p in m.parameters()]
        return torch.optim.Adam(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY,
                                amsgrad=bool(cfg.BENCHMARK.LANDMARKS.AMSGRAD))

    @staticmethod
    def num_epochs(cfg) -> int:
        return int(cfg.BENCHMARK.LANDMARKS.EPOCHS)

    @staticmethod
    def build_train_loader(cfg, dicts, epochs):
        # No random transform: torch's own RNG is left as it is (only the workers' seeds are set per epoch).
        return EpochLoader(LandmarkSplit(dicts, cfg), cfg, epochs, collate, seed_transforms=False)

    def build_scheduler(self, cfg):
        # A constant LR (DVE's Adam): the scheduler only puts "lr" in the logs and metrics.json.
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)

    def epoch_state(self) -> dict:
        return {"head": {k: m.state_dict() for k, m in self.net.head_modules().items()}}

    @staticmethod
    def load_head(model, state):
        for key, module in model.head_modules().items():
            module.load_state_dict(state["head"][key])

    def resume_rest(self, state, epoch):
        """Exact only with the checkpoint's split of the epochs."""
        if (state.get("iters_per_epoch"), state.get("world_size")) != (self.iters_per_epoch, comm.get_world_size()):
            self.RESUME_EXACT = False
            self.RESUME_NOTE = (f"resumed at epoch {epoch} with {comm.get_world_size()} processes, the checkpoint's "
                                f"run had {state.get('world_size')}: later epochs see the same images in another split")

    @classmethod
    def test(cls, cfg, model):
        """The inter-ocular error of `model` on the test split, each process on its share."""
        dataset = LandmarkSplit(DatasetCatalog.get(cfg.DATASETS.TEST[0]), cfg)
        loader = data_loader(dataset, cfg, ShardSampler(len(dataset)), collate)
        return inference_on_dataset(model, loader, LandmarkEvaluator(distributed=True))
