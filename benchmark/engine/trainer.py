"""Trainer: detectron2's training loop, assembled from its public pieces.

detectron2's `DefaultTrainer` builds everything in its constructor and offers no argument for
what we need to differ (CPU DDP without device ids, our checkpointer, the log period, how many
checkpoints to keep, where the evaluation results go), so its docs recommend the way taken here:
a `TrainerBase` with detectron2's own `SimpleTrainer`/`AMPTrainer` for the step, its builders
(`DefaultTrainer.build_model`, `build_optimizer`, ...) and its hooks, each made with its
constructor arguments. Nothing of detectron2 is patched or reached into.

RULE (data order, augmentation, resume): the training loader is detectron2's
`build_detection_train_loader` given our sampler and mapper (`benchmark.engine.sampler`,
`benchmark.engine.mapper`): which images form global batch i and how each is augmented depend on
(SEED, i) only, not on the number of processes, and a resumed run starts at the global batch where
the interrupted one stopped. Every checkpoint also holds each process's torch/numpy/python RNG
states (`RNGStates`), restored on resume, so that the rest of the randomness (RPN and ROI
sampling) continues as in the uninterrupted run. The trainer says whether a resume was exact
(`RESUME_EXACT`, and why not, `RESUME_NOTE`; read by the runner into the record).
"""
import logging
import os
import random
import weakref

import numpy as np
import torch
from detectron2.data import DatasetFromList, DatasetMapper, build_detection_train_loader, get_detection_dataset_dicts
from detectron2.engine import AMPTrainer, DefaultTrainer, HookBase, SimpleTrainer, TrainerBase, create_ddp_model, hooks
from detectron2.modeling import build_model
from detectron2.projects.deeplab import build_lr_scheduler as deeplab_build_lr_scheduler
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from fvcore.nn.precise_bn import get_bn_modules

from benchmark.engine.checkpointer import SafeCheckpointer
from benchmark.engine.hooks import NonFiniteGuard, PruneCheckpoints
from benchmark.engine.mapper import GlobalSeededMapper, LabelCheckedMapper, sem_seg_train_augmentations
from benchmark.engine.sampler import GlobalBatchSampler, GlobalOrder, GlobalOrderDataset, derived_seed

logger = logging.getLogger(__name__)


class Trainer(TrainerBase):
    """One fine-tuning run of a task's config: train, PreciseBN, evaluate at the end.

    Attributes as detectron2's trainers have them: `model` (DDP-wrapped with several processes),
    `optimizer`, `data_loader`, `scheduler`, `checkpointer`, `cfg`, `start_iter`, `max_iter`;
    and `eval_results`, the evaluator's numbers once training ended.
    """

    def __init__(self, cfg):
        super().__init__()
        model = self.build_model(cfg)
        self.optimizer = self.build_optimizer(cfg, model)
        self.train_sampler = GlobalBatchSampler(cfg.SOLVER.IMS_PER_BATCH)  # its start is set on resume
        self.data_loader = self.build_train_loader(cfg, sampler=self.train_sampler)
        # detectron2 passes device_ids=[local rank], which torch refuses for CPU modules; CPU
        # processes over gloo need device_ids=None (create_ddp_model takes DDP's arguments).
        ddp_args = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        self.model = create_ddp_model(model, broadcast_buffers=False, **ddp_args)
        step = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self.step_trainer = step(self.model, self.data_loader, self.optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, self.optimizer)
        self.checkpointer = SafeCheckpointer(self.model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.eval_results = None
        self.RESUME_EXACT, self.RESUME_NOTE = True, None  # what a resume achieved (resume_or_load)
        self.register_hooks(self.build_hooks())

    # --------------------------------------------------------------- builders (detectron2's)

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        logger.info("Model:\n%s", model)  # kept in log.txt, off the terminal (see runner._no_model_dump)
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return DefaultTrainer.build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        # DeepLab's builder adds WarmupPolyLR and defers to detectron2's for the other schedules.
        return deeplab_build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg, sampler=None):
        """detectron2's train loader over the global sample order (see the module's rule).

        `sampler`: a GlobalBatchSampler (default: one from iteration 0 for this process). Aspect-ratio
        grouping is off whatever DATALOADER.ASPECT_RATIO_GROUPING says: detectron2's grouping fills a
        batch from whichever images of this process's stream arrive first in one orientation bucket,
        so a batch's images would depend on the process count and on the loader's history; without
        it only the padding of mixed-orientation batches grows (time and memory, not the images).
        """
        if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
            raise ValueError(f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN}: only TrainingSampler "
                             "(shuffled epochs, here in a global order) is supported")
        if cfg.MODEL.LOAD_PROPOSALS:  # refused by the config already: detectron2 unpickles proposal files
            raise ValueError("MODEL.LOAD_PROPOSALS: proposal files are never loaded")
        dicts = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0)
        dataset = GlobalOrderDataset(DatasetFromList(dicts, copy=False), GlobalOrder(len(dicts), cfg.SEED))
        if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
            mapper = LabelCheckedMapper(cfg, is_train=True, augmentations=sem_seg_train_augmentations(cfg))
        else:
            mapper = DatasetMapper(cfg, is_train=True)
        return build_detection_train_loader(
            dataset, mapper=GlobalSeededMapper(mapper, cfg.SEED),
            sampler=sampler or GlobalBatchSampler(cfg.SOLVER.IMS_PER_BATCH),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH, aspect_ratio_grouping=False,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            # The DataLoader's own generator: its worker base seed is then not drawn from torch's
            # global RNG, whose stream (RPN/ROI sampling) must not depend on when a loader starts.
            seed=derived_seed("loader", cfg.SEED, bits=62))

    @classmethod
    def build_evaluators(cls, cfg):
        from benchmark.data import protocol_name
        from benchmark.tasks import get_task
        from benchmark.tasks.evaluation import build_evaluator

        task = get_task(cfg.BENCHMARK.TASK)
        return [build_evaluator(task, name, os.path.join(cfg.OUTPUT_DIR, "inference", protocol_name(name)),
                                distributed=True) for name in cfg.DATASETS.TEST]

    @classmethod
    def test(cls, cfg, model):
        """Evaluate `model` on every test dataset with the task's evaluator (detectron2's test loop)."""
        return DefaultTrainer.test(cfg, model, evaluators=cls.build_evaluators(cfg))

    def build_writers(self):
        period = self.cfg.BENCHMARK.LOG_PERIOD
        return [
            CommonMetricPrinter(self.max_iter),
            # One line per LOG_PERIOD iterations, each the median over that period (raw at 1).
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=period),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=period),
        ]

    def build_hooks(self):
        """detectron2's default hooks made with our arguments, plus NonFiniteGuard; writers before the checkpointer."""
        cfg = self.cfg
        precise_bn_cfg = cfg.clone()
        precise_bn_cfg.defrost()
        precise_bn_cfg.DATALOADER.NUM_WORKERS = 0  # as detectron2: saves memory and time for PreciseBN
        keep = cfg.BENCHMARK.CHECKPOINTS_TO_KEEP
        ret = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            NonFiniteGuard(self.model, cfg.BENCHMARK.NONFINITE_CHECK_PERIOD),
        ]
        if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model):
            ret.append(SyncedPreciseBN(cfg.TEST.EVAL_PERIOD, self.model, self.build_train_loader(precise_bn_cfg),
                                       cfg.TEST.PRECISE_BN.NUM_ITER))
        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, self._evaluate))
        # Every process, right before rank 0's checkpointer: the RNG states that checkpoint keeps.
        self.rng_states = RNGStates(cfg.SOLVER.CHECKPOINT_PERIOD, self.max_iter)  # resume_or_load reads it
        ret.append(self.rng_states)
        if comm.is_main_process():
            # Writers before the checkpointer (detectron2 puts them last): an iteration's metrics.json
            # row is on disk before the checkpoint that marks it trained, so a run killed in between
            # loses no row; the resumed run drops rows after its checkpoint (trials.drop_metrics_after),
            # so none is kept twice. The final evaluation still runs in after_train, after
            # model_final.pth is saved, and its metrics are written by the writer's after_train.
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.BENCHMARK.LOG_PERIOD))
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD, max_iter=self.max_iter))
            ret.append(PruneCheckpoints(cfg.OUTPUT_DIR, cfg.SOLVER.CHECKPOINT_PERIOD, keep))
        return ret

    def _evaluate(self):
        self.eval_results = self.test(self.cfg, self.model)
        return self.eval_results

    @classmethod
    def evaluate_only(cls, cfg, resume: bool):
        """(metrics, iterations) of the weights, or with `resume` of the folder's last checkpoint, evaluated untrained."""
        model = cls.build_model(cfg)
        extra = SafeCheckpointer(model, cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
        return cls.test(cfg, model), int(extra.get("iteration", -1)) + 1

    # --------------------------------------------------------------- the loop

    def resume_or_load(self, resume=True):
        """Resume from OUTPUT_DIR's last checkpoint when asked and there is one, else load MODEL.WEIGHTS."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1
            self.train_sampler.set_start_iter(self.start_iter)  # the loader has not started yet
            self.RESUME_EXACT, self.RESUME_NOTE = self.rng_states.restored, self.rng_states.problem

    def train(self):
        super().train(self.start_iter, self.max_iter)
        return self.eval_results

    def run_step(self):
        self.step_trainer.iter = self.iter
        self.step_trainer.run_step()

    def state_dict(self):
        ret = super().state_dict()
        ret["step_trainer"] = self.step_trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.step_trainer.load_state_dict(state_dict["step_trainer"])


def rng_state() -> dict:
    """This process's torch (CPU, and CUDA device), numpy and python RNG states, as torch.load(weights_only) reads them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class RNGStates(HookBase):
    """Every process's RNG states at each checkpoint, kept in the checkpoint (trainer state), restored on resume.

    At PeriodicCheckpointer's save points (every `period` iterations and the last), all processes
    gather their states to rank 0 (a collective: every process runs this hook), whose checkpoint then
    holds them. On resume each process takes its own back when the world size is the one that
    wrote them; otherwise `restored` is False and `problem` says why.
    """

    def __init__(self, period: int, max_iter: int):
        self.period, self.max_iter = max(int(period), 1), int(max_iter)
        self._states = None
        self.restored, self.problem = False, "the checkpoint holds no RNG states (written by an older version)"

    def after_step(self):
        done = self.trainer.iter + 1
        if done % self.period == 0 or done >= self.max_iter:
            self._states = comm.all_gather(rng_state())

    def state_dict(self):
        return {"per_rank": self._states} if self._states else {}

    def load_state_dict(self, state):
        states = state.get("per_rank") or []
        if len(states) != comm.get_world_size():
            self.restored = False
            self.problem = (f"resumed on {comm.get_world_size()} processes from a checkpoint of {len(states)}: the "
                            "data order and augmentations continue exactly, the RPN/ROI sampling streams do not")
            return
        set_rng_state(states[comm.get_rank()])
        self.restored, self.problem = True, None


class SyncedPreciseBN(hooks.PreciseBN):
    """detectron2's PreciseBN, after which every process takes rank 0's BN statistics.

    fvcore weights each batch's statistics by the pixels this process saw; with a synchronized
    norm the statistics are the whole batch's but the weights differ between processes whose
    images differ in size, so the processes' BN buffers would drift apart (and each evaluate its
    share of the test set with other statistics than rank 0 saves). Rank 0's are the saved ones.
    """

    def __init__(self, period, model, data_loader, num_iter):
        super().__init__(period, model, data_loader, num_iter)
        self.model = model

    def update_stats(self):
        super().update_stats()
        if comm.get_world_size() > 1:
            for bn in get_bn_modules(self.model):
                torch.distributed.broadcast(bn.running_mean, src=0)
                torch.distributed.broadcast(bn.running_var, src=0)
