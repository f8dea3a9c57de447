"""Shared fixtures: an isolated cache, synthetic checkpoints, a local HTTP server."""
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest


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


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from the server's folder; under /cut/ it announces the full length, sends
    half the bytes and closes the connection (a download cut short)."""

    def do_GET(self):
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = Path(self.directory, self.path[len("/cut/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """(base_url, folder): files put in `folder` are served at base_url/NAME (and base_url/cut/NAME)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
