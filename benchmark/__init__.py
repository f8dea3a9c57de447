"""Transfer benchmark suite: pretrained backbones fine-tuned on detectron2 tasks, and compared.

The sub-packages are the stages of the pipeline (docs/ARCHITECTURE.md):

    weights/    checkpoint -> detectron2 weights      (formats, detection, architecture, loading, conversion, download, zoo)
    tasks/      task name -> config, model, evaluator (registry, config building, model pieces, error analysis)
    data/       dataset families, one module each     (layout, registration, layout check, synthetic data, evaluator)
    engine/     one run -> results.json                (jobs, runner, worker, trainers, trials, checkpointer)
    records/    results.json -> tables                 (typed record, pooling, leaderboard, HTML page)
    reproduce/  paper table -> runs -> verdicts        (tables, plan, launch, judge, report, cost)
    cli/        the command-line tools (tools/*.py and the console scripts)

Importing the package imports nothing else: no torch, no detectron2, no global warning filter
or logging level. The modules that need detectron2 import it themselves.
"""
from pathlib import Path

__version__ = "0.2.0"


def _config_dir() -> Path:
    """The YAML configs: the checkout's top-level configs/, or the copy an installed package carries.

    As detectron2 does with its model zoo, the configs live at the repository's top level and
    setup.py links (or copies) them into the package at build time, so `pip install .` ships them
    as package data. A checkout (in-tree or `pip install -e .` runs) is recognised by the setup.py
    beside the package and reads configs/ itself, never a link or copy left by a build.
    """
    package = Path(__file__).resolve().parent
    top = package.parent / "configs"
    if (package.parent / "setup.py").is_file() and top.is_dir():
        return top
    return package / "configs"


CONFIG_DIR = _config_dir()
