"""The frozen-backbone trainers' shared machinery: a head trained epoch by epoch on a frozen, converted
backbone, on detectron2's training loop. The linear readoff (benchmark.engine.linear) and the landmark
regressor (benchmark.engine.landmarks) are such trainers; each module says its protocol.

Both are driven by the runner exactly as the fine-tuning Trainer is (same launcher, same record):
`resume_or_load`, `start_iter`/`max_iter`, `register_hooks`, `train()` -> the evaluator's numbers,
`evaluate_only`, `RESUME_EXACT`/`RESUME_NOTE`; detectron2's SimpleTrainer (AMPTrainer with --amp) takes
the steps, its hooks time them, step the LR, print progress with an ETA and write metrics.json, and its
EvalHook evaluates at the end.

RULES
- Data order: each epoch is a torch DistributedSampler pass (shuffled with seed SEED + epoch, padded to
  a multiple of the world size as DistributedSampler does, drop_last off as MoCo's loader), cut into
  batches of IMS_PER_BATCH / world size per process. Randomness: the DataLoader's workers take their
  seeds from a generator seeded per (SEED, epoch, rank) at the start of each epoch, and so does torch's
  own RNG where the trainer's transforms draw from it (EpochLoader's `seed_transforms`): epoch e's
  images (and crops) are a function of (SEED, e, world size, DATALOADER.NUM_WORKERS) only.
- Resume at epoch granularity: after every epoch rank 0 writes the trainer's CHECKPOINT_NAME atomically
  (its head, the optimizer, epoch, iteration, and what else it saves) and detectron2's `last_checkpoint`
  pointer to it (so the runner's foreign-checkpoint rule applies); a resumed run starts at the next
  epoch. The backbone is never saved: it is MODEL.WEIGHTS, loaded through the suite's checkpointer
  (pinned sha256, every tensor must fit) at every start.
- Test metrics: each process evaluates its own share of the test images (rank::world, no padding), and
  the evaluator sums over processes, so each image counts exactly once.
"""
import logging
import os
import weakref

import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from torch.utils.data import DataLoader, DistributedSampler

from benchmark.engine.checkpointer import SafeCheckpointer
from benchmark.engine.hooks import NonFiniteGuard
from benchmark.engine.sampler import derived_seed
from benchmark.fileio import atomic_write

logger = logging.getLogger(__name__)

POINTER_NAME = "last_checkpoint"  # detectron2's pointer file (benchmark.engine.trials.CHECKPOINT_POINTER)


# ----------------------------------------------------------------------------- data

def per_process(cfg) -> int:
    """SOLVER.IMS_PER_BATCH split over the processes; ValueError when it does not split evenly."""
    world = comm.get_world_size()
    batch = int(cfg.SOLVER.IMS_PER_BATCH)
    if batch % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH {batch} does not split over {world} processes")
    return batch // world


def data_loader(dataset, cfg, sampler, collate, generator=None) -> DataLoader:
    return DataLoader(dataset, batch_size=per_process(cfg), sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=collate, pin_memory=cfg.MODEL.DEVICE != "cpu", generator=generator,
                      drop_last=False)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one process's data randomness in one epoch (see the module's rule). The salt keeps the
    linear readoff's name, where it was first used: a new salt would change every run's data order."""
    return derived_seed("linear-epoch", seed, epoch, rank, bits=62)


class EpochLoader:
    """Batches of epochs `start_epoch`..`epochs`-1, one DistributedSampler pass each (module's rule).
    `seed_transforms`: also seed torch's RNG each epoch, which random transforms draw from without workers."""

    def __init__(self, dataset, cfg, epochs: int, collate, seed_transforms: bool = True):
        self.dataset, self.cfg, self.epochs, self.start_epoch = dataset, cfg, int(epochs), 0
        self.collate, self.seed_transforms = collate, seed_transforms
        self.sampler = DistributedSampler(dataset, num_replicas=comm.get_world_size(), rank=comm.get_rank(),
                                          shuffle=True, seed=int(cfg.SEED) % 2**31, drop_last=False)

    @property
    def iters_per_epoch(self) -> int:
        return -(-len(self.sampler) // per_process(self.cfg))

    def __iter__(self):
        for epoch in range(self.start_epoch, self.epochs):
            self.sampler.set_epoch(epoch)
            seed = epoch_seed(int(self.cfg.SEED), epoch, comm.get_rank())
            if self.seed_transforms:
                torch.manual_seed(seed)  # the transforms' RNG when there are no workers
            generator = torch.Generator()
            generator.manual_seed(seed)  # the workers' seeds otherwise
            yield from data_loader(self.dataset, self.cfg, self.sampler, self.collate, generator)


class ShardSampler(torch.utils.data.Sampler):
    """Indices rank, rank + world, ... of n: every index on exactly one process, none repeated."""

    def __init__(self, n: int):
        self.indices = list(range(comm.get_rank(), n, comm.get_world_size()))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


def read_checkpoint(output_dir, name: str):
    """The last epoch's checkpoint `name` of `output_dir`, or None (weights_only: tensors and plain data only)."""
    path = os.path.join(output_dir, name)
    if not os.path.isfile(os.path.join(output_dir, POINTER_NAME)) or not os.path.isfile(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- hooks

class EpochCheckpoint(HookBase):
    """Rank 0, after every epoch's last iteration: the trainer's head and what else it saves
    (`epoch_state`), the optimizer, epoch and iteration (atomic; module's rule)."""

    def __init__(self, trainer, output_dir):
        self._owner = weakref.proxy(trainer)
        self.output_dir = output_dir

    def after_step(self):
        t = self._owner
        done = t.iter + 1
        if done % t.iters_per_epoch and done < t.max_iter:
            return
        state = {**t.epoch_state(), "optimizer": t.optimizer.state_dict(), "epoch": done // t.iters_per_epoch,
                 "iteration": t.iter, "iters_per_epoch": t.iters_per_epoch, "world_size": comm.get_world_size()}
        name = t.CHECKPOINT_NAME
        with atomic_write(os.path.join(self.output_dir, name)) as f:
            torch.save(state, f)
        with atomic_write(os.path.join(self.output_dir, POINTER_NAME), "w") as f:
            f.write(name)
        logger.info("epoch %d/%d done (iteration %d of %d); checkpoint %s", state["epoch"], t.epochs, done,
                    t.max_iter, name)


# ----------------------------------------------------------------------------- the trainer

class FrozenBackboneTrainer(TrainerBase):
    """A head on a frozen backbone, trained for `epochs` epochs, evaluated at the end (module's rules).

    A subclass names its CHECKPOINT_NAME, HEAD ("linear layer") and DESCRIPTION (the start-up log line's
    words), and defines: build_optimizer, num_epochs, build_train_loader, build_scheduler, epoch_state
    (what its checkpoint saves beyond the module's fields), load_head, resume_rest (what else a resume
    restores, and whether it is exact) and test; check_training_split when the split can be refused.
    The model the subclass built is `self.net`; `self.model` is it wrapped for distributed training.
    """

    CHECKPOINT_NAME = HEAD = None
    DESCRIPTION = ("head", "training images", "test images")  # (what trains, what it trains on, what it is tested on)

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if comm.is_main_process():
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)  # metrics.json and the checkpoints go there
        # In this order: the head's initial weights are drawn from torch's RNG (seeded by the worker).
        self.net = self.build_model(cfg)
        self.load_backbone(cfg, self.net)
        self.optimizer = self.build_optimizer(cfg, self.net)
        ddp_args = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        self.model = create_ddp_model(self.net, broadcast_buffers=False, **ddp_args)
        dicts = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
        self.check_training_split(dicts)
        self.epochs = self.num_epochs(cfg)
        self.train_loader = self.build_train_loader(cfg, dicts, self.epochs)
        self.iters_per_epoch = self.train_loader.iters_per_epoch
        self.start_iter, self.max_iter = 0, self.epochs * self.iters_per_epoch
        self.scheduler = self.build_scheduler(cfg)
        step = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer  # --amp: the frozen forward in float16 too
        self.step_trainer = step(self.model, self.train_loader, self.optimizer)
        self.eval_results = None
        self.RESUME_EXACT, self.RESUME_NOTE = True, None
        what, train_items, test_items = self.DESCRIPTION
        logger.info("%s: %d %s, %d epochs of %d iterations (%d per process per step), %d %s", what, len(dicts),
                    train_items, self.epochs, self.iters_per_epoch, per_process(cfg),
                    len(DatasetCatalog.get(cfg.DATASETS.TEST[0])), test_items)
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

    def check_training_split(self, dicts) -> None:
        """Refuse (ValueError) a training split this head cannot learn; by default every split is fine."""

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

    def _evaluate(self):
        self.eval_results = self.test(self.cfg, self.model)
        return self.eval_results

    @classmethod
    def evaluate_only(cls, cfg, resume: bool):
        """(metrics, iterations) of the weights with an untrained (or, with `resume`, the last saved) head."""
        model = cls.build_model(cfg)
        cls.load_backbone(cfg, model)
        state = read_checkpoint(cfg.OUTPUT_DIR, cls.CHECKPOINT_NAME) if resume else None
        if state is not None:
            cls.load_head(model, state)
        return cls.test(cfg, model), (int(state["iteration"]) + 1 if state else 0)

    # --------------------------------------------------------------- the loop

    def resume_or_load(self, resume=True):
        """The backbone is loaded already; resume the head, the optimizer and the rest (resume_rest) from the
        last finished epoch."""
        state = read_checkpoint(self.cfg.OUTPUT_DIR, self.CHECKPOINT_NAME) if resume else None
        if state is None:
            return
        self.load_head(self.net, state)
        self.optimizer.load_state_dict(state["optimizer"])
        epoch = int(state["epoch"])
        self.start_iter = epoch * self.iters_per_epoch
        self.resume_rest(state, epoch)
        self.train_loader.start_epoch = epoch  # the loader has not started yet
        logger.info("resumed the %s at epoch %d (iteration %d)", self.HEAD, epoch, self.start_iter)

    def train(self):
        super().train(self.start_iter, self.max_iter)
        return self.eval_results

    def run_step(self):
        self.step_trainer.iter = self.iter
        self.step_trainer.run_step()
