"""LinearTrainer: the linear readoff (imagenet_linear) on detectron2's training loop, epoch by epoch.

The protocol is MoCo's main_lincls.py (configs/imagenet_linear.yaml cites it): the
converted backbone frozen and in eval mode (benchmark.tasks.classification.LinearClassifier), SGD
on the linear layer only, the LR multiplied by SOLVER.GAMMA at the start of each epoch of
BENCHMARK.LINEAR.LR_STEPS, RandomResizedCrop + flip for training, Resize + CenterCrop at test.

It is driven by the runner exactly as the fine-tuning Trainer is (same launcher, same record):
`resume_or_load`, `start_iter`/`max_iter`, `register_hooks`, `train()` -> the evaluator's numbers,
`RESUME_EXACT`/`RESUME_NOTE`; detectron2's SimpleTrainer takes the steps, its hooks time them,
step the LR, print progress with an ETA and write metrics.json, and its EvalHook evaluates at the end.

RULES
- Data order: each epoch is a torch DistributedSampler pass (shuffled with seed SEED + epoch, padded
  to a multiple of the world size as DistributedSampler does, drop_last off as MoCo's loader), cut
  into batches of IMS_PER_BATCH / world size per process. Augmentation: torch's RNG is seeded per
  (SEED, epoch, rank) at the start of each epoch, and the DataLoader's workers take their seeds from
  a generator seeded the same way: epoch e's images and crops are a function of (SEED, e, world
  size, DATALOADER.NUM_WORKERS) only.
- Resume at epoch granularity: after every epoch rank 0 writes `linear_checkpoint.pth` atomically
  (the linear layer, optimizer, scheduler, epoch, iteration) and detectron2's `last_checkpoint`
  pointer to it (so the runner's foreign-checkpoint rule applies); a resumed run starts at the
  next epoch and, with the same world size and workers, continues exactly as an uninterrupted one
  (RESUME_EXACT). The backbone is never saved: it is MODEL.WEIGHTS, loaded through the suite's
  checkpointer (pinned sha256, every tensor must fit) at every start.
- Test metrics: each process evaluates its own share of the validation images (rank::world, no
  padding), and ClassificationEvaluator sums the counts, so each image counts exactly once.
"""
import logging
import os
import weakref

import numpy as np
import torch
import torchvision.transforms as T
from detectron2.data import DatasetCatalog
from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from benchmark.data.evaluators import ClassificationEvaluator
from benchmark.engine.checkpointer import SafeCheckpointer
from benchmark.engine.hooks import NonFiniteGuard
from benchmark.engine.sampler import derived_seed
from benchmark.fileio import atomic_write
from benchmark.tasks.classification import LinearClassifier  # noqa: F401  (registers the model build_model names)

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "linear_checkpoint.pth"
POINTER_NAME = "last_checkpoint"  # detectron2's pointer file (benchmark.engine.trials.CHECKPOINT_POINTER)


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


def _per_process(cfg) -> int:
    world = comm.get_world_size()
    batch = int(cfg.SOLVER.IMS_PER_BATCH)
    if batch % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH {batch} does not split over {world} processes")
    return batch // world


def _loader(dataset, cfg, sampler, generator=None):
    return DataLoader(dataset, batch_size=_per_process(cfg), sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=collate, pin_memory=cfg.MODEL.DEVICE != "cpu", generator=generator,
                      drop_last=False)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The torch seed of one process's augmentations in one epoch (see the module's rule)."""
    return derived_seed("linear-epoch", seed, epoch, rank, bits=62)


class EpochLoader:
    """Batches of epochs `start_epoch`..`epochs`-1, one DistributedSampler pass each (module's rule)."""

    def __init__(self, dataset, cfg, epochs: int):
        self.dataset, self.cfg, self.epochs, self.start_epoch = dataset, cfg, int(epochs), 0
        self.sampler = DistributedSampler(dataset, num_replicas=comm.get_world_size(), rank=comm.get_rank(),
                                          shuffle=True, seed=int(cfg.SEED) % 2**31, drop_last=False)

    @property
    def iters_per_epoch(self) -> int:
        return -(-len(self.sampler) // _per_process(self.cfg))

    def __iter__(self):
        for epoch in range(self.start_epoch, self.epochs):
            self.sampler.set_epoch(epoch)
            seed = epoch_seed(int(self.cfg.SEED), epoch, comm.get_rank())
            torch.manual_seed(seed)  # the transforms' RNG when there are no workers
            generator = torch.Generator()
            generator.manual_seed(seed)  # the workers' seeds otherwise
            yield from _loader(self.dataset, self.cfg, self.sampler, generator)


class ShardSampler(torch.utils.data.Sampler):
    """Indices rank, rank + world, ... of n: every index on exactly one process, none repeated."""

    def __init__(self, n: int):
        self.indices = list(range(comm.get_rank(), n, comm.get_world_size()))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def _dicts(name):
    return DatasetCatalog.get(name)


# ----------------------------------------------------------------------------- hooks

class EpochCheckpoint(HookBase):
    """Rank 0, after every epoch's last iteration: linear layer, optimizer, scheduler, epoch (atomic)."""

    def __init__(self, trainer, output_dir):
        self._owner = weakref.proxy(trainer)
        self.output_dir = output_dir

    def after_step(self):
        t = self._owner
        done = t.iter + 1
        if done % t.iters_per_epoch and done < t.max_iter:
            return
        state = {"fc": t.classifier.fc.state_dict(), "optimizer": t.optimizer.state_dict(),
                 "scheduler": t.scheduler.state_dict(), "epoch": done // t.iters_per_epoch, "iteration": t.iter,
                 "iters_per_epoch": t.iters_per_epoch, "world_size": comm.get_world_size(),
                 "num_workers": int(t.cfg.DATALOADER.NUM_WORKERS)}
        with atomic_write(os.path.join(self.output_dir, CHECKPOINT_NAME)) as f:
            torch.save(state, f)
        with atomic_write(os.path.join(self.output_dir, POINTER_NAME), "w") as f:
            f.write(CHECKPOINT_NAME)
        logger.info("epoch %d/%d done (iteration %d of %d); checkpoint %s", state["epoch"], t.epochs, done,
                    t.max_iter, CHECKPOINT_NAME)


# ----------------------------------------------------------------------------- the trainer

class LinearTrainer(TrainerBase):
    """One linear readoff: train the linear layer on frozen features, evaluate top-1/top-5 at the end."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if comm.is_main_process():
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)  # metrics.json and the checkpoints go there
        self.classifier = self.build_model(cfg)
        self.load_backbone(cfg, self.classifier)
        fc = self.classifier.fc
        self.optimizer = torch.optim.SGD(fc.parameters(), lr=cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM,
                                         weight_decay=cfg.SOLVER.WEIGHT_DECAY)
        ddp_args = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        self.model = create_ddp_model(self.classifier, broadcast_buffers=False, **ddp_args)
        dicts = _dicts(cfg.DATASETS.TRAIN[0])
        classes = 1 + max(int(d["label"]) for d in dicts)
        if classes > fc.out_features:
            raise ValueError(f"the training split has {classes} classes, the linear layer "
                             f"{fc.out_features} outputs (BENCHMARK.LINEAR.NUM_CLASSES)")
        self.epochs = int(cfg.BENCHMARK.LINEAR.EPOCHS)
        self.train_loader = EpochLoader(ImageSplit(dicts, train_transform(cfg), cfg.INPUT.FORMAT), cfg, self.epochs)
        self.iters_per_epoch = self.train_loader.iters_per_epoch
        self.start_iter, self.max_iter = 0, self.epochs * self.iters_per_epoch
        steps = [int(e) * self.iters_per_epoch for e in cfg.BENCHMARK.LINEAR.LR_STEPS]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=steps, gamma=cfg.SOLVER.GAMMA)
        step = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer  # --amp: the frozen forward in float16 too
        self.step_trainer = step(self.model, self.train_loader, self.optimizer)
        self.eval_results = None
        self.RESUME_EXACT, self.RESUME_NOTE = True, None
        logger.info("linear readoff: %d training images, %d epochs of %d iterations (%d per process per step), "
                    "%d validation images", len(dicts), self.epochs, self.iters_per_epoch, _per_process(cfg),
                    len(_dicts(cfg.DATASETS.TEST[0])))
        self.register_hooks(self.build_hooks())

    # --------------------------------------------------------------- builders

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        logger.info("Model:\n%s", model)
        return model

    @classmethod
    def load_backbone(cls, cfg, model):
        """The converted weights into the frozen backbone, through the suite's checkpointer (its checks)."""
        SafeCheckpointer(model, cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS, checkpointables=[])

    def build_hooks(self):
        cfg = self.cfg
        ret = [hooks.IterationTimer(), hooks.LRScheduler(self.optimizer, self.scheduler),
               NonFiniteGuard(self.model, cfg.BENCHMARK.NONFINITE_CHECK_PERIOD),
               hooks.EvalHook(0, self._evaluate)]
        if comm.is_main_process():  # writers before the checkpoint (as benchmark.engine.trainer)
            period = cfg.BENCHMARK.LOG_PERIOD
            writers = [CommonMetricPrinter(self.max_iter),
                       JSONWriter(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), window_size=period)]
            ret.append(hooks.PeriodicWriter(writers, period=period))
            ret.append(EpochCheckpoint(self, cfg.OUTPUT_DIR))
        return ret

    @classmethod
    def test(cls, cfg, model):
        """Top-1/top-5 of `model` on the test split, each process on its share (module's rule)."""
        dataset = ImageSplit(_dicts(cfg.DATASETS.TEST[0]), test_transform(cfg), cfg.INPUT.FORMAT)
        loader = _loader(dataset, cfg, ShardSampler(len(dataset)))
        return inference_on_dataset(model, loader, ClassificationEvaluator(distributed=True))

    def _evaluate(self):
        self.eval_results = self.test(self.cfg, self.model)
        return self.eval_results

    @classmethod
    def evaluate_only(cls, cfg, resume: bool):
        """(metrics, iterations) of the weights with an untrained (or, with `resume`, the last saved) linear layer."""
        model = cls.build_model(cfg)
        cls.load_backbone(cfg, model)
        state = _read_checkpoint(cfg.OUTPUT_DIR) if resume else None
        if state is not None:
            model.fc.load_state_dict(state["fc"])
        return cls.test(cfg, model), (int(state["iteration"]) + 1 if state else 0)

    # --------------------------------------------------------------- the loop

    def resume_or_load(self, resume=True):
        """The backbone is loaded already; resume the linear layer, optimizer and schedule from the last epoch."""
        state = _read_checkpoint(self.cfg.OUTPUT_DIR) if resume else None
        if state is None:
            return
        self.classifier.fc.load_state_dict(state["fc"])
        self.optimizer.load_state_dict(state["optimizer"])
        epoch = int(state["epoch"])
        self.start_iter = epoch * self.iters_per_epoch
        same = (state.get("iters_per_epoch"), state.get("world_size"), state.get("num_workers")) == (
            self.iters_per_epoch, comm.get_world_size(), int(self.cfg.DATALOADER.NUM_WORKERS))
        if same:
            self.scheduler.load_state_dict(state["scheduler"])
        else:
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
        self.train_loader.start_epoch = epoch  # the loader has not started yet
        logger.info("resumed the linear layer at epoch %d (iteration %d)", epoch, self.start_iter)

    def train(self):
        super().train(self.start_iter, self.max_iter)
        return self.eval_results

    def run_step(self):
        self.step_trainer.iter = self.iter
        self.step_trainer.run_step()


def _read_checkpoint(output_dir):
    """The last epoch's checkpoint of `output_dir`, or None (weights_only: tensors and plain data only)."""
    path = os.path.join(output_dir, CHECKPOINT_NAME)
    if not os.path.isfile(os.path.join(output_dir, POINTER_NAME)) or not os.path.isfile(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
