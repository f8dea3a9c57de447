"""The package installs like any package: `pip install --target DIR .` works from any directory.

An installed copy must find its configs (package data) and run its tools without the checkout:
no path through tools/ or the repository root.
"""
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def installed(module_tmp):
    target = module_tmp / "site"
    # --no-build-isolation: build with this interpreter's setuptools (no index needed); a copy of
    # the tree keeps the build's egg-info/build folders out of the checkout.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, cwd=module_tmp)
    return target


def _python(installed, cwd, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_copy_ships_its_configs(installed, tmp_path):
    out = _python(installed, tmp_path, "-c", "import benchmark; print(benchmark.__file__); print(benchmark.CONFIG_DIR)")
    module_file, config_dir = out.stdout.split()
    assert module_file.startswith(str(installed)), out.stdout  # the installed copy, not the checkout
    names = sorted(p.name for p in (installed / "benchmark" / "configs").rglob("*.yaml"))
    assert {"voc07.yaml", "voc0712.yaml", "coco.yaml", "coco_2x.yaml", "cityscapes.yaml", "zoo.yaml",
            "table1.yaml", "detection.yaml"} <= set(names)
    assert config_dir == str(installed / "benchmark" / "configs")


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
