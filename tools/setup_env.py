#!/usr/bin/env python3
"""Install what the suite needs into the running interpreter, and only what is missing.

Run by `make` before every target (standard library only: nothing else exists yet). Steps:
  0. with --system (`make test`, `make demo`): the system packages the tests need, Debian's
     `chromium` and `chromium-driver` (tests/records/test_page.py checks the HTML leaderboard in a
     real headless browser), installed with apt-get where this user may (root, or passwordless
     sudo); otherwise it stops before anything runs, with one line naming the command to run.
     Nothing is done when both binaries are on PATH.
  1. torch 2.14.1 / torchvision 0.29.1, unless a torch is already importable (a GPU machine's).
  2. detectron2: an existing install is used as it is; otherwise the official source build when
     its repository is reachable; otherwise the Python sources of `sal-detectron2==0.7.2` from
     the package index (its one wheel targets CPython 3.10, so only its `detectron2/` package
     is unpacked, without the compiled `_C` extension, which no registered task needs).
  3. the project itself (`pip install -e .[test]`), which brings the remaining dependencies.
A stamp in site-packages remembers step 3 by the hash of setup.py, so a second run installs
nothing. Set BENCHMARK_WHEELS=DIR to install from local wheels (a machine without network).
"""
import argparse
import hashlib
import importlib.util
import os
import shutil
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
# {binary the tests call: Debian package that provides it}
SYSTEM = {"chromium": "chromium", "chromedriver": "chromium-driver"}
STAMP = SITE / "transfer-benchmark.installed"
# torch 2.14.1 + torchvision 0.29.1 with their CUDA wheels take 5.2 GiB installed (measured: `du -sc
# torch torchvision nvidia* triton cuda*` in site-packages). A disk with less free space fails half-way
# through pip's install with "No space left on device" (it did, once, on a CI machine whose disk was
# full of old clones); checked first, it fails before anything is written, saying how much is needed.
TORCH_GIB = 5.5


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


class SetupError(Exception):
    """A step that cannot be done here: its message is the one line to print."""


def install_system():
    """Install the missing SYSTEM packages with apt-get, as root or through passwordless sudo."""
    missing = [package for binary, package in SYSTEM.items() if shutil.which(binary) is None]
    if not missing:
        return
    command = ["apt-get", "install", "-y", "-qq", *missing]
    if shutil.which("apt-get") is None:
        raise SetupError(f"the tests need {' and '.join(missing)} (Debian packages; the HTML page is checked in a "
                         f"headless browser): install them with this system's package manager, then rerun")
    if os.geteuid() == 0:
        sudo = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        raise SetupError(f"the tests need {' and '.join(missing)}: run `sudo apt-get update && sudo "
                         f"{' '.join(command)}`, then rerun")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], command):
        say(" ".join(sudo + cmd))
        if subprocess.run(sudo + cmd, env=env).returncode != 0:
            raise SetupError(f"`{' '.join(sudo + cmd)}` failed: the tests need {' and '.join(missing)}; install "
                             f"them (`apt-get update && {' '.join(command)}`), then rerun")
    still = [binary for binary in SYSTEM if shutil.which(binary) is None]
    if still:
        raise SetupError(f"{' and '.join(missing)} installed, but {' and '.join(still)} is not on PATH")


def check_free_space(path, need_gib, what):
    """SetupError, before any download, when the disk holding `path` has less than `need_gib` free."""
    free_gib = shutil.disk_usage(path).free / 2**30
    if free_gib < need_gib:
        raise SetupError(f"{what} needs about {need_gib:.1f} GiB in {path}, but its disk has {free_gib:.2f} GiB "
                         f"free; free some space (old virtual environments, clones, pip's cache) or run with "
                         f"PYTHON=/path/to/a/python that already has torch")


def install_torch():
    if have("torch") and have("torchvision"):
        return
    check_free_space(SITE, TORCH_GIB, " and ".join(TORCH))
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


def setup(system=False):
    if system:
        install_system()  # first: a machine that cannot have the browser stops before any download
    before = STAMP.is_file() and have("detectron2") and have("torch")
    install_torch()
    install_detectron2()
    changed = install_project()
    if before and not changed:
        say(f"environment ready ({sys.executable}); nothing to install")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", action="store_true",
                        help="also install the system packages the tests need (chromium, chromium-driver)")
    args = parser.parse_args(argv)
    try:
        setup(system=args.system)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[setup] failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
    except SetupError as exc:
        sys.exit(f"[setup] error: {exc}")


if __name__ == "__main__":
    main()
