"""Checkpoints a user (or a stranger) might hand to tools/convert.py or --weights.

Each gets exactly one line naming the file and the problem, exit code 1, no output file, nothing
else on disk changed; the code-running ones never run (their marker file is never created), also
when $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD asks torch to load everything. One case per input, each
written alone from a width-8 ResNet-50 (the refusals do not depend on the network's size).
"""
import datetime
import io
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from tests.helpers.hostile import CodeRunningPickle, write_code_running_pickle
from tests.helpers.refusal import refused
from tests.helpers.tally import BAD_INPUTS
from tests.helpers.tools import ROOT, tool

convert = tool("convert")
WIDTH = 8


@pytest.fixture(scope="module")
def source(synthetic_checkpoint):
    """A valid torchvision-layout ResNet-50 state dict of width 8 (shared: copy before changing)."""
    return torch.load(synthetic_checkpoint("torchvision", width=WIDTH), weights_only=True)


def _vit_state_dict():
    sd = {"cls_token": torch.zeros(1, 1, 64), "pos_embed": torch.zeros(1, 17, 64),
          "patch_embed.proj.weight": torch.zeros(64, 3, 16, 16), "patch_embed.proj.bias": torch.zeros(64)}
    for b in range(2):
        sd.update({f"blocks.{b}.attn.qkv.weight": torch.zeros(192, 64), f"blocks.{b}.mlp.fc1.weight": torch.zeros(256, 64),
                   f"blocks.{b}.norm1.weight": torch.ones(64)})
    sd["head.weight"] = torch.zeros(1000, 64)
    return {"model": sd}


def _cifar_resnet18_state_dict():
    """A CIFAR ResNet-18 (solo-learn's CIFAR models): torchvision's, its stem conv 3x3 instead of 7x7.
    ResNet-18 itself converts (tests/weights/test_basic_blocks.py); this stem is not detectron2's."""
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.resnet18().state_dict().items()}
    shapes["conv1.weight"] = (64, 3, 3, 3)
    return {k: torch.zeros(s) for k, s in shapes.items()}


def _changed(source, key, change):
    sd = dict(source)
    sd[key] = source[key].clone()
    change(sd[key])
    return sd


def _saved(obj):
    return lambda path, source, marker: torch.save(obj(source, marker), path)


def _truncated(path, source, marker):
    buffer = io.BytesIO()
    torch.save(source, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _zip_of_notes(path, source, marker):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/readme.txt", "not a checkpoint")


# What training scripts save beside the weights (issue 22, medium 10): plain data, rebuilt by globals that call no code
PLAIN_EXTRAS = {
    "numpy scalar": np.float64(71.1),  # best_acc1 as torchvision's and MoCo's main.py keep it
    "numpy array": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # non-contiguous: rebuilt by ndarray.__setstate__
    "datetime": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "PosixPath": pathlib.PosixPath("/runs/moco/checkpoint_0199.pth.tar"),
}


CORPUS = {  # name -> (file name, writer(path, source, marker), problem the message must contain)
    "truncated checkpoint": ("truncated.pth", _truncated, "truncated"),
    "random bytes": ("random.pth", lambda p, s, m: p.write_bytes(np.random.default_rng(0).bytes(1 << 16)),
                     "not a PyTorch checkpoint"),
    "zip of a non-checkpoint": ("notes.pth", _zip_of_notes, "not a readable PyTorch checkpoint"),
    "empty file": ("empty.pth", lambda p, s, m: p.write_bytes(b""), "empty file"),
    "code-running checkpoint (torch.save)": (
        "evil.pth", _saved(lambda s, m: {"state_dict": dict(s), "x": CodeRunningPickle(m)}),
        "refused: unpickling it would call posix.system, i.e. run code"),
    # protocol 2: torch's legacy loader reads it as its first record, so the weights-only
    # unpickler meets the global itself (with 5 it stops earlier, at an unreadable header)
    "code-running plain pickle": (
        "evil_pickle.pth", lambda p, s, m: p.write_bytes(pickle.dumps({"state_dict": CodeRunningPickle(m)}, protocol=2)),
        "refused: unpickling it would call posix.system"),
    "NaN weights": ("nan.pth", _saved(lambda s, m: _changed(s, "layer2.1.conv2.weight", lambda t: t.view(-1)[0].fill_(float("nan")))),
                    "not finite: tensors with NaN or Inf values 1 (res3.1.conv2.weight)"),
    "Inf weights": ("inf.pth", _saved(lambda s, m: _changed(s, "bn1.running_var", lambda t: t[3].fill_(float("inf")))),
                    "not finite: tensors with NaN or Inf values 1 (stem.conv1.norm.running_var)"),
    "wrong shapes": ("wrong_shape.pth",
                     _saved(lambda s, m: {**s, "layer3.0.conv1.weight": s["layer3.0.conv1.weight"].transpose(0, 1).contiguous()}),
                     "wrong shape 1 (res4.0.conv1.weight: (64, 32, 1, 1), expected (32, 64, 1, 1))"),
    "ViT state dict": ("vit.pth", _saved(lambda s, m: _vit_state_dict()), "not a ResNet checkpoint of a known format"),
    "CIFAR ResNet-18": ("resnet18_cifar.pth", _saved(lambda s, m: _cifar_resnet18_state_dict()),
                        "wrong shape 1 (stem.conv1.weight: (64, 3, 3, 3), expected (64, 3, 7, 7))"),
    "empty state dict": ("empty_dict.pth", _saved(lambda s, m: {"state_dict": {}}), "empty state dict"),
    "a tensor, not a dict": ("tensor.pth", _saved(lambda s, m: torch.zeros(3)), "top level is a Tensor"),
    "a folder": ("folder.pth", lambda p, s, m: p.mkdir(), "not a regular file"),
    # values a backbone weight cannot be (benchmark/weights/tensors.py): one line naming key and dtype
    "float8 tensor": ("f8.pth", _saved(lambda s, m: _as(s, "layer1.0.conv1.weight", lambda t: t.to(torch.float8_e4m3fn))),
                      "tensor 'layer1.0.conv1.weight' is float8_e4m3fn"),
    "quantized tensor": ("qint8.pth", _saved(lambda s, m: _as(s, "layer2.0.conv2.weight", _quantized)),
                         "tensor 'layer2.0.conv2.weight' is quantized (qint8)"),
    "sparse tensor": ("sparse.pth", _saved(lambda s, m: _as(s, "layer1.0.bn1.weight", lambda t: t.to_sparse())),
                      "tensor 'layer1.0.bn1.weight' is sparse (sparse_coo, float32)"),
    "meta tensor": ("meta.pth", _saved(lambda s, m: _as(s, "conv1.weight", lambda t: torch.empty(t.shape, device="meta"))),
                    "tensor 'conv1.weight' is a meta tensor (float32): it has a shape but no data"),
    "complex tensor": ("complex.pth", _saved(lambda s, m: _as(s, "layer3.0.conv1.weight", lambda t: t.to(torch.complex64))),
                       "tensor 'layer3.0.conv1.weight' is complex (complex64)"),
    "complex NaN tensor": ("complex_nan.pth", _saved(lambda s, m: _as(s, "layer3.0.conv1.weight",
                                                                     lambda t: torch.full(t.shape, complex(float("nan"), 0)))),
                           "tensor 'layer3.0.conv1.weight' is complex (complex64)"),
    "bool conv weight": ("bool.pth", _saved(lambda s, m: _as(s, "layer1.0.conv1.weight", lambda t: t > 0)),
                         "tensor 'layer1.0.conv1.weight' is bool: a convolution or BatchNorm tensor must be floating point"),
    "int64 conv weight": ("int64.pth", _saved(lambda s, m: _as(s, "layer4.0.conv3.weight", lambda t: (t * 100).long())),
                          "tensor 'layer4.0.conv3.weight' is int64: a convolution or BatchNorm tensor must be floating point"),
    "int64 BN weight": ("int64_bn.pth", _saved(lambda s, m: _as(s, "bn1.weight", lambda t: t.long())),
                        "tensor 'bn1.weight' is int64"),
    "negative BN running_var": ("negvar.pth", _saved(lambda s, m: _as(s, "layer2.1.bn3.running_var", lambda t: -t - 1)),
                                "BatchNorm variances cannot be negative: running_var tensors with negative values 1 "
                                "(res3.1.conv3.norm.running_var)"),
    "an int key": ("int_key.pth", _saved(lambda s, m: {**s, 5: torch.zeros(2)}), "key 5 (int) is not a string"),
    "a tuple key": ("tuple_key.pth", _saved(lambda s, m: {**s, ("layer1", 0): torch.zeros(2)}),
                    "key ('layer1', 0) (tuple) is not a string"),
    # pickle.dump of torch tensors: rebuilding them means an unrestricted torch.load; said so, not called hostile
    "plain pickle of torch tensors": ("pickled.pth", lambda p, s, m: p.write_bytes(pickle.dumps(dict(s), protocol=2)),
                                      "a plain pickle of torch tensors (pickle.dump, not torch.save)"),
    # plain data beside the weights is allowed (benchmark.weights.loading.SAFE_CHECKPOINT_GLOBALS); code beside it is not
    "code-running object beside plain data": (
        "evil_extras.pth", _saved(lambda s, m: {"state_dict": dict(s), **PLAIN_EXTRAS, "x": CodeRunningPickle(m)}),
        "refused: unpickling it would call posix.system, i.e. run code"),
    "code-running numpy-style pickle": (
        "evil_np.pth", lambda p, s, m: p.write_bytes(pickle.dumps({"conv1.weight": np.zeros(2), "x": CodeRunningPickle(m)},
                                                                  protocol=2)),
        "refused: unpickling it would call posix.system, i.e. run code"),
}


def _quantized(t):
    import warnings

    with warnings.catch_warnings():  # torch deprecates creating them; checkpoints holding them still exist
        warnings.simplefilter("ignore", UserWarning)
        return torch.quantize_per_tensor(t, 0.1, 0, torch.qint8)


def _as(source, key, change):
    """`source` with `key` replaced by change(a copy of it)."""
    return {**source, key: change(source[key].clone())}


def _write(tmp_path, name, source):
    """(path, problem, marker, corpus folder) of corpus input `name`, written alone in its folder."""
    file, writer, problem = CORPUS[name]
    corpus, marker = tmp_path / "corpus", tmp_path / "MARKER_code_ran"
    corpus.mkdir()
    writer(corpus / file, source, marker)
    return corpus / file, problem, marker, corpus


@pytest.mark.parametrize("name", CORPUS)
def test_a_broken_checkpoint_is_refused_by_convert(name, tmp_path, source, capsys, monkeypatch):
    path, problem, marker, corpus = _write(tmp_path, name, source)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # an explicit weights_only=True must win
    refused(capsys, f"convert: {name}", lambda: convert([str(path)]), path, problem=problem, protect=[corpus],
            absent=[path.with_suffix(".pkl"), marker])
    assert [p.name for p in corpus.iterdir()] == [path.name]  # no output, no temporary


@pytest.mark.parametrize("name", ["truncated checkpoint", "code-running checkpoint (torch.save)", "NaN weights", "CIFAR ResNet-18"])
def test_a_broken_checkpoint_is_refused_as_weights(name, tmp_path, source, capsys, isolated_cache):
    """The same files as --weights: refused before any data is read or compute spent."""
    path, problem, marker, corpus = _write(tmp_path, name, source)
    out = tmp_path / "out"
    refused(capsys, f"--weights: {name}", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(path), "--output", str(out), "--data-root", str(tmp_path)]),
        path, problem=problem, protect=[corpus], absent=[out, marker])
    assert not list(isolated_cache.rglob("*.pkl"))


def _hostile_pkl(path, marker):
    """A .pkl that looks like converted weights but runs code when detectron2 pickle.loads it."""
    return write_code_running_pickle(path, marker, wrap=lambda o: {
        "model": {"stem.conv1.weight": np.zeros(3)}, "__author__": o, "matching_heuristics": True})


def test_a_hostile_pkl_as_weights_never_runs(tmp_path, capsys):
    marker = tmp_path / "MARKER_code_ran"
    evil = _hostile_pkl(tmp_path / "evil.pkl", marker)
    refused(capsys, "--weights: code-running .pkl", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(evil), "--output", str(tmp_path / "out")]),
        evil, problem="refused global posix.system", protect=[tmp_path], absent=[marker, tmp_path / "out"])


def test_a_hostile_pkl_given_to_convert_is_not_loaded(tmp_path, capsys):
    marker = tmp_path / "MARKER_code_ran"
    evil = _hostile_pkl(tmp_path / "evil.pkl", marker)
    refused(capsys, "convert: code-running .pkl", lambda: convert([str(evil), "-o", str(tmp_path / "o.pkl")]),
            evil, problem="refused: unpickling it would call posix.system, i.e. run code", protect=[tmp_path],
            absent=[marker, tmp_path / "o.pkl"])


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_cli_stderr_is_one_line_in_a_real_process(tmp_path):
    """In-process checks see what pytest captures; a real process also shows warnings torch prints."""
    marker = tmp_path / "MARKER_code_ran"
    evil = _hostile_pkl(tmp_path / "evil.pkl", marker)
    run = subprocess.run([sys.executable, "-m", "benchmark.cli.convert", str(evil)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONWARNINGS="default"))
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1, run.stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {evil}: "), run.stderr
    assert not marker.exists()
    BAD_INPUTS.count("convert (real process): code-running .pkl", True)


def test_a_converted_pkl_with_nan_is_refused_as_weights(tmp_path, synthetic_checkpoint, capsys):
    from benchmark.weights.convert import convert_file

    good = convert_file(synthetic_checkpoint("torchvision", width=WIDTH), tmp_path / "good.pkl").output
    data = pickle.loads(good.read_bytes())
    data["model"]["res5.2.conv3.weight"] = data["model"]["res5.2.conv3.weight"].copy()
    data["model"]["res5.2.conv3.weight"][0] = np.nan
    bad = tmp_path / "nan.pkl"
    bad.write_bytes(pickle.dumps(data, protocol=5))
    refused(capsys, "--weights: converted .pkl with NaN", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(bad), "--output", str(tmp_path / "out")]),
        bad, problem="res5.2.conv3.weight", protect=[tmp_path], absent=[tmp_path / "out"])


@pytest.fixture
def hostile_environment(tmp_path, monkeypatch):
    """(marker, model): $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set, as a hostile environment would."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return tmp_path / "MARKER_code_ran", torch.nn.Linear(2, 2)


def test_the_checkpointer_reads_model_weights_pkl_safely(tmp_path, hostile_environment):
    """What the engine's trainer loads as MODEL.WEIGHTS goes through the restricted unpickler."""
    from benchmark.engine.checkpointer import SafeCheckpointer
    from benchmark.weights.convert import ConversionError

    marker, model = hostile_environment
    with pytest.raises(ConversionError, match="refused global posix.system"):
        SafeCheckpointer(model, str(tmp_path)).load(str(_hostile_pkl(tmp_path / "evil.pkl", marker)))
    assert not marker.exists()
    BAD_INPUTS.count("checkpointer: code-running .pkl", True)


def _last_checkpoint(folder, model, marker, suffix):
    folder.mkdir()
    torch.save({"model": model.state_dict(), "iteration": 5, "x": CodeRunningPickle(marker)}, folder / f"model_0000005{suffix}")
    (folder / "last_checkpoint").write_text(f"model_0000005{suffix}")


def test_the_checkpointer_resumes_with_weights_only(tmp_path, hostile_environment):
    """--resume's last_checkpoint goes through torch.load(weights_only=True), whatever the environment."""
    from benchmark.engine.checkpointer import SafeCheckpointer

    marker, model = hostile_environment
    _last_checkpoint(tmp_path / "trial_0", model, marker, ".pth")
    with pytest.raises(pickle.UnpicklingError, match="posix.system"):
        SafeCheckpointer(model, str(tmp_path / "trial_0")).resume_or_load("", resume=True)
    assert not marker.exists()
    BAD_INPUTS.count("checkpointer: code-running resume .pth", True)


def test_the_checkpointer_does_not_read_pyth_files(tmp_path, hostile_environment):
    from benchmark.engine.checkpointer import SafeCheckpointer

    marker, model = hostile_environment
    _last_checkpoint(tmp_path / "trial_0", model, marker, ".pyth")
    with pytest.raises(ValueError, match=".pyth files are not read"):
        SafeCheckpointer(model, str(tmp_path / "trial_0")).resume_or_load("", resume=True)
    assert not marker.exists()
    BAD_INPUTS.count("checkpointer: .pyth", True)


# ----------------------------------------------------------------------------- forged provenance: tampered weights get their own sha256

@pytest.fixture(scope="module")
def genuine(module_tmp, synthetic_checkpoint):
    """(path, bytes) of genuine converted width-8 weights (shared: read-only)."""
    from benchmark.weights.convert import convert_file

    path = convert_file(synthetic_checkpoint("torchvision", width=WIDTH), module_tmp / "genuine.pkl").output
    return path, path.read_bytes()


def test_a_tampered_pkl_reports_its_own_sha256_not_the_genuine_ones(genuine, tmp_path):
    """Provenance copied from a genuine file, arrays changed: the hash is of the bytes loaded; the
    copied claim is not recorded (source_sha256 None for any given .pkl: nothing can verify it)."""
    import hashlib

    from benchmark.weights.convert import prepare_weights

    path, raw = genuine
    data = pickle.loads(raw)
    data["model"]["res4.1.conv2.weight"] = data["model"]["res4.1.conv2.weight"] * 0 + 0.5
    forged = tmp_path / "forged.pkl"
    forged.write_bytes(pickle.dumps(data, protocol=5))
    real, fake = prepare_weights(path), prepare_weights(forged)
    assert real.sha256 == hashlib.sha256(raw).hexdigest()
    assert fake.sha256 == hashlib.sha256(forged.read_bytes()).hexdigest() != real.sha256
    assert fake.source_sha256 is None and real.source_sha256 is None  # a claim, copied: never recorded as verified
    assert (fake.format, fake.path) == ("torchvision", forged)
    BAD_INPUTS.count("forged provenance: tampered .pkl gets its own sha256", True)


def _pkl_with(raw, change):
    data = pickle.loads(raw)
    change(data)
    return pickle.dumps(data, protocol=5)


def _set(key, value):
    def change(data):
        data["model"][key] = value(data["model"][key])
    return change


PKL_CORPUS = {  # converted weights given as --weights: name -> (bytes from the genuine ones, problem)
    "int64 conv weight in a .pkl": (lambda raw: _pkl_with(raw, _set("res2.0.conv1.weight", lambda a: a.astype(np.int64))),
                                    "array 'res2.0.conv1.weight' is int64: a convolution or BatchNorm tensor must be floating"),
    "bool conv weight in a .pkl": (lambda raw: _pkl_with(raw, _set("res3.0.conv2.weight", lambda a: a > 0)),
                                   "array 'res3.0.conv2.weight' is bool"),
    "negative running_var in a .pkl": (lambda raw: _pkl_with(raw, _set("res5.2.conv1.norm.running_var", lambda a: -a - 1)),
                                       "running_var tensors with negative values 1 (res5.2.conv1.norm.running_var)"),
    "complex weight in a .pkl": (lambda raw: _pkl_with(raw, _set("stem.conv1.weight", lambda a: a.astype(np.complex64))),
                                 "non-numeric entries 1 (stem.conv1.weight)"),
    "a raw torch.save checkpoint named .pkl": (
        lambda raw: (lambda b: (torch.save({"w": torch.zeros(2)}, b), b.getvalue())[1])(io.BytesIO()),
        "a raw PyTorch checkpoint (torch.save zip archive), not converted weights: convert it first"),
}


@pytest.mark.parametrize("name", PKL_CORPUS)
def test_a_bad_converted_pkl_is_refused_as_weights(name, genuine, tmp_path, capsys):
    make, problem = PKL_CORPUS[name]
    bad = tmp_path / "weights.pkl"
    bad.write_bytes(make(genuine[1]))
    refused(capsys, f"--weights: {name}", lambda: tool("run_transfer")(
        ["--task", "voc07", "--smoke", "--weights", str(bad), "--output", str(tmp_path / "out")]),
        bad, problem=problem, protect=[tmp_path], absent=[tmp_path / "out"])


# ----------------------------------------------------------------------------- convert never destroys its input

def _same_path(tmp, src):
    return [str(src), "-o", str(src), "--force"]


def _dotted_path(tmp, src):
    return [str(src), "-o", str(src.parent / "." / "x" / ".." / src.name), "--force"]


def _symlink(tmp, src):
    (tmp / "link.pkl").symlink_to(src)
    return [str(src), "-o", str(tmp / "link.pkl"), "--force"]


def _hardlink(tmp, src):
    os.link(src, tmp / "hard.pkl")
    return [str(src), "-o", str(tmp / "hard.pkl"), "--force"]


OUTPUT_IS_INPUT = {  # name -> (input file name, argv builder, the file the line names, problem)
    "-o INPUT --force": ("moco.pth", _same_path, "moco.pth", "is the input checkpoint"),
    "-o a dotted path to INPUT --force": ("moco.pth", _dotted_path, "moco.pth", "is the input checkpoint"),
    "-o a symlink to INPUT --force": ("moco.pth", _symlink, "link.pkl", "itself (through a symbolic link)"),
    "-o a hard link to INPUT --force": ("moco.pth", _hardlink, "hard.pkl", "itself (a hard link to the same file)"),
    "raw checkpoint named .pkl": ("raw.pkl", lambda tmp, src: [str(src)], "raw.pkl",
                                  "a raw checkpoint named .pkl: its default output (INPUT with .pkl) would replace it; "
                                  "pass -o OTHER.pkl"),
    "raw checkpoint named .pkl --force": ("raw.pkl", lambda tmp, src: [str(src), "--force"], "raw.pkl",
                                          "a raw checkpoint named .pkl"),
    "raw checkpoint named .pkl -o INPUT --force": ("raw.pkl", lambda tmp, src: [str(src), "-o", str(src), "--force"],
                                                   "raw.pkl", "is the input checkpoint"),
}


@pytest.mark.parametrize("name", OUTPUT_IS_INPUT)
def test_convert_never_writes_over_its_input(name, tmp_path, synthetic_checkpoint, capsys):
    file, argv, named, problem = OUTPUT_IS_INPUT[name]
    src = tmp_path / file
    src.write_bytes(synthetic_checkpoint("moco", width=WIDTH).read_bytes())
    args = argv(tmp_path, src)
    line = refused(capsys, f"convert: {name}", lambda: convert(args), tmp_path / named, problem=problem, protect=[tmp_path])
    assert "--force" not in line.split("(")[0] and "nothing was written" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({file, "link.pkl", "hard.pkl"} & {
        p.name for p in tmp_path.iterdir()})  # no output, no temporary


def test_a_converted_pkl_given_to_convert_is_named_as_such(genuine, tmp_path, capsys):
    src = tmp_path / "w.pkl"
    src.write_bytes(genuine[1])
    refused(capsys, "convert: converted .pkl without -o", lambda: convert([str(src), "--force"]), src,
            problem="already converted weights (detectron2's .pkl, format torchvision): nothing to convert", protect=[tmp_path])


# ----------------------------------------------------------------------------- plain data beside the weights converts

@pytest.mark.parametrize("extra", [*PLAIN_EXTRAS, "all of them"])
def test_plain_data_beside_the_weights_converts(extra, tmp_path, source, capsys):
    """A checkpoint with a numpy scalar, array, datetime or PosixPath beside its state dict converts
    to the very arrays of the same checkpoint without it; torch's allow-list is unchanged after."""
    from benchmark.weights.convert import load_converted

    extras = PLAIN_EXTRAS if extra == "all of them" else {extra: PLAIN_EXTRAS[extra]}
    allowed = list(torch.serialization.get_safe_globals())
    torch.save({"state_dict": dict(source), "epoch": 200}, tmp_path / "plain.pth")
    torch.save({"state_dict": dict(source), "epoch": 200, **extras}, tmp_path / "extras.pth")
    for name in ("plain", "extras"):
        assert convert([str(tmp_path / f"{name}.pth")]) == 0, capsys.readouterr().err
    plain, with_extras = load_converted(tmp_path / "plain.pkl"), load_converted(tmp_path / "extras.pkl")
    assert sorted(plain["model"]) == sorted(with_extras["model"])
    for key, array in plain["model"].items():
        np.testing.assert_array_equal(with_extras["model"][key], array, err_msg=key)
    assert with_extras["__provenance__"]["format"] == plain["__provenance__"]["format"]
    assert list(torch.serialization.get_safe_globals()) == allowed  # allowed for the one load, not for the user's process


# ----------------------------------------------------------------------------- converted weights are not converted again

def _renamed(genuine, tmp, name):
    (tmp / name).write_bytes(genuine[1])
    return tmp / name


CONVERTED_AGAIN = {  # name -> (tool, argv builder(source file, tmp)): each names the converted file, writes nothing
    "convert converted.pkl -o other.pkl": ("convert", lambda src, tmp: [str(src), "-o", str(tmp / "other.pkl")]),
    "convert converted.pkl -o other.pkl --format torchvision": (
        "convert", lambda src, tmp: [str(src), "-o", str(tmp / "other.pkl"), "--format", "torchvision"]),
    "convert converted weights named .pth": ("convert", lambda src, tmp: [str(src), "-o", str(tmp / "other.pkl")]),
    "--weights converted weights named .pth": (
        "run_transfer", lambda src, tmp: ["--task", "voc07", "--smoke", "--weights", str(src), "--output", str(tmp / "out")]),
}


@pytest.mark.parametrize("name", CONVERTED_AGAIN)
def test_converted_weights_are_not_converted_again(name, genuine, tmp_path, capsys, isolated_cache):
    """Converting a converted file again would read detectron2's names as format 'backbone' and drop
    its real format and input settings (SimCLR's RGB in [0, 1]): refused, saying it can be used as it is."""
    which, argv = CONVERTED_AGAIN[name]
    work = tmp_path / "work"
    work.mkdir()
    src = _renamed(genuine, work, "w.pth" if "named .pth" in name else "w.pkl")
    args = argv(src, work)
    line = refused(capsys, f"{which}: {name}", lambda: tool(which)(args), src, protect=[work],
                   problem="already converted weights (detectron2's .pkl, format torchvision): nothing to convert",
                   absent=[work / "other.pkl", work / "out"])
    assert "--weights" in line and ("renamed to .pkl" in line) == (src.suffix != ".pkl"), line
    assert sorted(p.name for p in work.iterdir()) == [src.name] and not list(isolated_cache.rglob("*.pkl"))
