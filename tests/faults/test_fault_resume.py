"""A trial killed with SIGKILL mid-training and resumed ends as if it had never been interrupted.

Resumption is exact (benchmark.engine.trainer): the data order and each image's augmentation are
functions of (seed, global batch index), so the resumed loader starts at the killed run's next
global batch; the checkpoint holds the optimizer, the LR scheduler and every process's RNG
states (RPN/ROI sampling), restored on resume. On CPU that makes the weights bit-identical
(torch.equal: the same operations on the same inputs in the same order), hence the same metrics.
"""
import json
import subprocess

import pytest
import torch

from benchmark.records import results
from tests.faults.test_fault_training import _command, _iterations_logged, smoke_inputs  # noqa: F401  (smoke_inputs: a fixture)
from tests.helpers.processes import kill, start, wait_for
from tests.helpers.tools import ROOT, child_env

pytestmark = pytest.mark.slow

MAX_ITER = 4
SCHEDULE = ("SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.STEPS", "(3,)")
TIMING = ("time", "data_time", "eta_seconds", "rank_data_time")  # wall-clock columns of metrics.json


def _run(argv, env):
    done = subprocess.run([str(a) for a in argv], cwd=ROOT, env=child_env(**env), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _training_rows(trial):
    """metrics.json's per-iteration rows without their wall-clock columns."""
    rows = [json.loads(line) for line in (trial / "metrics.json").read_text().splitlines() if "total_loss" in line]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _final_weights(trial):
    return torch.load(trial / "model_final.pth", map_location="cpu", weights_only=True)["model"]


def test_killed_and_resumed_trial_equals_an_uninterrupted_one(smoke_inputs, tmp_path, faults):  # noqa: F811
    root, weights, data = smoke_inputs
    env = {"BENCHMARK_CACHE": root / "cache"}
    straight = tmp_path / "straight" / "trial_0"
    _run(_command(weights, data, straight.parent, *SCHEDULE), env)

    faults.attempt("SIGKILL mid-training, then resumed (default --trials)")
    out = tmp_path / "killed"
    argv = _command(weights, data, out, *SCHEDULE)
    trial = out / "trial_0"
    with open(tmp_path / "first.log", "wb") as log:
        proc = start(argv, log, **env)
        wait_for((trial / "last_checkpoint").exists, proc, tmp_path / "first.log", what="the first checkpoint")
        kill(proc)
    assert not (trial / "results.json").exists() and not (trial / "model_final.pth").exists()
    _run(argv, env)

    record, reference = (results.read_record(t / "results.json") for t in (trial, straight))
    (resumed_at,) = record.resume.from_iterations
    assert 0 < resumed_at < MAX_ITER  # killed mid-training, resumed from a checkpoint, not from 0
    assert record.resume == results.Resume(count=1, from_iterations=(resumed_at,), exact=True, note=None)
    assert reference.resume.count == 0
    assert (record.status, record.iterations) == (reference.status, reference.iterations) == ("finished", MAX_ITER)

    # Bit-identical weights (every parameter and BN statistic, PreciseBN's included) ...
    final, expected = _final_weights(trial), _final_weights(straight)
    assert final.keys() == expected.keys() and len(final) > 100
    different = [k for k in final if not torch.equal(final[k], expected[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # ... hence the same evaluation, and the same losses and LR at every iteration, each logged once.
    assert record.metrics == reference.metrics and "AP50" in record.metrics["bbox"]
    assert _iterations_logged(trial) == _iterations_logged(straight) == list(range(MAX_ITER))
    assert _training_rows(trial) == _training_rows(straight)
    faults.succeed("SIGKILL mid-training, then resumed (default --trials)")
