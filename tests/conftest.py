"""Shared fixtures: an isolated cache, synthetic checkpoints, a local HTTP server."""
import functools
import shutil

import pytest

from tests.helpers.server import serve_files


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Point $BENCHMARK_CACHE at a fresh folder: no test reads or writes the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """A folder for one module's shared fixtures, removed when the module's tests are done.

    (tmp_path_factory.mktemp alone keeps everything until the session ends: several GB.)
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory):
    """`synthetic_checkpoint(layout, seed=0, depth=50, width=64, init="random") -> Path`, written once per session.

    width 64 is torchvision's ResNet (~100-250 MB a file); width 8 a tiny backbone (~1-5 MB) for
    tests that need a valid checkpoint but not a full-size one. Treat the returned files as
    read-only: other tests get the same path.
    """
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")

    @functools.lru_cache(maxsize=None)
    def make(layout="moco", seed=0, depth=50, width=64, init="random"):
        return make_synthetic_checkpoint(root / f"{layout}_s{seed}_r{depth}_w{width}_{init}.pth", layout, seed, depth,
                                         width, init)

    return make


@pytest.fixture
def http_server(tmp_path):
    """(base_url, folder): files put in `folder` are served at base_url/NAME, cut short half-way at
    base_url/cut/NAME, and stalling half-way (until the test ends) at base_url/stall/NAME."""
    folder = tmp_path / "served"
    folder.mkdir()
    with serve_files(folder) as base:
        yield base, folder
