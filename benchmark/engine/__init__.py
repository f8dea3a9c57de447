"""One task, one checkpoint, K trials -> one results.json per trial: the fine-tuning stage.

    checkpointer.py  SafeCheckpointer: detectron2's, with our safe loaders and atomic saves
    hooks.py         NonFiniteGuard and checkpoint pruning
    mapper.py        the semantic-segmentation mapper and augmentations (DeepLab's)
    trainer.py       Trainer: detectron2's training loop assembled from its public pieces
    runner.py        prepare (every check before compute), run_one per rank, run (the command)
"""
from benchmark.engine.runner import Job, Options, RunError, RunFailed, prepare, run, run_one  # noqa: F401
from benchmark.engine.trainer import Trainer  # noqa: F401
