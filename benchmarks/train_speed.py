"""The train section: seconds per training iteration of our engine's `Trainer` against detectron2's
plain `DefaultTrainer`.

`Trainer` is a detectron2 `TrainerBase` assembled from detectron2's public pieces. Both run the same
config (voc07 --smoke with the protocol's periods), same weights, same data, same threads, at
several image sizes. The two are built side by side in one process and stepped in interleaved
blocks (A B B A ...): machine noise hits both alike, and medians of per-iteration times drop the
outliers. What is timed is exactly what `TrainerBase.train` does per iteration (`before_step`,
`run_step`, `after_step`, all public); run_step and hooks are also timed apart, as a built-in
profile. Our only extra per-iteration hook, `NonFiniteGuard`, checks once every
BENCHMARK.NONFINITE_CHECK_PERIOD iterations, so one check is timed directly and added amortized.
Evaluation and PreciseBN run once per run, after training, and are the same detectron2 code in
both: they are not part of this comparison. The headline ratio is wall-clock; on a shared machine
the CPU-time ratio and the hooks-only ratio are the steadier cross-checks.
"""
import gc
import os
import time
import types
from pathlib import Path

import torch

from benchmarks.common import median, quiet_logs, smoke_cfg, spread, synthetic_data, synthetic_weights, torch_threads

# The suite wraps detectron2's training loop rather than replacing it, so what it adds per
# iteration (hooks, the finite-weights guard) must stay within noise of detectron2's own trainer:
# at most 3% more seconds per iteration than DefaultTrainer on the same config.
TRAIN_TARGET = 1.03

def train_cfg(weights, datasets, output_dir, size):
    """The smoke config timed by `train_figures`: one training size, the protocol's periods.

    The smoke overlay logs every iteration and checkpoints at 10 for its own tests; the protocol
    keeps detectron2's periods (log 20, checkpoint 5000), which is what a real run pays. A long
    schedule keeps PreciseBN and the final evaluation (both once per run) out of the window.
    """
    return smoke_cfg(output_dir, datasets, input_settings=weights.input_settings, weights=weights.path, opts=[
        "INPUT.MIN_SIZE_TRAIN", f"({size},)", "INPUT.MAX_SIZE_TRAIN", str(2 * size),
        "SOLVER.MAX_ITER", "1000", "SOLVER.STEPS", "(900,)", "SOLVER.CHECKPOINT_PERIOD", "5000",
        "BENCHMARK.LOG_PERIOD", "20",
    ])


class Stepper:
    """Steps a detectron2 trainer a few iterations at a time, exactly as `TrainerBase.train` does.

    `train(start_iter, max_iter)` runs start to end in one go; interleaving two trainers needs it
    in pieces, made of the same public calls in the same order: before_train, then per iteration
    before_step / run_step / after_step with `iter` set, and after_train with `iter` one past the
    last iteration run (`close`). Each trainer keeps its own EventStorage, entered around each
    block as `train()` holds it. Defaults: the trainer's own start_iter and max_iter.
    """

    def __init__(self, trainer, start_iter=None, max_iter=None):
        from detectron2.utils.events import EventStorage

        start = trainer.start_iter if start_iter is None else start_iter
        self.trainer = trainer
        trainer.iter = trainer.start_iter = self.next_iter = start
        trainer.max_iter = trainer.max_iter if max_iter is None else max_iter
        self.storage = EventStorage(start)
        with self.storage:
            trainer.storage = self.storage
            trainer.before_train()

    def step(self, n):
        """Run n iterations; return [(total_s, run_step_s, hooks_s, cpu_s)] per iteration."""
        t, times = self.trainer, []
        with self.storage:
            for _ in range(n):
                t.iter = self.next_iter
                c0 = time.process_time()
                t0 = time.perf_counter()
                t.before_step()
                t1 = time.perf_counter()
                t.run_step()
                t2 = time.perf_counter()
                t.after_step()
                t3 = time.perf_counter()
                c3 = time.process_time()
                self.next_iter += 1
                times.append((t3 - t0, t2 - t1, (t1 - t0) + (t3 - t2), c3 - c0))
        return times

    def close(self):
        """after_train, as `train()` ends: writers flushed and closed; far from max_iter, neither
        the final checkpoint nor the final evaluation runs."""
        with self.storage:
            self.trainer.iter = self.next_iter
            self.trainer.after_train()


def guard_seconds(model, period, repeats=3):
    """Median seconds of one NonFiniteGuard check of `model` (our engine's one extra periodic hook).

    A guard of our own on the same model, at an iteration where it checks: the trainer's guard
    is not reached into, and what runs is the same code on the same tensors.
    """
    from benchmark.engine.hooks import NonFiniteGuard

    if period <= 0:
        return 0.0
    guard = NonFiniteGuard(model, period)
    guard.trainer = types.SimpleNamespace(iter=period - 1)  # the one attribute after_step reads
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        guard.after_step()
        times.append(time.perf_counter() - t0)
    return median(times)


def build_pair(cfg, seed):
    """Our Trainer and detectron2's DefaultTrainer on one cfg, with identical starting weights."""
    from detectron2.engine import DefaultTrainer
    from detectron2.utils.env import seed_all_rng

    from benchmark.engine.trainer import Trainer

    def own_output(name):  # the same cfg but each trainer its own OUTPUT_DIR (metrics.json ...)
        c = cfg.clone()
        c.defrost()
        c.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, name)
        c.freeze()
        os.makedirs(c.OUTPUT_DIR, exist_ok=True)
        return c

    # Same seeds: the same model init and data sampler order in both (both build model, optimizer,
    # loader, then the hooks' PreciseBN loader, in this order).
    seed_all_rng(seed)
    ours = Trainer(own_output("ours"))
    ours.resume_or_load(resume=False)  # the converted weights, read by our safe checkpointer
    seed_all_rng(seed)
    plain = DefaultTrainer(own_output("plain"))
    # detectron2's own loader would pickle.load the .pkl; the weights are copied over instead.
    plain.model.load_state_dict(ours.model.state_dict())
    return ours, plain


def train_size_figures(weights, datasets, workdir, size, *, warmup=2, rounds=4, block=2, seed=0) -> dict:
    """Interleaved per-iteration times of ours and plain at one training size (see module doc)."""
    cfg = train_cfg(weights, datasets, Path(workdir) / f"train_{size}", size)
    ours, plain = build_pair(cfg, seed)
    steppers = {"ours": Stepper(ours), "plain": Stepper(plain)}
    try:
        for s in steppers.values():
            s.step(warmup)  # first iterations allocate buffers and warm caches: not timed
        times = {"ours": [], "plain": []}
        rounds_s, rounds_cpu = [], []  # (ours, plain) block means of each round: adjacent in time
        for r in range(rounds):
            order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")  # A B, B A: no position bias
            block_mean = {}
            for name in order:
                got = steppers[name].step(block)
                times[name] += got
                block_mean[name] = (sum(x[0] for x in got) / len(got), sum(x[3] for x in got) / len(got))
            rounds_s.append((block_mean["ours"][0], block_mean["plain"][0]))
            rounds_cpu.append((block_mean["ours"][1], block_mean["plain"][1]))
        period = int(cfg.BENCHMARK.NONFINITE_CHECK_PERIOD)
        guard_s = guard_seconds(ours.model, period)
    finally:
        for s in steppers.values():
            s.close()
    fig = {"image_size": size, "images_per_iter": int(cfg.SOLVER.IMS_PER_BATCH),
           "iterations_timed": rounds * block}
    for name in ("ours", "plain"):
        total = [x[0] for x in times[name]]
        fig[f"{name}_s_per_iter"] = median(total)
        fig[f"{name}_spread_s"] = spread(total)
        fig[f"{name}_run_step_s"] = median([x[1] for x in times[name]])
        fig[f"{name}_hooks_s"] = median([x[2] for x in times[name]])
        fig[f"{name}_cpu_s_per_iter"] = median([x[3] for x in times[name]])
        fig[f"{name}_iter_s"] = [round(x[0], 4) for x in times[name]]  # raw, in the order timed
    fig["guard_check_s"] = guard_s
    fig["guard_period"] = period
    fig["guard_amortized_s"] = guard_s / period if period else 0.0
    fig.update(ratios(fig, rounds_s, rounds_cpu))
    del ours, plain, steppers
    gc.collect()
    return fig


def ratios(fig, rounds_s, rounds_cpu) -> dict:
    """The ratios of ours to plain from one size's figures and its rounds' (ours, plain) block means.

    The headline ratio pairs each round's blocks (run back to back, so under the same machine
    load) and takes the median over rounds, with the guard's amortized cost added to ours; the
    ratio of the two overall medians is kept too. Cross-checks less exposed to other loads on the
    machine: the same paired median over process CPU time (time spent waiting for a core does not
    count), and the part of an iteration that differs by construction (run_step is detectron2's
    SimpleTrainer step in both): hooks plus the amortized guard.
    """
    amortized = fig["guard_amortized_s"]
    round_ratios = [(o + amortized) / p for o, p in rounds_s]
    return {
        "ratio": median(round_ratios),
        "round_ratio_spread": spread(round_ratios),
        "ratio_of_medians": (fig["ours_s_per_iter"] + amortized) / fig["plain_s_per_iter"],
        "loop_ratio": fig["ours_s_per_iter"] / fig["plain_s_per_iter"],  # without the guard
        "cpu_ratio": median([(o + amortized) / p for o, p in rounds_cpu]),
        "hook_ratio": 1 + (fig["ours_hooks_s"] - fig["plain_hooks_s"] + amortized) / fig["plain_s_per_iter"],
    }


def train_figures(workdir, *, sizes=(128, 192), warmup=2, rounds=10, block=1, threads=None, seed=0,
                  progress=None) -> dict:
    """`train_size_figures` at each size, on synthetic VOC and a converted synthetic MoCo R50."""
    workdir = Path(workdir)
    with quiet_logs(), torch_threads(threads):
        datasets = synthetic_data("voc07", workdir / "voc")
        weights = synthetic_weights(workdir)
        out = {"compared": (
            "seconds per training iteration (median), before_step + run_step + after_step, of "
            "benchmark.engine.Trainer (TrainerBase from detectron2's pieces) vs detectron2 DefaultTrainer: "
            "voc07 --smoke config (Faster R-CNN R50-C4, naiveSyncBN = BN in one process), log period 20, "
            "same weights, seeds, data and threads; warm-up excluded; blocks interleaved A B B A ...; "
            "ratio = median over rounds of ours/plain with our NonFiniteGuard check added amortized over "
            "its period (cpu_ratio: the same over process CPU time; hook_ratio: only the hooks, the one "
            "part that differs by construction); PreciseBN and evaluation run once after training in "
            "both and are excluded"),
            "threads": torch.get_num_threads(), "target": TRAIN_TARGET, "sizes": {}}
        for size in sizes:
            if progress:
                progress(f"train: ours vs plain DefaultTrainer at {size} px ...")
            out["sizes"][str(size)] = train_size_figures(weights, datasets, workdir, size, warmup=warmup,
                                                         rounds=rounds, block=block, seed=seed)
    out["ratio"] = max(f["ratio"] for f in out["sizes"].values())
    out["within_target"] = out["ratio"] <= TRAIN_TARGET
    return out

