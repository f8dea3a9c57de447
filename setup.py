"""The transfer benchmark suite: fine-tune pretrained backbones on detectron2 tasks and compare."""
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(
    r'__version__ = "([^"]+)"', Path(__file__).with_name("benchmark").joinpath("__init__.py").read_text()
).group(1)


def packaged_configs() -> list:
    """Put the top-level configs/ inside the package (benchmark/configs) and list its YAML files.

    detectron2's pattern (its setup.py links configs/ into detectron2/model_zoo/configs): the YAML
    files live at the repository's top level, and an installed package (`pip install .`,
    `--target DIR`) still carries every one of them, found through benchmark.CONFIG_DIR from any
    directory. The link (a copy where links are refused) is rebuilt on every build, so it never goes
    stale, and .gitignore keeps it out of git. Building from an sdist, which already carries
    benchmark/configs and no top-level configs/, uses the packaged copy as it is.
    """
    root = Path(__file__).resolve().parent
    source, destination = root / "configs", root / "benchmark" / "configs"
    if source.is_dir():
        if destination.is_symlink() or destination.is_file():
            destination.unlink()
        elif destination.is_dir():
            shutil.rmtree(destination)
        try:
            destination.symlink_to(Path("..", "configs"), target_is_directory=True)
        except OSError:
            shutil.copytree(source, destination)
    return sorted(str(p.relative_to(destination)) for p in destination.rglob("*.yaml"))


setup(
    name="transfer-benchmark",
    version=VERSION,
    description="detectron2-based transfer benchmark for pretrained visual backbones",
    python_requires=">=3.10",
    packages=find_packages(include=["benchmark", "benchmark.*"]),
    # The protocol configs, paper tables and zoo (top-level configs/) ship inside the package: an
    # installed copy (pip install ., --target DIR) finds them through benchmark.CONFIG_DIR anywhere.
    package_data={"benchmark": [f"configs/{name}" for name in packaged_configs()]},
    # The commands users know are tools/*.py; the same mains installed on PATH.
    entry_points={"console_scripts": [
        "transfer-convert = benchmark.cli.convert:main",
        "transfer-run = benchmark.cli.run_transfer:main",
        "transfer-leaderboard = benchmark.cli.leaderboard:main",
        "transfer-reproduce = benchmark.cli.reproduce:main",
        "transfer-make-synthetic = benchmark.cli.make_synthetic:main",
        "transfer-demo = benchmark.cli.demo:main",
        "transfer-fp-chart = benchmark.cli.fp_chart:main",
        "transfer-invert = benchmark.cli.invert:main",
    ]},
    # torch/torchvision and detectron2 are installed by tools/setup_env.py: torch must be the
    # local pinned build, and detectron2 is not on the package index (README: Install).
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
        "scikit-learn",  # fewshot_miniimagenet --head rfs: RFS's LogisticRegression (lbfgs) per episode
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
        "torchmetrics",  # PSNR and SSIM of feature inversions (benchmark.inversion.metrics)
    ],
    # selenium drives Debian's chromium in tests/records/test_page.py
    extras_require={"test": ["pytest", "pytest-randomly", "ruff", "selenium"]},
)
