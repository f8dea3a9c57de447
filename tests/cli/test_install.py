"""The package installs like any package: `pip install --target DIR .` works from any directory.

An installed copy must find its configs (the top-level configs/, packaged at build time as
detectron2 packages its model-zoo configs) and run its tools without the checkout: no path
through tools/ or the repository root.
"""
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers.tools import ROOT


def _git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def source(module_tmp):
    """The working tree as a fresh clone has it: the files git tracks or would track, nothing a build left."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    assert listed.returncode == 0, listed.stderr
    tree = module_tmp / "clone"
    for name in filter(None, listed.stdout.split("\0")):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():  # a file deleted but not yet committed is skipped
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tree / name)
    assert not (tree / "benchmark" / "configs").exists()  # the build makes it, from configs/
    return tree


@pytest.fixture(scope="module")
def installed(module_tmp, source):
    target = module_tmp / "site"
    # --no-build-isolation: build with this interpreter's setuptools (no index needed).
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, cwd=module_tmp)
    return target


def _python(installed, cwd, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_copy_ships_its_configs(installed, tmp_path):
    out = _python(installed, tmp_path, "-c", "import benchmark; print(benchmark.__file__); print(benchmark.CONFIG_DIR)")
    module_file, config_dir = out.stdout.split()
    assert module_file.startswith(str(installed)), out.stdout  # the installed copy, not the checkout
    packaged = installed / "benchmark" / "configs"
    names = sorted(p.name for p in packaged.rglob("*.yaml"))
    assert {"voc07.yaml", "voc0712.yaml", "coco.yaml", "coco_2x.yaml", "cityscapes.yaml", "zoo.yaml",
            "table1.yaml", "detection.yaml"} <= set(names)
    assert config_dir == str(packaged)
    # every YAML of the top-level configs/ (and the tree under it), byte for byte, and nothing else
    top = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
    assert {"smoke", "sanity", "paper"} <= {p.parts[0] for p in top if len(p.parts) > 1}
    assert sorted(p.relative_to(packaged) for p in packaged.rglob("*.yaml")) == top
    for rel in top:
        assert (packaged / rel).read_bytes() == (ROOT / "configs" / rel).read_bytes(), rel
    assert not (packaged / "zoo.yaml").is_symlink()  # a copy in site-packages, not a link into the source


def test_the_build_leaves_nothing_for_git(installed, source):
    # The build put configs/ inside the package of the tree it built (as a link, or a copy where links are
    # refused); in a checkout that path is ignored, never tracked, so no build leaves the tree dirty.
    assert (source / "benchmark" / "configs" / "zoo.yaml").is_file()
    assert _git("ls-files", "benchmark/configs").stdout == ""
    assert _git("check-ignore", "-q", "benchmark/configs").returncode == 0
    assert _git("status", "--porcelain", "--", "benchmark/configs").stdout == ""


def test_a_checkout_reads_its_top_level_configs():
    import benchmark

    assert benchmark.CONFIG_DIR == ROOT / "configs"


def test_installed_copy_lists_tasks_from_another_directory(installed, tmp_path):
    out = _python(installed, tmp_path, "-m", "benchmark.cli.run_transfer", "--list-tasks")
    assert out.returncode == 0, out.stderr
    for task in ("voc07", "voc0712", "coco", "coco_2x", "cityscapes"):
        assert task in out.stdout


@pytest.mark.slow
def test_installed_copy_runs_a_smoke_run_from_another_directory(installed, tmp_path, synthetic_checkpoint):
    weights = synthetic_checkpoint("moco", width=8)
    out = _python(installed, tmp_path, "-m", "benchmark.cli.run_transfer", "--task", "voc07", "--smoke",
                  "--weights", str(weights), "--output", "run")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "run" / "trial_0" / "results.json").is_file()
