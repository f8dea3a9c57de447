"""Issue 22, low causes 5, 6, 11, 12, 14, 16, the synthetic checkpoint's default init and reproduce's --trials.

Each input gets one `error:` line naming the file or option (exit code as the tool documents),
before compute, writing nothing; a refusal that points at another --format is checked to be right
by converting with it. Every input is written here, in tmp dirs, from a width-8 ResNet-50.
"""
import contextlib
import hashlib
import http.server
import json
import math
import os
import pickle
import signal

import numpy as np
import pytest
import torch

from tests.helpers.refusal import refused
from tests.helpers.server import serve
from tests.helpers.tally import BAD_INPUTS
from tests.helpers.tools import ROOT, tool

convert = tool("convert")
WIDTH = 8


@contextlib.contextmanager
def deadline(seconds):
    """Raise TimeoutError in this thread after `seconds`: an input that hangs (a FIFO opened for
    reading) fails its test instead of holding the whole run."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: the input hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------- low 5: redirect chains, one line

class _Redirects(http.server.BaseHTTPRequestHandler):
    """GET /X answers 302 to `target(path)`: the same path (a loop) or one step deeper (an endless chain)."""

    target = None

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.target(self.path))
        self.end_headers()

    def log_message(self, *args):
        pass


REDIRECTS = {  # name -> Location for a request of `path`
    "redirect loop (to itself)": lambda path: path,
    "redirect chain of more than 10": lambda path: "/next" + path,
}


@pytest.mark.parametrize("name", REDIRECTS)
def test_a_redirect_loop_or_chain_is_one_line(name, tmp_path, capsys, monkeypatch):
    """urllib's reason for both is three lines ('...infinite loop.\\nThe last 30x error message was:\\nFound')."""
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    handler = type("H", (_Redirects,), {"target": staticmethod(REDIRECTS[name])})
    with serve(handler) as base:
        url = f"{base}/moco.pth"
        line = refused(capsys, f"URL: {name}", lambda: convert([url]), url, problem="HTTP 302", protect=[tmp_path])
    assert "infinite loop. The last 30x error message was: Found" in line
    assert not list((tmp_path / "cache").rglob("*.pth"))


# ----------------------------------------------------------------------------- low 6: diagnostics that name the way out

@pytest.fixture(scope="module")
def tv():
    from benchmark.weights.synthetic import torchvision_weights

    return torchvision_weights(0, 50, WIDTH)


def _under(prefix, sd):
    return {f"{prefix}{k}": v for k, v in sd.items()}


def _solo_learn_state_dict(sd):
    """solo-learn's Lightning state dict (solo/methods/base.py, byol.py): backbone, momentum_backbone, heads."""
    return {**_under("backbone.", sd), **_under("momentum_backbone.", {k: v + 1 for k, v in sd.items()}),
            "projector.0.weight": torch.zeros(4, 4), "classifier.weight": torch.zeros(3, 4)}


def _misspelt_stem(sd):
    sd = dict(sd)
    sd["conv1.weights"] = sd.pop("conv1.weight")
    return sd


DIAGNOSED = {  # name -> (checkpoint from torchvision weights, what the line says, --format that then converts or None)
    "DINO teacher without the student": (lambda sd: {"teacher": _under("backbone.", sd), "epoch": 3},
                                         "a ResNet that --format dino reads (detected only with the top-level entry "
                                         "'student')", "dino"),
    "DINO student alone": (lambda sd: {"student": _under("module.backbone.", sd)},
                           "a ResNet that --format dino_student reads (a format never detected, only named)", "dino_student"),
    "PyContrast model_ema alone": (lambda sd: {"model_ema": _under("module.encoder.", sd), "epoch": 9},
                                   "a ResNet that --format pycontrast_ema reads", "pycontrast_ema"),
    "encoder. under model without the online encoder's markers": (
        lambda sd: {"model": {**_under("encoder.", sd), "head.weight": torch.zeros(2, 2)}, "model_ema": 0},
        None, None),
    "solo-learn state dict re-saved without Lightning's key": (
        lambda sd: {"state_dict": _solo_learn_state_dict(sd), "epoch": 99},
        "(as format backbone; --format solo_learn reads it)", "solo_learn"),
    "solo-learn state dict saved bare": (lambda sd: _solo_learn_state_dict(sd), "(as format backbone; --format solo_learn reads it)",
                                         "solo_learn"),
    "torchvision with one misspelt key": (_misspelt_stem, "nearest known format: torchvision (its renaming reads 264 of the "
                                                          "320 keys; keys it does not read 1 (conv1.weights))", None),
}


@pytest.mark.parametrize("name", DIAGNOSED)
def test_a_refused_layout_names_the_format_or_key_that_explains_it(name, tmp_path, capsys, tv):
    make, problem, reader = DIAGNOSED[name]
    path = tmp_path / "ckpt.pth"
    torch.save(make(tv), path)
    if problem is None:  # detected as it is (encoder): nothing to diagnose, and it converts exactly
        assert convert([str(path), "-o", str(tmp_path / "w.pkl")]) == 0, capsys.readouterr().err
        BAD_INPUTS.count(f"convert: {name}", True)
        return
    refused(capsys, f"convert: {name}", lambda: convert([str(path), "-o", str(tmp_path / "x.pkl")]), path,
            problem=problem, protect=[tmp_path], absent=[tmp_path / "x.pkl"])
    if reader is not None:  # the hint is right: that --format reads the very weights
        from benchmark.weights.convert import load_converted

        assert convert([str(path), "--format", reader, "-o", str(tmp_path / "w.pkl")]) == 0, capsys.readouterr().err
        model = load_converted(tmp_path / "w.pkl")["model"]
        assert len(model) == 265
        np.testing.assert_array_equal(model["res4.2.conv2.weight"], tv["layer3.2.conv2.weight"].numpy())


# ----------------------------------------------------------------------------- low 11: values inside a converted .pkl

@pytest.fixture(scope="module")
def genuine(module_tmp, synthetic_checkpoint):
    from benchmark.weights.convert import convert_file

    path = convert_file(synthetic_checkpoint("torchvision", width=WIDTH), module_tmp / "genuine.pkl").output
    return path.read_bytes()


def _with(raw, change):
    data = pickle.loads(raw)
    change(data)
    return pickle.dumps(data, protocol=5)


def _setting(key, value):
    return lambda data: data["__provenance__"]["input_settings"].__setitem__(key, value)


def _big_endian(key):
    return lambda data: data["model"].__setitem__(key, data["model"][key].astype(">f4"))


PKL_VALUES = {  # name -> (change to the genuine file's data, problem)
    "big-endian array": (_big_endian("res3.1.conv2.weight"), "arrays in a foreign byte order 1 (res3.1.conv2.weight: >f4)"),
    "NaN in PIXEL_MEAN": (_setting("MODEL.PIXEL_MEAN", [math.nan, 116.28, 103.53]),
                          "__provenance__ input_settings: MODEL.PIXEL_MEAN is [nan, 116.28, 103.53]: each value must be "
                          "a finite number"),
    "Inf in PIXEL_STD": (_setting("MODEL.PIXEL_STD", [58.395, math.inf, 57.375]), "MODEL.PIXEL_STD is [58.395, inf, 57.375]"),
    "zero in PIXEL_STD": (_setting("MODEL.PIXEL_STD", [58.395, 0.0, 57.375]), "each value must be a finite number above 0"),
    "PIXEL_STD of 2 values": (_setting("MODEL.PIXEL_STD", [58.395, 57.12]),
                              "MODEL.PIXEL_STD is [58.395, 57.12], not a list of 3 numbers (one per input channel)"),
    "PIXEL_MEAN of 4 values": (_setting("MODEL.PIXEL_MEAN", [1.0, 2.0, 3.0, 4.0]), "not a list of 3 numbers"),
    "PIXEL_MEAN a string": (_setting("MODEL.PIXEL_MEAN", "123.675,116.28,103.53"), "not a list of 3 numbers"),
    "PIXEL_MEAN of booleans": (_setting("MODEL.PIXEL_MEAN", [True, False, True]), "not a list of 3 numbers"),
    "INPUT.FORMAT YUV": (_setting("INPUT.FORMAT", "YUV"), "INPUT.FORMAT is 'YUV', not one of RGB, BGR"),
}


@pytest.mark.parametrize("name", PKL_VALUES)
def test_bad_values_in_a_converted_pkl_are_refused_before_launch(name, genuine, tmp_path, capsys):
    change, problem = PKL_VALUES[name]
    bad = tmp_path / "weights.pkl"
    bad.write_bytes(_with(genuine, change))
    refused(capsys, f"--weights .pkl: {name}", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(bad), "--output", str(tmp_path / "out")]),
        bad, problem=problem, protect=[tmp_path], absent=[tmp_path / "out"])


def test_the_genuine_pkl_passes_the_same_checks(genuine, tmp_path):
    """The checks refuse what is wrong, not converted files as such (SimCLR's mean 0 and std 255 included)."""
    from benchmark.weights.convert import prepare_weights
    from benchmark.weights.formats import SIMCLR_INPUT

    (tmp_path / "w.pkl").write_bytes(genuine)
    (tmp_path / "simclr.pkl").write_bytes(_with(genuine, lambda d: d["__provenance__"]["input_settings"].update(SIMCLR_INPUT)))
    assert prepare_weights(tmp_path / "w.pkl").input_settings["MODEL.PIXEL_STD"] == [58.395, 57.120, 57.375]
    assert prepare_weights(tmp_path / "simclr.pkl").input_settings["MODEL.PIXEL_STD"] == [255.0, 255.0, 255.0]


# ----------------------------------------------------------------------------- low 16: a .pkl's sha256 claim is not recorded

SOURCE_SHA256 = {  # name -> (--weights from (genuine .pkl bytes, raw checkpoint, tmp), recorded source_sha256 from the raw bytes)
    "converted .pkl, genuine provenance": (lambda pkl, raw, tmp: _written(tmp / "w.pkl", pkl), lambda raw: None),
    "converted .pkl, forged claim": (
        lambda pkl, raw, tmp: _written(tmp / "w.pkl", _with(pkl, lambda d: d["__provenance__"].__setitem__("sha256", "ab" * 32))),
        lambda raw: None),
    "raw checkpoint (hashed here)": (lambda pkl, raw, tmp: _written(tmp / "w.pth", raw),
                                     lambda raw: hashlib.sha256(raw).hexdigest()),
}


def _written(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", SOURCE_SHA256)
def test_source_sha256_is_recorded_only_where_the_suite_hashed_the_original(name, genuine, synthetic_checkpoint, tmp_path,
                                                                          isolated_cache):
    from benchmark.weights.convert import prepare_weights

    write, expected = SOURCE_SHA256[name]
    raw = synthetic_checkpoint("torchvision", width=WIDTH).read_bytes()
    prepared = prepare_weights(write(genuine, raw, tmp_path))
    fields = prepared.record_fields()
    assert fields["source_sha256"] == prepared.source_sha256 == expected(raw), name
    assert fields["sha256"] == hashlib.sha256(prepared.path.read_bytes()).hexdigest()  # what was loaded: always ours
    BAD_INPUTS.count(f"source_sha256: {name}", True)


# ----------------------------------------------------------------------------- low 12: the zoo cache

@pytest.fixture
def zoo_mirror(http_server, monkeypatch, isolated_cache, synthetic_checkpoint):
    """(cache, the genuine bytes): exemplar_v1.pth served, as a width-8 torchvision checkpoint, from a local mirror."""
    base, folder = http_server
    body = synthetic_checkpoint("torchvision", width=WIDTH).read_bytes()
    (folder / "exemplar_v1.pth").write_bytes(body)
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    return isolated_cache, body


def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def _folder(path):
    path.mkdir(parents=True)


NOT_A_FILE = {  # name -> (entry of cache/zoo, how it is made, what the line says)
    "sha256.json a FIFO": ("sha256.json", _fifo, "not a regular file; delete it and the cached files to start afresh"),
    "sha256.json a folder": ("sha256.json", _folder, "not a regular file"),
    "urls.json a FIFO": ("urls.json", _fifo, "not a regular file; delete it (it only says where files came from)"),
    ".lock a FIFO": (".lock", _fifo, "cannot be opened as the zoo's lock file"),
    ".lock a folder": (".lock", _folder, ".lock: "),
}


@pytest.mark.parametrize("name", NOT_A_FILE)
def test_a_zoo_record_that_is_not_a_regular_file_is_refused_not_waited_on(name, zoo_mirror, capsys):
    cache, _ = zoo_mirror
    entry, make, problem = NOT_A_FILE[name]
    make(cache / "zoo" / entry)
    with deadline(30):
        line = refused(capsys, f"zoo: {name}", lambda: convert(["zoo:exemplar_v1", "-o", str(cache.parent / "x.pkl")]),
                       cache / "zoo" / entry, problem=problem, absent=[cache.parent / "x.pkl"])
    assert line.startswith("error: zoo:exemplar_v1: ")
    pins = cache / "zoo" / "sha256.json"
    assert entry == "sha256.json" or not pins.is_file() or json.loads(pins.read_text()) == {}


UNPINNED = {  # name -> bytes found in the cache where no pin vouches for them
    "an HTML page": b"<!doctype html><html><body>Sign in to download</body></html>",
    "a truncated checkpoint": None,  # half of the genuine file
    "empty": b"",
}


@pytest.mark.parametrize("name", UNPINNED)
def test_an_unpinned_cached_file_is_verified_before_it_is_pinned(name, zoo_mirror, capsys):
    """Found in the cache without a pin (an older version cached it unchecked, or it was copied in): it is
    pinned only once it loads; one that does not is downloaded afresh, and the genuine file is pinned."""
    cache, body = zoo_mirror
    found = UNPINNED[name] if UNPINNED[name] is not None else body[: len(body) // 2]
    (cache / "zoo").mkdir(parents=True)
    (cache / "zoo" / "exemplar_v1.pth").write_bytes(found)
    BAD_INPUTS.attempt(f"zoo: unpinned cached file: {name}")
    assert convert(["zoo:exemplar_v1", "-o", str(cache.parent / "w.pkl")]) == 0, capsys.readouterr().err
    pinned = json.loads((cache / "zoo" / "sha256.json").read_text())
    assert pinned == {"exemplar_v1.pth": hashlib.sha256(body).hexdigest()} != {"exemplar_v1.pth": hashlib.sha256(found).hexdigest()}
    assert (cache / "zoo" / "exemplar_v1.pth").read_bytes() == body
    BAD_INPUTS.succeed(f"zoo: unpinned cached file: {name}")


# ----------------------------------------------------------------------------- low 14: make_synthetic names the flag or file

make_synthetic = tool("make_synthetic")


def _torn_marker(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / ".synthetic_voc.json").write_text('{"format": "voc", "num_tr')  # a write cut short
    return ["--out", out, "--format", "voc"], out / ".synthetic_voc.json", 1, "not valid JSON"


def _binary_marker(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / ".synthetic_voc.json").write_bytes(b"\xff\xfe\x00garbage")
    return ["--out", out, "--format", "voc"], out / ".synthetic_voc.json", 1, "not valid JSON"


MAKE_SYNTHETIC = {  # name -> argv builder(tmp) -> (argv, what the line names, exit code, problem)
    "--seed -1": lambda tmp: (["--out", tmp / "d", "--format", "voc", "--seed", "-1"], "--seed -1", 2,
                              "the random seed must be 0 or more"),
    "--num-train 1": lambda tmp: (["--out", tmp / "d", "--format", "voc", "--num-train", "1"], "--num-train 1", 2,
                                  "a split needs at least 2 images"),
    "--num-test -3": lambda tmp: (["--out", tmp / "d", "--num-test", "-3"], "--num-test -3", 2, "at least 2 images"),
    "torn completion marker": _torn_marker,
    "binary completion marker": _binary_marker,
}


@pytest.mark.parametrize("name", MAKE_SYNTHETIC)
def test_make_synthetic_names_the_flag_or_the_file(name, tmp_path, capsys):
    argv, named, rc, problem = MAKE_SYNTHETIC[name](tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    refused(capsys, f"make_synthetic: {name}", lambda: make_synthetic([str(a) for a in argv]), named, problem=problem,
            rc=rc, protect=[tmp_path])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written


# ----------------------------------------------------------------------------- the synthetic checkpoint writer's default

WRITER = {  # name -> (extra argv of python -m benchmark.weights.synthetic, the init it must write)
    "default": ([], "torchvision"),
    "--init torchvision": (["--init", "torchvision"], "torchvision"),
    "--init random (the old default)": (["--init", "random"], "random"),
}


@pytest.mark.parametrize("name", WRITER)
def test_the_synthetic_writer_defaults_to_the_init_sanity_passes_on(name, tmp_path, capsys):
    """N(0, 1) everywhere fails --sanity (voc07 AP50 67.5 < 90) with weights that have no bug: the README's random
    checkpoint is written with torchvision's initialisation unless --init random is asked for."""
    from benchmark.weights.synthetic import main, synthetic_checkpoint

    extra, init = WRITER[name]
    main([str(tmp_path / "c.pth"), "--width", str(WIDTH), "--layout", "torchvision", *extra])
    assert f"seed 0, {init} init" in capsys.readouterr().out
    saved = torch.load(tmp_path / "c.pth", weights_only=True)
    for key, value in synthetic_checkpoint("torchvision", 0, 50, WIDTH, init).items():
        assert torch.equal(saved[key], value), key
    bn = saved["layer2.1.bn2.weight"]
    assert bool((bn == 1).all()) == (init == "torchvision")  # BN at identity, as torchvision's ResNet.__init__ leaves it
    std = float(saved["layer3.0.conv2.weight"].std())  # He-normal, fan_out = 3*3*32 channels: std sqrt(2/288) = 0.083
    assert (abs(std - math.sqrt(2 / 288)) < 0.01) if init == "torchvision" else (abs(std - 1) < 0.05)


# ----------------------------------------------------------------------------- reproduce --trials and --seed, before planning

TABLE = ROOT / "tests" / "fixtures" / "paper" / "smoke.yaml"
REPRODUCE = {  # name -> (argv, option named, problem)
    "--trials 10**10": (["--trials", str(10**10)], "--trials", "--trials must be >= 1 and at most 1000, got 10000000000"),
    "--trials 1001": (["--trials", "1001"], "--trials", "at most 1000, got 1001"),
    "--trials 0": (["--trials", "0"], "--trials", "--trials must be >= 1"),
    "--seed -1": (["--seed", "-1"], "--seed", "--seed must be in 0..2**32-1 for every trial (seed + trial), got -1"),
    "--seed 2**32-1 with 2 trials": (["--seed", str(2**32 - 1), "--trials", "2"], "--seed", "got 4294967295"),
}


@pytest.mark.parametrize("name", REPRODUCE)
def test_reproduce_refuses_trials_and_seeds_run_transfer_refuses(name, tmp_path, capsys):
    argv, option, problem = REPRODUCE[name]
    out = tmp_path / "out"
    with deadline(60):  # 10**10 planned runs would fill the memory long before this
        refused(capsys, f"reproduce: {name}", lambda: tool("reproduce")(
            ["--table", str(TABLE), "--smoke", "--dry-run", "--output", str(out), *argv]), option, problem=problem,
            protect=[tmp_path], absent=[out])


def test_reproduce_and_run_transfer_cap_trials_alike():
    from benchmark.engine import jobs
    from benchmark.reproduce import plan

    assert plan.MAX_TRIALS == jobs.MAX_TRIALS == 1000
