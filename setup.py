"""The transfer benchmark suite: fine-tune pretrained backbones on detectron2 tasks and compare."""
import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(
    r'__version__ = "([^"]+)"', Path(__file__).with_name("benchmark").joinpath("__init__.py").read_text()
).group(1)

setup(
    name="transfer-benchmark",
    version=VERSION,
    description="detectron2-based transfer benchmark for pretrained visual backbones",
    python_requires=">=3.10",
    packages=find_packages(include=["benchmark", "benchmark.*"]),
    # The protocol configs, paper tables and zoo ship inside the package: an installed copy
    # (pip install ., --target DIR) finds them through benchmark.CONFIG_DIR from any directory.
    package_data={"benchmark": ["configs/*.yaml", "configs/*/*.yaml"]},
    # The commands users know are tools/*.py; the same mains installed on PATH.
    entry_points={"console_scripts": [
        "transfer-convert = benchmark.cli.convert:main",
        "transfer-run = benchmark.cli.run_transfer:main",
        "transfer-leaderboard = benchmark.cli.leaderboard:main",
        "transfer-reproduce = benchmark.cli.reproduce:main",
        "transfer-make-synthetic = benchmark.cli.make_synthetic:main",
        "transfer-demo = benchmark.cli.demo:main",
    ]},
    # torch/torchvision and detectron2 are installed by tools/setup_env.py: torch must be the
    # local pinned build, and detectron2 is not on the package index (see DESIGN.md).
    install_requires=[
        "numpy<2.4",  # cityscapesscripts 2.3.0 calls np.in1d, removed in numpy 2.4
        "setuptools<81",  # detectron2 imports pkg_resources
        "fvcore",
        "iopath",
        "pycocotools>=2.0.2",
        "omegaconf>=2.1,<2.4",
        "hydra-core>=1.1",
        "yacs>=0.1.8",
        "tabulate",
        "termcolor>=1.1",
        "cloudpickle",
        "tqdm>4.29.0",
        "matplotlib",
        "Pillow>=7.1",
        "packaging",
        "tensorboard",
        "cityscapesscripts",
        "submitit",
        "pyyaml",
        "scipy",  # Welch's t-test between leaderboard rows (records.pooling)
    ],
    # selenium drives Debian's chromium in tests/records/test_page.py
    extras_require={"test": ["pytest", "pytest-randomly", "ruff", "selenium"]},
)
