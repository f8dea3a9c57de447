"""SIGKILL inside a write: results.json, a converted .pkl, a training checkpoint, a download.

Each child process is stopped at a known point inside the write (its writer is patched, in the
child only, to write half the bytes, fsync them, signal, and sleep), so the kill lands mid-file.
Afterwards the file must be absent or the complete previous one, never torn, and the next run
must do the right thing: write it, skip it, or download it again.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.records import results
from benchmark.weights.convert import load_converted, prepare_weights
from tests.helpers.hostile import sha256
from tests.helpers.processes import run_python_and_kill
from tests.helpers.records import make_record
from tests.helpers.tools import tool

TORN_RECORD = """
import json, os, sys, time
from pathlib import Path
ready, out_dir, record_file = sys.argv[1:4]
def torn_dump(obj, f, **kw):
    text = json.dumps(obj, **kw)
    f.write(text[: len(text) // 2]); f.flush(); os.fsync(f.fileno())
    Path(ready).touch(); time.sleep(600)
json.dump = torn_dump
from benchmark.records import results
results.write_record(out_dir, json.loads(Path(record_file).read_text()))
"""

TORN_PICKLE = """
import os, pickle, sys, time
from pathlib import Path
ready = sys.argv[1]
def torn_dump(obj, f, protocol=None):
    data = pickle.dumps(obj, protocol=protocol)
    f.write(data[: len(data) // 2])
    while not hasattr(f, "fileno"):  # a writer wrapping the file (convert's hashing writer): the file under it
        f = next(v for v in vars(f).values() if hasattr(v, "write"))
    f.flush(); os.fsync(f.fileno())
    Path(ready).touch(); time.sleep(600)
pickle.dump = torn_dump
if sys.argv[2] == "cli":
    import runpy
    sys.argv = ["transfer-convert", *sys.argv[3:]]
    runpy.run_module("benchmark.cli.convert", run_name="__main__")
else:
    from benchmark.weights.convert import prepare_weights
    prepare_weights(sys.argv[3], cache_dir=sys.argv[4])
"""

TORN_CHECKPOINT = """
import io, sys, time, torch
from pathlib import Path
ready, out = sys.argv[1:3]
from benchmark.engine.checkpointer import SafeCheckpointer
torch.manual_seed(0)
model = torch.nn.Linear(300, 300)
checkpointer = SafeCheckpointer(model, out)
checkpointer.save("model_0000000", iteration=0)
with torch.no_grad():
    model.weight += 1
real_save = torch.save
def torn_save(obj, f, *a, **kw):
    buf = io.BytesIO(); real_save(obj, buf)
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
    Path(ready).touch(); time.sleep(600)
torch.save = torn_save
checkpointer.save("model_0000001", iteration=1)
"""

SLOW_DOWNLOAD = """
import contextlib, sys
from pathlib import Path
ready, what, arg = sys.argv[1:4]
from benchmark.weights import download
real = download._temporary  # the download's temporary file beside its destination: (file, path)
@contextlib.contextmanager
def signalling(dest):
    with real(dest) as (f, tmp):
        class Writer:
            def write(self, b):
                n = f.write(b); f.flush(); Path(ready).touch(); return n
            def __getattr__(self, name):
                return getattr(f, name)
        yield Writer(), tmp
download._temporary = signalling
if what == "fetch":
    download.fetch(arg, sys.argv[4], progress=False)
else:
    from benchmark.weights import zoo
    zoo.fetch(arg, progress=False)
"""


def _record(**over):
    """A record big enough that half of it is a torn file."""
    return make_record(environment={"padding": "x" * 20000}, **over)


def _leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


def test_kill_while_writing_the_first_record(tmp_path, faults):
    out = tmp_path / "run" / "trial_0"
    spec = tmp_path / "record.json"
    spec.write_text(json.dumps(_record()))
    faults.attempt("kill writing a new results.json")
    run_python_and_kill(TORN_RECORD, tmp_path, out, spec)
    assert not (out / "results.json").exists()  # absent, not torn
    assert len(_leftovers(out)) == 1  # the half-written temporary, invisible to readers
    assert results.gather([tmp_path / "run"]) == ([], [])
    assert not results.is_finished(out)  # so the next run runs the trial again ...
    results.write_record(out, _record())  # ... and its record lands whole
    assert results.read_record(out / "results.json").metrics["bbox"]["AP"] == 46.6
    faults.succeed("kill writing a new results.json")


def test_kill_while_overwriting_a_record_keeps_the_old_one(tmp_path, faults):
    out = tmp_path / "trial_0"
    old = results.write_record(out, _record(status="failed", reason="killed by the scheduler", metrics={}))
    before = sha256(old)
    spec = tmp_path / "record.json"
    spec.write_text(json.dumps(_record()))
    faults.attempt("kill overwriting results.json")
    run_python_and_kill(TORN_RECORD, tmp_path, out, spec)
    assert sha256(old) == before
    assert results.read_record(old).reason == "killed by the scheduler"
    faults.succeed("kill overwriting results.json")


def test_kill_while_converting_leaves_no_output_and_a_rerun_converts(tmp_path, synthetic_checkpoint, faults, capsys):
    src = synthetic_checkpoint("torchvision", width=8)
    out = tmp_path / "weights.pkl"
    faults.attempt("kill writing a converted .pkl (tools/convert.py)")
    run_python_and_kill(TORN_PICKLE, tmp_path, "cli", src, "-o", out)
    assert not out.exists()
    assert len(_leftovers(tmp_path)) == 1
    convert_main = tool("convert")

    assert convert_main([str(src), "-o", str(out)]) == 0  # no --force needed: nothing was there
    assert sorted(load_converted(out)["model"]) and "torchvision" in capsys.readouterr().out
    faults.succeed("kill writing a converted .pkl (tools/convert.py)")


def test_kill_while_overwriting_a_converted_file_keeps_it(tmp_path, synthetic_checkpoint, faults):
    src = synthetic_checkpoint("torchvision", width=8)
    out = tmp_path / "weights.pkl"
    convert_main = tool("convert")

    assert convert_main([str(src), "-o", str(out)]) == 0
    before = sha256(out)
    faults.attempt("kill overwriting a converted .pkl (--force)")
    run_python_and_kill(TORN_PICKLE, tmp_path, "cli", synthetic_checkpoint("moco", width=8), "-o", out, "--force")
    assert sha256(out) == before
    assert load_converted(out)["__author__"] == "torchvision"
    faults.succeed("kill overwriting a converted .pkl (--force)")


def test_kill_while_converting_into_the_cache(tmp_path, synthetic_checkpoint, faults):
    src, cache = synthetic_checkpoint("torchvision", width=8), tmp_path / "cache"
    faults.attempt("kill converting --weights into the cache")
    run_python_and_kill(TORN_PICKLE, tmp_path, "prepare", src, cache)
    assert [p.name for p in (cache / "converted").glob("*.pkl")] == []
    prepared = prepare_weights(src, cache_dir=cache)  # the next run converts again
    assert prepared.path.parent == cache / "converted" and load_converted(prepared.path)["__author__"] == "torchvision"
    faults.succeed("kill converting --weights into the cache")


def test_a_torn_file_in_the_conversion_cache_is_converted_again(tmp_path, synthetic_checkpoint, faults):
    """A cache written by something less careful (or a disk that lost its tail) is not trusted."""
    src, cache = synthetic_checkpoint("torchvision", width=8), tmp_path / "cache"
    good = prepare_weights(src, cache_dir=cache).path
    data = good.read_bytes()
    faults.attempt("torn .pkl in the conversion cache")
    good.write_bytes(data[: len(data) // 2])
    again = prepare_weights(src, cache_dir=cache)
    assert again.path == good and good.read_bytes() == data
    faults.succeed("torn .pkl in the conversion cache")


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_kill_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, faults):
    from benchmark.engine.checkpointer import SafeCheckpointer
    from benchmark.engine.worker import remove_stale_temporaries

    out = tmp_path / "trial_0"
    faults.attempt("kill while saving a training checkpoint")
    run_python_and_kill(TORN_CHECKPOINT, tmp_path, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["last_checkpoint", "model_0000000.pth"]
    assert (out / "last_checkpoint").read_text() == "model_0000000.pth"
    torch.manual_seed(0)
    expected = torch.nn.Linear(300, 300)
    model = torch.nn.Linear(300, 300)
    torch.nn.init.zeros_(model.weight)
    extra = SafeCheckpointer(model, str(out)).resume_or_load("", resume=True)  # what --resume does
    assert extra["iteration"] == 0
    assert torch.equal(model.weight, expected.weight) and torch.equal(model.bias, expected.bias)
    assert len(_leftovers(out)) == 1
    remove_stale_temporaries(out)  # what the next run does first
    assert _leftovers(out) == []
    faults.succeed("kill while saving a training checkpoint")


def test_kill_during_a_download_then_download_again(tmp_path, http_server, faults):
    from benchmark.weights import download

    base, served = http_server
    payload = np.random.default_rng(0).bytes(3 << 20)  # > 2 chunks: half of it reaches the disk
    (served / "ckpt.pth").write_bytes(payload)
    dest = tmp_path / "cache" / "downloads" / "ckpt.pth"
    faults.attempt("kill during a download")
    run_python_and_kill(SLOW_DOWNLOAD, tmp_path, "fetch", f"{base}/stall/ckpt.pth", dest)
    assert not dest.exists()
    assert len(_leftovers(dest.parent)) == 1  # the partial temporary, never under the final name
    download.fetch(f"{base}/ckpt.pth", dest, progress=False)
    assert dest.read_bytes() == payload
    faults.succeed("kill during a download")


def test_kill_during_a_zoo_download_then_fetch_records_the_right_sha(tmp_path, http_server, faults, monkeypatch):
    from benchmark.weights import zoo

    base, served = http_server
    entry = zoo.list_zoo()[0]
    # a loadable checkpoint (a zoo download enters the cache only as one), > 2 chunks long
    torch.save({"state_dict": {"w": torch.from_numpy(np.random.default_rng(1).random(800_000, np.float32))}},
               served / entry.file)
    payload = (served / entry.file).read_bytes()
    cache = tmp_path / "cache"
    faults.attempt("kill during a zoo download (holding the cache lock)")
    run_python_and_kill(SLOW_DOWNLOAD, tmp_path, "zoo", entry.name, BENCHMARK_CACHE=cache,
                        BENCHMARK_ZOO_MIRROR=f"{base}/stall")
    assert not (cache / "zoo" / entry.file).exists()
    assert zoo.recorded_sha256() == {} or not (cache / "zoo" / "sha256.json").exists()
    monkeypatch.setenv("BENCHMARK_CACHE", str(cache))
    monkeypatch.setenv("BENCHMARK_ZOO_MIRROR", base)
    assert len(_leftovers(cache / "zoo")) == 1
    path = zoo.fetch(entry.name, progress=False)  # the dead child's lock is gone with it
    assert path.read_bytes() == payload
    assert _leftovers(cache / "zoo") == []  # its partial temporary too
    assert zoo.recorded_sha256() == {entry.file: sha256(path)}
    faults.succeed("kill during a zoo download (holding the cache lock)")
