"""Reproduction: paper tables, the plan and its cost, verdicts, and end-to-end runs through the real
tools/run_transfer.py (--smoke) with the local launcher and submitit's local executor."""
import importlib.util
import math
from pathlib import Path

import pytest

from benchmark.records import cost
from benchmark.records import paper
from benchmark.records import reproduce
from benchmark.records import results
from benchmark.records.leaderboard import Stat

TOOL = Path(__file__).resolve().parents[1] / "tools" / "reproduce.py"
ZOO_BASE = "https://frontiers.blob.core.windows.net/pretraining/checkpoints/pil_pretrained_models/good_transfer/"


def _tool():
    spec = importlib.util.spec_from_file_location("reproduce_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# --------------------------------------------------------------------------- tables

def test_every_table_loads_with_only_referenced_numbers():
    assert paper.list_tables() == ["moco_voc0712", "smoke", "smoke_fail", "table1", "table2", "table3"]
    t3 = paper.load_table("table3")
    values = {(r.name, t, m): (c.value, c.secondary) for r in t3.rows for (t, m), c in r.cells.items()}
    assert values == {("supervised_baseline", "voc07", "bbox/AP"): (42.4, False), ("moco_v1", "voc07", "bbox/AP"): (46.6, False),
                      ("exemplar_v1", "voc07", "bbox/AP"): (47.2, True), ("exemplar_v2", "voc07", "bbox/AP"): (48.8, True)}
    assert [r.name for r in t3.rows if not r.runnable] == ["supervised_baseline", "moco_v1"]
    moco = paper.load_table("moco_voc0712")
    assert {r.name: tuple(r.cells[("voc0712", m)].value for m in ("bbox/AP50", "bbox/AP", "bbox/AP75")) for r in moco.rows} == {
        "supervised": (81.3, 53.5, 58.8), "moco_v1_200ep": (81.5, 55.9, 62.6),
        "moco_v2_200ep": (82.4, 57.0, 63.6), "moco_v2_800ep": (82.5, 57.4, 64.0)}
    assert not any(r.runnable for r in moco.rows)  # MoCo's own releases: no URL in REFERENCES.md
    for name in ("table1", "table2"):  # no published number of these tables is listed
        assert not any(r.cells for r in paper.load_table(name).rows)
    assert len(paper.load_table("table1").rows) == 10 and len(paper.load_table("table2").rows) == 14


def test_tolerance_rule():
    moco = paper.load_table("moco_voc0712")  # std 0.2/0.2/0.4, 5 published trials
    tol, basis = moco.tolerance_for("voc0712", "bbox/AP", 5)
    assert tol == pytest.approx(2 * 0.2 * math.sqrt(1 / 5 + 1 / 5) + 0.05) and basis == "2*0.2*sqrt(1/5+1/5)+0.05"
    assert moco.tolerance_for("voc0712", "bbox/AP75", 2)[0] == pytest.approx(2 * 0.4 * math.sqrt(1 / 2 + 1 / 5) + 0.05)
    over = paper.load_table("moco_voc0712", {("voc0712", "bbox/AP"): 1.5})
    assert over.tolerance_for("voc0712", "bbox/AP", 5) == (1.5, "set")
    assert paper.load_table("table3").tolerance_for("voc07", "bbox/AP", 5)[0] == pytest.approx(2 * 0.2 * math.sqrt(1.2) + 0.05)


@pytest.mark.parametrize("body, message", [
    ("columns: {voc07: [bbox/AP]}\nrows: [{name: a, zoo: exemplar_v1, cells: {voc07: {bbox/AP: {value: 1, source: s}}}}]",
     "row a, voc07 bbox/AP has a published value but the table gives neither a std nor a tolerance"),
    ("columns: {voc07: [bbox/APX]}\nrows: []", "task voc07 has no metric 'bbox/APX'"),
    ("columns: {voc9: [bbox/AP]}\nrows: []", "unknown task 'voc9'"),
    ("columns: {voc07: [bbox/AP]}\nrows: [{name: a, zoo: moco_v3}]", "row a: unknown zoo checkpoint 'moco_v3'"),
    ("columns: {voc07: [bbox/AP]}\nrows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: 'a > b'}]",
     "names 'b', which is not a row"),
    ("columns: {voc07: [bbox/AP]}\nrows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: 'a ** 2 > 1'}]",
     "is not allowed"),
    ("columns: {voc07: [bbox/AP]}\nrows: [{name: a}, {name: a}]", "row 'a' appears twice"),
])
def test_bad_tables_are_refused_naming_the_file(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(paper.TableError, match=f"^{path}: .*{message}"):
        paper.load_table(str(path))


def test_judge_cells_and_checks_by_hand():
    t3 = paper.load_table("table3")
    s = lambda *v: Stat(tuple(v))  # noqa: E731
    stats = {("exemplar_v1", "voc07"): {"bbox/AP": s(47.0, 47.4)},  # diff -0.0 -> holds
             ("exemplar_v2", "voc07"): {"bbox/AP": s(46.0, 46.2)},  # diff -2.7 -> differs
             ("moco_v2_imagenet", "voc07"): {"bbox/AP": s(45.0, 45.5)}}
    cells, checks = reproduce.judge(t3, stats, ("voc07",), {"exemplar_v1", "exemplar_v2", "moco_v2_imagenet"})
    by = {(c.row, c.task, c.metric): c for c in cells}
    e1 = by[("exemplar_v1", "voc07", "bbox/AP")]
    assert e1.verdict == "holds" and e1.diff == pytest.approx(0.0) and e1.tolerance == pytest.approx(2 * 0.2 * math.sqrt(1.5) + 0.05)
    e2 = by[("exemplar_v2", "voc07", "bbox/AP")]
    assert (e2.verdict, e2.judged, e2.ok) == ("differs", True, False) and e2.diff == pytest.approx(-2.7)
    assert by[("moco_v2_imagenet", "voc07", "bbox/AP")].verdict == "no reference"
    assert by[("moco_v1", "voc07", "bbox/AP")].verdict == "not run: no weights"
    assert by[("exemplar_v1", "coco", "bbox/AP")].verdict == "not run: task not selected"
    assert [(k.check.expr, k.check.task, k.verdict) for k in checks] == [
        ("exemplar_v2 > moco_v2_imagenet", "voc07", "holds"),
        ("exemplar_v2 > moco_v2_imagenet", "coco", "not run: task not selected"),
        ("exemplar_v2 > moco_v2_imagenet", "cityscapes", "not run: task not selected"),
        ("exemplar_v1 > moco_v1", "voc07", "not run: moco_v1 without weights")]
    assert not reproduce.passed(cells, checks)  # exemplar_v2 differs
    del stats[("exemplar_v2", "voc07")]  # its runs failed: judged, no result
    cells, checks = reproduce.judge(t3, stats, ("voc07",), {"exemplar_v1", "exemplar_v2", "moco_v2_imagenet"})
    assert [c.verdict for c in cells if c.row == "exemplar_v2" and c.metric == "bbox/AP" and c.task == "voc07"] == ["no result"]
    assert checks[0].verdict == "no result" and not checks[0].ok


def test_check_expressions():
    t1 = paper.load_table("table1")
    gain = t1.checks[0]
    assert gain.names == ("moco_v2_imagenet", "moco_v2_imagenet_aug_f", "supervised_imagenet", "supervised_imagenet_aug_f")
    means = {"moco_v2_imagenet": 46.0, "moco_v2_imagenet_aug_f": 40.0, "supervised_imagenet": 44.0, "supervised_imagenet_aug_f": 41.0}
    assert paper.evaluate_check(gain, means)  # +6 > +3
    assert not paper.evaluate_check(gain, dict(means, supervised_imagenet_aug_f=37.0))  # +6 > +7 fails
    spread = paper.load_table("table2").checks[0]
    vals = {n: 50.0 for n in spread.names}
    vals.update(moco_v2_celeba=49.0, supervised_celeba=47.0)  # MoCo spread 1 < supervised spread 3
    assert paper.evaluate_check(spread, vals) and "moco_v2_synthia" not in spread.names


# --------------------------------------------------------------------------- plan and dry run

def test_dry_run_of_table3_lists_runs_with_zoo_urls_and_gpu_hours(capsys, tmp_path):
    assert _tool()(["--table", "table3", "--dry-run", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"3 rows x 3 tasks (voc07, coco, cityscapes) x 5 trials = 45 runs; records under {tmp_path}/runs"
    runs = [ln for ln in out if ln.startswith(("exemplar_v", "moco_v2_imagenet"))]
    assert len(runs) == 45
    assert runs[0].split() == ["exemplar_v1", "voc07", "0", "0", "to", "run", "14.9*", ZOO_BASE + "exemplar_v1.pth"]
    assert runs[-1].split() == ["exemplar_v2", "cityscapes", "4", "4", "to", "run", "?", ZOO_BASE + "exemplar_v2.pth"]
    voc, coco = cost.run_gpu_hours("voc07"), cost.run_gpu_hours("coco")
    assert voc == pytest.approx(0.537 * 12500 * 8 / 3600) and coco == pytest.approx(0.584 * 90000 * 8 / 3600)
    total = next(ln for ln in out if ln.startswith("to run: "))
    assert total == "to run: 45 of 45 runs; estimated 1975.7 GPU-hours + 15 runs of unknown cost (estimate, see *)"
    assert 15 * (voc + coco) == pytest.approx(1975.75)
    assert "not run: moco_v1: no weights: reported only (give --weights moco_v1=SPEC to run it)" in out
    assert any(ln.startswith("  voc07: * estimate: 0.537 s/iter x 12500 iterations x 8 GPUs = 14.9 GPU-h per run; basis: detectron2")
               for ln in out)
    assert not (tmp_path / "runs").exists()  # a dry run runs nothing


def test_plan_options_and_bad_input(capsys, tmp_path):
    table = paper.load_table("table3")
    opts = reproduce.Options("table3", tasks=["voc07"], trials=2, seed=10, output=str(tmp_path), weights={"moco_v1": "/m.pth"})
    runs, not_run = reproduce.plan(table, opts)
    assert [(r.row, r.task, r.trial, r.seed) for r in runs][:3] == [("moco_v1", "voc07", 0, 10), ("moco_v1", "voc07", 1, 11),
                                                                     ("exemplar_v1", "voc07", 0, 10)]
    assert len(runs) == 8 and not_run == [("supervised_baseline", "no weights: reported only (give --weights "
                                                                  "supervised_baseline=SPEC to run it)")]
    assert runs[2].output == tmp_path / "runs" / "exemplar_v1" / "voc07" and runs[2].weights == "zoo:exemplar_v1"
    main = _tool()
    for argv, message in [(["--tasks", "voc0712"], "error: table table3 has no task voc0712; its tasks: voc07, coco, cityscapes"),
                          (["--weights", "nobody=/x.pth"], "error: --weights names no row of table3: nobody"),
                          (["--trials", "0"], "error: --trials must be >= 1, got 0")]:
        assert main(["--table", "table3", "--dry-run", *argv]) == 1
        assert capsys.readouterr().err.strip() == message
    assert main(["--table", "table9"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown table 'table9'; known: moco_voc0712, smoke")


def test_a_folder_holding_other_weights_is_refused(tmp_path):
    opts = reproduce.Options("table3", tasks=["voc07"], trials=1, output=str(tmp_path))
    run = reproduce.plan(paper.load_table("table3"), opts)[0][0]
    rec = results.new_record(task="voc07", weights={"name": "exemplar_v1", "sha256": None, "source": "zoo:exemplar_v2"},
                             seed=0, trial=0, status="finished", iterations=1, world_size=1, ims_per_batch=2,
                             duration_s=1.0, config_digest="0", environment={})
    results.write_record(run.record_dir, rec)
    with pytest.raises(reproduce.ReproduceError, match="holds a run of zoo:exemplar_v2 .* but the plan puts zoo:exemplar_v1 \\(voc07, trial 0\\) there; use another --output"):
        reproduce.run_state(run)


def test_a_run_that_dies_without_a_record_is_a_failure(tmp_path, capsys):
    """Real CLI, no training: the weights do not exist, so run_transfer refuses before any compute."""
    table = tmp_path / "t.yaml"
    table.write_text("columns: {voc07: [bbox/AP]}\ntolerance: {voc07: {bbox/AP: 100}}\n"
                     f"rows: [{{name: ghost, weights: {tmp_path / 'missing.pth'}, "
                     "cells: {voc07: {bbox/AP: {value: 1, source: test}}}}]\n")
    out = tmp_path / "out"
    assert _tool()(["--table", str(table), "--trials", "1", "--smoke", "--output", str(out)]) == 1
    assert "FAIL: 0/1 judged cells hold" in capsys.readouterr().out
    md = (out / "t.md").read_text()
    assert "| ghost | voc07 | bbox/AP | - | 1 | test | - | - | no result |" in md
    assert f"| ghost | voc07 | 0 | exit status 1 and no run record; see {out}/logs/ghost/voc07/trial_0.log | - |" in md
    assert "missing.pth" in (out / "logs" / "ghost" / "voc07" / "trial_0.log").read_text()


# --------------------------------------------------------------------------- end to end (real run_transfer --smoke)

def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in Path(root).rglob("results.json")}


@pytest.mark.slow
def test_smoke_reproduction_passes_then_the_failing_table_reuses_its_runs(tmp_path, capsys):
    """2 synthetic rows x voc07 x 2 trials through tools/run_transfer.py --smoke; then smoke_fail,
    which names the same rows, is judged on the same runs without launching any."""
    main, out = _tool(), tmp_path / "out"
    short = ["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(3,)"]  # a quarter of the smoke schedule: CI time
    assert main(["--table", "smoke", "--smoke", "--trials", "2", "--output", str(out), *short]) == 0
    said = capsys.readouterr().out
    assert "smoke: 4 runs planned, 0 finished earlier (skipped), 4 to run" in said
    assert "PASS: 1/1 judged cells hold, 1/1 judged checks hold; 3 cells and 0 checks not judged" in said
    records, problems = results.gather([out / "runs_smoke"])
    assert problems == [] and sorted((r["weights"]["name"], r["trial"], r["status"], r["seed"], r["iterations"]) for r in records) == [
        ("synthetic_moco", 0, "finished", 0, 4), ("synthetic_moco", 1, "finished", 1, 4),
        ("synthetic_torchvision", 0, "finished", 0, 4), ("synthetic_torchvision", 1, "finished", 1, 4)]
    ap = [r["metrics"]["bbox"]["AP"] for r in records if r["weights"]["name"] == "synthetic_moco"]
    stat = Stat(tuple(ap))
    md = (out / "smoke.md").read_text()
    assert (f"| synthetic_moco | voc07 | bbox/AP | {stat.format()} | 50 | made up (machinery test) | "
            f"{stat.mean - 50:+.2f} | 100.00 | holds |") in md
    assert "| synthetic_torchvision | voc07 | bbox/AP50 |" in md and "no reference |" in md
    csv_lines = (out / "smoke.csv").read_text().splitlines()
    assert csv_lines[0] == "kind,row,task,metric,ours_mean,ours_std,n,paper,paper_source,secondary,diff,tolerance,verdict,check"
    assert csv_lines[1].startswith(f"cell,synthetic_moco,voc07,bbox/AP,{stat.mean:.4f},") and csv_lines[1].endswith(",holds,")
    before = _mtimes(out / "runs_smoke")

    assert main(["--table", "smoke_fail", "--smoke", "--trials", "2", "--output", str(out), *short]) == 1
    said = capsys.readouterr().out
    assert "smoke_fail: 4 runs planned, 4 finished earlier (skipped), 0 to run" in said
    assert "FAIL: 0/1 judged cells hold, 0/1 judged checks hold; 3 cells and 0 checks not judged" in said
    assert _mtimes(out / "runs_smoke") == before  # nothing was rerun
    md = (out / "smoke_fail.md").read_text()
    assert f"| {stat.mean - 100:+.2f} | 0.01 | differs |" in md and "| does not hold |" in md

    assert main(["--table", "smoke", "--smoke", "--trials", "2", "--output", str(out), *short]) == 0  # a restart: all reused
    assert "4 finished earlier (skipped), 0 to run" in capsys.readouterr().out
    assert _mtimes(out / "runs_smoke") == before


@pytest.mark.slow
def test_slurm_launcher_through_submitits_local_executor(tmp_path, capsys):
    """The slurm code path (AutoExecutor, one job per run, wait, collect) on submitit's local cluster;
    one synthetic row, one trial, 4 iterations of the smoke schedule."""
    table = tmp_path / "one.yaml"
    table.write_text("columns: {voc07: [bbox/AP]}\ntolerance: {voc07: {bbox/AP: 100}}\n"
                     "rows: [{name: synth, synthetic: {layout: torchvision, seed: 2}, "
                     "cells: {voc07: {bbox/AP: {value: 50, source: machinery test}}}}]\n")
    out = tmp_path / "out"
    opts = reproduce.Options(str(table), trials=1, launcher="slurm", smoke=True, output=str(out), cluster="local",
                             gpus_per_node=0, num_gpus=1, timeout_min=30, partition="ignored-locally",
                             opts=["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(3,)"])
    said = []
    assert reproduce.reproduce(opts, say=said.append) == 0
    assert said[1].startswith("submitted 1 jobs (local): ") and said[2].startswith("[1/1] synth voc07 trial 0: finished (job ")
    record = results.read_record(out / "runs_smoke" / "synth" / "voc07" / "trial_0" / "results.json")
    assert (record["status"], record["iterations"], record["weights"]["name"]) == ("finished", 4, "synth")
    assert any((out / "slurm").rglob("*_result.pkl"))  # submitit's own bookkeeping
    assert said[-1] == "PASS: 1/1 judged cells hold, 0/0 judged checks hold; 0 cells and 0 checks not judged"
