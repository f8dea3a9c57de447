#!/usr/bin/env python3
"""Install what the suite needs into the running interpreter, and only what is missing.

Run by `make` before every target (standard library only: nothing else exists yet). Steps:
  1. torch 2.14.1 / torchvision 0.29.1, unless a torch is already importable (a GPU machine's).
  2. detectron2: an existing install is used as it is; otherwise the official source build when
     its repository is reachable; otherwise the Python sources of `sal-detectron2==0.7.2` from
     the package index (its one wheel targets CPython 3.10, so only its `detectron2/` package
     is unpacked, without the compiled `_C` extension; see DESIGN.md).
  3. the project itself (`pip install -e .[test]`), which brings the remaining dependencies.
A stamp in site-packages remembers step 3 by the hash of setup.py, so a second run installs
nothing. Set BENCHMARK_WHEELS=DIR to install from local wheels (a machine without network).
"""
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
D2_SOURCE = "git+https://github.com/facebookresearch/detectron2.git"
D2_FALLBACK = "sal-detectron2==0.7.2"
SITE = Path(sysconfig.get_paths()["purelib"])
STAMP = SITE / "transfer-benchmark.installed"


def say(msg):
    print(f"[setup] {msg}", flush=True)


def pip(*args):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    wheels = os.environ.get("BENCHMARK_WHEELS")
    if wheels and args[0] in ("install", "download"):
        cmd += ["--find-links", wheels]
    say(" ".join(cmd[3:]))
    subprocess.run(cmd, check=True)


def have(module):
    return importlib.util.find_spec(module) is not None


def reachable(host, port=443, timeout=3.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def install_torch():
    if have("torch") and have("torchvision"):
        return
    pip("install", *TORCH)


def install_detectron2():
    if have("detectron2"):
        return
    if not os.environ.get("BENCHMARK_WHEELS") and reachable("github.com"):
        try:
            # The build compiles against the torch just installed, hence no isolation.
            pip("install", "--no-build-isolation", D2_SOURCE)
            return
        except subprocess.CalledProcessError:
            say("official source build failed; falling back to the pure-Python detectron2")
    with tempfile.TemporaryDirectory() as tmp:
        pip("download", "--no-deps", "--only-binary=:all:", "--python-version", "3.10",
            "--dest", tmp, D2_FALLBACK)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist()
                       if m.startswith("detectron2/") and not m.endswith(".so")]
            zf.extractall(SITE, members)
        say(f"unpacked {len(members)} files of detectron2 (Python sources only) into {SITE}")


def install_project():
    digest = hashlib.sha256((ROOT / "setup.py").read_bytes()).hexdigest()
    expected = f"{ROOT}\n{digest}\n"
    if STAMP.is_file() and STAMP.read_text() == expected and have("benchmark"):
        return False
    pip("install", "-e", f"{ROOT}[test]")
    STAMP.write_text(expected)
    return True


def main():
    before = STAMP.is_file() and have("detectron2") and have("torch")
    install_torch()
    install_detectron2()
    changed = install_project()
    if before and not changed:
        say(f"environment ready ({sys.executable}); nothing to install")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[setup] failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
