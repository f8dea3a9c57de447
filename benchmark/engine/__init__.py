"""One task, one checkpoint, K trials -> one results.json per trial: the fine-tuning stage.

    jobs.py          Options -> one Job per trial: every check of the input before compute (RunError), RunKind
    runner.py        run(options): per trial, reuse a finished one, refuse another run's folder, or launch
    worker.py        run_one(job) on each process: register data, train or evaluate, rank 0 writes the record
    logs.py          console and per-run log files
    trials.py        the rules of a trial folder: lock, reuse, resume, attempts log
    trainer.py       Trainer: detectron2's training loop assembled from its public pieces
    linear.py        LinearTrainer: the linear readoff on a frozen backbone
    sanity.py        the learning checks of --sanity (their data, overlays, thresholds)
    checkpointer.py  SafeCheckpointer: detectron2's, with our safe loaders, atomic saves and pinned weights
    hooks.py         NonFiniteGuard, AttemptClock and checkpoint pruning
    sampler.py       GlobalBatchSampler: the data order as a function of the global batch index
    mapper.py        seeded augmentations and the semantic-segmentation mapper (DeepLab's)
"""
from benchmark.engine.jobs import Job, Options, RunError, RunKind, prepare  # noqa: F401
from benchmark.engine.runner import run, run_jobs  # noqa: F401
from benchmark.engine.trainer import Trainer  # noqa: F401
from benchmark.engine.worker import RunFailed, run_one  # noqa: F401
