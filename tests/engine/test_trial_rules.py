"""The engine's trust rules, each as a hostile or unlucky user would meet it (benchmark/engine/trials.py,
benchmark/tasks/config.py): what a weights file may set, which options are refused, when a trial
folder is reused, locked, resumed; every refusal is one `error:` line, exit 1, nothing run or written.
"""
import pickle
import shutil
from pathlib import Path

import pytest

from benchmark.tasks import get_task
from tests.helpers.hostile import tree_digest, write_code_running_pickle
from tests.helpers.outputs import OUTPUT_IDS, UNUSABLE_OUTPUTS
from tests.helpers.records import write_record
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import tool


@pytest.fixture(scope="module")
def ready(module_tmp, synthetic_checkpoint):
    """Valid converted weights and VOC data, so that only the thing under test is wrong."""
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import prepare_weights

    weights = prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=module_tmp / "cache")
    return weights, write_synthetic("voc", module_tmp / "voc")


def run_cli(capsys, *argv):
    capsys.readouterr()
    rc = tool("run_transfer")([str(a) for a in argv])
    return rc, capsys.readouterr()


def _forged_weights(ready, tmp_path, settings) -> Path:
    """The valid converted file with its provenance's input settings replaced by `settings`."""
    from benchmark.weights.loading import load_converted

    data = dict(load_converted(ready[0].path))
    data["__provenance__"] = {**data["__provenance__"], "input_settings": settings}
    path = tmp_path / "forged.pkl"
    path.write_bytes(pickle.dumps(data, protocol=5))
    return path


# A proposal file is what detectron2 unpickles with plain pickle.load: the way in for code.
PROPOSAL_KEYS = {"MODEL.LOAD_PROPOSALS": True, "DATASETS.PROPOSAL_FILES_TRAIN": None}


@pytest.mark.parametrize("proposal_file", ["local", "url"])
def test_weights_settings_cannot_make_detectron2_load_a_pickle(ready, tmp_path, capsys, monkeypatch, proposal_file):
    marker = tmp_path / "MARKER_code_ran"
    evil = write_code_running_pickle(tmp_path / "evil.pkl", marker)
    target = str(evil) if proposal_file == "local" else "http://127.0.0.1:9/evil.pkl"
    forged = _forged_weights(ready, tmp_path, {"INPUT.FORMAT": "RGB", "MODEL.LOAD_PROPOSALS": True,
                                               "DATASETS.PROPOSAL_FILES_TRAIN": [target]})
    monkeypatch.chdir(tmp_path)
    rc, out = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", forged, "--data-root", ready[1], "--output", "o")
    line = one_error_line(out.err)
    assert rc == 1 and str(forged) in line
    assert "DATASETS.PROPOSAL_FILES_TRAIN, MODEL.LOAD_PROPOSALS, which a checkpoint may not set" in line
    assert not marker.exists() and not (tmp_path / "o").exists()


OPTIONS_REFUSED = {
    "MODEL.LOAD_PROPOSALS": ("True", "detectron2 unpickles proposal files"),
    "DATASETS.PROPOSAL_FILES_TRAIN": ("('{evil}',)", "a pickle can run code"),
    "DATASETS.PROPOSAL_FILES_TEST": ("('{evil}',)", "a pickle can run code"),
    "MODEL.WEIGHTS": ("'{evil}'", "the weights come from --weights"),
    "OUTPUT_DIR": ("'/tmp/elsewhere'", "use --output"),
    "SEED": ("7", "use --seed"),
    "DATASETS.TRAIN": ("('coco_2017_val',)", "use --data-root"),
    "BENCHMARK.TASK": ("'coco'", "use --task"),
    "BENCHMARK.SMOKE": ("False", "use --smoke"),
    "SOLVER.AMP.ENABLED": ("True", "use --amp"),
}


@pytest.mark.parametrize("key", sorted(OPTIONS_REFUSED))
def test_options_the_engine_sets_or_that_load_files_are_refused(ready, tmp_path, capsys, monkeypatch, key):
    marker = tmp_path / "MARKER_code_ran"
    evil = write_code_running_pickle(tmp_path / "evil.pkl", marker)
    value, problem = OPTIONS_REFUSED[key]
    monkeypatch.chdir(tmp_path)
    rc, out = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                      "--output", "o", "SOLVER.MAX_ITER", "4", key, value.format(evil=evil))
    line = one_error_line(out.err)
    assert rc == 1 and "is refused" in line and problem in line
    assert not marker.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, problem", [
    (["--num-machines", "2", "--machine-rank", "5", "--dist-url", "tcp://127.0.0.1:9"], "--machine-rank must be in 0..1"),
    (["--num-gpus", "0"], "--num-gpus and --num-machines must be >= 1"),
    (["SOLVER.WARMUP_ITERS", "-1"], "SOLVER.WARMUP_ITERS must be >= 0"),
    (["BENCHMARK.PROTOCOL_WORLD_SIZE", "0"], "BENCHMARK.PROTOCOL_WORLD_SIZE must be a positive number"),
    (["BENCHMARK.LOG_PERIOD", "0"], "BENCHMARK.LOG_PERIOD must be a positive number"),
], ids=["machine-rank-out-of-range", "zero-gpus", "negative-warmup", "zero-protocol-world", "zero-log-period"])
def test_values_that_would_fail_late_are_refused_first(ready, tmp_path, capsys, argv, problem):
    flags = [a for a in argv if not a[0].isupper()] if argv[0].startswith("--") else []
    options = [] if flags else argv
    rc, out = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                      "--output", tmp_path / "o", *flags, *options)
    assert rc == 1 and problem in one_error_line(out.err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", UNUSABLE_OUTPUTS, ids=OUTPUT_IDS)
def test_an_output_that_cannot_be_written_is_refused_first(ready, tmp_path, capsys, monkeypatch, case):
    output, problem = case(tmp_path, monkeypatch)
    before = tree_digest(tmp_path), sorted(tmp_path.rglob("*"))
    rc, out = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                      "--output", output)
    line = one_error_line(out.err)
    assert rc == 1 and f"--output {output}" in line and problem in line
    assert (tree_digest(tmp_path), sorted(tmp_path.rglob("*"))) == before  # nothing made or written


def test_keys_the_engine_sets_are_never_listed_as_deviations(ready, tmp_path):
    from benchmark.engine import Options, prepare

    jobs = prepare(Options(task="voc07", weights=str(ready[0].path), data_root=str(ready[1]), output=str(tmp_path / "o"),
                           seed=5, trials=2, smoke=True, opts=["SOLVER.MAX_ITER", "4"]))
    for job in jobs:
        assert not [d for d in job.deviations if any(k in d for k in ("SEED", "MODEL.WEIGHTS", "OUTPUT_DIR"))]
        assert "SOLVER.MAX_ITER: " in " ".join(job.deviations)  # what the user did change is listed
    assert [j.cfg.SEED for j in jobs] == [5, 6]


# ----------------------------------------------------------------------------- trial folders

def _job(ready, output, *opts, smoke=True):
    from benchmark.engine import Options, prepare

    (job,) = prepare(Options(task="voc07", weights=str(ready[0].path), data_root=str(ready[1]), output=str(output),
                             smoke=smoke, opts=list(opts)))
    return job


def _finished_record(job, **over):
    fields = dict(task=job.task.name, weights=dict(job.weights), config_digest=job.digest, deviations=list(job.deviations),
                  seed=job.seed, trial=job.trial, kind=job.kind, protocol_digest=job.protocol_digest)
    fields.update(over)
    return write_record(job.output_dir, **fields)


# name: (how the finished run in the folder differs from the one asked for, the refusal names)
FOREIGN = {
    "smoke record, real run asked": (dict(smoke=False), "it is a --smoke run and this one is not"),
    "other weights": (dict(weights_sha="00" * 32), "its weights have sha256 000000000000..."),
    "other options": (dict(opts=("SOLVER.MAX_ITER", "8")), "its config differs"),
    "other task": (dict(task="voc0712"), "it is a 'voc0712' run, not 'voc07'"),
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_finished_trial_of_another_run_is_never_reused(ready, tmp_path, capsys, name):
    how, problem = FOREIGN[name]
    out = tmp_path / "o"
    recorded = _job(ready, out)  # what ran there: the default smoke run
    over = {}
    if "weights_sha" in how:
        over["weights"] = {**recorded.weights, "sha256": how["weights_sha"]}
    if "task" in how:
        over["task"] = how["task"]
    record = _finished_record(recorded, **over)
    before = tree_digest(out)
    argv = ["--task", "voc07", "--weights", ready[0].path, "--data-root", ready[1], "--output", out]
    argv += [] if how.get("smoke") is False else ["--smoke"]
    argv += list(how.get("opts", ()))
    rc, got = run_cli(capsys, *argv)
    line = one_error_line(got.err)
    assert rc == 1 and str(record) in line and problem in line and "it is kept as it is" in line
    assert tree_digest(out) == before


def test_the_same_finished_run_is_skipped(ready, tmp_path, capsys):
    out = tmp_path / "o"
    _finished_record(_job(ready, out))
    before = tree_digest(out)
    rc, got = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                      "--output", out)
    assert rc == 0 and "trial 0: finished earlier, skipped" in got.out
    assert tree_digest(out) == before


@pytest.mark.parametrize("flags", [[], ["--eval-only", "--resume"]], ids=["fine-tuning", "eval-only-resume"])
def test_checkpoints_of_another_config_are_not_resumed(ready, tmp_path, capsys, flags):
    out = tmp_path / "o"
    other = _job(ready, out, "SOLVER.MAX_ITER", "8")
    other.output_dir.mkdir(parents=True)
    (other.output_dir / "config.yaml").write_text(other.cfg.dump())
    (other.output_dir / "model_0000009.pth").write_bytes(b"not read")
    (other.output_dir / "last_checkpoint").write_text("model_0000009.pth")
    before = tree_digest(out)
    rc, got = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                      "--output", out, *flags)
    assert rc == 1 and "checkpoints of another configuration" in one_error_line(got.err)
    assert tree_digest(out) == before


def test_a_second_run_into_a_busy_trial_folder_is_refused(ready, tmp_path, capsys):
    from benchmark.engine import trials

    out = tmp_path / "o"
    with trials.locked(out / "trial_0"):
        rc, got = run_cli(capsys, "--task", "voc07", "--smoke", "--weights", ready[0].path, "--data-root", ready[1],
                          "--output", out)
    line = one_error_line(got.err)
    assert rc == 1 and "is in use by another run" in line
    assert list((out / "trial_0").iterdir()) == []


def test_the_lock_is_free_again_once_the_holder_is_done(tmp_path):
    from benchmark.engine import trials

    with trials.locked(tmp_path):
        with pytest.raises(trials.TrialBusy, match="in use by another run"):
            with trials.locked(tmp_path):
                pass
    with trials.locked(tmp_path):  # released: taken again at once
        pass


def test_metrics_of_iterations_after_the_resumed_checkpoint_are_dropped_once(tmp_path):
    from benchmark.engine import trials

    rows = [f'{{"iteration": {i}, "total_loss": {10 - i}}}' for i in range(8)]
    (tmp_path / "metrics.json").write_text("\n".join(rows) + '\n{"iteration": 8, "tot')  # torn by the kill
    assert trials.drop_metrics_after(tmp_path / "metrics.json", 4) == 4
    assert (tmp_path / "metrics.json").read_text().splitlines() == rows[:5]
    assert trials.drop_metrics_after(tmp_path / "metrics.json", 4) == 0


def test_deviation_of_one_process_names_warmup_and_bn_batch():
    from benchmark.tasks.config import build_config

    _, deviations = build_config(get_task("voc0712"), num_gpus=1, device_memory_gb=None)  # a CPU process (no GPU memory)
    (line,) = [d for d in deviations if d.startswith("world size 1")]
    for change in ("batch 16 -> 2", "LR 0.02 -> 0.0025", "iterations 24000 -> 192000", "steps [18000, 22000] -> [144000, 176000]",
                   "warmup 100 -> 800", "images per BN statistic 16 -> 2"):
        assert change in line, (change, line)


def test_two_processes_of_four_images_keep_the_protocol():
    from benchmark.tasks.config import build_config

    cfg, deviations = build_config(get_task("voc07"), num_gpus=4)
    assert deviations == [] and cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.WARMUP_ITERS == 100


def test_converted_weights_that_leave_backbone_tensors_empty_fail_the_load(ready, tmp_path):
    from detectron2.modeling import build_model

    from benchmark.engine.checkpointer import SafeCheckpointer, WeightsLoadError
    from benchmark.weights.loading import load_converted

    job = _job(ready, tmp_path / "o")
    model = build_model(job.cfg)
    data = dict(load_converted(ready[0].path))
    data["model"] = {k: v for k, v in data["model"].items() if not k.startswith("res3.1.")}
    data["model"]["head.fc.weight"] = data["model"]["stem.conv1.weight"][:1]  # matches nothing
    forged = tmp_path / "partial.pkl"
    forged.write_bytes(pickle.dumps(data, protocol=5))
    with pytest.raises(WeightsLoadError, match=r"1 of its \d+ tensors match nothing.*backbone tensors of the model "
                                               r"are not in it \(backbone.res3.1."):
        SafeCheckpointer(model, str(tmp_path)).load(str(forged))
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


# ----------------------------------------------------------------------------- pinned weights, attempts

def _swap(path):
    """Replace the converted file at `path` by another valid one (one tensor changed), as a rename would."""
    from benchmark.weights.loading import load_converted

    data = dict(load_converted(path))
    data["model"] = dict(data["model"])
    data["model"]["stem.conv1.weight"] = data["model"]["stem.conv1.weight"] * 0 + 1
    other = path.with_name("other.pkl")
    other.write_bytes(pickle.dumps(data, protocol=5))
    other.replace(path)


def test_weights_swapped_after_preparation_fail_the_run(ready, tmp_path):
    from benchmark.engine import Options, prepare
    from benchmark.engine.runner import RunFailed, run_one
    from benchmark.records import results

    pkl = tmp_path / "w.pkl"
    shutil.copy(ready[0].path, pkl)

    (job,) = prepare(Options(task="voc07", weights=str(pkl), data_root=str(ready[1]), output=str(tmp_path / "o"),
                             smoke=True))
    _swap(pkl)
    with pytest.raises(RunFailed, match="was replaced or changed since"):
        run_one(job)
    record = results.read_record(job.output_dir / "results.json")
    assert record.status == "failed" and record.iterations == 0
    assert record.reason.startswith(f"WeightsChangedError: MODEL.WEIGHTS {pkl}: its bytes have sha256 ")
    assert len(record.reason.splitlines()) == 1
    assert not list(job.output_dir.glob("model_*.pth"))


def test_the_checkpointer_refuses_bytes_other_than_the_pinned_ones(ready, tmp_path):
    from detectron2.modeling import build_model

    from benchmark.engine.checkpointer import SafeCheckpointer, WeightsChangedError, pinned_weights

    job = _job(ready, tmp_path / "o")
    model = build_model(job.cfg)
    with pinned_weights(ready[0].path, "ab" * 32):
        with pytest.raises(WeightsChangedError, match=r"not abababababab\.\.\. as when it was prepared"):
            SafeCheckpointer(model, str(tmp_path)).load(str(ready[0].path))
    with pinned_weights(ready[0].path, job.weights["sha256"]):
        SafeCheckpointer(model, str(tmp_path)).load(str(ready[0].path))  # the prepared bytes: loaded
    SafeCheckpointer(model, str(tmp_path)).load(str(ready[0].path))  # nothing pinned: loaded as before


def test_the_attempts_log_counts_every_attempt(tmp_path):
    from benchmark.engine.trials import AttemptLog

    log = AttemptLog(tmp_path, "d1")
    log.begin(0, 1.0)
    log.update(6, 50.0)  # then killed: the log stays "running"
    again = AttemptLog(tmp_path, "d1")
    assert again.attempts[0]["status"] == "killed"
    again.begin(4, 2.0, exact=False, note="why not")
    again.update(10, 30.0, "finished")
    assert again.total_duration() == 80.0
    assert again.resume_summary() == {"count": 1, "from_iterations": [4], "exact": False, "note": "why not"}
    assert AttemptLog(tmp_path, "d1").attempts == again.attempts  # as written
    assert AttemptLog(tmp_path, "another config").attempts == []  # another run's attempts never count
    (tmp_path / "attempts.json").write_text('{"version": 1, "attem')  # torn
    assert AttemptLog(tmp_path, "d1").resume_summary() == {"count": 0, "from_iterations": [], "exact": True,
                                                           "note": None}


@pytest.mark.parametrize("recorded, asked, problem", [
    ({"kind": "smoke"}, "full", "it is a --smoke run and this one is not"),
    ({"kind": "full"}, "smoke", "this is a --smoke run and it is not"),
    ({"kind": "sanity"}, "smoke", "it is a 'sanity' run and this one is 'smoke'"),
    ({"schema_version": 1, "deviations": ["smoke run: synthetic data"]}, "full",
     "it is a --smoke run and this one is not"),  # a v1 record: its kind read from its deviations
    ({"kind": "full"}, "full", None),
], ids=["smoke-for-full", "full-for-smoke", "sanity-for-smoke", "v1-smoke-for-full", "same"])
def test_a_finished_run_of_another_kind_is_not_reused(recorded, asked, problem):
    from benchmark.engine.trials import same_run_problem
    from benchmark.records.results import Record
    from tests.helpers.records import make_record

    data = make_record(task="voc07", weights={"name": "m", "sha256": "s" * 64, "source": "m.pth"}, config_digest="d",
                       **{k: v for k, v in recorded.items() if k != "schema_version"})
    if recorded.get("schema_version") == 1:  # as the last version 1 release wrote it: none of version 2's keys
        data = {k: v for k, v in data.items() if k not in ("kind", "protocol_digest", "assumptions", "resume")}
        data["schema_version"] = 1
    record = Record.from_json(data)
    assert same_run_problem(record, task="voc07", sha256="s" * 64, digest="d", kind=asked) == problem


@pytest.fixture(scope="module")
def linear_ready(module_tmp, synthetic_checkpoint):
    """Weights initialised as a real network (std-1 ones overflow the linear readoff) and ImageFolder data."""
    from benchmark.data import write_synthetic

    return synthetic_checkpoint("moco", width=8, init="torchvision"), write_synthetic("imagenet", module_tmp / "imagenet")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["voc07", "imagenet_linear"])
def test_a_trial_resumed_from_its_final_checkpoint_records_max_iter_iterations(ready, linear_ready, tmp_path, capsys,
                                                                                monkeypatch, task):
    # TrainerBase.train ends with iter = start_iter + 1 when the loop does not run (start_iter >= max_iter):
    # a trial whose final checkpoint is kept but whose record is lost must still record what it trained, 4.
    from benchmark.records import results

    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    weights, data = (ready[0].path, ready[1]) if task == "voc07" else linear_ready
    argv = ["--task", task, "--smoke", "--weights", weights, "--data-root", data, "--output", tmp_path / "o",
            "SOLVER.MAX_ITER", "4"] if task == "voc07" else [
        "--task", task, "--smoke", "--weights", weights, "--data-root", data, "--output", tmp_path / "o"]
    trial = tmp_path / "o" / "trial_0"
    assert run_cli(capsys, *argv)[0] == 0
    assert results.read_record(trial / "results.json").iterations == 4
    (trial / "results.json").unlink()
    rc, out = run_cli(capsys, *argv)
    record = results.read_record(trial / "results.json")
    assert rc == 0 and record.resume.count == 1  # resumed from the final checkpoint, nothing left to train
    assert (record.status, record.iterations) == ("finished", 4)


# (task, argv, what the one error line must say): each would train nothing, train late into a failure, or
# write no record; each is refused before compute, naming the option, with nothing written.
OUT_OF_RANGE = {
    "zero-linear-epochs": ("imagenet_linear", ["BENCHMARK.LINEAR.EPOCHS", "0"], "BENCHMARK.LINEAR.EPOCHS must be a positive"),
    "negative-linear-epochs": ("imagenet_linear", ["BENCHMARK.LINEAR.EPOCHS", "-3"], "BENCHMARK.LINEAR.EPOCHS must be a positive"),
    "negative-lr-step": ("imagenet_linear", ["BENCHMARK.LINEAR.LR_STEPS", "(-5,)"], "BENCHMARK.LINEAR.LR_STEPS must hold"),
    "fractional-lr-step": ("imagenet_linear", ["BENCHMARK.LINEAR.LR_STEPS", "(1.5,)"], "BENCHMARK.LINEAR.LR_STEPS must hold"),
    "zero-classes": ("imagenet_linear", ["BENCHMARK.LINEAR.NUM_CLASSES", "0"], "BENCHMARK.LINEAR.NUM_CLASSES must be a positive"),
    "zero-crop": ("imagenet_linear", ["BENCHMARK.LINEAR.TRAIN_CROP", "0"], "BENCHMARK.LINEAR.TRAIN_CROP must be a positive"),
    "negative-init-std": ("imagenet_linear", ["BENCHMARK.LINEAR.INIT_STD", "-1.0"], "BENCHMARK.LINEAR.INIT_STD must be >= 0"),
    "negative-solver-step": ("voc07", ["SOLVER.STEPS", "(-5,)"], "SOLVER.STEPS must hold"),
    "zero-max-iter": ("voc07", ["SOLVER.MAX_ITER", "0"], "SOLVER.MAX_ITER must be a positive"),
    "negative-seed": ("voc07", ["--seed", "-1"], "--seed must be in"),
    "huge-trials": ("voc07", ["--trials", str(10**10)], "--trials must be >= 1 and at most 1000"),
    "blank-name": ("voc07", ["--name", "   "], "--name must not be blank"),
    "empty-name": ("voc07", ["--name", ""], "--name must not be blank"),
}


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=list(OUT_OF_RANGE))
def test_options_out_of_range_are_refused_before_compute(ready, linear_ready, tmp_path, capsys, monkeypatch, case):
    task, argv, problem = OUT_OF_RANGE[case]
    monkeypatch.setenv("BENCHMARK_CACHE", str(tmp_path / "cache"))
    data = ready[1] if task == "voc07" else linear_ready[1]
    rc, out = run_cli(capsys, "--task", task, "--smoke", "--weights", ready[0].path, "--data-root", data,
                      "--output", tmp_path / "o", *argv)
    assert rc == 1 and problem in one_error_line(out.err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()


# what rank 0 had written when another process of the trial died: (record, status the runner reports)
DIED_AFTER = {
    "this run's finished record": ("finished", "finished"),
    "a finished record of another config": ("foreign", "failed"),
    "a failed record": ("failed", "failed"),
    "no record": (None, "failed"),
}


@pytest.mark.parametrize("case", sorted(DIED_AFTER))
def test_a_process_dying_after_the_finished_record_leaves_the_trial_finished(ready, tmp_path, monkeypatch, case):
    """The exit status follows the record: a process that died after rank 0 wrote this run's finished record
    (at teardown) does not turn it into a failed trial, which the next run would reuse as finished anyway.
    Any other record, or none, is a failed trial with a failed record."""
    from benchmark.engine import Options, runner
    from benchmark.records import results

    written, expected = DIED_AFTER[case]
    job = _job(ready, tmp_path / "o")

    def launch(*args, **kwargs):  # rank 0 wrote `written`, then process 1 died
        if written == "finished":
            _finished_record(job)
        elif written == "foreign":
            _finished_record(job, config_digest="0" * 64)
        elif written == "failed":
            _finished_record(job, status="failed", reason="RuntimeError: rank 0 failed")
        raise RuntimeError("process 1 terminated with signal SIGABRT")

    monkeypatch.setattr(runner, "launch", launch)
    opts = Options(task="voc07", weights=str(ready[0].path), data_root=str(ready[1]), output=str(tmp_path / "o"),
                   smoke=True, num_gpus=2)
    assert runner.launch_job(job, opts) == expected
    record = results.read_record(job.output_dir / "results.json")
    # a record written during this launch is never overwritten; without one, the runner writes the failure
    assert record.status == {"finished": "finished", "foreign": "finished", "failed": "failed", None: "failed"}[written]
    if written is None:
        assert record.reason == "process 1 terminated with signal SIGABRT"
