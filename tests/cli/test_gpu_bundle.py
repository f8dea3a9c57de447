"""tools/gpu_bundle.py: the bundle's package list cannot drift from the suite's requirements, and its
detectron2 wheel installs offline and imports (no network: the list and the rewrap, not the download)."""
import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import subprocess
import sys
import zipfile

import pytest

from tests.helpers.tools import ROOT


@pytest.fixture(scope="module")
def gpu_bundle():
    spec = importlib.util.spec_from_file_location("gpu_bundle", ROOT / "tools" / "gpu_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_requirement_is_bundled_or_preinstalled_once(gpu_bundle):
    plan = gpu_bundle.bundle_requirements()
    required = {gpu_bundle.req_name(r) for r in gpu_bundle.install_requires()}
    # the parser read setup.py's list itself (a new entry is checked below like every other)
    assert {"numpy", "fvcore", "cityscapesscripts", "scipy"} <= required and len(required) >= 20
    downloaded = {gpu_bundle.req_name(r) for r in plan["download"] + plan["alone"]}
    built = {gpu_bundle.req_name(r) for r in plan["build"]}
    preinstalled = set(plan["preinstalled"])
    assert required <= downloaded | built | preinstalled
    assert not downloaded & built and not downloaded & preinstalled and not built & preinstalled
    # the pins newer releases break are carried, not left to whatever the machine has
    for pinned in ("numpy", "setuptools", "omegaconf"):
        assert pinned in downloaded
    assert {"fvcore", "antlr4-python3-runtime"} == built
    assert {"pytest", "iopath", "pycocotools", "cityscapesscripts", "submitit"} <= downloaded
    # what setup_env installs: torch/torchvision are the machine's, detectron2 is the same fallback
    env = gpu_bundle.setup_env()
    assert {gpu_bundle.req_name(t) for t in env.TORCH} <= preinstalled
    assert plan["detectron2"] == env.D2_FALLBACK == "sal-detectron2==0.7.2"
    assert {"scipy", "scikit-learn"} <= preinstalled  # issue 21's list
    # preinstalled there too, but what detectron2 and iopath import at start-up travels with the bundle
    assert {"tqdm", "tabulate"} <= downloaded


def _third_party_imports(paths):
    """Top-level names of every import (also inside functions) in `paths` that is neither the
    standard library nor the suite's own packages."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"benchmark", "benchmarks", "tests"}


def test_everything_the_suite_imports_is_covered(gpu_bundle):
    sources = [*ROOT.joinpath("benchmark").rglob("*.py"), ROOT / "benchmarks" / "gpu_acceptance.py"]
    modules = _third_party_imports(sources)
    assert {"torch", "detectron2", "fvcore", "pycocotools", "cityscapesscripts", "submitit"} <= modules
    dists = importlib.metadata.packages_distributions()
    plan = gpu_bundle.bundle_requirements()
    covered = ({gpu_bundle.req_name(r) for r in [*plan["download"], *plan["alone"], *plan["build"]]}
               | set(plan["preinstalled"])
               | {"detectron2", "sal-detectron2"})
    missing = {m: dists.get(m) for m in modules
               if not {gpu_bundle.norm(d) for d in dists.get(m, [m])} & covered}
    assert missing == {}


def _fake_d2_wheel(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("detectron2/__init__.py", "__version__ = '0.7.2'\n")
        zf.writestr("detectron2/layers/__init__.py", "VALUE = 41 + 1\n")
        zf.writestr("detectron2/_C.cpython-310-x86_64-linux-gnu.so", b"\x7fELF not for 3.12")
        zf.writestr("tools/train_net.py", "raise SystemExit('a top-level tools package must not be installed')\n")
        zf.writestr("sal_detectron2-0.7.2.dist-info/METADATA", "Name: sal-detectron2\n")
    return path


def test_pure_detectron2_wheel_installs_offline_and_imports(gpu_bundle, tmp_path):
    source = _fake_d2_wheel(tmp_path / "sal_detectron2-0.7.2-cp310-cp310-manylinux1_x86_64.whl")
    out = tmp_path / "bundle"
    out.mkdir()
    wheel = gpu_bundle.pure_detectron2_wheel(source, out)
    assert wheel.name == "detectron2-0.7.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"detectron2/__init__.py", "detectron2/layers/__init__.py"} <= names
        assert not any(n.endswith(".so") or n.startswith(("tools/", "sal_")) for n in names)
        rows = [r.split(",") for r in zf.read("detectron2-0.7.2.dist-info/RECORD").decode().splitlines()]
        for name, digest, size in rows[:-1]:  # the RECORD's own row has no hash
            data = zf.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        assert len(rows) == len(names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    assert not (target / "tools").exists()
    got = subprocess.run([sys.executable, "-c", "import detectron2.layers as l; print(l.__file__, l.VALUE)"],
                         env={"PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert got.stdout.split() == [str(target / "detectron2" / "layers" / "__init__.py"), "42"]


def test_refuses_a_wheel_without_detectron2(gpu_bundle, tmp_path):
    source = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("other/__init__.py", "")
    with pytest.raises(ValueError, match="no detectron2/ package"):
        gpu_bundle.pure_detectron2_wheel(source, tmp_path)


def test_what_requires_torch_is_downloaded_alone_and_its_other_requirements_with_the_rest(gpu_bundle):
    """pip downloading torchmetrics with its dependencies fetched a torch for the target too, and the bundle
    grew to 2,119 MiB. What requires torch is fetched alone (--no-deps); what else it requires is not lost."""
    plan = gpu_bundle.bundle_requirements()
    assert [gpu_bundle.req_name(r) for r in plan["alone"]] == ["torchmetrics"]
    downloaded = {gpu_bundle.req_name(r) for r in plan["download"]}
    assert "lightning-utilities" in downloaded  # torchmetrics' own requirement, not the suite's
    assert not downloaded & {"torch", "torchvision"}
    # every requirement with torch among its own requirements is alone, whatever the suite adds later
    for spec in plan["download"]:
        assert not {gpu_bundle.req_name(d) for d in gpu_bundle.requires_of(gpu_bundle.req_name(spec))} \
            & {"torch", "torchvision"}, spec


def test_a_failed_build_leaves_no_bundle_behind(gpu_bundle, tmp_path, monkeypatch):
    out = tmp_path / "gpu_bundle"
    out.mkdir()
    (out / "old.whl").write_bytes(b"x")

    def pip_fails(*args):
        (out / "half.whl").write_bytes(b"x")
        raise gpu_bundle.subprocess.CalledProcessError(1, ["pip", *args])

    monkeypatch.setattr(gpu_bundle, "pip", pip_fails)
    assert gpu_bundle.main(["--out", str(out)]) == 1
    assert not out.exists()
