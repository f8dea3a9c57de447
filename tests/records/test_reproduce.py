"""Reproduction: paper tables, the plan and its cost, verdicts, and end-to-end runs through the real
run_transfer CLI (--smoke) with the local launcher and submitit's local executor."""
import math
import os
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.records import results
from benchmark.records.pooling import Stat
from benchmark.reproduce import cost, launch, paper
from benchmark.reproduce.assumed import assumed
from benchmark.reproduce.judge import judge, passed
from benchmark.reproduce.plan import Options, ReproduceError, format_plan, parse_tolerances, plan, run_state
from benchmark.reproduce.report import to_csv, to_markdown
from benchmark.reproduce.run import command, reproduce
from tests.helpers.records import write_record
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import ROOT, tool

FIXTURES = ROOT / "tests" / "fixtures" / "paper"
SMOKE, SMOKE_FAIL = FIXTURES / "smoke.yaml", FIXTURES / "smoke_fail.yaml"
ZOO_BASE = "https://frontiers.blob.core.windows.net/pretraining/checkpoints/pil_pretrained_models/good_transfer/"


# --------------------------------------------------------------------------- tables

def test_every_table_loads_with_only_referenced_numbers():
    assert paper.list_tables() == ["moco_voc0712", "table1", "table2", "table3", "table4", "table5"]  # the paper's, no machinery tests
    t3 = paper.load_table("table3")
    values = {(r.name, t, m): (c.value, c.secondary) for r in t3.rows for (t, m), c in r.cells.items()}
    assert values == {("supervised_baseline", "voc07", "bbox/AP"): (42.4, False), ("moco_v1", "voc07", "bbox/AP"): (46.6, False),
                      ("exemplar_v1", "voc07", "bbox/AP"): (47.2, True), ("exemplar_v2", "voc07", "bbox/AP"): (48.8, True),
                      # the ImageNet linear readoff: 68.9 vs 77.3 (paper), 64.6 (secondary summary)
                      ("supervised_baseline", "imagenet_linear", "cls/top1"): (77.3, False),
                      ("exemplar_v1", "imagenet_linear", "cls/top1"): (64.6, True),
                      ("exemplar_v2", "imagenet_linear", "cls/top1"): (68.9, False)}
    assert [r.name for r in t3.rows if not r.runnable] == ["supervised_baseline", "moco_v1"]
    moco = paper.load_table("moco_voc0712")
    assert {r.name: tuple(r.cells[("voc0712", m)].value for m in ("bbox/AP50", "bbox/AP", "bbox/AP75")) for r in moco.rows} == {
        "supervised": (81.3, 53.5, 58.8), "moco_v1_200ep": (81.5, 55.9, 62.6),
        "moco_v2_200ep": (82.4, 57.0, 63.6), "moco_v2_800ep": (82.5, 57.4, 64.0)}
    assert not any(r.runnable for r in moco.rows)  # MoCo's own releases: no URL in docs/REFERENCES.md
    for name in ("table1", "table2"):  # no published number of these tables is listed
        assert not any(r.cells for r in paper.load_table(name).rows)
    assert len(paper.load_table("table1").rows) == 10 and len(paper.load_table("table2").rows) == 14


def test_the_gpu_workflow_offers_exactly_the_paper_tables():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "reproduce.yml").read_text())
    table = workflow[True]["workflow_dispatch"]["inputs"]["table"]  # YAML 1.1 reads the key `on` as True
    assert sorted(table["options"]) == paper.list_tables() and table["default"] in paper.list_tables()


def test_ci_reproduces_the_smoke_fixture():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"--table {SMOKE.relative_to(ROOT)} --smoke" in ci and SMOKE.is_file()


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
    from scipy import stats as stats_

    t3 = paper.load_table("table3")
    s = lambda *v: Stat(tuple(v))  # noqa: E731
    stats = {("supervised_baseline", "voc07"): {"bbox/AP": s(42.2, 42.6)},  # 42.4 published: diff 0 -> holds
             ("moco_v1", "voc07"): {"bbox/AP": s(44.0, 44.1, 44.2)},  # 46.6 published: diff -2.5 -> differs
             ("exemplar_v1", "voc07"): {"bbox/AP": s(47.0, 47.4)},  # 47.2 secondary: within, not judged
             ("exemplar_v2", "voc07"): {"bbox/AP": s(46.0, 46.1, 46.2)},  # 48.8 secondary: outside, not judged
             ("moco_v2_imagenet", "voc07"): {"bbox/AP": s(45.0, 45.1, 45.2)}}
    runnable = {"supervised_baseline", "moco_v1", "exemplar_v1", "exemplar_v2", "moco_v2_imagenet"}
    cells, checks = judge(t3, stats, ("voc07",), runnable)
    by = {(c.row, c.task, c.metric): c for c in cells}
    sup = by[("supervised_baseline", "voc07", "bbox/AP")]
    assert (sup.verdict, sup.judged, sup.ok) == ("holds", True, True) and sup.diff == pytest.approx(0.0)
    assert sup.tolerance == pytest.approx(2 * 0.2 * math.sqrt(1.5) + 0.05)
    m1 = by[("moco_v1", "voc07", "bbox/AP")]
    assert (m1.verdict, m1.judged, m1.ok) == ("differs", True, False) and m1.diff == pytest.approx(-2.5)
    e1, e2 = by[("exemplar_v1", "voc07", "bbox/AP")], by[("exemplar_v2", "voc07", "bbox/AP")]
    assert (e1.verdict, e1.judged) == ("within tolerance (secondary value: not judged)", False) and e1.diff == pytest.approx(0.0)
    assert (e2.verdict, e2.judged, e2.ok) == ("outside tolerance (secondary value: not judged)", False, True)
    assert e2.diff == pytest.approx(-2.7)  # shown with its difference, never a failure
    assert by[("moco_v2_imagenet", "voc07", "bbox/AP")].verdict == "no reference"
    assert by[("exemplar_v1", "coco", "bbox/AP")].verdict == "not run: task not selected"
    p = stats_.ttest_ind([46.0, 46.1, 46.2], [45.0, 45.1, 45.2], equal_var=False).pvalue  # 0.000255
    p1 = stats_.ttest_ind([47.0, 47.4], [44.0, 44.1, 44.2], equal_var=False).pvalue
    assert [(k.check.expr, k.check.task, k.verdict) for k in checks] == [
        ("exemplar_v2 > moco_v2_imagenet", "voc07", f"holds (Welch p = {p:.3g})"),
        ("exemplar_v2 > moco_v2_imagenet", "coco", "not run: task not selected"),
        ("exemplar_v2 > moco_v2_imagenet", "cityscapes", "not run: task not selected"),
        ("exemplar_v2 > moco_v2_imagenet", "imagenet_linear", "not run: task not selected"),
        ("exemplar_v1 > moco_v1", "voc07", f"{'holds' if p1 < 0.05 else 'does not hold'} (Welch p = {p1:.3g})"
                                           + ("" if p1 < 0.05 else ": the difference is not significant"))]
    assert not passed(cells, checks)  # moco_v1 differs
    del stats[("moco_v1", "voc07")]
    cells, checks = judge(t3, stats, ("voc07",), runnable - {"moco_v1"})
    assert passed(cells, checks)  # the secondary exemplar_v2 cell, outside its tolerance, fails nothing
    del stats[("exemplar_v2", "voc07")]  # its runs failed: a secondary cell is still not judged; the check is
    cells, checks = judge(t3, stats, ("voc07",), runnable)
    assert [c.verdict for c in cells if c.row == "exemplar_v2" and c.metric == "bbox/AP" and c.task == "voc07"] == [
        "no result (secondary value: not judged)"]
    assert checks[0].verdict == "no result" and not checks[0].ok


def test_verdicts_on_an_assumed_protocol_say_so():
    t3 = paper.load_table("table3")
    s = lambda *v: Stat(tuple(v))  # noqa: E731
    stats = {("supervised_baseline", "voc07"): {"bbox/AP": s(42.2, 42.6)},
             ("exemplar_v1", "voc07"): {"bbox/AP": s(47.0, 47.4)}, ("exemplar_v2", "voc07"): {"bbox/AP": s(49.0)},
             ("moco_v2_imagenet", "voc07"): {"bbox/AP": s(45.0)}}
    runnable = {"supervised_baseline", "exemplar_v1", "exemplar_v2", "moco_v2_imagenet"}
    cells, checks = judge(t3, stats, ("voc07", "coco"), runnable)
    by = {(c.row, c.task, c.metric): c for c in cells}
    assert by[("supervised_baseline", "voc07", "bbox/AP")].assumptions == ("voc07-schedule",)
    assert by[("exemplar_v1", "voc07", "bbox/AP")].assumptions == ()  # secondary: not judged, no mark
    assert by[("exemplar_v1", "coco", "bbox/AP")].assumptions == ()  # no published value: not judged, no mark
    assert by[("moco_v2_imagenet", "voc07", "bbox/AP")].assumptions == ()  # not judged (no reference): no mark
    assert by[("moco_v1", "voc07", "bbox/AP")].assumptions == ()  # not run
    assert [(k.check.task, k.verdict, k.assumptions) for k in checks] == [
        ("voc07", "not enough trials (exemplar_v2: 1, moco_v2_imagenet: 1; a significance test needs >= 2 each)", ()),
        ("coco", "no result", ("coco-1x-schedule",)),
        ("cityscapes", "not run: task not selected", ()), ("imagenet_linear", "not run: task not selected", ()),
        ("voc07", "not run: moco_v1 without weights", ())]
    opts = Options("table3", tasks=["voc07", "coco"], trials=2)
    md = to_markdown(t3, cells, checks, [], [], opts, "counts")
    assert "| +0.00 | 0.54 | holds [assumed protocol: voc07-schedule] |" in md
    assert "| not enough trials (exemplar_v2: 1" in md.split("## Checks")[1]
    section = md.split("## Assumed protocols")[1].split("##")[0]
    assert "- voc07: voc07-schedule: the VOC07 schedule" in section and "- coco: coco-1x-schedule:" in section
    assert "cityscapes" not in section  # not a selected task
    rows = to_csv(cells, checks).splitlines()
    assert [r for r in rows if r.startswith("cell,supervised_baseline,voc07,bbox/AP,")][0].endswith(",holds,,voc07-schedule")
    assert [r for r in rows if r.startswith("cell,exemplar_v1,voc07,bbox/AP,")][0].endswith(
        ",within tolerance (secondary value: not judged),,")
    # a fully published protocol carries no mark
    moco = paper.load_table("moco_voc0712")
    cells, _ = judge(moco, {("supervised", "voc0712"): {"bbox/AP": s(53.5)}}, ("voc0712",), {"supervised"})
    assert {c.assumptions for c in cells} == {()} and assumed(("voc0712",)) == {}


def test_dry_run_of_table3_is_the_golden_text(capsys, tmp_path, monkeypatch):
    """The whole --dry-run text of table3 (plan, zoo URLs, states, GPU-hours, assumed protocols) as the
    command printed it before reproduction became its own package: a reshaping must not change it."""
    monkeypatch.chdir(tmp_path)  # the default --output (output/reproduce) is relative and holds no run here
    assert tool("reproduce")(["--table", "table3", "--dry-run"]) == 0
    assert capsys.readouterr().out == (ROOT / "tests" / "fixtures" / "reproduce_table3_dry_run.txt").read_text()


def test_dry_run_of_table3_marks_what_depends_on_an_assumption(capsys, tmp_path):
    assert tool("reproduce")(["--table", "table3", "--dry-run", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out.split("\nassumed protocols")[1].splitlines()
    assert [ln.split(":")[0] for ln in out[1:5]] == ["  voc07", "  coco", "  cityscapes", "  imagenet_linear"]
    assert "VISSL" in out[1] and "MoCo published the 2x config only" in out[2] and "mmsegmentation" in out[3]
    assert "main_lincls.py" in out[4] and "publish no recipe" in out[4]
    assert out[5] == "cells and checks judged under an assumed protocol:"
    linear = "[assumed protocol: linear-readoff-recipe]"
    assert out[6:] == [
        "  cell supervised_baseline voc07 bbox/AP = 42.4 (published, reported only: no weights) [assumed protocol: voc07-schedule]",
        f"  cell supervised_baseline imagenet_linear cls/top1 = 77.3 (published, reported only: no weights) {linear}",
        "  cell moco_v1 voc07 bbox/AP = 46.6 (published, reported only: no weights) [assumed protocol: voc07-schedule]",
        f"  cell exemplar_v2 imagenet_linear cls/top1 = 68.9 (published) {linear}",
        "  check voc07 bbox/AP: exemplar_v2 > moco_v2_imagenet [assumed protocol: voc07-schedule]",
        "  check coco bbox/AP: exemplar_v2 > moco_v2_imagenet [assumed protocol: coco-1x-schedule]",
        "  check cityscapes sem_seg/mIoU: exemplar_v2 > moco_v2_imagenet [assumed protocol: cityscapes-codebase]",
        f"  check imagenet_linear cls/top1: exemplar_v2 > moco_v2_imagenet {linear}",
        "  check voc07 bbox/AP: exemplar_v1 > moco_v1 [assumed protocol: voc07-schedule]"]


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
    assert tool("reproduce")(["--table", "table3", "--dry-run", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"3 rows x 4 tasks (voc07, coco, cityscapes, imagenet_linear) x 5 trials = 60 runs; records "
                      f"under {tmp_path}/runs")
    runs = [ln for ln in out if ln.startswith(("exemplar_v", "moco_v2_imagenet"))]
    assert len(runs) == 60
    assert runs[0].split() == ["exemplar_v1", "voc07", "0", "0", "to", "run", "14.9*", ZOO_BASE + "exemplar_v1.pth"]
    assert runs[-1].split() == ["exemplar_v2", "imagenet_linear", "4", "4", "to", "run", "111.2*",
                                ZOO_BASE + "exemplar_v2.pth"]
    voc, coco, linear = (cost.run_gpu_hours(t) for t in ("voc07", "coco", "imagenet_linear"))
    assert voc == pytest.approx(0.537 * 12500 * 8 / 3600) and coco == pytest.approx(0.584 * 90000 * 8 / 3600)
    assert linear == pytest.approx(0.1 * 500500 * 8 / 3600)  # 100 epochs of 5005 iterations, an estimate
    total = next(ln for ln in out if ln.startswith("to run: "))
    assert total == "to run: 60 of 60 runs; estimated 3644.1 GPU-hours + 15 runs of unknown cost (estimate, see *)"
    assert 15 * (voc + coco + linear) == pytest.approx(3644.08, abs=0.01)
    assert any(ln.startswith("  imagenet_linear: * estimate: 0.1 s/iter x 500500 iterations x 8 GPUs = 111.2 GPU-h per "
                             "run; basis: no published figure") for ln in out)
    assert "not run: moco_v1: no weights: reported only (give --weights moco_v1=SPEC to run it)" in out
    assert any(ln.startswith("  voc07: * estimate: 0.537 s/iter x 12500 iterations x 8 GPUs = 14.9 GPU-h per run; basis: detectron2")
               for ln in out)
    assert not (tmp_path / "runs").exists()  # a dry run runs nothing


def test_plan_options(tmp_path):
    table = paper.load_table("table3")
    opts = Options("table3", tasks=["voc07"], trials=2, seed=10, output=str(tmp_path), weights={"moco_v1": "/m.pth"})
    runs, not_run = plan(table, opts)
    assert [(r.row, r.task, r.trial, r.seed) for r in runs][:3] == [("moco_v1", "voc07", 0, 10), ("moco_v1", "voc07", 1, 11),
                                                                     ("exemplar_v1", "voc07", 0, 10)]
    assert len(runs) == 8 and not_run == [("supervised_baseline", "no weights: reported only (give --weights "
                                                                  "supervised_baseline=SPEC to run it)")]
    assert runs[2].output == tmp_path / "runs" / "exemplar_v1" / "voc07" and runs[2].weights == "zoo:exemplar_v1"


BAD_PLAN_OPTIONS = {
    "unknown task": (["--tasks", "voc0712"], "error: table table3 has no task voc0712; its tasks: voc07, coco, cityscapes, "
                                              "imagenet_linear"),
    "weights of no row": (["--weights", "nobody=/x.pth"], "error: --weights names no row of table3: nobody"),
    "weights not ROW=SPEC": (["--weights", "nobody"], "error: --weights nobody: not of the form ROW=SPEC"),
    "no trial": (["--trials", "0"], "error: --trials must be >= 1 and at most 1000, got 0"),
}


@pytest.mark.parametrize("argv, message", BAD_PLAN_OPTIONS.values(), ids=BAD_PLAN_OPTIONS)
def test_bad_plan_options_are_refused(capsys, tmp_path, argv, message):
    assert tool("reproduce")(["--table", "table3", "--dry-run", "--output", str(tmp_path / "out"), *argv]) == 1
    assert one_error_line(capsys.readouterr().err) == message
    assert not (tmp_path / "out").exists()


BAD_TABLES = {
    "unknown name": ("table9", "error: unknown table 'table9'; known: moco_voc0712, table1, table2, table3, table4, table5 "
                               "(or the path of a .yaml file)"),
    "smoke is no paper table": ("smoke", "error: unknown table 'smoke'; known: moco_voc0712, table1, table2, table3, table4, table5"),
    "a name with .yaml": ("table3.yaml", "error: table3.yaml: no such table file"),
    "a missing file": ("{tmp}/t.yaml", "error: {tmp}/t.yaml: no such table file"),
    "a folder": ("{tmp}", "error: unknown table '{tmp}'"),
    "a folder named .yaml": ("{tmp}/dir.yaml", "error: {tmp}/dir.yaml: no such table file"),
}


@pytest.mark.parametrize("table, message", BAD_TABLES.values(), ids=BAD_TABLES)
def test_bad_table_names_are_refused(capsys, tmp_path, monkeypatch, table, message):
    (tmp_path / "dir.yaml").mkdir()
    monkeypatch.chdir(tmp_path)  # "table3.yaml" is looked for here, not in the package
    assert tool("reproduce")(["--table", table.format(tmp=tmp_path), "--dry-run", "--output", str(tmp_path / "out")]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "out").exists()


def test_a_table_given_as_a_path_is_planned_under_its_file_name(capsys, tmp_path):
    assert tool("reproduce")(["--table", str(SMOKE), "--smoke", "--trials", "2", "--dry-run", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "smoke: Smoke: reproduction machinery on synthetic checkpoints (not a paper table)"
    assert out[1].startswith(f"2 rows x 1 tasks (voc07) x 2 trials = 4 runs; records under {tmp_path}/runs_smoke  [--smoke")
    assert [ln.split()[:3] for ln in out[4:8]] == [["synthetic_moco", "voc07", "0"], ["synthetic_moco", "voc07", "1"],
                                                  ["synthetic_torchvision", "voc07", "0"], ["synthetic_torchvision", "voc07", "1"]]


def test_the_plan_is_a_table_with_right_aligned_numbers(tmp_path):
    table = paper.load_table("table3")
    opts = Options("table3", tasks=["voc07", "cityscapes"], trials=1, output=str(tmp_path))
    runs, not_run = plan(table, opts)
    lines = format_plan(table, runs, not_run, opts).splitlines()
    head, first, unknown = lines[3], lines[4], lines[5]
    assert head.split() == ["row", "task", "trial", "seed", "status", "GPU-h", "weights"]
    assert first.split() == ["exemplar_v1", "voc07", "0", "0", "to", "run", "14.9*", ZOO_BASE + "exemplar_v1.pth"]
    assert unknown.split()[:2] == ["exemplar_v1", "cityscapes"]
    gpu_h = head.index("GPU-h") + len("GPU-h")  # numbers end under the end of their header
    assert first[gpu_h - len("14.9*"):gpu_h] == "14.9*" and unknown[gpu_h - 1:gpu_h] == "?"
    assert first.index(ZOO_BASE) == head.index("weights")


def test_a_folder_holding_other_weights_is_refused(tmp_path):
    opts = Options("table3", tasks=["voc07"], trials=1, output=str(tmp_path))
    run = plan(paper.load_table("table3"), opts)[0][0]
    write_record(run.record_dir, weights={"name": "exemplar_v1", "sha256": None, "source": "zoo:exemplar_v2"})
    with pytest.raises(ReproduceError, match="holds a run of zoo:exemplar_v2 .* but the plan puts zoo:exemplar_v1 "
                                                       "\\(voc07, trial 0\\) there; use another --output"):
        run_state(run)


# --------------------------------------------------------------------------- --tolerance

_FORM = "expected TASK:METRIC=VALUE (e.g. voc07:bbox/AP=1.0), VALUE a finite number >= 0"
BAD_TOLERANCES = {
    "slash for colon": (["voc07/bbox/AP=1.0"], "voc07/bbox/AP=1.0: no ':' between TASK and METRIC"),
    "task only": (["voc07=1"], "voc07=1: no ':' between TASK and METRIC"),
    "no value": (["voc07:bbox/AP"], "voc07:bbox/AP: no '=' before VALUE"),
    "empty value": (["voc07:bbox/AP="], "voc07:bbox/AP=: '' is not a number"),
    "text value": (["voc07:bbox/AP=abc"], "voc07:bbox/AP=abc: 'abc' is not a number"),
    "empty task": ([":bbox/AP=1"], ":bbox/AP=1: TASK is empty"),
    "empty metric": (["voc07:=1"], "voc07:=1: METRIC is empty"),
    "two colons": (["voc07:bbox:AP=1"], "voc07:bbox:AP=1: more than one ':'"),
    "negative": (["voc07:bbox/AP=-1"], "voc07:bbox/AP=-1: -1 is not a finite number >= 0"),
    "nan": (["voc07:bbox/AP=nan"], "voc07:bbox/AP=nan: nan is not a finite number >= 0"),
    "infinite": (["voc07:bbox/AP=inf"], "voc07:bbox/AP=inf: inf is not a finite number >= 0"),
    "overflow": (["voc07:bbox/AP=1e999"], "voc07:bbox/AP=1e999: 1e999 is not a finite number >= 0"),
    "given twice": (["voc07:bbox/AP=1", "voc07:bbox/AP=2"], "voc07:bbox/AP=2: voc07:bbox/AP is given twice"),
    "unknown task": (["voc9:bbox/AP=1"], "voc9:bbox/AP=1.0: 'voc9' is not a task of table t (its tasks: voc07)"),
    "task of the suite, not of the table": (["coco:bbox/AP=1"], "coco:bbox/AP=1.0: 'coco' is not a task of table t (its tasks: voc07)"),
    "metric not a column": (["voc07:bbox/AP75=1"],
                            "voc07:bbox/AP75=1.0: 'bbox/AP75' is not a column of table t for voc07 (its voc07 columns: bbox/AP)"),
}


def _ghost_table(tmp_path):
    """A table whose one row cannot run (missing weights): were a bad --tolerance let through, its run
    would be launched, fail fast, and leave OUTPUT/logs behind."""
    table = tmp_path / "t.yaml"
    table.write_text("columns: {voc07: [bbox/AP]}\nstd: {voc07: {bbox/AP: 0.2}}\n"
                     f"rows: [{{name: ghost, weights: {tmp_path / 'missing.pth'}, "
                     "cells: {voc07: {bbox/AP: {value: 40, source: test}}}}]\n")
    return table


@pytest.mark.parametrize("values, message", BAD_TOLERANCES.values(), ids=BAD_TOLERANCES)
def test_bad_tolerances_are_refused_before_anything_runs(capsys, tmp_path, values, message):
    out = tmp_path / "out"
    argv = ["--table", str(_ghost_table(tmp_path)), "--trials", "1", "--smoke", "--output", str(out), "--tolerance", *values]
    assert tool("reproduce")(argv) == 1
    assert one_error_line(capsys.readouterr().err) == f"error: --tolerance {message}; {_FORM}"
    assert not out.exists()


def test_a_tolerance_given_by_hand_decides_the_verdict(capsys, tmp_path):
    """Finished records already there (nothing is launched); ours 41.0 vs the paper's 40: the table's
    rule (std 0.2, n 1) says differs, --tolerance voc07:bbox/AP=1.5 says holds."""
    table, out = _ghost_table(tmp_path), tmp_path / "out"
    write_record(out / "runs_smoke" / "ghost" / "voc07" / "trial_0",
                 weights={"name": "ghost", "sha256": None, "source": str(tmp_path / "missing.pth")},
                 metrics={"bbox": {"AP": 41.0}}, kind="smoke")
    argv = ["--table", str(table), "--trials", "1", "--smoke", "--output", str(out)]
    assert tool("reproduce")(argv) == 1
    rule = 2 * 0.2 * math.sqrt(2) + 0.05
    mark = " [assumed protocol: voc07-schedule]"  # voc07's schedule is VISSL's (configs/sources.yaml)
    assert f"| ghost | voc07 | bbox/AP | 41.00 (1) | 40 | test | +1.00 | {rule:.2f} | differs{mark} |" in (out / "t.md").read_text()
    assert tool("reproduce")([*argv, "--tolerance", "voc07:bbox/AP=1.5"]) == 0
    assert f"| ghost | voc07 | bbox/AP | 41.00 (1) | 40 | test | +1.00 | 1.50 | holds{mark} |" in (out / "t.md").read_text()
    said = capsys.readouterr().out
    assert said.count("t: 1 runs planned, 1 finished earlier (skipped), 0 to run") == 2
    assert not (out / "logs").exists()  # nothing was launched


def test_tolerance_zero_is_allowed():
    assert parse_tolerances(["voc07:bbox/AP=0", "coco:segm/AP=2.5"]) == {("voc07", "bbox/AP"): 0.0,
                                                                                 ("coco", "segm/AP"): 2.5}


# --------------------------------------------------------------------------- launching

def test_a_run_is_launched_as_the_module_of_this_package(tmp_path):
    opts = Options("table3", tasks=["voc07"], trials=1, output=str(tmp_path), smoke=True, opts=["SOLVER.MAX_ITER", "4"])
    run = plan(paper.load_table("table3"), opts)[0][0]
    argv = command(run, opts)
    assert argv == [sys.executable, "-m", "benchmark.cli.run_transfer", "--task", "voc07", "--weights", "zoo:exemplar_v1",
                    "--output", str(tmp_path / "runs_smoke" / "exemplar_v1" / "voc07"), "--seed", "0", "--trial", "0",
                    "--name", "exemplar_v1", "--smoke", "--num-gpus", "1", "SOLVER.MAX_ITER", "4"]


def test_a_checkout_puts_itself_on_the_runs_path(monkeypatch):
    """Run from a checkout through tools/ (not installed), `python -m benchmark...` would not find
    the package: the launcher adds the checkout, before what PYTHONPATH held."""
    import site

    monkeypatch.setattr(site, "getsitepackages", lambda: ["/nowhere/site-packages"])
    monkeypatch.setenv("PYTHONPATH", "/some/where")
    assert launch.child_env()["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/some/where"])


def test_an_installed_copy_leaves_the_path_alone(monkeypatch):
    import site

    monkeypatch.setattr(site, "getsitepackages", lambda: [str(ROOT)])  # as if the package were in site-packages
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert "PYTHONPATH" not in launch.child_env()
    monkeypatch.setattr(site, "getsitepackages", lambda: [])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # pip install --target DIR, with DIR on PYTHONPATH
    assert launch.child_env()["PYTHONPATH"] == str(ROOT)


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_a_run_that_dies_without_a_record_is_a_failure(tmp_path, capsys):
    """Real CLI, no training: the weights do not exist, so run_transfer refuses before any compute."""
    table = tmp_path / "t.yaml"
    table.write_text("columns: {voc07: [bbox/AP]}\ntolerance: {voc07: {bbox/AP: 100}}\n"
                     f"rows: [{{name: ghost, weights: {tmp_path / 'missing.pth'}, "
                     "cells: {voc07: {bbox/AP: {value: 1, source: test}}}}]\n")
    out = tmp_path / "out"
    assert tool("reproduce")(["--table", str(table), "--trials", "1", "--smoke", "--output", str(out)]) == 1
    assert "FAIL: 0/1 judged cells hold" in capsys.readouterr().out
    md = (out / "t.md").read_text()
    assert "| ghost | voc07 | bbox/AP | - | 1 | test | - | - | no result [assumed protocol: voc07-schedule] |" in md
    assert f"| ghost | voc07 | 0 | exit status 1 and no run record; see {out}/logs/ghost/voc07/trial_0.log | - |" in md
    assert "missing.pth" in (out / "logs" / "ghost" / "voc07" / "trial_0.log").read_text()


# --------------------------------------------------------------------------- end to end (real run_transfer --smoke)

def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in Path(root).rglob("results.json")}


@pytest.mark.slow
def test_smoke_reproduction_passes_then_the_failing_table_reuses_its_runs(tmp_path, capsys):
    """2 synthetic rows x voc07 x 2 trials through run_transfer --smoke; then smoke_fail,
    which names the same rows, is judged on the same runs without launching any."""
    main, out = tool("reproduce"), tmp_path / "out"
    short = ["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(3,)"]  # a quarter of the smoke schedule: CI time
    assert main(["--table", str(SMOKE), "--smoke", "--trials", "2", "--output", str(out), *short]) == 0
    said = capsys.readouterr().out
    assert "smoke: 4 runs planned, 0 finished earlier (skipped), 4 to run" in said
    assert "PASS: 1/1 judged cells hold, 1/1 judged checks hold; 3 cells and 0 checks not judged" in said
    records, problems = results.gather([out / "runs_smoke"])
    assert problems == [] and sorted((r.weights.name, r.trial, r.status, r.seed, r.iterations) for r in records) == [
        ("synthetic_moco", 0, "finished", 0, 4), ("synthetic_moco", 1, "finished", 1, 4),
        ("synthetic_torchvision", 0, "finished", 0, 4), ("synthetic_torchvision", 1, "finished", 1, 4)]
    ap = [r.metrics["bbox"]["AP"] for r in records if r.weights.name == "synthetic_moco"]
    stat = Stat(tuple(ap))
    md = (out / "smoke.md").read_text()
    assert (f"| synthetic_moco | voc07 | bbox/AP | {stat.format()} | 50 | made up (machinery test) | "
            f"{stat.mean - 50:+.2f} | 100.00 | holds [assumed protocol: voc07-schedule] |") in md
    assert "| synthetic_torchvision | voc07 | bbox/AP50 |" in md and "no reference |" in md
    csv_lines = (out / "smoke.csv").read_text().splitlines()
    assert csv_lines[0] == ("kind,row,task,metric,ours_mean,ours_std,n,paper,paper_source,secondary,diff,tolerance,verdict,"
                            "check,assumptions")
    assert csv_lines[1].startswith(f"cell,synthetic_moco,voc07,bbox/AP,{stat.mean:.4f},")
    assert csv_lines[1].endswith(",holds,,voc07-schedule")
    before = _mtimes(out / "runs_smoke")

    assert main(["--table", str(SMOKE_FAIL), "--smoke", "--trials", "2", "--output", str(out), *short]) == 1
    said = capsys.readouterr().out
    assert "smoke_fail: 4 runs planned, 4 finished earlier (skipped), 0 to run" in said
    assert "FAIL: 0/1 judged cells hold, 0/1 judged checks hold; 3 cells and 0 checks not judged" in said
    assert _mtimes(out / "runs_smoke") == before  # nothing was rerun
    md = (out / "smoke_fail.md").read_text()
    A = " [assumed protocol: voc07-schedule]"  # voc07's schedule is VISSL's (configs/sources.yaml)
    assert f"| {stat.mean - 100:+.2f} | 0.01 | differs{A} |" in md and f"| does not hold{A} |" in md

    assert main(["--table", str(SMOKE), "--smoke", "--trials", "2", "--output", str(out), *short]) == 0  # a restart: all reused
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
    opts = Options(str(table), trials=1, launcher="slurm", smoke=True, output=str(out), cluster="local",
                             gpus_per_node=0, num_gpus=1, timeout_min=30, partition="ignored-locally",
                             opts=["SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "(3,)"])
    said = []
    assert reproduce(opts, say=said.append) == 0
    assert said[1].startswith("submitted 1 jobs (local): ") and said[2].startswith("[1/1] synth voc07 trial 0: finished (job ")
    record = results.read_record(out / "runs_smoke" / "synth" / "voc07" / "trial_0" / "results.json")
    assert (record.status, record.iterations, record.weights.name) == ("finished", 4, "synth")
    assert any((out / "slurm").rglob("*_result.pkl"))  # submitit's own bookkeeping
    assert said[-1] == "PASS: 1/1 judged cells hold, 0/0 judged checks hold; 0 cells and 0 checks not judged"


CLAIMS = {  # (expr, a's trials, b's trials) -> verdict (Welch's p from scipy in the verdict)
    "a > b, higher and significant": ("a > b", (41.0, 41.1, 41.2), (40.0, 40.1, 40.2), "holds"),
    "a > b, higher, not significant": ("a > b", (40.3, 41.1, 40.0), (40.0, 40.6, 40.2), "does not hold"),
    "a > b, lower": ("a > b", (39.0, 39.1, 39.2), (40.0, 40.1, 40.2), "does not hold"),
    "b < a, as a > b": ("b < a", (41.0, 41.1, 41.2), (40.0, 40.1, 40.2), "holds"),
    "a >= b, lower, not significant": ("a >= b", (40.0, 40.6, 40.2), (40.3, 41.1, 40.0), "holds"),
    "a >= b, significantly lower": ("a >= b", (39.0, 39.1, 39.2), (40.0, 40.1, 40.2), "does not hold"),
    "a > b, one trial": ("a > b", (45.0,), (40.0, 40.1), "not enough trials"),
}


@pytest.mark.parametrize("case", CLAIMS)
def test_a_two_row_check_holds_only_when_significant(case, tmp_path):
    from scipy import stats as stats_

    expr, a, b, verdict = CLAIMS[case]
    table = tmp_path / "t.yaml"
    table.write_text("columns: {voc07: [bbox/AP]}\nrows: [{name: a}, {name: b}]\n"
                     f"checks: [{{task: voc07, metric: bbox/AP, expr: '{expr}'}}]\n")
    (check,) = judge(paper.load_table(str(table)), {("a", "voc07"): {"bbox/AP": Stat(a)},
                                                             ("b", "voc07"): {"bbox/AP": Stat(b)}},
                               ("voc07",), {"a", "b"})[1]
    assert check.verdict.startswith(verdict)
    if verdict != "not enough trials":
        p = stats_.ttest_ind(a, b, equal_var=False).pvalue
        assert f"(Welch p = {p:.3g})" in check.verdict and check.judged and check.ok == (verdict == "holds")
    else:
        assert not check.judged and check.ok
