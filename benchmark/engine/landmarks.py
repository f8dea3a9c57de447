"""LandmarkTrainer: the MAFL landmark regressor (mafl_landmarks) on detectron2's training loop, epoch by epoch.

The protocol (configs/mafl_landmarks.yaml, assumption `landmark-head`): DVE's preprocessing (a square
crop of CelebA's aligned image, top BENCHMARK.LANDMARKS.CROP_TOP, left CROP_LEFT, side CROP_SIZE,
resized to INPUT_SIZE; the landmarks shifted and scaled alike, to [-1, 1] of the crop), a frozen
ResNet in eval mode and DVE's keypoint head (benchmark.tasks.landmarks.LandmarkRegressor) trained
with Adam (amsgrad, SOLVER.BASE_LR, SOLVER.WEIGHT_DECAY) on MAFL's training list for EPOCHS, then
evaluated on its test list with DVE's inter-ocular error (benchmark.data.evaluators.LandmarkEvaluator).
No augmentation: DVE's recipe as REFERENCES.md gives it names none.

It is driven by the runner exactly as the linear readoff (benchmark.engine.linear), whose pieces it
reuses: the same data order (one DistributedSampler pass per epoch, seeded with SEED + epoch), the
same test sharding (each image on one process), `resume_or_load`, `start_iter`/`max_iter`,
`register_hooks`, `train()` -> the evaluator's numbers, `evaluate_only`, RESUME_EXACT/RESUME_NOTE;
detectron2's SimpleTrainer takes the steps, its hooks time them, print progress with an ETA and
write metrics.json, its EvalHook evaluates at the end.

RULE (resume at epoch granularity): after every epoch rank 0 writes `landmark_checkpoint.pth`
atomically (the head, the optimizer, epoch, iteration) and detectron2's `last_checkpoint` pointer to
it; a resumed run starts at the next epoch and, with the same world size, continues exactly as an
uninterrupted one (no random augmentation; Adam's state is saved). The backbone is never saved: it is
MODEL.WEIGHTS, loaded through the suite's checkpointer (pinned sha256) at every start.
"""
import logging
import os
import weakref

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmark.data.evaluators import LandmarkEvaluator
from benchmark.engine.checkpointer import SafeCheckpointer
from benchmark.engine.hooks import NonFiniteGuard
from benchmark.engine.linear import POINTER_NAME, EpochLoader, ShardSampler, _per_process
from benchmark.fileio import atomic_write
from benchmark.tasks.landmarks import LandmarkRegressor  # noqa: F401  (registers the model build_model names)

logger = logging.getLogger(__name__)

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


def _loader(dataset, cfg, sampler, generator=None):
    return DataLoader(dataset, batch_size=_per_process(cfg), sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=collate, pin_memory=cfg.MODEL.DEVICE != "cpu", generator=generator, drop_last=False)


class LandmarkEpochLoader(EpochLoader):
    """The linear readoff's epochs (benchmark.engine.linear.EpochLoader) with this task's batches."""

    def __iter__(self):
        from benchmark.engine.linear import epoch_seed

        for epoch in range(self.start_epoch, self.epochs):
            self.sampler.set_epoch(epoch)
            generator = torch.Generator()
            generator.manual_seed(epoch_seed(int(self.cfg.SEED), epoch, comm.get_rank()))
            yield from _loader(self.dataset, self.cfg, self.sampler, generator)


# ----------------------------------------------------------------------------- hooks

class EpochCheckpoint(HookBase):
    """Rank 0, after every epoch's last iteration: the head, optimizer, epoch (atomic; module's rule)."""

    def __init__(self, trainer, output_dir):
        self._owner = weakref.proxy(trainer)
        self.output_dir = output_dir

    def after_step(self):
        t = self._owner
        done = t.iter + 1
        if done % t.iters_per_epoch and done < t.max_iter:
            return
        state = {"head": {k: m.state_dict() for k, m in t.regressor.head_modules().items()},
                 "optimizer": t.optimizer.state_dict(), "epoch": done // t.iters_per_epoch, "iteration": t.iter,
                 "iters_per_epoch": t.iters_per_epoch, "world_size": comm.get_world_size()}
        with atomic_write(os.path.join(self.output_dir, CHECKPOINT_NAME)) as f:
            torch.save(state, f)
        with atomic_write(os.path.join(self.output_dir, POINTER_NAME), "w") as f:
            f.write(CHECKPOINT_NAME)
        logger.info("epoch %d/%d done (iteration %d of %d); checkpoint %s", state["epoch"], t.epochs, done,
                    t.max_iter, CHECKPOINT_NAME)


# ----------------------------------------------------------------------------- the trainer

def _load_head(model, state):
    for key, module in model.head_modules().items():
        module.load_state_dict(state["head"][key])


class LandmarkTrainer(TrainerBase):
    """One landmark regression: train the head on frozen features, evaluate the inter-ocular error at the end."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        if comm.is_main_process():
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        self.regressor = self.build_model(cfg)
        self.load_backbone(cfg, self.regressor)
        params = [p for m in self.regressor.head_modules().values() for p in m.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY,
                                          amsgrad=bool(cfg.BENCHMARK.LANDMARKS.AMSGRAD))
        ddp_args = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        self.model = create_ddp_model(self.regressor, broadcast_buffers=False, **ddp_args)
        dicts = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])
        self.epochs = int(cfg.BENCHMARK.LANDMARKS.EPOCHS)
        self.train_loader = LandmarkEpochLoader(LandmarkSplit(dicts, cfg), cfg, self.epochs)
        self.iters_per_epoch = self.train_loader.iters_per_epoch
        self.start_iter, self.max_iter = 0, self.epochs * self.iters_per_epoch
        # A constant LR (DVE's Adam): the scheduler only puts "lr" in the logs and metrics.json.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        step = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self.step_trainer = step(self.model, self.train_loader, self.optimizer)
        self.eval_results = None
        self.RESUME_EXACT, self.RESUME_NOTE = True, None
        logger.info("landmark regression: %d training faces, %d epochs of %d iterations (%d per process per step), "
                    "%d test faces", len(dicts), self.epochs, self.iters_per_epoch, _per_process(cfg),
                    len(DatasetCatalog.get(cfg.DATASETS.TEST[0])))
        self.register_hooks(self.build_hooks())

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
               NonFiniteGuard(self.model, cfg.BENCHMARK.NONFINITE_CHECK_PERIOD), hooks.EvalHook(0, self._evaluate)]
        if comm.is_main_process():  # writers before the checkpoint (as benchmark.engine.trainer)
            period = cfg.BENCHMARK.LOG_PERIOD
            writers = [CommonMetricPrinter(self.max_iter),
                       JSONWriter(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), window_size=period)]
            ret.append(hooks.PeriodicWriter(writers, period=period))
            ret.append(EpochCheckpoint(self, cfg.OUTPUT_DIR))
        return ret

    @classmethod
    def test(cls, cfg, model):
        """The inter-ocular error of `model` on the test split, each process on its share."""
        dataset = LandmarkSplit(DatasetCatalog.get(cfg.DATASETS.TEST[0]), cfg)
        loader = _loader(dataset, cfg, ShardSampler(len(dataset)))
        return inference_on_dataset(model, loader, LandmarkEvaluator(distributed=True))

    def _evaluate(self):
        self.eval_results = self.test(self.cfg, self.model)
        return self.eval_results

    @classmethod
    def evaluate_only(cls, cfg, resume: bool):
        """(metrics, iterations) of the weights with an untrained (or, with `resume`, the last saved) head."""
        model = cls.build_model(cfg)
        cls.load_backbone(cfg, model)
        state = _read_checkpoint(cfg.OUTPUT_DIR) if resume else None
        if state is not None:
            _load_head(model, state)
        return cls.test(cfg, model), (int(state["iteration"]) + 1 if state else 0)

    def resume_or_load(self, resume=True):
        """The backbone is loaded already; resume the head and optimizer from the last finished epoch."""
        state = _read_checkpoint(self.cfg.OUTPUT_DIR) if resume else None
        if state is None:
            return
        _load_head(self.regressor, state)
        self.optimizer.load_state_dict(state["optimizer"])
        epoch = int(state["epoch"])
        self.start_iter = epoch * self.iters_per_epoch
        if (state.get("iters_per_epoch"), state.get("world_size")) != (self.iters_per_epoch, comm.get_world_size()):
            self.RESUME_EXACT = False
            self.RESUME_NOTE = (f"resumed at epoch {epoch} with {comm.get_world_size()} processes, the checkpoint's "
                                f"run had {state.get('world_size')}: later epochs see the same images in another split")
        self.train_loader.start_epoch = epoch
        logger.info("resumed the landmark head at epoch %d (iteration %d)", epoch, self.start_iter)

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
