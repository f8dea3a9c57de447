"""Transfer benchmark suite: pretrained backbones fine-tuned on detectron2 tasks, and compared.

The sub-packages are the stages of the pipeline (docs/ARCHITECTURE.md):

    weights/  checkpoint -> detectron2 weights      (formats, loading, conversion, download, zoo)
    tasks/    task name -> config, model, evaluator (registry, config building, model pieces)
    data/     dataset families                       (registration, layout checks, synthetic data)
    engine/   one run -> results.json                (trainer, hooks, checkpointer, launch)
    records/  results.json -> tables and verdicts    (record schema, leaderboard, paper, reproduce)
    cli/      the command-line tools (tools/*.py and the console scripts)

Importing the package imports nothing else: no torch, no detectron2, no global warning filter
or logging level. The modules that need detectron2 import it themselves.
"""
from pathlib import Path

__version__ = "0.2.0"

# Shipped inside the package (package data), so an installed copy finds them from any directory.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
