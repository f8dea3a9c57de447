"""Issue 19's metrics on the board and Tables 4 and 5: a lower-is-better error, the few-shot 95% interval
beside the mean, other works shown and never judged, '<' checks Welch-tested, the dry runs."""
import csv
import io
import math
from pathlib import Path

import pytest

from benchmark.records import leaderboard, render, results
from benchmark.records.pooling import Stat, aggregate
from benchmark.reproduce import cost, paper
from benchmark.reproduce.judge import judge, passed
from benchmark.reproduce.plan import Options
from benchmark.reproduce.published import published_rows
from benchmark.reproduce.report import to_csv, to_markdown
from tests.helpers.records import make_record
from tests.helpers.tools import ROOT, tool

ERR = ("mafl_landmarks", "landmarks/iod_error")
ONE, FIVE = ("fewshot_miniimagenet", "fewshot/1shot"), ("fewshot_miniimagenet", "fewshot/5shot")
ZOO_BASE = "https://frontiers.blob.core.windows.net/pretraining/checkpoints/pil_pretrained_models/good_transfer/"


def _landmarks(name, *errors):
    return [results.Record.from_json(make_record(name=name, task="mafl_landmarks", trial=i,
                                                 metrics={"landmarks": {"iod_error": v}})) for i, v in enumerate(errors)]


def _fewshot(name, *trials):
    """trials: (1-shot, its ci95, 5-shot, its ci95); a ci95 of None is left out of the record."""
    out = []
    for i, (a1, c1, a5, c5) in enumerate(trials):
        group = {"1shot": a1, "5shot": a5} | ({"1shot_ci95": c1} if c1 is not None else {}) | (
            {"5shot_ci95": c5} if c5 is not None else {})
        out.append(results.Record.from_json(make_record(name=name, task="fewshot_miniimagenet", trial=i,
                                                        metrics={"fewshot": group})))
    return out


# --------------------------------------------------------------------------- the board

def test_the_lowest_error_is_best_and_sorts_first(tmp_path):
    from scipy import stats

    values = {"low": (3.0, 3.2, 3.1), "close": (3.1, 3.4, 3.3), "high": (6.0, 6.2, 6.1)}
    records = [r for name, vs in values.items() for r in _landmarks(name, *vs)]
    board = leaderboard.build(records)
    assert board.sort_by == ERR and [r.label for r in board.rows] == ["low", "close", "high"]  # lowest first
    assert board.mark("low", *ERR) == render.BEST and board.mark("high", *ERR) is None  # not the highest
    p_close = stats.ttest_ind(values["low"], values["close"], equal_var=False).pvalue
    p_high = stats.ttest_ind(values["low"], values["high"], equal_var=False).pvalue
    assert p_close > 0.05 > p_high and board.mark("close", *ERR) == render.TIED
    assert board.p_vs_best[(board.row("high").id,) + ERR] == pytest.approx(p_high, rel=1e-12)
    md = leaderboard.to_markdown(board)
    assert "| checkpoint | mafl_landmarks landmarks/iod_error ↓ |" in md
    assert "| low | 3.10 ± 0.10 (3) ★ |" in md and "| high | 6.10 ± 0.10 (3) |" in md
    assert "↓ after a column's name: lower is better (an error); its best mean is the lowest" in md
    page = leaderboard.to_html(board)
    assert '<th data-lower="1" title="lower is better">mafl_landmarks<br>landmarks/iod_error ↓</th>' in page
    rows = {r[0]: r for r in csv.reader(io.StringIO(leaderboard.to_csv(board)))}
    head = rows["checkpoint"]
    assert rows["low"][head.index("mafl_landmarks landmarks/iod_error mark")] == "best"
    assert "mafl_landmarks landmarks/iod_error ci95" not in head  # no interval in this column
    # a higher-is-better column on the same board keeps picking the highest
    board = leaderboard.build(records + _fewshot("low", (40.0, 0.9, 60.0, 0.7)) + _fewshot("high", (50.0, 0.8, 70.0, 0.6)))
    assert board.mark("high", *ONE) == render.BEST and board.mark("low", *ERR) == render.BEST


def test_the_interval_is_shown_beside_the_mean_never_as_a_column(tmp_path):
    records = _fewshot("moco", (50.0, 0.8, 70.0, 0.6), (52.0, 0.6, 72.0, 0.7)) + _fewshot("sup", (45.0, 0.9, 66.0, 0.5))
    stats, _ = aggregate(records)
    one = stats[("moco", "fewshot_miniimagenet")]["fewshot/1shot"]
    assert one.values == (50.0, 52.0) and one.intervals == (0.8, 0.6) and one.interval == pytest.approx(0.7)
    assert one.format() == "51.00 ± 1.41 (2) [95% CI ± 0.70]"  # std between trials, then the episodes' interval
    assert stats[("sup", "fewshot_miniimagenet")]["fewshot/5shot"].format() == "66.00 (1) [95% CI ± 0.50]"
    board = leaderboard.build(records)
    assert board.columns == [ONE, FIVE]  # fewshot/1shot_ci95 is no column
    md = leaderboard.to_markdown(board)
    assert "| moco | 51.00 ± 1.41 (2) [95% CI ± 0.70] ★ | 71.00 ± 1.41 (2) [95% CI ± 0.65] ★ |" in md
    assert "_ci95" not in md and "[95% CI ± h] beside a mean: the half-width h of the 95% confidence interval" in md
    assert "h is the mean of the trials' own half-widths" in md and "↓" not in md  # both columns higher-is-better
    page = leaderboard.to_html(board)
    assert "_ci95" not in page and ">51.00 ± 1.41 (2) [95% CI ± 0.70] ★<" in page
    rows = {r[0]: r for r in csv.reader(io.StringIO(leaderboard.to_csv(board)))}
    head = rows["checkpoint"]
    assert rows["moco"][head.index("fewshot_miniimagenet fewshot/1shot ci95")] == "0.7000"
    assert rows["sup"][head.index("fewshot_miniimagenet fewshot/5shot ci95")] == "0.5000"
    assert rows["moco"][head.index("fewshot_miniimagenet fewshot/1shot std")] == f"{math.sqrt(2):.4f}"


def test_no_interval_is_made_up_when_a_trial_recorded_none():
    stats, _ = aggregate(_fewshot("moco", (50.0, 0.8, 70.0, None), (52.0, None, 72.0, None)))
    one, five = (stats[("moco", "fewshot_miniimagenet")][m] for m in ("fewshot/1shot", "fewshot/5shot"))
    assert one.intervals == (0.8, None) and one.interval is None and one.format() == "51.00 ± 1.41 (2)"
    assert five.intervals == () and five.format() == "71.00 ± 1.41 (2)"


# --------------------------------------------------------------------------- the tables

def test_tables_4_and_5_load_with_null_cells_and_their_other_works():
    t4, t5 = paper.load_table("table4"), paper.load_table("table5")
    assert t4.columns == (ONE, FIVE) and t5.columns == (ERR,)
    assert [r.name for r in t4.rows] == ["supervised_ce_base64", "moco_v2_base64", "exemplar_v2_base64"]
    assert not any(r.runnable for r in t4.rows) and not any(r.cells for r in t4.rows + t5.rows)  # nothing published
    assert [(r.name, r.zoo) for r in t5.rows] == [("moco_v2_celeba", "moco_v2_celeba"), ("supervised_celeba", "supervised_celeba")]
    assert [(c.task, c.metric, c.expr) for c in t4.checks] == [
        (*ONE, "exemplar_v2_base64 > moco_v2_base64"), (*FIVE, "exemplar_v2_base64 > moco_v2_base64")]
    assert [(c.task, c.metric, c.expr) for c in t5.checks] == [(*ERR, "moco_v2_celeba < supervised_celeba")]
    (closer,) = t4.other_work
    assert (closer.name, closer.same_protocol, closer.kind) == ("closerlook_baseline_resnet18", True, "other work, same protocol")
    assert closer.cells == {ONE: paper.OtherValue(51.75, 0.80), FIVE: paper.OtherValue(74.27, 0.63)}
    assert "few_shot_exp_figures.xlsx" in closer.source
    assert {o.name: (o.cells[ERR].value, o.cells[ERR].interval, o.kind) for o in t5.other_work} == {
        "dve_smallnet_64d": (3.42, None, "other work, same metric only"),
        "dve_hourglass_64d": (2.86, None, "other work, same metric only")}


@pytest.mark.parametrize("other, message", [
    ("[{name: x, what: w, source: s, cells: {voc07: {bbox/AP: {value: 1}}}}]", "other_work x must say same_protocol: true or false"),
    ("[{name: x, what: w, source: s, same_protocol: true, cells: {coco: {bbox/AP: {value: 1}}}}]",
     "other_work x has a value for coco bbox/AP, which is not a column"),
    ("[{name: x, what: w, source: s, same_protocol: true, cells: {voc07: {bbox/AP: {value: 1, ci95: -1}}}}]",
     r"other_work x, voc07 bbox/AP: expected \{value: number, ci95: number >= 0"),
    ("[{name: a, what: w, source: s, same_protocol: true, cells: {voc07: {bbox/AP: {value: 1}}}}]",
     "other_work 'a' has the name of a row"),
    ("[{name: x, what: w, same_protocol: true, cells: {voc07: {bbox/AP: {value: 1}}}}]", "other_work x needs what it is and its source"),
    ("[{name: x, what: w, source: s, same_protocol: true, cells: {voc07: {bbox/AP: {value: 1, std: 2}}}}]",
     "other_work x, voc07 bbox/AP has unknown key"),
])
def test_bad_other_work_is_refused_naming_the_file(tmp_path, other, message):
    path = tmp_path / "t.yaml"
    path.write_text(f"columns: {{voc07: [bbox/AP]}}\nrows: [{{name: a}}]\nother_work: {other}\n")
    with pytest.raises(paper.TableError, match=f"^{path}: {message}"):
        paper.load_table(str(path))


def test_a_check_may_not_name_another_work(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("columns: {voc07: [bbox/AP]}\nrows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: 'a > x'}]\n"
                    "other_work: [{name: x, what: w, source: s, same_protocol: true, cells: {voc07: {bbox/AP: {value: 1}}}}]\n")
    with pytest.raises(paper.TableError, match="names 'x', another work's numbers .* never judged"):
        paper.load_table(str(path))


LOWER_CLAIMS = {  # moco's and supervised's errors -> the verdict of "moco_v2_celeba < supervised_celeba"
    "lower and significant": ((3.0, 3.1, 3.2), (4.0, 4.1, 4.2), "holds", ""),
    "higher and significant": ((4.0, 4.1, 4.2), (3.0, 3.1, 3.2), "does not hold",
                               ": the mean of moco_v2_celeba is not lower than that of supervised_celeba"),
    "lower, not significant": ((3.3, 4.1, 3.0), (3.0, 3.6, 4.2), "does not hold", ": the difference is not significant"),
}


@pytest.mark.parametrize("case", LOWER_CLAIMS)
def test_table5s_lower_error_check_is_welch_tested_the_right_way_round(case):
    from scipy import stats as stats_

    moco, sup, verdict, why = LOWER_CLAIMS[case]
    records = _landmarks("moco_v2_celeba", *moco) + _landmarks("supervised_celeba", *sup)
    stats, failures = aggregate(records)
    assert failures == []
    t5 = paper.load_table("table5")
    cells, (check,) = judge(t5, stats, ("mafl_landmarks",), {"moco_v2_celeba", "supervised_celeba"})
    p = stats_.ttest_ind(moco, sup, equal_var=False).pvalue
    assert check.verdict.startswith(f"{verdict} (Welch p = {p:.3g}){why}") and check.judged
    assert check.ok == (verdict == "holds") == passed(cells, [check])
    assert check.values == pytest.approx({"moco_v2_celeba": sum(moco) / 3, "supervised_celeba": sum(sup) / 3})
    assert [(c.row, c.verdict, c.judged) for c in cells] == [("moco_v2_celeba", "no reference", False),
                                                             ("supervised_celeba", "no reference", False)]


def test_table5_with_a_3_and_a_2_trial_row_on_the_lower_or_equal_form(tmp_path):
    path = tmp_path / "t.yaml"  # "<=": holds unless moco's error is significantly higher
    path.write_text(paper.load_table("table5").path.read_text().replace("moco_v2_celeba < supervised", "moco_v2_celeba <= supervised"))
    stats, _ = aggregate(_landmarks("moco_v2_celeba", 5.0, 5.1, 5.2) + _landmarks("supervised_celeba", 3.0, 3.1))
    (check,) = judge(paper.load_table(str(path)), stats, ("mafl_landmarks",), {"moco_v2_celeba", "supervised_celeba"})[1]
    assert check.verdict.endswith(": moco_v2_celeba is significantly higher") and not check.ok


def test_other_works_are_shown_and_never_judged():
    t4, t5 = paper.load_table("table4"), paper.load_table("table5")
    # CloserLook's 51.75 / 74.27 would "beat" these rows: nothing of it reaches a verdict
    stats, _ = aggregate(_fewshot("exemplar_v2_base64", (48.0, 0.8, 70.0, 0.6), (48.4, 0.8, 70.2, 0.6))
                         + _fewshot("moco_v2_base64", (45.0, 0.8, 66.0, 0.6), (45.2, 0.8, 66.4, 0.6)))
    cells, checks = judge(t4, stats, ("fewshot_miniimagenet",), {"exemplar_v2_base64", "moco_v2_base64"})
    named = {c.row for c in cells} | {n for k in checks for n in k.check.names} | {n for k in checks for n in k.values}
    assert "closerlook_baseline_resnet18" not in named and not any(c.judged for c in cells)
    assert [k.verdict.split(" (")[0] for k in checks] == ["holds", "holds"] and passed(cells, checks)
    opts = Options("table4", trials=2)
    md = to_markdown(t4, cells, checks, [], [], opts, "counts")
    others = md.split("## Other works (shown for context, never judged)")[1].split("\n## ")[0]
    assert ("- closerlook_baseline_resnet18 [other work, same protocol]: fewshot_miniimagenet fewshot/1shot = 51.75 "
            "[95% CI ± 0.80] (CloserLookFewShot's Baseline") in others
    assert "fewshot/5shot = 74.27 [95% CI ± 0.63]" in others and "No cell or check counts them" in others
    assert "closerlook" not in to_csv(cells, checks)  # the verdicts' CSV holds verdicts only
    cells5, _ = judge(t5, {}, ("mafl_landmarks",), {"moco_v2_celeba", "supervised_celeba"})
    assert {c.row for c in cells5} == {"moco_v2_celeba", "supervised_celeba"}
    md5 = to_markdown(t5, cells5, [], [], [], Options("table5"), "counts")
    assert "- dve_hourglass_64d [other work, same metric only]: mafl_landmarks landmarks/iod_error = 2.86" in md5
    assert "Direction: mafl_landmarks landmarks/iod_error: lower is better (an error)" in md5


def test_other_works_are_leaderboard_rows_marked_never_best():
    pubs = {r.name: r for r in published_rows(["table4", "table5"])}
    assert set(pubs) == {"closerlook_baseline_resnet18", "dve_smallnet_64d", "dve_hourglass_64d"}  # no null cell
    closer = pubs["closerlook_baseline_resnet18"].cells[ONE]
    assert (closer.mean, closer.interval, closer.std, closer.n) == (51.75, 0.80, None, None)
    assert closer.format() == "51.75 [95% CI ± 0.80] (other work)"
    records = _landmarks("moco_v2_celeba", 3.0, 3.1) + _landmarks("supervised_celeba", 4.0, 4.1)
    board = leaderboard.build(records, published=list(pubs.values()))
    labels = [r.label for r in board.rows]
    assert labels[:2] == ["moco_v2_celeba", "supervised_celeba"]
    assert "dve_hourglass_64d [other work, same metric only: table5]" in labels
    assert "closerlook_baseline_resnet18 [other work, same protocol: table4]" in labels
    assert board.mark("moco_v2_celeba", *ERR) == render.BEST  # DVE's lower 2.86 is never among the marked
    assert not any(board.mark(r.label, *c) for r in board.rows if r.published for c in board.columns)
    md = leaderboard.to_markdown(board)
    assert "| dve_hourglass_64d [other work, same metric only: table5] | 2.86 (other work) |" in md
    assert "| closerlook_baseline_resnet18 [other work, same protocol: table4] | - | 51.75 [95% CI ± 0.80] (other work) |" in md
    assert "Rows [other work, ...: TABLE] are other works' numbers" in md and "Rows [published: TABLE]" not in md
    assert '<span class="badge other-work">other work, same protocol: table4</span>' in leaderboard.to_html(board)


# --------------------------------------------------------------------------- dry runs and cost

def test_dry_run_of_table5_is_the_golden_text(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCHMARK_ZOO_MIRROR", raising=False)
    assert tool("reproduce")(["--table", "table5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out == (ROOT / "tests" / "fixtures" / "reproduce_table5_dry_run.txt").read_text()
    runs = [ln.split() for ln in out.splitlines() if ln.startswith(("moco_v2_celeba ", "supervised_celeba "))]
    assert len(runs) == 10 and {(r[0], r[-2], r[-1]) for r in runs} == {
        ("moco_v2_celeba", "0.7*", ZOO_BASE + "moco_v2_celeba.pth"), ("supervised_celeba", "0.7*", ZOO_BASE + "supervised_celeba.pth")}
    assert "to run: 10 of 10 runs; estimated 7.0 GPU-hours (estimate, see *)" in out


def test_dry_run_of_table4_names_the_rows_that_need_weights(capsys, tmp_path):
    assert tool("reproduce")(["--table", "table4", "--dry-run", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"0 rows x 1 tasks (fewshot_miniimagenet) x 5 trials = 0 runs; records under {tmp_path}/runs"
    for row in ("supervised_ce_base64", "moco_v2_base64", "exemplar_v2_base64"):
        assert f"not run: {row}: no weights: reported only (give --weights {row}=SPEC to run it)" in out
    assert ("nothing to run: every row needs its weights, given as --weights ROW=SPEC (SPEC: a path, URL or zoo:NAME), "
            "e.g. --weights supervised_ce_base64=/path/to/supervised_ce_base64.pth") in out
    assert any(ln.startswith("  closerlook_baseline_resnet18 [other work, same protocol]: fewshot_miniimagenet fewshot/1shot "
                             "= 51.75 [95% CI ± 0.80]") for ln in out)
    # with one row's weights given, that row is planned (smoke runs apart) and the hint is gone
    assert tool("reproduce")(["--table", "table4", "--dry-run", "--smoke", "--trials", "2", "--output", str(tmp_path),
                              "--weights", "moco_v2_base64=/m/r18.pth"]) == 0
    out = capsys.readouterr().out.splitlines()
    runs = [ln.split() for ln in out if ln.startswith("moco_v2_base64 ")]
    assert [r[:5] + r[-2:] for r in runs] == [["moco_v2_base64", "fewshot_miniimagenet", "0", "0", "to", "0.2*", "/m/r18.pth"],
                                             ["moco_v2_base64", "fewshot_miniimagenet", "1", "1", "to", "0.2*", "/m/r18.pth"]]
    assert f"records under {tmp_path}/runs_smoke" in out[1] and not any(ln.startswith("nothing to run") for ln in out)


def test_gpu_hours_of_the_two_tasks_are_marked_estimates():
    for task, hours in (("fewshot_miniimagenet", 0.2), ("mafl_landmarks", 0.7)):
        fig = cost.SPEED[task]
        assert cost.run_gpu_hours(task) == hours and not fig.measured and fig.gpus == 1
        assert fig.basis.startswith("no published figure; estimate:")
    assert "12,000" in cost.SPEED["fewshot_miniimagenet"].how and "1,200 episodes" in cost.SPEED["fewshot_miniimagenet"].basis
    assert "19,000" in cost.SPEED["mafl_landmarks"].how
    assert 12000 / 500 / 3600 + (600 * 200 + 600 * 700) * 1e-3 / 3600 <= 0.2  # the reckoning, rounded up
    assert 50 * 19000 / 400 / 3600 <= 0.7


def test_a_stat_without_intervals_formats_as_before():
    assert Stat((1.0, 2.0)).format() == "1.50 ± 0.71 (2)" and Stat((1.0,)).interval is None
    assert Path(ROOT / "tests" / "fixtures" / "leaderboard.md").read_text().count("95% CI") == 0


def test_every_other_work_number_is_in_docs_references():
    """The only source of numbers: each other work's value and interval, as written there, in its table's section."""
    text = (ROOT / "docs" / "REFERENCES.md").read_text()
    sections = {"table4": text.split("## Table 4:")[1].split("\n## ")[0], "table5": text.split("## Table 5:")[1].split("\n## ")[0]}
    found = []
    for name, section in sections.items():
        for other in paper.load_table(name).other_work:
            for v in other.cells.values():
                for x in (v.value, v.interval):
                    if x is not None:
                        assert f"{x:.2f}" in section, (name, other.name, x)
                        found.append(x)
    assert sorted(found) == [0.63, 0.80, 2.86, 3.42, 51.75, 74.27]
