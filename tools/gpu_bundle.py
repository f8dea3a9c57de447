#!/usr/bin/env python3
"""Prepare gpu_bundle/: the wheels a lent GPU machine (no network) lacks to run the suite.

The machine has CPython 3.12 on manylinux x86-64 with torch, torchvision and a few packages
preinstalled (PREINSTALLED; issue 21 lists them). The bundle holds everything else the suite needs:
  - the suite's own requirements (setup.py install_requires) and their dependencies, as wheels for
    the target interpreter (`pip download --only-binary=:all: --python-version ... --platform ...`);
  - wheels built here for the requirements PyPI ships only as sources (SDIST_ONLY: pure Python);
  - detectron2 as tools/setup_env.py installs it: only the `detectron2/` Python package of
    sal-detectron2 (its one wheel targets CPython 3.10), rewrapped as a py3-none-any wheel;
  - the suite itself, and pytest (the GPU-only tests run there).
It writes MANIFEST.json (every wheel, size, sha256, what was left out and why) and INSTALL.txt, the
one offline install line:
    python3 -m pip install --no-index --no-deps --target .gpu_site gpu_bundle/*.whl
then `export PYTHONPATH=$PWD/.gpu_site`. --no-deps because the bundle is already the resolved set:
pip's --target ignores what is installed, so resolving there would ask for torch again.
Standard library only (like setup_env.py). Exit status: 0 written; 1 failed or over the size limit.
"""
import argparse
import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64  # the lent machine receives at most 64 MiB of carried files (issue 21)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# Preinstalled on the lent machine (issue 21: torch, torchvision, scikit-image, scikit-learn, scipy,
# opencv, tqdm, tabulate) and what those require themselves, so present wherever they are.
# Not here on purpose: numpy and setuptools, which the suite pins below the newest releases
# (setup.py: numpy<2.4 for cityscapesscripts, setuptools<81 for detectron2's pkg_resources); and
# tqdm and tabulate, bundled although preinstalled (0.1 MiB together) because detectron2, fvcore and
# iopath import them at start-up: with them, torch + torchvision + the bundle run every fine-tuning
# task. scipy (the board's Welch test) and scikit-learn (the few-shot head) are imported only where used.
PREINSTALLED = {
    "torch": "issue 21", "torchvision": "issue 21", "scikit-image": "issue 21", "scikit-learn": "issue 21",
    "scipy": "issue 21", "opencv-python": "issue 21",
    "pillow": "torchvision requires it", "filelock": "torch requires it", "typing-extensions": "torch requires it",
    "sympy": "torch requires it", "mpmath": "sympy requires it", "networkx": "torch requires it",
    "jinja2": "torch requires it", "markupsafe": "jinja2 requires it", "fsspec": "torch requires it",
    "joblib": "scikit-learn requires it", "threadpoolctl": "scikit-learn requires it",
    "imageio": "scikit-image requires it", "tifffile": "scikit-image requires it",
    "lazy-loader": "scikit-image requires it",
}
# On PyPI as sources only (checked Dec 2026), all pure Python: built here as py3-none-any wheels.
# {name: spec built}; antlr4-python3-runtime is omegaconf 2.2-2.3's pinned dependency (==4.9.*).
SDIST_ONLY = {"fvcore": "fvcore", "antlr4-python3-runtime": "antlr4-python3-runtime==4.9.3"}
# Never installed there, whatever requires it: {name: why}.
EXCLUDED = {"typing": "cityscapesscripts requires this backport of the standard library's module; in a folder on "
                      "PYTHONPATH it would shadow the real one, which comes first only from site-packages"}
EXTRA = ("pytest",)  # the GPU-only tests (pytest -m gpu) run on the lent machine
PURE_TAG = "py3-none-any"


def say(msg):
    print(f"[gpu-bundle] {msg}", flush=True)


def norm(name: str) -> str:
    """PEP 503 normalized project name (wheel file names use _ where requirements use -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def req_name(spec: str) -> str:
    return norm(re.match(r"[A-Za-z0-9._-]+", spec).group(0))


def install_requires(root=ROOT) -> list:
    """setup.py's install_requires, read from its source (running setup.py would build)."""
    for node in ast.walk(ast.parse((Path(root) / "setup.py").read_text())):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [ast.literal_eval(e) for e in node.value.elts]
    raise ValueError(f"{root / 'setup.py'}: no install_requires")


def setup_env(root=ROOT):
    """tools/setup_env.py as a module: its pins (TORCH, D2_FALLBACK) are the ones the bundle follows."""
    spec = importlib.util.spec_from_file_location("setup_env", Path(root) / "tools" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requires_of(name: str) -> list:
    """The requirements of the installed distribution `name` (this interpreter's: `make gpu-bundle` sets
    the environment up first), without those of its extras; [] when it is not installed."""
    try:
        requires = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [r.strip() for r in requires if "extra" not in r.partition(";")[2]]


def on_torch(reqs) -> dict:
    """{requirement: its own requirements other than torch's} for each of `reqs` that requires torch or
    torchvision (torchmetrics). pip cannot download such a wheel with its dependencies without also
    fetching a torch for the target, 2 GiB of it with CUDA's wheels; it is downloaded alone (--no-deps)
    and its other requirements are downloaded with the rest."""
    torch = {"torch", "torchvision"}
    deps = {r: requires_of(req_name(r)) for r in reqs}
    return {r: [d for d in ds if req_name(d) not in torch] for r, ds in deps.items()
            if any(req_name(d) in torch for d in ds)}


def bundle_requirements(root=ROOT) -> dict:
    """What the bundle must satisfy: {"download": requirement specs fetched as wheels with their
    dependencies, "alone": specs fetched without them (they require torch; their other requirements
    are in "download"), "build": SDIST_ONLY specs built here, "detectron2": setup_env's fallback spec,
    "preinstalled": the requirements left to the machine}. Every install_requires entry and every
    package setup_env installs is in exactly one of them (tests/cli/test_gpu_bundle.py)."""
    env = setup_env(root)
    reqs = [*install_requires(root), *EXTRA]
    kept = [r for r in reqs if req_name(r) not in PREINSTALLED and req_name(r) not in SDIST_ONLY]
    alone = on_torch(kept)
    download = [r for r in kept if r not in alone]
    names = {req_name(r) for r in download}
    for deps in alone.values():
        for d in deps:
            if req_name(d) not in names | set(PREINSTALLED):
                download.append(d)
                names.add(req_name(d))
    return {"download": download, "alone": list(alone),
            "build": list(SDIST_ONLY.values()),
            "detectron2": env.D2_FALLBACK,
            "preinstalled": sorted({req_name(r) for r in [*reqs, *env.TORCH]} & set(PREINSTALLED))}


def pip(*args):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)]
    say(" ".join(cmd[3:]))
    subprocess.run(cmd, check=True)


def pure_detectron2_wheel(source_wheel: Path, out: Path) -> Path:
    """Rewrap the `detectron2/` Python package of a detectron2 wheel (no .so, no top-level tools/)
    as a py3-none-any wheel of the same version: what setup_env.py unpacks, installable by pip."""
    version = source_wheel.name.split("-")[1]
    dist = f"detectron2-{version}.dist-info"
    target = out / f"detectron2-{version}-{PURE_TAG}.whl"
    record = []
    with zipfile.ZipFile(source_wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        def add(name, data):
            dst.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        members = sorted(m for m in src.namelist()
                         if m.startswith("detectron2/") and not m.endswith((".so", "/")))
        if not members:
            raise ValueError(f"{source_wheel}: no detectron2/ package in it")
        for m in members:
            add(m, src.read(m))
        add(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: detectron2\nVersion: {version}\n"
            f"Summary: detectron2's Python sources from {source_wheel.name} (no compiled ops)\n".encode())
        add(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nGenerator: gpu_bundle\nRoot-Is-Purelib: true\nTag: {PURE_TAG}\n".encode())
        add(f"{dist}/top_level.txt", b"detectron2\n")
        dst.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return target


def build(out: Path, python_version: str) -> dict:
    """Fill `out` with the bundle's wheels for CPython `python_version`; return the manifest."""
    plan = bundle_requirements()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        return _fill(out, plan, python_version)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-made bundle is left to be carried
        raise


def _fill(out: Path, plan: dict, python_version: str) -> dict:
    target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
              *[a for p in PLATFORMS for a in ("--platform", p)]]
    with tempfile.TemporaryDirectory() as tmp:
        pip("wheel", "--no-deps", "--wheel-dir", out, *plan["build"])
        pip("download", "--no-deps", "--only-binary=:all:", "--python-version", "3.10", "--dest", tmp,
            plan["detectron2"])
        pure_detectron2_wheel(next(Path(tmp).glob("*.whl")), out)
        # the rest, with their dependencies, resolved against the wheels just built (--find-links)
        built = sorted(out.glob("*.whl"))
        pip("download", *target, "--find-links", out, "--dest", out, *plan["download"], *built)
        if plan["alone"]:
            pip("download", *target, "--no-deps", "--dest", out, *plan["alone"])
        # the suite's own wheel outside that resolution: it requires torchmetrics, hence torch
        before = set(out.glob("*.whl"))
        pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", out, ROOT)
        built += sorted(set(out.glob("*.whl")) - before)
    impure = [w.name for w in built if not w.name.endswith(f"{PURE_TAG}.whl")]
    if impure:
        raise ValueError(f"built wheels are not pure Python, so they would not install on the GPU machine: {impure}")
    torch_own = [w.name for w in out.glob("*.whl") if re.match(r"(torch|torchvision|triton|nvidia|cuda)[-_]", w.name)]
    if torch_own:
        raise ValueError(f"a requirement pulled in torch or its CUDA wheels, which the machine has: {torch_own[:4]}; "
                         f"its entry in setup.py should be downloaded alone (see on_torch)")
    left_out = []
    for wheel in sorted(out.glob("*.whl")):
        if norm(wheel.name.split("-")[0]) in {**PREINSTALLED, **EXCLUDED}:
            left_out.append(wheel.name)
            wheel.unlink()
    wheels = [{"file": w.name, "bytes": w.stat().st_size, "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
              for w in sorted(out.glob("*.whl"))]
    install = f"python3 -m pip install --no-index --no-deps --target .gpu_site {out.name}/*.whl"
    manifest = {"python_version": python_version, "platforms": list(PLATFORMS), "install": install,
                "then": "export PYTHONPATH=$PWD/.gpu_site", "wheels": wheels,
                "total_bytes": sum(w["bytes"] for w in wheels),
                "left_out": {"wheels": left_out, "why": {**PREINSTALLED, **EXCLUDED}}, "requirements": plan}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "INSTALL.txt").write_text(f"{install}\n{manifest['then']}\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_bundle", help="folder to (re)write (default: gpu_bundle/)")
    parser.add_argument("--python-version", default="3.12", help="target CPython (default 3.12, the GPU machine's)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out, args.python_version)
    except (subprocess.CalledProcessError, ValueError, OSError) as exc:
        print(f"error: gpu bundle in {args.out}: {exc}", file=sys.stderr)
        return 1
    for w in manifest["wheels"]:
        print(f"{w['bytes'] / 2**20:8.2f} MiB  {w['file']}")
    size = manifest["total_bytes"] / 2**20
    print(f"{len(manifest['wheels'])} wheels, {size:.1f} MiB in {args.out} (limit {LIMIT_MIB} MiB); "
          f"left out (preinstalled there, or EXCLUDED): {', '.join(manifest['left_out']['wheels']) or 'none'}")
    print(f"install offline: {manifest['install']} && {manifest['then']}")
    if size > LIMIT_MIB:
        print(f"error: gpu bundle in {args.out}: {size:.1f} MiB is over the {LIMIT_MIB} MiB the machine receives",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
