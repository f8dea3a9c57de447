"""Checkpoints a user (or a stranger) might hand to tools/convert.py or --weights.

Each gets exactly one line naming the file and the problem, exit code 1, no output file, nothing
else on disk changed; the code-running ones never run (their marker file is never created), also
when $TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD asks torch to load everything.
"""
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from badlib import ROOT, count, refused, tool

convert = tool("convert")


class RunsCode:
    """Unpickling this calls open(marker, "w"): code running, visible as a new file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def source(synthetic_checkpoint):
    """A valid torchvision ResNet-50 state dict (shared, read-only) the broken ones derive from."""
    return torch.load(synthetic_checkpoint("torchvision"), weights_only=True)


def _vit_state_dict():
    sd = {"cls_token": torch.zeros(1, 1, 64), "pos_embed": torch.zeros(1, 17, 64),
          "patch_embed.proj.weight": torch.zeros(64, 3, 16, 16), "patch_embed.proj.bias": torch.zeros(64)}
    for b in range(2):
        sd.update({f"blocks.{b}.attn.qkv.weight": torch.zeros(192, 64), f"blocks.{b}.mlp.fc1.weight": torch.zeros(256, 64),
                   f"blocks.{b}.norm1.weight": torch.ones(64)})
    sd["head.weight"] = torch.zeros(1000, 64)
    return {"model": sd}


def _save(path, obj):
    torch.save(obj, path)
    return path


def _corpus(tmp, source, marker):
    """{name: (path, problem the message must contain)}: every broken checkpoint, written to `tmp`."""
    good = io.BytesIO()
    torch.save(source, good)
    raw = good.getvalue()
    nan = dict(source)
    nan["layer2.1.conv2.weight"] = source["layer2.1.conv2.weight"].clone()
    nan["layer2.1.conv2.weight"][0, 0, 0, 0] = float("nan")
    inf = dict(source)
    inf["bn1.running_var"] = source["bn1.running_var"].clone()
    inf["bn1.running_var"][3] = float("inf")
    wrong = dict(source)
    wrong["layer3.0.conv1.weight"] = source["layer3.0.conv1.weight"].transpose(0, 1).contiguous()
    zipped = tmp / "notes.pth"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/readme.txt", "not a checkpoint")
    files = {
        "truncated checkpoint": (tmp / "truncated.pth", "truncated"),
        "random bytes": (tmp / "random.pth", "not a PyTorch checkpoint"),
        "zip of a non-checkpoint": (zipped, "not a readable PyTorch checkpoint"),
        "empty file": (tmp / "empty.pth", "empty file"),
        "code-running checkpoint (torch.save)": (_save(tmp / "evil.pth", {"state_dict": dict(source), "x": RunsCode(marker)}),
                                                 "refused: unpickling it would call io.open, i.e. run code"),
        "code-running plain pickle": (tmp / "evil_pickle.pth", "refused"),
        "NaN weights": (_save(tmp / "nan.pth", nan), "not finite: tensors with NaN or Inf values 1 (res3.1.conv2.weight)"),
        "Inf weights": (_save(tmp / "inf.pth", inf), "not finite: tensors with NaN or Inf values 1 (stem.conv1.norm.running_var)"),
        "wrong shapes": (_save(tmp / "wrong_shape.pth", wrong), "wrong shape 1 (res4.0.conv1.weight: (512, 256, 1, 1), expected (256, 512, 1, 1))"),
        "ViT state dict": (_save(tmp / "vit.pth", _vit_state_dict()), "not a ResNet checkpoint of a known format"),
        "ResNet-18": (_save(tmp / "resnet18.pth", torchvision.models.resnet18().state_dict()), "basic-block ResNet (ResNet-18/34"),
        "empty state dict": (_save(tmp / "empty_dict.pth", {"state_dict": {}}), "empty state dict"),
        "a tensor, not a dict": (_save(tmp / "tensor.pth", torch.zeros(3)), "top level is a Tensor"),
        "a folder": (tmp / "folder.pth", "not a regular file"),
    }
    (tmp / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    (tmp / "random.pth").write_bytes(np.random.default_rng(0).bytes(1 << 16))
    (tmp / "empty.pth").write_bytes(b"")
    (tmp / "evil_pickle.pth").write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}, protocol=2))
    (tmp / "folder.pth").mkdir()
    return files


def test_broken_checkpoints_are_refused_by_convert(tmp_path, source, capsys, monkeypatch):
    marker = tmp_path / "MARKER_code_ran"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = _corpus(corpus, source, marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # an explicit weights_only=True must win
    for name, (path, problem) in files.items():
        refused(capsys, f"convert: {name}", lambda: convert([str(path)]), path, problem=problem, protect=[corpus],
                absent=[path.with_suffix(".pkl"), marker])
    assert sorted(p.name for p in corpus.iterdir()) == sorted(p.name for p, _ in files.values())


def test_broken_checkpoints_are_refused_as_weights(tmp_path, source, capsys):
    """The same files as --weights: refused before any data is read or compute spent."""
    run_transfer = tool("run_transfer")
    marker = tmp_path / "MARKER_code_ran"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = _corpus(corpus, source, marker)
    out, cache = tmp_path / "out", tmp_path / "cache"
    for name in ("truncated checkpoint", "code-running checkpoint (torch.save)", "NaN weights", "ResNet-18"):
        path, problem = files[name]
        refused(capsys, f"--weights: {name}", lambda: run_transfer(["--task", "voc07", "--smoke", "--weights", str(path),
                                                                     "--output", str(out), "--data-root", str(tmp_path)]),
                path, problem=problem, protect=[corpus], absent=[out, marker])
    assert not list(cache.rglob("*.pkl"))


def _hostile_pkl(path, marker):
    """A .pkl that looks like converted weights but runs code when detectron2 pickle.loads it."""
    path.write_bytes(pickle.dumps({"model": {"stem.conv1.weight": np.zeros(3)}, "__author__": RunsCode(marker),
                                   "matching_heuristics": True}, protocol=4))
    return path


def test_hostile_pkl_as_weights_never_runs(tmp_path, capsys):
    run_transfer = tool("run_transfer")
    marker = tmp_path / "MARKER_code_ran"
    evil = _hostile_pkl(tmp_path / "evil.pkl", marker)
    refused(capsys, "--weights: code-running .pkl", lambda: run_transfer(
        ["--task", "voc07", "--smoke", "--weights", str(evil), "--output", str(tmp_path / "out")]),
        evil, problem="refused global io.open", protect=[tmp_path], absent=[marker, tmp_path / "out"])
    refused(capsys, "convert: code-running .pkl", lambda: convert([str(evil), "-o", str(tmp_path / "o.pkl")]),
            evil, problem="not a PyTorch checkpoint (unreadable pickle, not loaded)", protect=[tmp_path],
            absent=[marker, tmp_path / "o.pkl"])


def test_cli_stderr_is_one_line_in_a_real_process(tmp_path):
    """In-process checks see what pytest captures; a real process also shows warnings torch prints."""
    marker = tmp_path / "MARKER_code_ran"
    evil = _hostile_pkl(tmp_path / "evil.pkl", marker)
    run = subprocess.run([sys.executable, "tools/convert.py", str(evil)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONWARNINGS="default"))
    lines = run.stderr.strip().splitlines()
    ok = run.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"error: {evil}: ") and not marker.exists()
    count("convert (real process): code-running .pkl", ok)
    assert ok, run.stderr


def test_converted_pkl_with_nan_is_refused_as_weights(tmp_path, synthetic_checkpoint, capsys):
    run_transfer = tool("run_transfer")
    from benchmark.weights.convert import convert_file

    good = convert_file(synthetic_checkpoint("torchvision"), tmp_path / "good.pkl").output
    data = pickle.loads(good.read_bytes())
    data["model"]["res5.2.conv3.weight"] = data["model"]["res5.2.conv3.weight"].copy()
    data["model"]["res5.2.conv3.weight"][0] = np.nan
    bad = tmp_path / "nan.pkl"
    bad.write_bytes(pickle.dumps(data, protocol=5))
    refused(capsys, "--weights: converted .pkl with NaN", lambda: run_transfer(
        ["--task", "voc07", "--smoke", "--weights", str(bad), "--output", str(tmp_path / "out")]),
        bad, problem="res5.2.conv3.weight", protect=[tmp_path], absent=[tmp_path / "out"])


def test_detectron2_checkpointer_path_reads_pkl_and_pth_safely(tmp_path, monkeypatch):
    """What the engine's trainer loads (MODEL.WEIGHTS, and --resume's last_checkpoint) goes
    through the restricted unpickler or torch.load(weights_only=True), whatever the environment."""
    from benchmark.weights.convert import ConversionError
    from benchmark.engine import SafeCheckpointer

    marker = tmp_path / "MARKER_code_ran"
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConversionError, match="refused global io.open"):
        SafeCheckpointer(model, str(tmp_path)).load(str(_hostile_pkl(tmp_path / "evil.pkl", marker)))
    out = tmp_path / "trial_0"
    out.mkdir()
    torch.save({"model": model.state_dict(), "iteration": 5, "x": RunsCode(marker)}, out / "model_0000005.pth")
    (out / "last_checkpoint").write_text("model_0000005.pth")
    with pytest.raises(pickle.UnpicklingError, match="io.open"):
        SafeCheckpointer(model, str(out)).resume_or_load("", resume=True)
    (out / "model_0000005.pyth").write_bytes((out / "model_0000005.pth").read_bytes())
    (out / "last_checkpoint").write_text("model_0000005.pyth")
    with pytest.raises(ValueError, match=".pyth files are not read"):
        SafeCheckpointer(model, str(out)).resume_or_load("", resume=True)
    ok = not marker.exists()
    count("checkpointer: code-running .pkl / resume .pth / .pyth", ok)
    assert ok
