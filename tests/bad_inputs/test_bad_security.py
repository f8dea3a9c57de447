"""Security: nothing in the suite runs a stranger's code, downloads leave http(s) or the cache.

- The package (benchmark/, tools/) is scanned: no eval/exec, no pickle.load(s) or bare Unpickler,
  no torch.load without weights_only=True, no yaml.load without a safe loader, no shell=True.
- Only http(s) URLs are fetched, redirects included.
- Cache paths built from zoo names and URLs never lead outside the cache (`..`, absolute paths,
  symlinks); nothing is created outside it.
- The cache is never poisoned: a body cut short without Content-Length, an HTML page with status
  200, an invalid Content-Length, a body longer than announced, an empty or code-running body is
  refused with one line that says how to retry, and nothing enters the cache (nor the zoo's
  sha256.json); a whole-transfer deadline stops a server that trickles bytes.
- A URL's secrets (user:password@, query values) never appear in messages, provenance or cache names.
(Code-running checkpoints and .pkl files: test_bad_checkpoints.py.)
"""
import ast
import base64
import hashlib
import http.server
import json
import time

import pytest

from tests.helpers.refusal import refused
from tests.helpers.server import serve
from tests.helpers.tally import BAD_INPUTS
from tests.helpers.tools import ROOT, tool

convert = tool("convert")


def _kw_true(call, name):
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_calls(source: str, filename: str) -> list:
    """'file:line: what' for every call in `source` that could run code from data."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
        what = None
        if isinstance(f, ast.Name) and name in ("eval", "exec"):
            what = f"{name}()"
        elif owner in ("pickle", "cPickle", "dill", "marshal", "shelve", "joblib") and name in ("load", "loads", "open", "Unpickler"):
            what = f"{owner}.{name}()"
        elif owner == "torch" and name == "load" and not _kw_true(node, "weights_only"):
            what = "torch.load() without weights_only=True"
        elif owner == "yaml" and (name in ("unsafe_load", "full_load") or (name == "load" and not any(
                isinstance(k.value, ast.Attribute) and k.value.attr in ("SafeLoader", "CSafeLoader") for k in node.keywords))):
            what = f"yaml.{name}() without a safe loader"
        elif owner in ("np", "numpy") and name == "load" and _kw_true(node, "allow_pickle"):
            what = "numpy.load(allow_pickle=True)"
        elif owner == "os" and name in ("system", "popen"):
            what = f"os.{name}()"
        elif _kw_true(node, "shell"):
            what = "shell=True"
        if what:
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def test_the_scanner_finds_what_it_looks_for():
    bad = ("eval(x)\nexec(y)\npickle.load(f)\npickle.loads(b)\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "yaml.load(s)\nyaml.unsafe_load(s)\nnp.load(p, allow_pickle=True)\nos.system(c)\nsubprocess.run(c, shell=True)\n")
    assert len(unsafe_calls(bad, "x.py")) == 11
    good = ("torch.load(p, map_location='cpu', weights_only=True)\nyaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
            "class U(pickle.Unpickler):\n    pass\nast.literal_eval(s)\nmodel.eval()\n")
    assert unsafe_calls(good, "y.py") == []


def test_no_unsafe_call_in_the_package():
    files = sorted((ROOT / "benchmark").rglob("*.py")) + sorted((ROOT / "tools").rglob("*.py"))
    assert len(files) > 20
    found = [hit for path in files for hit in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))]
    BAD_INPUTS.count("package scan: eval/exec/pickle.load/torch.load without weights_only/yaml.load/shell", not found)
    assert found == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/moco.pth", "gopher://127.0.0.1/x",
                                 "FILE:///etc/hostname"])
def test_only_http_urls_are_fetched(url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    refused(capsys, f"URL scheme: {url.split(':')[0]}", lambda: convert([url]), url,
            problem="only http and https URLs are downloaded", protect=[tmp_path])
    assert not list((tmp_path / "cache").rglob("*.pth"))


class _Redirect(http.server.BaseHTTPRequestHandler):
    target = None

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_off_http_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    handler = type("H", (_Redirect,), {"target": "ftp://127.0.0.1:9/secret.pth"})
    with serve(handler) as base:
        url = f"{base}/moco.pth"
        refused(capsys, "URL: redirect to ftp://", lambda: convert([url]), url,
                problem="refused redirect to 'ftp' URL ftp://127.0.0.1:9/secret.pth", protect=[tmp_path])


@pytest.mark.parametrize("spec", ["zoo:../../outside", "zoo:/etc/passwd", "zoo:..", "zoo:~root", "zoo:a/b"])
def test_zoo_names_cannot_leave_the_cache(spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    run_transfer = tool("run_transfer")
    refused(capsys, f"zoo name: {spec}", lambda: convert([spec]), spec, problem="unsafe zoo name", protect=[tmp_path])
    refused(capsys, f"--weights zoo name: {spec}", lambda: run_transfer(["--task", "voc07", "--smoke", "--weights", spec,
                                                                        "--output", str(tmp_path / "out")]),
            spec, problem="unsafe zoo name", protect=[tmp_path], absent=[tmp_path / "out"])
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["cache"])


def test_url_names_cannot_leave_the_cache(tmp_path, capsys, monkeypatch):
    from benchmark.weights import download

    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    refused(capsys, "URL whose file name is ..", lambda: convert(["http://127.0.0.1:9/a/%2E%2E"]), "http://127.0.0.1:9/a/%2E%2E",
            problem="unsafe cache name", protect=[tmp_path])
    for name in ("../x", "/etc/passwd", "a/../../x", "", "a\\..\\x", "zoo/../../x"):
        with pytest.raises(ValueError, match="unsafe cache name"):
            download.safe_cache_path(name, root=cache)
    # a %2F-encoded traversal decodes to a plain file name inside the cache
    assert download.url_filename("http://h/..%2F..%2Fevil.pth") == "evil.pth"
    BAD_INPUTS.count("cache names: .., absolute, backslash, encoded", True)


def test_symlinks_out_of_the_cache_are_refused(tmp_path, synthetic_checkpoint, monkeypatch):
    from benchmark.weights import download, zoo
    from benchmark.weights.convert import prepare_weights

    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    (cache / "zoo").symlink_to(outside)
    (cache / "converted").symlink_to(outside)
    with pytest.raises(ValueError, match="resolves outside"):
        zoo.fetch(zoo.list_zoo()[0].name, progress=False)
    with pytest.raises(ValueError, match="resolves outside"):
        prepare_weights(synthetic_checkpoint("torchvision", width=8), cache_dir=cache)
    with pytest.raises(ValueError, match="resolves outside"):
        download.safe_cache_path("zoo/moco.pth", root=cache)
    ok = list(outside.iterdir()) == []
    BAD_INPUTS.count("cache: symlinks pointing outside", ok)
    assert ok


def test_a_zoo_file_entry_cannot_name_a_path(tmp_path):
    from benchmark.weights import zoo

    path = tmp_path / "zoo.yaml"
    path.write_text("base_url: https://example.org/\ncheckpoints:\n  evil:\n    file: ../../.bashrc\n    method: m\n"
                    "    supervision: s\n    data: d\n    paper: []\n")
    with pytest.raises(zoo.ZooError, match="unsafe zoo file '../../.bashrc'"):
        zoo._load(str(path))
    BAD_INPUTS.count("zoo.yaml: file entry with ..", True)


def test_the_zoo_mirror_must_be_http(tmp_path, monkeypatch):
    from benchmark.weights import download, zoo

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", f"file://{tmp_path}")
    (tmp_path / zoo.list_zoo()[0].file).write_bytes(b"local file")
    with pytest.raises(download.DownloadError, match="refused scheme 'file'"):
        zoo.fetch(zoo.list_zoo()[0].name, progress=False)
    ok = not (tmp_path / "cache" / "zoo" / zoo.list_zoo()[0].file).exists()
    BAD_INPUTS.count("zoo mirror: file://", ok)
    assert ok


# Ways a library changes another library's behaviour for everyone who imports it. The suite is
# imported into people's own detectron2 projects: it extends detectron2 through its extension
# points (subclasses, constructor arguments, registries, dataset names of its own) and nothing else.
PATCHING = {
    "unittest.mock in production code": ("unittest.mock", "from unittest import mock", "mock.patch"),
    "writes to sys.modules": ("sys.modules[",),
    "removing entries of detectron2's global catalogs": ("DatasetCatalog.pop", "MetadataCatalog.pop",
                                                         "DatasetCatalog.remove", "MetadataCatalog.remove"),
    "private attributes of detectron2 objects": ("._hooks", "._period", "._last_eval_results", ".recent_checkpoints",
                                                 "._trainer"),
}


def _package_hits(needles):
    hits = []
    for path in sorted((ROOT / "benchmark").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(n in code for n in needles):
                hits.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    return hits


@pytest.mark.parametrize("what", sorted(PATCHING))
def test_the_package_patches_nothing(what):
    hits = _package_hits(PATCHING[what])
    BAD_INPUTS.count(f"no patching: {what}", not hits)
    assert hits == []


def test_the_patching_scan_finds_what_it_looks_for(tmp_path):
    needles = [n for group in PATCHING.values() for n in group]
    sample = ["from unittest import mock", "sys.modules['detectron2._C'] = stub", "DatasetCatalog.pop(name)",
              "hook._period = 5"]
    assert all(any(n in line for n in needles) for line in sample)
    assert not any(n in "model.eval()  # a plain call" for n in needles)


IMPORT_EVERYTHING = """
import ast, importlib, json, logging, pkgutil, sys, warnings
import benchmark
# What third-party libraries do on import (torch adds warning filters) is theirs: import every
# library the package imports first, then snapshot, then import the package's own modules.
for path in sorted(__import__("pathlib").Path(benchmark.__path__[0]).rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            if not name.startswith("benchmark"):
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass
filters = list(warnings.filters)
names = ["", "detectron2", "fvcore", "benchmark", "d2"]
levels = {n: logging.getLogger(n).level for n in names}
handlers = {n: len(logging.getLogger(n).handlers) for n in names}
modules = [m.name for m in pkgutil.walk_packages(benchmark.__path__, "benchmark.")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({"modules": modules, "filters_same": list(warnings.filters) == filters,
                  "levels_same": {n: logging.getLogger(n).level for n in names} == levels,
                  "handlers_same": {n: len(logging.getLogger(n).handlers) for n in names} == handlers}))
"""


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_importing_every_module_changes_no_global_state():
    """No import sets a warning filter, a logging level or a handler: those belong to the application."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) > 30 and "benchmark.engine.trainer" in report["modules"]
    assert report == {**report, "filters_same": True, "levels_same": True, "handlers_same": True}


# ----------------------------------------------------------------------------- the poisoned cache: bad downloads never enter it

HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


class _Hostile(http.server.BaseHTTPRequestHandler):
    """GET /MODE/NAME answers as MODE says, with `body` (a genuine checkpoint) where it sends one."""

    body = b""
    marker_body = b""
    hits = None  # {path: count}: /flip/ answers with an HTML page first, then the genuine file
    auth = None  # the Authorization header /auth/ wants

    def _send(self, status=200, headers=(), data=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def do_GET(self):
        mode = self.path.split("/")[1]
        body = self.body
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if mode == "ok":
            self._send(headers=[("Content-Length", str(len(body)))], data=body)
        elif mode == "auth":
            if self.headers.get("Authorization") != self.auth:
                self._send(401, [("Content-Length", "0")])
            else:
                self._send(headers=[("Content-Length", str(len(body)))], data=body)
        elif mode == "nolength":  # HTTP/1.0, no Content-Length: the close is the only end the client sees
            self._send(data=body[: len(body) // 2])
        elif mode == "html":
            self._send(headers=[("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(HTML)))], data=HTML)
        elif mode == "html-as-binary":
            self._send(headers=[("Content-Type", "application/octet-stream"), ("Content-Length", str(len(HTML)))], data=HTML)
        elif mode == "negative-length":
            self._send(headers=[("Content-Length", "-5")], data=body)
        elif mode == "text-length":
            self._send(headers=[("Content-Length", "lots")], data=body)
        elif mode == "longer-than-length":
            self._send(headers=[("Content-Length", str(len(body) // 2))], data=body)
        elif mode == "empty":
            self._send(headers=[("Content-Length", "0")])
        elif mode == "code":
            self._send(headers=[("Content-Length", str(len(self.marker_body)))], data=self.marker_body)
        elif mode == "flip":
            data = HTML if self.hits[self.path] == 1 else body
            self._send(headers=[("Content-Length", str(len(data)))], data=data)
        elif mode == "slow":  # well within the per-read timeout, forever in total
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 64):
                    self.wfile.write(body[i:i + 64])
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        else:
            self._send(404, [("Content-Length", "0")])

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_server(tmp_path, synthetic_checkpoint, monkeypatch):
    """(base URL, marker, cache): the server above; the genuine file is a width-8 MoCo checkpoint."""
    from tests.helpers.hostile import CodeRunningPickle

    marker, cache = tmp_path / "MARKER_code_ran", tmp_path / "cache"
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    import pickle

    handler = type("H", (_Hostile,), {"body": synthetic_checkpoint("moco", width=8).read_bytes(), "hits": {},
                                      "marker_body": pickle.dumps({"state_dict": CodeRunningPickle(marker)}, protocol=2),
                                      "auth": "Basic " + base64.b64encode(b"me:s3cret").decode()})
    with serve(handler) as base:
        yield base, marker, cache


def _cached_files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and p.name != ".lock") \
        if cache.exists() else []


RETRY = "nothing was stored; run the same command again to download afresh"
POISON = {  # mode -> what the one line says
    "nolength": "not a loadable checkpoint (truncated or corrupt: its zip archive cannot be read)",
    "html": "the server sent an HTML page (Content-Type text/html), not a checkpoint: is it a download link?",
    "html-as-binary": "the server sent an HTML page, not a checkpoint",
    "negative-length": "the server sent an invalid Content-Length '-5'",
    "text-length": "the server sent an invalid Content-Length 'lots'",
    "longer-than-length": "not a loadable checkpoint (truncated or corrupt",
    "empty": "the server sent an empty body",
    "code": "not a loadable checkpoint (refused: unpickling it would call posix.system, i.e. run code",
}


@pytest.mark.parametrize("mode", POISON)
def test_a_bad_download_never_enters_the_cache(mode, hostile_server, tmp_path, capsys):
    base, marker, cache = hostile_server
    url = f"{base}/{mode}/moco.pth"
    line = refused(capsys, f"download: {mode}", lambda: convert([url]), url, problem=POISON[mode],
                   protect=[tmp_path / "corpus"], absent=[marker])
    assert line.endswith(RETRY) or line.endswith("nothing was stored")
    assert _cached_files(cache) == []  # neither the download, nor a temporary, nor a converted file


def test_after_a_refused_download_the_same_command_succeeds(hostile_server, capsys):
    """The retry the message promises: nothing poisoned is left to be reused."""
    base, _, cache = hostile_server
    url = f"{base}/flip/moco.pth"
    refused(capsys, "download: HTML first, then the file", lambda: convert([url]), url, problem="HTML page")
    assert convert([url]) == 0
    assert [p.rsplit("/", 1)[1] for p in _cached_files(cache)] == ["moco.pkl", "moco.pth"]


def test_a_poisoned_entry_an_older_version_cached_is_replaced(hostile_server, capsys):
    """A cache written before downloads were checked may hold an HTML page under the final name."""
    from benchmark.weights import download

    base, _, cache = hostile_server
    url = f"{base}/ok/moco.pth"
    dest = download.safe_cache_path(f"downloads/{hashlib.sha256(url.encode()).hexdigest()[:16]}/moco.pth", root=cache)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(HTML)
    assert convert([url]) == 0 and dest.read_bytes().startswith(b"PK")  # the genuine zip, not the page
    BAD_INPUTS.count("download: poisoned entry of an older cache replaced", True)


def test_a_zoo_download_of_an_html_page_pins_nothing(hostile_server, monkeypatch, capsys):
    """The first fetch of a zoo file records its sha256 only once it loads as a checkpoint."""
    from benchmark.weights import zoo

    base, _, cache = hostile_server
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", f"{base}/flip")
    refused(capsys, "zoo: HTML page as first download", lambda: convert(["zoo:exemplar_v1"]), "zoo:exemplar_v1",
            problem="HTML page")
    assert not (cache / "zoo" / zoo.RECORD_NAME).exists() and _cached_files(cache) == []
    assert convert(["zoo:exemplar_v1"]) == 0  # the genuine file, on retry
    pinned = json.loads((cache / "zoo" / zoo.RECORD_NAME).read_text())
    assert pinned == {"exemplar_v1.pth": hashlib.sha256(_served_body(cache)).hexdigest()}


def _served_body(cache):
    return (cache / "zoo" / "exemplar_v1.pth").read_bytes()


def test_a_pinned_mismatch_names_sha256_json(hostile_server, monkeypatch, capsys):
    from benchmark.weights import zoo

    base, _, cache = hostile_server
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", f"{base}/ok")
    (cache / "zoo").mkdir(parents=True)
    (cache / "zoo" / zoo.RECORD_NAME).write_text(json.dumps({"exemplar_v1.pth": "0" * 64}))
    refused(capsys, "zoo: pinned sha256 mismatch", lambda: convert(["zoo:exemplar_v1"]), "zoo:exemplar_v1",
            problem=f"sha256 mismatch: expected {'0' * 64}", protect=[cache / "zoo" / zoo.RECORD_NAME])
    with pytest.raises(Exception, match=f"pinned in {cache / 'zoo' / zoo.RECORD_NAME}: if the file was re-released"):
        zoo.fetch("exemplar_v1", progress=False)
    assert _cached_files(cache) == ["zoo/sha256.json"]


def test_a_trickling_server_is_stopped_by_the_deadline(hostile_server, monkeypatch, capsys):
    base, _, cache = hostile_server
    monkeypatch.setenv("BENCHMARK_DOWNLOAD_DEADLINE", "1")
    url = f"{base}/slow/moco.pth"
    start = time.monotonic()
    refused(capsys, "download: trickled past the deadline", lambda: convert([url]), url,
            problem="over the deadline of 1 s ($BENCHMARK_DOWNLOAD_DEADLINE); nothing was stored")
    assert time.monotonic() - start < 10
    assert _cached_files(cache) == []


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf", "nan"])
def test_an_invalid_deadline_is_one_line(value, hostile_server, monkeypatch, capsys):
    base, _, cache = hostile_server
    monkeypatch.setenv("BENCHMARK_DOWNLOAD_DEADLINE", value)
    url = f"{base}/ok/moco.pth"
    refused(capsys, f"download: deadline {value!r}", lambda: convert([url]), url,
            problem=f"$BENCHMARK_DOWNLOAD_DEADLINE must be a positive number of seconds, got {value!r}")
    assert _cached_files(cache) == []


# ----------------------------------------------------------------------------- URL secrets

SECRETS = ("s3cret", "t0ps3cret")


def _no_secret(text):
    return not any(s in text for s in SECRETS)


@pytest.mark.parametrize("path", ["missing/moco.pth", "html/moco.pth"])
def test_url_secrets_never_appear_in_error_lines(path, hostile_server, capsys):
    base, _, _ = hostile_server
    url = base.replace("http://", "http://me:s3cret@") + f"/{path}?token=t0ps3cret&v=1"
    shown = base.replace("http://", "http://***@") + f"/{path}?token=***&v=***"
    line = refused(capsys, f"URL secrets: {path}", lambda: convert([url]), shown)
    assert _no_secret(line), line


def test_url_secrets_never_appear_in_provenance_output_or_cache_names(hostile_server, capsys):
    """user:password@ is sent as basic auth (the server checks it); the file's record shows it redacted."""
    from benchmark.weights.convert import prepare_weights
    from benchmark.weights.loading import load_converted

    base, _, cache = hostile_server
    url = base.replace("http://", "http://me:s3cret@") + "/auth/moco.pth?token=t0ps3cret"
    capsys.readouterr()
    assert convert([url]) == 0
    out = capsys.readouterr()
    assert _no_secret(out.out + out.err)
    prepared = prepare_weights(url)
    assert prepared.source == base.replace("http://", "http://***@") + "/auth/moco.pth?token=***"
    assert _no_secret(json.dumps(load_converted(prepared.path)["__provenance__"]))
    assert _no_secret(repr(prepared)) and all(_no_secret(p) for p in _cached_files(cache))
    BAD_INPUTS.count("URL secrets: provenance, output, cache names", True)


def test_url_secrets_never_appear_in_run_transfer_errors(hostile_server, tmp_path, capsys):
    base, _, _ = hostile_server
    url = base.replace("http://", "http://me:s3cret@") + "/missing/moco.pth?token=t0ps3cret"
    line = refused(capsys, "URL secrets: run_transfer --weights", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", url, "--output", str(tmp_path / "out")]),
        "/missing/moco.pth", absent=[tmp_path / "out"])
    assert _no_secret(line), line


# ----------------------------------------------------------------------------- what detectron2 is asked to load (item 1)
# detectron2 plain-pickle.load()s proposal files (DATASETS.PROPOSAL_FILES_*, with MODEL.LOAD_PROPOSALS)
# and, in its own checkpointer, MODEL.WEIGHTS .pkl files; it fetches http:// ones itself. Neither a
# weights file's input settings nor KEY VALUE options may point it at one: refused with one line,
# before anything is loaded, and the code-running pickle's marker never appears.

@pytest.fixture(scope="module")
def run_inputs(module_tmp, synthetic_checkpoint):
    """(converted weights path, VOC data root), valid, so that only the thing under test is wrong."""
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import prepare_weights

    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=module_tmp / "cache")
    return weights.path, write_synthetic("voc", module_tmp / "voc")


def _forged(weights_path, folder, settings):
    """The valid converted file with its provenance's input settings replaced by `settings`."""
    import pickle

    from benchmark.weights.loading import load_converted

    data = dict(load_converted(weights_path))
    data["__provenance__"] = {**data["__provenance__"], "input_settings": settings}
    path = folder / "forged.pkl"
    path.write_bytes(pickle.dumps(data, protocol=5))
    return path


EVIL_LOADS = {  # name -> (input settings of a forged weights file | None, KEY VALUE options, problem)
    "settings: local proposal file": ({"MODEL.LOAD_PROPOSALS": True, "DATASETS.PROPOSAL_FILES_TRAIN": ["{evil}"]}, [],
                                      "which a checkpoint may not set"),
    "settings: URL proposal file": ({"MODEL.LOAD_PROPOSALS": True, "DATASETS.PROPOSAL_FILES_TEST": ["http://127.0.0.1:9/e.pkl"]},
                                    [], "which a checkpoint may not set"),
    "settings: MODEL.WEIGHTS": ({"MODEL.WEIGHTS": "{evil}"}, [], "which a checkpoint may not set"),
    "option: MODEL.LOAD_PROPOSALS + PROPOSAL_FILES_TRAIN": (
        None, ["MODEL.LOAD_PROPOSALS", "True", "DATASETS.PROPOSAL_FILES_TRAIN", "('{evil}',)"], "is refused"),
    "option: PROPOSAL_FILES_TEST": (None, ["DATASETS.PROPOSAL_FILES_TEST", "('{evil}',)"], "is refused"),
    "option: MODEL.WEIGHTS local .pkl": (None, ["MODEL.WEIGHTS", "'{evil}'"], "is refused"),
    "option: MODEL.WEIGHTS URL": (None, ["MODEL.WEIGHTS", "'http://127.0.0.1:9/evil.pkl'"], "is refused"),
}


def _evil_case(name, run_inputs, folder):
    from tests.helpers.hostile import write_code_running_pickle

    marker = folder / "MARKER_code_ran"
    evil = write_code_running_pickle(folder / "evil.pkl", marker)
    settings, options, problem = EVIL_LOADS[name]
    weights = run_inputs[0]
    if settings is not None:
        weights = _forged(run_inputs[0], folder, {"INPUT.FORMAT": "RGB", **{k: ([x.format(evil=evil) for x in v] if isinstance(
            v, list) else v.format(evil=evil) if isinstance(v, str) else v) for k, v in settings.items()}})
    return weights, [o.format(evil=evil) for o in options], problem, marker


@pytest.mark.parametrize("name", EVIL_LOADS)
def test_detectron2_is_never_asked_to_unpickle_a_file_run_transfer(name, run_inputs, tmp_path, capsys):
    weights, options, problem, marker = _evil_case(name, run_inputs, tmp_path)
    out = tmp_path / "out"
    refused(capsys, f"run_transfer: {name}", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(weights), "--data-root", str(run_inputs[1]), "--output", str(out),
         *options]), options[0] if options else weights, problem=problem, protect=[tmp_path], absent=[marker, out])


@pytest.mark.slow  # reproduce launches each run as a fresh interpreter importing torch and detectron2
@pytest.mark.parametrize("name", ["settings: local proposal file", "option: MODEL.LOAD_PROPOSALS + PROPOSAL_FILES_TRAIN"])
def test_detectron2_is_never_asked_to_unpickle_a_file_reproduce(name, run_inputs, tmp_path, capsys):
    weights, options, problem, marker = _evil_case(name, run_inputs, tmp_path)
    out = tmp_path / "out"
    rc = tool("reproduce")(["--table", str(ROOT / "tests/fixtures/paper/smoke.yaml"), "--smoke", "--trials", "1",
                            "--weights", f"synthetic_moco={weights}", f"synthetic_torchvision={weights}",
                            "--data-root", str(run_inputs[1]), "--output", str(out), *options])
    logs = "".join(p.read_text() for p in (out / "logs").rglob("*.log"))
    assert rc == 1 and problem in logs and "Traceback" not in logs, logs[-3000:]
    assert not marker.exists() and not list(out.rglob("results.json"))
    BAD_INPUTS.count(f"reproduce: {name}", True)


def test_the_config_detectron2_gets_loads_nothing_but_the_prepared_weights(run_inputs, tmp_path):
    """Every job the runner builds: proposals off, no proposal files, MODEL.WEIGHTS the prepared .pkl,
    which the SafeCheckpointer reads with the restricted unpickler."""
    from benchmark.engine import Options, prepare

    jobs = prepare(Options(task="voc07", weights=str(run_inputs[0]), data_root=str(run_inputs[1]),
                           output=str(tmp_path / "o"), smoke=True, trials=2))
    for job in jobs:
        cfg = job.cfg
        assert cfg.MODEL.LOAD_PROPOSALS is False
        assert list(cfg.DATASETS.PROPOSAL_FILES_TRAIN) == [] and list(cfg.DATASETS.PROPOSAL_FILES_TEST) == []
        assert cfg.MODEL.WEIGHTS == str(run_inputs[0])
    assert not (tmp_path / "o").exists()
    BAD_INPUTS.count("config: proposals off, MODEL.WEIGHTS the prepared .pkl", True)


# detectron2 objects that load files with plain pickle when the package builds them itself
D2_LOADERS = ("DetectionCheckpointer(", "DefaultPredictor(", "DefaultTrainer(", "Checkpointer(", "load_proposals_into_dataset(",
              "PathManager.get_local_path(")


def test_the_package_builds_no_detectron2_loader_but_the_safe_checkpointer():
    hits = [h for h in _package_hits(D2_LOADERS)
            if "SafeCheckpointer(" not in h and "PeriodicCheckpointer(" not in h and "class SafeCheckpointer" not in h]
    BAD_INPUTS.count("package scan: detectron2 loaders other than SafeCheckpointer", not hits)
    assert hits == []


def test_a_zoo_file_an_older_version_cached_and_pinned_says_how_to_clear_it(monkeypatch, isolated_cache, capsys):
    from benchmark.weights import zoo

    monkeypatch.setenv("BENCHMARK_CACHE", str(isolated_cache))
    folder = isolated_cache / "zoo"
    folder.mkdir(parents=True)
    (folder / "exemplar_v1.pth").write_bytes(HTML)
    (folder / zoo.RECORD_NAME).write_text(json.dumps({"exemplar_v1.pth": hashlib.sha256(HTML).hexdigest()}))
    refused(capsys, "zoo: an HTML page cached and pinned by an older version", lambda: convert(["zoo:exemplar_v1"]),
            folder / "exemplar_v1.pth", problem=f"delete it and its entry in {folder / zoo.RECORD_NAME}, then run again",
            protect=[folder / "exemplar_v1.pth", folder / zoo.RECORD_NAME])
