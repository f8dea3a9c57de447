"""LinearTrainer: the linear readoff (imagenet_linear) on detectron2's training loop, epoch by epoch.

The protocol is MoCo's main_lincls.py (configs/imagenet_linear.yaml cites it): the
converted backbone frozen and in eval mode (benchmark.tasks.classification.LinearClassifier), SGD
on the linear layer only, the LR multiplied by SOLVER.GAMMA at the start of each epoch of
BENCHMARK.LINEAR.LR_STEPS, RandomResizedCrop + flip for training, Resize + CenterCrop at test.

A frozen-backbone trainer (benchmark.engine.epochs: the runner's interface, the data order, the
checkpoint after every epoch, the test sharding). Its own rules:
- Augmentation draws from torch's RNG, seeded per (SEED, epoch, rank) each epoch (and the workers'
  seeds alike): epoch e's images and crops are a function of (SEED, e, world size,
  DATALOADER.NUM_WORKERS) only.
- `linear_checkpoint.pth` holds the linear layer, the optimizer and the scheduler; a resumed run with the
  same world size and workers continues exactly as an uninterrupted one (RESUME_EXACT); with others, the
  LR schedule is the same function of the epoch, and later epochs see other splits and crops.
- ClassificationEvaluator sums the counts of every process's share of the validation images.
"""
import numpy as np
import torch
import torchvision.transforms as T
from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from PIL import Image
from torch.utils.data import Dataset

from benchmark.data.evaluators import ClassificationEvaluator
from benchmark.engine.epochs import EpochLoader, FrozenBackboneTrainer, ShardSampler, data_loader
from benchmark.tasks.classification import LinearClassifier  # noqa: F401  (registers the model build_model names)

CHECKPOINT_NAME = "linear_checkpoint.pth"


def is_linear(cfg) -> bool:
    """Whether `cfg` is a linear-readoff config (run by LinearTrainer, not the fine-tuning Trainer)."""
    return cfg.MODEL.META_ARCHITECTURE == "LinearClassifier"


# ----------------------------------------------------------------------------- data

def train_transform(cfg):
    return T.Compose([T.RandomResizedCrop(cfg.BENCHMARK.LINEAR.TRAIN_CROP), T.RandomHorizontalFlip()])


def test_transform(cfg):
    return T.Compose([T.Resize(cfg.BENCHMARK.LINEAR.TEST_RESIZE), T.CenterCrop(cfg.BENCHMARK.LINEAR.TEST_CROP)])


class ImageSplit(Dataset):
    """Dataset dicts {"file_name", "label"} -> (3 x H x W uint8 tensor in `image_format` order, label)."""

    def __init__(self, dicts, transform, image_format="RGB"):
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT {image_format!r}: the linear readoff reads RGB or BGR images")
        self.items = [(d["file_name"], int(d["label"])) for d in dicts]
        self.transform, self.bgr = transform, image_format == "BGR"

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with Image.open(path) as im:
            img = self.transform(im.convert("RGB"))
        arr = np.array(img, dtype=np.uint8)  # a copy: PIL's buffer is read-only
        if self.bgr:
            arr = np.ascontiguousarray(arr[:, :, ::-1])
        return torch.from_numpy(arr).permute(2, 0, 1), label


def collate(samples):
    images, labels = zip(*samples)
    return {"image": torch.stack(images), "label": torch.tensor(labels, dtype=torch.int64)}


def _dicts(name):
    return DatasetCatalog.get(name)


# ----------------------------------------------------------------------------- the trainer

class LinearTrainer(FrozenBackboneTrainer):
    """One linear readoff: train the linear layer on frozen features, evaluate top-1/top-5 at the end."""

    CHECKPOINT_NAME, HEAD = CHECKPOINT_NAME, "linear layer"
    DESCRIPTION = ("linear readoff", "training images", "validation images")

    @property
    def classifier(self):
        return self.net

    def build_optimizer(self, cfg, model):
        return torch.optim.SGD(model.fc.parameters(), lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                               weight_decay=cfg.SOLVER.WEIGHT_DECAY)

    def check_training_split(self, dicts):
        classes, outputs = 1 + max(int(d["label"]) for d in dicts), self.net.fc.out_features
        if classes > outputs:
            raise ValueError(f"the training split has {classes} classes, the linear layer "
                             f"{outputs} outputs (BENCHMARK.LINEAR.NUM_CLASSES)")

    @staticmethod
    def num_epochs(cfg) -> int:
        return int(cfg.BENCHMARK.LINEAR.EPOCHS)

    @staticmethod
    def build_train_loader(cfg, dicts, epochs):
        return EpochLoader(ImageSplit(dicts, train_transform(cfg), cfg.INPUT.FORMAT), cfg, epochs, collate)

    def build_scheduler(self, cfg):
        steps = [int(e) * self.iters_per_epoch for e in cfg.BENCHMARK.LINEAR.LR_STEPS]
        return torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=steps, gamma=cfg.SOLVER.GAMMA)

    def epoch_state(self) -> dict:
        return {"fc": self.net.fc.state_dict(), "scheduler": self.scheduler.state_dict(),
                "num_workers": int(self.cfg.DATALOADER.NUM_WORKERS)}

    @staticmethod
    def load_head(model, state):
        model.fc.load_state_dict(state["fc"])

    def resume_rest(self, state, epoch):
        """The schedule; exact only with the checkpoint's split of the epochs and its loader workers."""
        same = (state.get("iters_per_epoch"), state.get("world_size"), state.get("num_workers")) == (
            self.iters_per_epoch, comm.get_world_size(), int(self.cfg.DATALOADER.NUM_WORKERS))
        if same:
            self.scheduler.load_state_dict(state["scheduler"])
            return
        # Another split of the epochs: the schedule is the same function of the epoch, at this run's iterations.
        self.scheduler.last_epoch = self.start_iter - 1
        lr = self.cfg.SOLVER.BASE_LR * self.cfg.SOLVER.GAMMA ** sum(
            epoch >= int(s) for s in self.cfg.BENCHMARK.LINEAR.LR_STEPS)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.RESUME_EXACT = False
        self.RESUME_NOTE = (f"resumed at epoch {epoch} with {comm.get_world_size()} processes and "
                            f"{self.cfg.DATALOADER.NUM_WORKERS} loader workers, the checkpoint's run had "
                            f"{state.get('world_size')} and {state.get('num_workers')}: later epochs see the same "
                            "images in another split and other random crops")

    @classmethod
    def test(cls, cfg, model):
        """Top-1/top-5 of `model` on the test split, each process on its share."""
        dataset = ImageSplit(_dicts(cfg.DATASETS.TEST[0]), test_transform(cfg), cfg.INPUT.FORMAT)
        loader = data_loader(dataset, cfg, ShardSampler(len(dataset)), collate)
        return inference_on_dataset(model, loader, ClassificationEvaluator(distributed=True))
