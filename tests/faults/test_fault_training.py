"""Training runs killed with SIGKILL and restarted; a run whose loss diverges.

One tiny voc07 --smoke trial matrix (2 trials x 4 iterations, a checkpoint every 2) is killed
in the middle of trial 0, restarted and killed in the middle of trial 1, and restarted again:
each trial resumes from its last checkpoint, the finished trial 0 is not run again, and both end
with finished records. A diverging run stops within a few iterations with a failed record that
the leaderboard lists under failures.
"""
import json
import subprocess
import sys

import pytest

from benchmark.records import results
from tests.helpers.hostile import sha256
from tests.helpers.processes import kill, start, wait_for
from tests.helpers.records import write_record
from tests.helpers.tools import ROOT, child_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_inputs(module_tmp, synthetic_checkpoint):
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import prepare_weights

    root = module_tmp
    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache").path
    data = write_synthetic("voc", root / "data", image_size=(128, 160))
    return root, weights, data


def _command(weights, data, out, *extra):
    return [sys.executable, "-m", "benchmark.cli.run_transfer", "--task", "voc07", "--smoke", "--weights", weights,
            "--data-root", data, "--output", out, *extra]


def _iterations_logged(trial):
    return [json.loads(line)["iteration"] for line in (trial / "metrics.json").read_text().splitlines()
            if "total_loss" in line]


@pytest.mark.slow
def test_killed_trial_matrix_resumes_and_skips_finished_trials(smoke_inputs, tmp_path, faults):
    root, weights, data = smoke_inputs
    out = tmp_path / "out"
    argv = _command(weights, data, out, "--trials", "2", "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2",
                    "SOLVER.STEPS", "(3,)")
    env = {"BENCHMARK_CACHE": root / "cache"}
    t0, t1 = out / "trial_0", out / "trial_1"

    faults.attempt("SIGKILL mid-way through trial 0 of 2")
    with open(tmp_path / "first.log", "wb") as log:
        proc = start(argv, log, **env)
        wait_for((t0 / "last_checkpoint").exists, proc, tmp_path / "first.log", what="trial 0's first checkpoint")
        kill(proc)
    assert not (t0 / "results.json").exists() and (t0 / "model_0000001.pth").exists()

    faults.attempt("SIGKILL mid-way through trial 1 of 2")
    with open(tmp_path / "second.log", "wb") as log:
        proc = start(argv, log, **env)
        wait_for((t1 / "last_checkpoint").exists, proc, tmp_path / "second.log", what="trial 1's first checkpoint")
        kill(proc)
    second = (tmp_path / "second.log").read_text()
    assert "trial 0: training from iteration 2 to 4" in second  # resumed, not restarted
    record0 = results.read_record(t0 / "results.json")
    assert (record0.status, record0.iterations, record0.trial, record0.seed) == ("finished", 4, 0, 0)
    assert _iterations_logged(t0) == [0, 1, 2, 3]  # each iteration trained once
    # BENCHMARK.CHECKPOINTS_TO_KEEP 1: the resumed run removed the killed run's model_0000001.pth
    # once it had written model_0000003.pth.
    assert sorted(p.name for p in t0.glob("model_*.pth")) == ["model_0000003.pth", "model_final.pth"]
    faults.succeed("SIGKILL mid-way through trial 0 of 2")
    finished0 = sha256(t0 / "results.json")

    third = subprocess.run([str(a) for a in argv], cwd=ROOT, env=child_env(**env), capture_output=True, text=True,
                           timeout=600)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert f"trial 0: finished earlier, skipped ({t0})" in third.stdout
    assert "trial 1: training from iteration 2 to 4" in third.stdout + third.stderr
    assert sha256(t0 / "results.json") == finished0  # the finished trial was not touched
    record1 = results.read_record(t1 / "results.json")
    assert (record1.status, record1.iterations, record1.seed) == ("finished", 4, 1)
    assert _iterations_logged(t1) == [0, 1, 2, 3]
    assert sorted(p.name for p in t1.glob("model_*.pth")) == ["model_0000003.pth", "model_final.pth"]
    assert set(record1.metrics["bbox"]) >= {"AP", "AP50", "AP75"}
    assert not list(out.rglob("*.tmp"))
    faults.succeed("SIGKILL mid-way through trial 1 of 2")


@pytest.mark.slow
def test_killed_run_with_default_trials_resumes_and_its_record_says_so(smoke_inputs, tmp_path, faults):
    """The default (--trials 1, no --resume): a SIGKILLed run continues from its checkpoint, and the
    record counts the resume, the iteration it resumed from and the time of both attempts."""
    root, weights, data = smoke_inputs
    out = tmp_path / "out"
    argv = _command(weights, data, out, "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "3", "SOLVER.STEPS", "(5,)")
    env = {"BENCHMARK_CACHE": root / "cache"}
    trial = out / "trial_0"
    faults.attempt("SIGKILL mid-way through a default --trials run")
    with open(tmp_path / "first.log", "wb") as log:
        proc = start(argv, log, **env)
        wait_for((trial / "last_checkpoint").exists, proc, tmp_path / "first.log", what="the first checkpoint")
        kill(proc)
    assert not (trial / "results.json").exists()
    (killed,) = json.loads((trial / "attempts.json").read_text())["attempts"]
    assert killed["status"] == "running" and killed["start_iteration"] == 0  # it died without a word

    again = subprocess.run([str(a) for a in argv], cwd=ROOT, env=child_env(**env), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trial 0: training from iteration 3 to 6" in again.stdout + again.stderr  # resumed, not restarted
    record = results.read_record(trial / "results.json")
    assert (record.status, record.iterations) == ("finished", 6)
    assert _iterations_logged(trial) == list(range(6))  # each iteration once
    first, second = json.loads((trial / "attempts.json").read_text())["attempts"]
    assert (first["status"], second["status"], second["start_iteration"]) == ("killed", "finished", 3)
    assert record.resume.count == 1 and record.resume.from_iterations == (3,)
    assert isinstance(record.resume.exact, bool) and (record.resume.note is None) == record.resume.exact
    assert record.duration_s == round(first["duration_s"] + second["duration_s"], 3) > second["duration_s"]
    faults.succeed("SIGKILL mid-way through a default --trials run")


@pytest.mark.slow
def test_diverging_run_fails_fast_and_is_listed_as_a_failure(smoke_inputs, tmp_path, faults):
    root, weights, data = smoke_inputs
    out = tmp_path / "runs" / "diverged"
    faults.attempt("loss diverging to NaN/Inf")
    run = subprocess.run([str(a) for a in _command(weights, data, out, "--name", "unstable", "SOLVER.BASE_LR", "1e4",
                                                   "SOLVER.WARMUP_ITERS", "0", "SOLVER.MAX_ITER", "30")],
                         cwd=ROOT, env=child_env(BENCHMARK_CACHE=root / "cache"), capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    record = results.read_record(out / "trial_0" / "results.json")
    assert record.status == "failed" and record.metrics == {}
    assert record.reason.startswith("training diverged: ")
    assert "NaN" in record.reason
    assert record.iterations <= 5, record  # stopped within a few of its 30 iterations
    assert len(_iterations_logged(out / "trial_0")) <= 5
    # beside a finished run of another checkpoint, the leaderboard lists it apart with its reason
    write_record(tmp_path / "runs" / "stable" / "trial_0", name="stable", metrics={"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 42.0}},
                 iterations=30)
    board = subprocess.run([sys.executable, "-m", "benchmark.cli.leaderboard", str(tmp_path / "runs")], cwd=ROOT, env=child_env(),
                           capture_output=True, text=True, timeout=120)
    assert board.returncode == 0, board.stderr
    table, failures = board.stdout.split("## Failed runs (not counted)")
    assert "| stable | 40.00 (1) | 60.00 (1) | 42.00 (1) |" in table  # the only measured full run: compared with nothing, no star
    assert "| unstable [smoke] | - | - | - |" in table  # no value counted from the failed (smoke) run
    reason = record.reason.replace("|", "\\|")
    assert f"| unstable [smoke] | voc07 | 0 | {reason} | {out / 'trial_0' / 'results.json'} |" in failures
    faults.succeed("loss diverging to NaN/Inf")
