"""The engine end to end on CPU through tools/run_transfer.py: smoke runs of voc07, coco and
cityscapes (real evaluators, real records), resume, skipping finished trials, a diverged run, and
bad inputs refused before training."""
import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmark.engine.runner import digest_of_config_file
from benchmark.records import results
from benchmark.tasks import get_task
from benchmark.tasks.config import config_digest
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import tool


def _config_of(trial):
    from detectron2.config import CfgNode

    return CfgNode.load_cfg((Path(trial) / "config.yaml").read_text())


def cli(*args):
    return tool("run_transfer")([str(a) for a in args])


def losses(trial_dir):
    """total_loss per training iteration from detectron2's metrics.json (LOG_PERIOD 1 in smoke)."""
    rows = [json.loads(line) for line in (Path(trial_dir) / "metrics.json").read_text().splitlines()]
    return {r["iteration"]: r["total_loss"] for r in rows if "total_loss" in r}


def assert_finite_metrics(record, keys):
    for key in keys:
        group, name = key.split("/")
        value = record.metrics[group][name]
        assert value is not None and math.isfinite(value) and 0.0 <= value <= 100.0, (key, value)


def assert_loss_falls(trial_dir, n=4):
    values = [v for _, v in sorted(losses(trial_dir).items())]
    assert len(values) >= 2 * n
    assert sum(values[-n:]) / n < sum(values[:n]) / n, values


@pytest.fixture(scope="module")
def work(module_tmp, synthetic_checkpoint):
    """A raw MoCo-layout checkpoint, its converted .pkl, and a cache for this module's runs."""
    from benchmark.weights.convert import prepare_weights

    root = module_tmp / "engine"
    ckpt = synthetic_checkpoint("moco", width=8)
    prepared = prepare_weights(ckpt, cache_dir=root / "cache")
    return SimpleNamespace(root=root, ckpt=ckpt, pkl=prepared.path, cache=root / "cache")


def smoke_run(work, task, name, *extra):
    """One --smoke run through the CLI with this module's cache; returns (rc, trial_0 dir, seconds)."""
    out = work.root / name
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHMARK_CACHE", str(work.cache))
        rc = cli("--task", task, "--smoke", "--output", out, *extra)
    return rc, out / "trial_0", time.perf_counter() - start


@pytest.fixture(scope="module")
def voc_run(work):
    # A raw checkpoint, converted on the fly; synthetic VOC written into the cache by --smoke.
    return smoke_run(work, "voc07", "voc", "--weights", work.ckpt)


@pytest.mark.slow
def test_voc07_smoke_end_to_end(voc_run, work):
    rc, trial, seconds = voc_run
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert record.status == "finished" and record.reason is None
    assert sorted(record.metrics["bbox"]) == ["AP", "AP50", "AP75"]
    assert_finite_metrics(record, ["bbox/AP", "bbox/AP50", "bbox/AP75"])
    assert (record.task, record.iterations, record.world_size, record.ims_per_batch) == ("voc07", 16, 1, 2)
    assert (record.seed, record.trial, record.amp) == (0, 0, False)
    loaded = Path(_config_of(trial).MODEL.WEIGHTS)  # the converted file in the cache
    assert record.weights.sha256 == hashlib.sha256(loaded.read_bytes()).hexdigest()  # the bytes loaded
    assert {k: getattr(record.weights, k) for k in ("name", "source", "source_sha256")} == {
        "name": work.ckpt.stem, "source": str(work.ckpt), "source_sha256": hashlib.sha256(work.ckpt.read_bytes()).hexdigest()}
    assert "format" in record.as_json()["weights"]
    assert record.deviations[0].startswith("smoke run") and record.kind == "smoke"
    assert record.config_digest == digest_of_config_file(trial / "config.yaml")  # of the config that ran
    assert record.protocol_digest == config_digest(_config_of(trial), seed=False) != record.config_digest
    assert list(record.assumptions) == list(getattr(get_task("voc07"), "assumptions", ()))
    assert record.resume == results.Resume(count=0, from_iterations=(), exact=True, note=None)
    (attempt,) = json.loads((trial / "attempts.json").read_text())["attempts"]
    assert (attempt["start_iteration"], attempt["end_iteration"], attempt["status"]) == (0, 16, "finished")
    assert record.duration_s == attempt["duration_s"] > 0
    assert record.environment["data_root"] == str(work.cache / "synthetic" / "voc")
    assert (work.cache / "synthetic" / "voc" / "VOC2007" / "Annotations").is_dir()
    assert record.duration_s > 0 and seconds > record.duration_s


@pytest.mark.slow
def test_voc07_training_loss_falls(voc_run):
    assert sorted(losses(voc_run[1])) == list(range(16))
    assert_loss_falls(voc_run[1])


@pytest.mark.slow
def test_finished_trial_is_skipped(voc_run, work, capsys):
    before = (voc_run[1] / "results.json").read_bytes()
    rc, trial, _ = smoke_run(work, "voc07", "voc", "--weights", work.ckpt)
    assert rc == 0 and "finished earlier, skipped" in capsys.readouterr().out
    assert (trial / "results.json").read_bytes() == before


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(voc_run, work):
    # A run stopped right after its first checkpoint (iteration 9 of 0..15): only that is left.
    src, trial = voc_run[1], work.root / "resumed" / "trial_0"
    trial.mkdir(parents=True)
    shutil.copy(src / "model_0000009.pth", trial)
    shutil.copy(src / "config.yaml", trial)  # what the interrupted run was: the same config
    (trial / "last_checkpoint").write_text("model_0000009.pth")
    # ... and its attempts log: killed at iteration 12 after 100 s (its process never said so)
    killed = {"start_iteration": 0, "end_iteration": 12, "duration_s": 100.0, "status": "running", "exact": None,
              "note": None, "started": "2026-01-01T00:00:00+00:00"}
    (trial / "attempts.json").write_text(json.dumps({"version": 1, "attempts": [killed],
                                                     "config_digest": digest_of_config_file(trial / "config.yaml")}))
    rc, trial, _ = smoke_run(work, "voc07", "resumed", "--weights", work.pkl, "--name", "moco")  # no --resume needed
    assert rc == 0
    assert "Starting training from iteration 10" in (trial / "log.txt").read_text()
    assert sorted(losses(trial)) == list(range(10, 16))  # only the remaining iterations ran
    record = results.read_record(trial / "results.json")
    assert (record.status, record.iterations, record.weights.name) == ("finished", 16, "moco")
    first, second = json.loads((trial / "attempts.json").read_text())["attempts"]
    assert (first["status"], first["duration_s"]) == ("killed", 100.0)
    assert (second["start_iteration"], second["end_iteration"], second["status"]) == (10, 16, "finished")
    assert record.duration_s == round(100.0 + second["duration_s"], 3)  # the whole trial's time
    resume = record.resume
    assert (resume.count, resume.from_iterations, resume.exact) == (1, (10,), second["exact"])
    assert isinstance(resume.exact, bool) and (resume.note is None) == resume.exact
    if not resume.exact:
        assert "data order" in resume.note or resume.note == second["note"]


@pytest.mark.slow
def test_diverged_run_is_a_failed_record(work, voc_run):  # voc_run writes the synthetic VOC it reads
    rc, trial, _ = smoke_run(work, "voc07", "nan", "--weights", work.pkl, "--data-root",
                             work.cache / "synthetic" / "voc", "SOLVER.BASE_LR", "1000.0", "SOLVER.WARMUP_ITERS", "0")
    assert rc == 1
    record = results.read_record(trial / "results.json")
    assert record.status == "failed" and record.reason.startswith("training diverged: ")
    assert "Inf/NaN" in record.reason or "infinite or NaN" in record.reason
    assert record.iterations < 16 and record.metrics == {}
    assert "SOLVER.BASE_LR: 0.02 in the protocol, 1000.0 from the command line" in record.deviations


@pytest.mark.slow
def test_coco_smoke_end_to_end(work):
    rc, trial, _ = smoke_run(work, "coco", "coco", "--weights", work.pkl)
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert record.status == "finished" and record.iterations == 16
    keys = ["bbox/AP", "bbox/AP50", "bbox/AP75", "segm/AP", "segm/AP50", "segm/AP75"]
    # A width-8 backbone after 16 iterations may detect nothing above the test threshold; COCO's AP
    # of no detections is undefined, and the record then says null, never a made-up 0.
    detections = json.loads((trial / "inference" / "coco_2017_val" / "coco_instances_results.json").read_text())
    if detections:
        assert_finite_metrics(record, keys)
    else:
        assert all(record.metrics[k.split("/")[0]][k.split("/")[1]] is None for k in keys), record.metrics
    assert_loss_falls(trial)


@pytest.mark.slow
def test_cityscapes_smoke_end_to_end(work):
    rc, trial, _ = smoke_run(work, "cityscapes", "cityscapes", "--weights", work.pkl)
    assert rc == 0
    record = results.read_record(trial / "results.json")
    assert record.status == "finished" and record.iterations == 20
    assert_finite_metrics(record, ["sem_seg/mIoU", "sem_seg/IoU", "sem_seg/iIoU"])
    assert_loss_falls(trial)


# ----------------------------------------------------------------------------- bad inputs

@pytest.fixture(scope="module")
def voc_data(module_tmp):
    from benchmark.data import write_synthetic

    return write_synthetic("voc", module_tmp / "voc_data")


def refused(capsys, out, *args):
    """Run the CLI; assert exit 1, one `error:` line on stderr, and nothing written to `out`."""
    rc = cli(*args, "--output", out)
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1, (rc, line)
    assert not Path(out).exists()
    return line


def test_unknown_task(capsys, tmp_path):
    line = refused(capsys, tmp_path / "o", "--task", "voc2099", "--weights", "x.pth")
    assert line == ("error: unknown task 'voc2099'; known tasks: cityscapes, coco, coco_2x, fewshot_miniimagenet, "
                    "imagenet_linear, mafl_landmarks, voc07, voc0712")


def test_missing_weights(capsys, tmp_path, voc_data):
    line = refused(capsys, tmp_path / "o", "--task", "voc07", "--weights", tmp_path / "nope.pth",
                   "--data-root", voc_data)
    assert str(tmp_path / "nope.pth") in line and "no such file" in line


def test_missing_dataset_folder(capsys, tmp_path, work, voc_data):
    root = tmp_path / "data"
    shutil.copytree(voc_data, root)
    shutil.rmtree(root / "VOC2007")
    line = refused(capsys, tmp_path / "o", "--task", "voc07", "--weights", work.pkl, "--data-root", root)
    assert str(root / "VOC2007") in line and "datasets.md" in line


def test_corrupt_annotation(capsys, tmp_path, work, voc_data):
    root = tmp_path / "data"
    shutil.copytree(voc_data, root)
    xml = sorted((root / "VOC2007" / "Annotations").glob("*.xml"))[0]
    xml.write_text("<annotation><size><width>12")
    line = refused(capsys, tmp_path / "o", "--task", "voc07", "--weights", work.pkl, "--data-root", root)
    assert str(xml) in line and "corrupt annotation" in line


def test_bad_option(capsys, tmp_path, work, voc_data):
    line = refused(capsys, tmp_path / "o", "--task", "voc07", "--weights", work.pkl, "--data-root", voc_data,
                   "SOLVER.NO_SUCH_KEY", "3")
    assert "SOLVER.NO_SUCH_KEY" in line


def test_amp_needs_cuda(capsys, tmp_path, work, voc_data, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    line = refused(capsys, tmp_path / "o", "--task", "voc07", "--weights", work.pkl, "--data-root", voc_data, "--amp")
    assert line.startswith("error: --amp needs CUDA")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli("--weights", "x.pth")
    assert exc.value.code == 2 and "--task and --weights are required" in capsys.readouterr().err


def test_list_tasks(capsys):
    assert cli("--list-tasks") == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the table; the tasks' assumptions follow
    assert lines[0].split()[:2] == ["task", "data"]
    assert [ln.split()[0] for ln in lines[1:]] == ["cityscapes", "coco", "coco_2x", "fewshot_miniimagenet",
                                                 "imagenet_linear", "mafl_landmarks", "voc07", "voc0712"]


# ----------------------------------------------------------------------------- planning and guards

def test_trials_plan_seeds_and_folders(tmp_path, work, voc_data):
    from benchmark.engine import Options, prepare

    base = dict(task="voc07", weights=str(work.pkl), data_root=str(voc_data), output=str(tmp_path), smoke=True)
    jobs = prepare(Options(trials=3, seed=5, **base))
    assert [(j.trial, j.seed, j.cfg.SEED, Path(j.cfg.OUTPUT_DIR).name, j.resume) for j in jobs] == [
        (0, 5, 5, "trial_0", True), (1, 6, 6, "trial_1", True), (2, 7, 7, "trial_2", True)]
    (job,) = prepare(Options(trial=4, seed=5, name="moco", **base))
    assert (job.trial, job.seed, job.cfg.OUTPUT_DIR, job.weights["name"]) == (4, 9, str(tmp_path / "trial_4"), "moco")
    assert job.cfg.MODEL.WEIGHTS == str(work.pkl) and job.cfg.INPUT.FORMAT == "RGB"  # the checkpoint's settings
    (single,) = prepare(Options(**base))
    assert (single.trial, single.resume) == (0, True)  # an interrupted trial always resumes


def test_default_output_is_task_and_weights_name(work, voc_data, monkeypatch, tmp_path):
    from benchmark.engine import Options, prepare

    monkeypatch.chdir(tmp_path)
    (job,) = prepare(Options(task="voc07", weights=str(work.pkl), data_root=str(voc_data), name="mocov2"))
    assert job.cfg.OUTPUT_DIR == str(Path("output") / "voc07" / "mocov2" / "trial_0")


def test_guard_stops_on_non_finite_weights():
    from benchmark.engine.hooks import NonFiniteGuard

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    guard = NonFiniteGuard(model, period=5)
    guard.trainer = SimpleNamespace(iter=3)
    model[1].running_var[2] = float("inf")
    guard.after_step()  # iteration 3: not a checking iteration
    guard.trainer.iter = 4
    with pytest.raises(FloatingPointError, match=r"iteration=4 \(1.running_var\)"):
        guard.after_step()


@pytest.mark.parametrize("flags, kind", [({}, "full"), ({"smoke": True}, "smoke"), ({"eval_only": True}, "eval-only"),
                                         ({"smoke": True, "eval_only": True}, "eval-only")],
                         ids=["full", "smoke", "eval-only", "smoke-eval-only"])
def test_each_run_says_what_kind_it_is(tmp_path, work, voc_data, flags, kind):
    from benchmark.engine import Options, prepare

    (job,) = prepare(Options(task="voc07", weights=str(work.pkl), data_root=str(voc_data), output=str(tmp_path), **flags))
    assert job.kind == kind
    assert job.weights["sha256"] == hashlib.sha256(work.pkl.read_bytes()).hexdigest()


def test_the_protocol_digest_is_the_same_for_every_trial(tmp_path, work, voc_data):
    from benchmark.engine import Options, prepare

    jobs = prepare(Options(task="voc07", weights=str(work.pkl), data_root=str(voc_data), output=str(tmp_path),
                           smoke=True, trials=3))
    assert len({j.protocol_digest for j in jobs}) == 1 and len({j.digest for j in jobs}) == 3


@pytest.mark.slow
def test_eval_only_evaluates_the_weights(work, voc_data, tmp_path):
    assert cli("--task", "voc07", "--smoke", "--eval-only", "--weights", work.pkl, "--data-root", voc_data,
               "--output", tmp_path / "o") == 0
    record = results.read_record(tmp_path / "o" / "trial_0" / "eval_only" / "results.json")  # never over a fine-tuning record
    assert not (tmp_path / "o" / "trial_0" / "results.json").exists()
    assert (record.status, record.iterations) == ("finished", 0)
    assert record.deviations[-1] == "evaluation only: no fine-tuning in this run" and record.kind == "eval-only"
    assert not (tmp_path / "o" / "trial_0" / "attempts.json").exists()  # no fine-tuning attempt
    assert_finite_metrics(record, ["bbox/AP", "bbox/AP50", "bbox/AP75"])


def test_a_console_handler_on_a_closed_stream_is_pointed_at_the_current_stdout(capsys):
    """In one process run several times (a notebook, this test suite), detectron2's cached console
    handler may hold a sys.stdout since closed: the next run's log lines must not end as
    '--- Logging error ---' on stderr (a CI failure in random test order)."""
    import io
    import logging

    from benchmark.engine.logs import console_follows_stdout

    stale, other = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(stale), logging.StreamHandler(other)]
    lg = logging.getLogger("detectron2")
    for h in handlers:
        lg.addHandler(h)
    try:
        stale.close()
        console_follows_stdout()
        logging.getLogger("detectron2.engine.defaults").warning("auto-scaling the config")
        captured = capsys.readouterr()
        assert "Logging error" not in captured.err and "auto-scaling the config" in captured.out
        assert handlers[1].stream is other and "auto-scaling the config" in other.getvalue()  # an open one stays
    finally:
        for h in handlers:
            lg.removeHandler(h)


def test_the_run_kinds_are_the_kinds_a_record_may_hold():
    """RunKind (what the engine runs) and the analysis kind (what tools/invert.py writes) are records.results.KINDS
    (what a record may say), in that order."""
    from benchmark.engine import RunKind
    from benchmark.inversion.recipe import RECORD_KIND

    assert (*(kind.value for kind in RunKind), RECORD_KIND) == results.KINDS
