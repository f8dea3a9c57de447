"""Hooks of ours, and the pruning of periodic checkpoints a killed run left."""
import logging
import os
import re

import torch
from detectron2.engine import HookBase

PERIODIC_CHECKPOINT = re.compile(r"model_\d{7}\.pth")


def prune_periodic_checkpoints(output_dir, keep: int) -> list:
    """Delete all but the newest `keep` periodic checkpoints already in `output_dir` (0: keep all).

    detectron2's PeriodicCheckpointer(max_to_keep=...) prunes only the files it wrote itself; a
    resumed run calls this first so that what its killed predecessor wrote counts too.
    model_final.pth is never removed. Returns the removed names.
    """
    if keep <= 0 or not os.path.isdir(output_dir):
        return []
    periodic = sorted(name for name in os.listdir(output_dir) if PERIODIC_CHECKPOINT.fullmatch(name))
    removed = periodic[:-keep] if len(periodic) > keep else []
    for name in removed:
        os.remove(os.path.join(output_dir, name))
    return removed


class PruneCheckpoints(HookBase):
    """After each checkpoint, keep only the newest `keep` periodic checkpoints of `output_dir` (0: all).

    detectron2's PeriodicCheckpointer(max_to_keep=...) forgets the files of a killed predecessor
    (it counts only its own); a resumed COCO run would keep them for good (~260 MiB each).
    Placed right after the PeriodicCheckpointer, so the newest file exists before older ones go.
    """

    def __init__(self, output_dir, period: int, keep: int):
        self.output_dir, self.period, self.keep = output_dir, period, keep

    def after_step(self):
        if self.keep > 0 and (self.trainer.iter + 1) % self.period == 0:
            prune_periodic_checkpoints(self.output_dir, self.keep)


class NonFiniteGuard(HookBase):
    """Stops a diverged run within `period` iterations: every rank checks its weights are finite.

    detectron2 raises FloatingPointError when the (gathered) loss is NaN/Inf, but only on rank 0
    and only for the loss; a huge LR can also blow up weights or BN statistics first. Parameters
    and buffers are identical across ranks under DDP + SyncBN, so each rank reaches the same
    verdict without communicating, and all raise together.
    """

    def __init__(self, model, period: int):
        self.model = model
        self.period = period

    def after_step(self):
        if self.period <= 0 or (self.trainer.iter + 1) % self.period:
            return
        for name, tensor in list(self.model.named_parameters()) + list(self.model.named_buffers()):
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise FloatingPointError(
                    f"weights became infinite or NaN at iteration={self.trainer.iter} ({name})")


class AttemptClock(HookBase):
    """Keeps the trial's attempts log (benchmark.engine.trials.AttemptLog) current while training.

    After every `period`-th iteration (the checkpoint period) and at least every `seconds`, the
    running attempt's iteration and duration are rewritten, so a killed attempt's time still counts
    in the trial's total duration. `clock()` gives the attempt's seconds so far.
    """

    def __init__(self, log, clock, period: int, seconds: float = 30.0):
        self.log, self.clock, self.period, self.seconds = log, clock, max(int(period), 1), seconds
        self._last = None

    def after_step(self):
        now = self.clock()
        if (self.trainer.iter + 1) % self.period == 0 or self._last is None or now - self._last >= self.seconds:
            self._last = now
            try:
                self.log.update(self.trainer.iter + 1, now)
            except OSError as exc:  # bookkeeping: a full disk is the checkpointer's to report, with its numbers
                logging.getLogger(__name__).warning("attempts log %s not updated: %s", self.log.path, exc)
