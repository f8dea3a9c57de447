"""A full disk while writing a record, a checkpoint, converted weights: a clear error, the earlier
files intact, no temporary left behind, and writing works again once there is space.

The disk is a real 2 MiB tmpfs (we run as root here and in CI, same machine type). Where mounting
is not permitted the same tests run against a per-process file-size limit (RLIMIT_FSIZE), a real
kernel-enforced write failure (EFBIG instead of ENOSPC); they are never skipped.
"""
import contextlib
import errno
import os
import resource
import signal
import subprocess
import uuid

import pytest
import torch

from benchmark.records import results
from benchmark.tasks import get_task
from tests.helpers.hostile import sha256
from tests.helpers.records import make_record
from tests.helpers.tools import tool

FULL = (errno.ENOSPC, errno.EFBIG)


class SmallDisk:
    def __init__(self, path, tmpfs):
        self.path, self.tmpfs = path, tmpfs

    @contextlib.contextmanager
    def full(self):
        """Inside: no byte more can be written under self.path."""
        if self.tmpfs:
            filler = self.path / f"filler-{uuid.uuid4().hex}"
            with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
            try:
                yield
            finally:
                filler.unlink()
        else:
            old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
            old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, old_limit[1]))
            try:
                yield
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
                signal.signal(signal.SIGXFSZ, old_handler)


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "disk"
    path.mkdir()
    # BENCHMARK_TEST_NO_TMPFS=1 exercises the RLIMIT_FSIZE fallback where mounting works
    mounted = not os.environ.get("BENCHMARK_TEST_NO_TMPFS") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield SmallDisk(path, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=True)


def _temporaries(folder):
    return [p.name for p in folder.rglob("*.tmp")]


def test_record_on_a_full_disk(small_disk, faults):
    earlier = results.write_record(small_disk.path / "a", make_record(name="earlier"))
    before = sha256(earlier)
    faults.attempt("disk full writing a record")
    with small_disk.full():
        with pytest.raises(OSError) as new:
            results.write_record(small_disk.path / "b", make_record(name="new"))
        with pytest.raises(OSError) as over:
            results.write_record(small_disk.path / "a", make_record(name="overwrite"))
    assert new.value.errno in FULL and over.value.errno in FULL
    assert sha256(earlier) == before and results.read_record(earlier).weights.name == "earlier"
    assert not (small_disk.path / "b" / "results.json").exists()
    assert _temporaries(small_disk.path) == []
    results.write_record(small_disk.path / "b", make_record(name="new"))  # space again: it works again
    assert results.gather([small_disk.path])[1] == []
    faults.succeed("disk full writing a record")


def test_checkpoint_on_a_full_disk(small_disk, faults):
    from benchmark.engine.checkpointer import SafeCheckpointer

    torch.manual_seed(0)
    model = torch.nn.Linear(300, 300)  # 361 kB a checkpoint
    saved = model.weight.detach().clone()
    checkpointer = SafeCheckpointer(model, str(small_disk.path))
    checkpointer.save("model_0000000", iteration=0)
    before = sha256(small_disk.path / "model_0000000.pth")
    with torch.no_grad():
        model.weight += 1
    faults.attempt("disk full writing a checkpoint")
    with small_disk.full():
        with pytest.raises(OSError) as exc:
            checkpointer.save("model_0000001", iteration=1)
    assert exc.value.strerror.startswith(f"checkpoint model_0000001.pth not saved in {small_disk.path} (")
    assert exc.value.strerror.endswith("; the previous checkpoint is intact") and exc.value.errno in FULL + (errno.EIO,)
    assert sorted(p.name for p in small_disk.path.iterdir()) == ["last_checkpoint", "model_0000000.pth"]
    assert (small_disk.path / "last_checkpoint").read_text() == "model_0000000.pth"
    assert sha256(small_disk.path / "model_0000000.pth") == before
    extra = SafeCheckpointer(model, str(small_disk.path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 0 and torch.equal(model.weight, saved)
    faults.succeed("disk full writing a checkpoint")


def test_convert_on_a_full_disk(small_disk, synthetic_checkpoint, faults, capsys):
    convert_main = tool("convert")

    out, src = small_disk.path / "weights.pkl", synthetic_checkpoint("torchvision", width=8)
    faults.attempt("disk full writing converted weights (tools/convert.py)")
    with small_disk.full():
        rc = convert_main([str(src), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {out}: cannot write the converted weights (")
    assert ("No space left on device" if small_disk.tmpfs else "File too large") in err[0]
    assert not out.exists() and _temporaries(small_disk.path) == []
    faults.succeed("disk full writing converted weights (tools/convert.py)")


def test_failed_run_on_a_full_disk_still_says_why(small_disk, faults):
    """The engine's failed record cannot be written either: the reason says both, nothing torn."""
    from benchmark.engine.jobs import Job, RunKind
    from benchmark.engine.worker import write_failed
    from benchmark.tasks.config import build_config

    cfg, _ = build_config(get_task("voc07"), None, [], smoke=True)
    cfg.defrost()
    cfg.OUTPUT_DIR = str(small_disk.path / "trial_0")
    os.makedirs(cfg.OUTPUT_DIR)
    job = Job(task=get_task("voc07"), cfg=cfg, data_root="data", weights={"name": "moco", "sha256": None, "source": "x"},
              seed=0, trial=0, resume=False, kind=RunKind.SMOKE, deviations=[])
    faults.attempt("disk full writing a failed run's record")
    with small_disk.full():
        reason = write_failed(job, "OSError: [Errno 28] No space left on device", 3, 1.0)
    assert reason.startswith("OSError: [Errno 28] No space left on device; its failed record could not be written either (")
    assert os.listdir(cfg.OUTPUT_DIR) == []
    faults.succeed("disk full writing a failed run's record")
