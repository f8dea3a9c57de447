"""Checkpoints a user (or a stranger) might hand to tools/convert.py or --weights.

Each gets exactly one line naming the file and the problem, exit code 1, no output file, nothing
else on disk changed; the code-running ones never run (their marker file is never created), also
when $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD asks torch to load everything. One case per input, each
written alone from a width-8 ResNet-50 (the refusals do not depend on the network's size).
"""
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from badlib import ROOT, count, refused, tool

from tests.helpers import CodeRunningPickle, write_code_running_pickle

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


def _resnet18_state_dict():
    import torchvision

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.resnet18().state_dict().items()}
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
    "ResNet-18": ("resnet18.pth", _saved(lambda s, m: _resnet18_state_dict()), "basic-block ResNet (ResNet-18/34"),
    "empty state dict": ("empty_dict.pth", _saved(lambda s, m: {"state_dict": {}}), "empty state dict"),
    "a tensor, not a dict": ("tensor.pth", _saved(lambda s, m: torch.zeros(3)), "top level is a Tensor"),
    "a folder": ("folder.pth", lambda p, s, m: p.mkdir(), "not a regular file"),
}


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


@pytest.mark.parametrize("name", ["truncated checkpoint", "code-running checkpoint (torch.save)", "NaN weights", "ResNet-18"])
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
    count("convert (real process): code-running .pkl", True)


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
    count("checkpointer: code-running .pkl", True)


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
    count("checkpointer: code-running resume .pth", True)


def test_the_checkpointer_does_not_read_pyth_files(tmp_path, hostile_environment):
    from benchmark.engine.checkpointer import SafeCheckpointer

    marker, model = hostile_environment
    _last_checkpoint(tmp_path / "trial_0", model, marker, ".pyth")
    with pytest.raises(ValueError, match=".pyth files are not read"):
        SafeCheckpointer(model, str(tmp_path / "trial_0")).resume_or_load("", resume=True)
    assert not marker.exists()
    count("checkpointer: .pyth", True)
