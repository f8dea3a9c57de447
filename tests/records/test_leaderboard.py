"""The leaderboard: fixture records -> byte-identical tables, statistics checked by hand."""
import csv
import io
import math
import re

import pytest

from benchmark.records import leaderboard, pooling, render, results
from tests.helpers.records import write_record
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import ROOT, tool

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def board(monkeypatch):
    monkeypatch.chdir(FIXTURES)  # record paths in the output are relative: the same on every machine
    records, problems = results.gather(["records"])
    return leaderboard.build(records, problems, sort_by="voc07")


def test_markdown_and_csv_are_byte_identical_to_the_golden_files(board, monkeypatch):
    assert leaderboard.to_markdown(board) == (FIXTURES / "leaderboard.md").read_text()
    assert leaderboard.to_csv(board) == (FIXTURES / "leaderboard.csv").read_text()
    records, problems = results.gather(["records"])  # again, records in another order: same bytes
    again = leaderboard.build(list(reversed(records)), problems, sort_by="voc07")
    assert leaderboard.to_markdown(again) == leaderboard.to_markdown(board)


def test_mean_and_sample_std_by_hand(board):
    ap = board.stat("moco_a", "voc07", "bbox/AP")
    assert ap.values == (46.0, 47.0, 48.0) and ap.mean == 47.0 and ap.std == 1.0  # ddof=1: sqrt((1+0+1)/2)
    ap75 = board.stat("moco_a", "voc07", "bbox/AP75")
    assert ap75.mean == 51.0 and ap75.std == pytest.approx(math.sqrt((1 + 1 + 4) / 2))  # 50, 50, 53
    sup = board.stat("supervised_b", "voc07", "bbox/AP")
    assert sup.n == 2 and sup.mean == 42.5 and sup.std == pytest.approx(math.sqrt(0.5))  # the failed trial 2 is not counted
    one = board.stat("moco_a", "cityscapes", "sem_seg/mIoU")
    assert (one.n, one.mean, one.std, one.format()) == (1, 70.25, None, "70.25 (1)")
    assert sup.format() == "42.50 ± 0.71 (2)"


def test_failed_runs_apart_and_other_schemas_refused(board):
    assert board.failures == [pooling.Failure("supervised_b", "voc07", 2, "loss became NaN at iteration 120",
                                                  "records/supervised_b/voc07/trial_2/results.json")]
    assert board.problems == ["records/old_schema/voc07/trial_0/results.json: schema_version 0 is not understood by "
                              "this suite (it reads versions 1, 2); re-run or convert the record"]
    assert [row.label for row in board.rows] == ["moco_a", "supervised_b"]  # old_schema is no row


def test_sorting_by_a_tasks_primary_metric(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    records, _ = results.gather(["records"])
    assert [r.label for r in leaderboard.build(records, sort_by="cityscapes").rows] == ["supervised_b", "moco_a"]
    assert leaderboard.build(records, sort_by="cityscapes").columns[0] == ("cityscapes", "sem_seg/mIoU")
    with pytest.raises(ValueError, match="cannot sort by task 'coco': no record of it"):
        leaderboard.build(records, sort_by="coco")


def test_html_with_png_chart(board, tmp_path):
    written = leaderboard.write(board, tmp_path, ["md", "html"], stem="lb")
    assert [p.name for p in written] == ["lb.md", "lb.png", "lb.html"]
    assert (tmp_path / "lb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "lb.html").read_text()
    assert '<td class="n" data-value="47.0">47.00 ± 1.00 (3) ★<span class="links">' in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 2  # voc07 and cityscapes
    assert "loss became NaN at iteration 120" in page and "schema_version 0" in page
    with pytest.raises(ValueError, match="unknown format"):
        leaderboard.write(board, tmp_path, ["pdf"])


def test_cli_writes_the_golden_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(FIXTURES)
    assert tool("leaderboard")(["records", "--sort-by", "voc07", "--out", str(tmp_path), "--format", "md,csv",
                                "--published", "none"]) == 0
    out, err = capsys.readouterr()
    assert out == (FIXTURES / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.csv").read_text() == (FIXTURES / "leaderboard.csv").read_text()
    assert (tmp_path / "leaderboard.md").read_text() == (FIXTURES / "leaderboard.md").read_text()
    assert err.splitlines() == [
        "refused: records/old_schema/voc07/trial_0/results.json: schema_version 0 is not understood by this suite "
        "(it reads versions 1, 2); re-run or convert the record",
        f"wrote {tmp_path / 'leaderboard.md'}", f"wrote {tmp_path / 'leaderboard_pairs.csv'}",
        f"wrote {tmp_path / 'leaderboard.csv'}"]


def _missing(tmp_path):
    return [str(tmp_path / "nowhere")], f"error: {tmp_path / 'nowhere'}: no such folder or file"


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return [str(tmp_path / "empty")], f"error: no usable run record under {tmp_path / 'empty'}"


def _bad_sort(tmp_path):
    write_record(tmp_path / "runs" / "trial_0")
    return [str(tmp_path / "runs"), "--sort-by", "coco"], "error: cannot sort by task 'coco': no record of it"


def _bad_format(tmp_path):
    write_record(tmp_path / "runs" / "trial_0")
    return [str(tmp_path / "runs"), "--out", str(tmp_path / "board"), "--format", "pdf"], "error: unknown format"


@pytest.mark.parametrize("case", [_missing, _empty, _bad_sort, _bad_format], ids=lambda f: f.__name__.strip("_"))
def test_cli_refuses_with_one_error_line(tmp_path, capsys, case):
    argv, message = case(tmp_path)
    assert tool("leaderboard")(argv) == 1
    out, err = capsys.readouterr()
    assert one_error_line(err).startswith(message)
    assert not (tmp_path / "board").exists()


# ------------------------------------------------------------------ unlike runs are never pooled

def _board(tmp_path, *specs, sort_by=None):
    """Write one record per spec (dict of make_record overrides) and build the board over them."""
    for i, spec in enumerate(specs):
        write_record(tmp_path / "runs" / f"r{i}", **spec)
    records, problems = results.gather([tmp_path / "runs"])
    return leaderboard.build(records, problems, sort_by=sort_by)


def _ap(value, **over):
    return dict(metrics={"bbox": {"AP": value, "AP50": value, "AP75": value}}, **over)


def test_a_smoke_and_a_real_record_of_one_name_are_shown_apart(tmp_path):
    """The first release averaged these into 69.5 ± 41.7; they are two rows, the smoke one labelled."""
    board = _board(tmp_path, _ap(99.0, name="moco", kind="smoke", deviations=["smoke run: synthetic data"]),
                   _ap(40.0, name="moco"))
    assert [r.label for r in board.rows] == ["moco", "moco [smoke]"]
    assert board.stat("moco", "voc07", "bbox/AP").values == (40.0,)
    assert board.stat("moco [smoke]", "voc07", "bbox/AP").values == (99.0,)
    md, csv_text, page = leaderboard.to_markdown(board), leaderboard.to_csv(board), leaderboard.to_html(board)
    # each row is alone in its group (no other untagged or smoke row): compared with nothing, so no star
    assert "| moco | 40.00 (1) |" in md and "| moco [smoke] | 99.00 (1) |" in md
    assert "69.5" not in md + csv_text + page
    assert "- moco [smoke], voc07: smoke run: synthetic data" in md
    assert "\nmoco,moco,,40.0000," in csv_text and "\nmoco [smoke],moco,smoke,99.0000," in csv_text
    assert '<td data-value="moco [smoke]">moco<span class="badge smoke">smoke</span></td>' in page
    assert '<td data-value="moco">moco</td>' in page


@pytest.mark.parametrize("over, label", [
    (dict(kind="sanity"), "moco [sanity]"),
    (dict(kind="eval-only"), "moco [eval-only]"),
    (dict(amp=True), "moco [AMP]"),
    (dict(protocol_digest="1a2b3c4d" + "0" * 56), "moco [protocol 1a2b3c4d]"),
])
def test_records_that_measure_other_things_are_other_rows(tmp_path, over, label):
    board = _board(tmp_path, _ap(40.0, name="moco", protocol_digest="f" * 64), _ap(50.0, name="moco", **over))
    assert sorted(r.label for r in board.rows) == sorted([label, "moco" if "protocol_digest" not in over
                                                          else "moco [protocol ffffffff]"])
    assert all(s.n == 1 for r in board.rows for s in r.cells.values())


def test_world_sizes_are_named_only_when_a_task_has_several(tmp_path):
    same = _board(tmp_path / "a", _ap(40.0, name="a", world_size=8), _ap(41.0, name="a", world_size=8, trial=1))
    assert [r.label for r in same.rows] == ["a"] and same.stat("a", "voc07", "bbox/AP").n == 2
    mixed = _board(tmp_path / "b", _ap(40.0, name="a", world_size=8), _ap(41.0, name="a", world_size=2, trial=1))
    assert sorted(r.label for r in mixed.rows) == ["a [world size 2]", "a [world size 8]"]
    other_task = _board(tmp_path / "c", _ap(40.0, name="a", world_size=8),
                        dict(name="a", task="cityscapes", world_size=4, metrics={"sem_seg": {"mIoU": 70.0}}))
    assert [r.label for r in other_task.rows] == ["a"]  # one world size per task: nothing to tell apart


def test_welch_p_values_and_best_and_tied_marks_against_scipy(tmp_path):
    from scipy import stats

    values = {"a": [40.0, 40.4, 39.8], "b": [39.8, 40.2], "c": [30.0, 30.2, 29.9], "d": [45.0]}
    specs = [_ap(v, name=name, trial=i) for name, vs in values.items() for i, v in enumerate(vs)]
    board = _board(tmp_path, *specs)
    col = ("voc07", "bbox/AP")
    assert board.stat("d", *col).mean == 45.0 and board.mark("d", *col) == render.BEST  # best mean, n = 1
    assert board.mark("a", *col) is None and (board.row("a").id,) + col not in board.p_vs_best  # best has one trial: untested
    pairs = {tuple(sorted((a, b))): p for task, metric, a, b, p in leaderboard.pairs(board) if metric == "bbox/AP"}
    for (a, b), p in pairs.items():
        assert p == pytest.approx(stats.ttest_ind(values[a], values[b], equal_var=False).pvalue, rel=1e-12)
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}  # d has one trial: in no pair
    assert pairs[("a", "b")] > 0.05 > pairs[("a", "c")]
    # without d, a is best; b not significantly different (tied), c significantly worse (unmarked)
    board = _board(tmp_path / "no_d", *[_ap(v, name=name, trial=i) for name, vs in values.items() if name != "d"
                                        for i, v in enumerate(vs)])
    assert board.mark("a", *col) == render.BEST and board.mark("b", *col) == render.TIED
    assert board.mark("c", *col) is None
    assert board.p_vs_best[(board.row("b").id,) + col] == pytest.approx(pairs[("a", "b")], rel=1e-12)
    rows = {line.split(",")[0]: line.split(",") for line in leaderboard.to_csv(board).splitlines()}
    header = rows["checkpoint"]
    assert rows["b"][header.index("voc07 bbox/AP p vs best")] == f"{pairs[('a', 'b')]:.4f}"
    assert rows["b"][header.index("voc07 bbox/AP mark")] == "tied" and rows["a"][header.index("voc07 bbox/AP mark")] == "best"
    assert rows["c"][header.index("voc07 bbox/AP mark")] == ""


HOSTILE_NAMES = {
    "markdown pipe and newline": "a|b\nc",
    "spreadsheet formula": "=HYPERLINK(\"http://x\")",
    "mathtext": "$\\frac{1}{0}$",
    "html": "<script>alert(1)</script>",
}


@pytest.mark.parametrize("what", HOSTILE_NAMES)
def test_names_from_records_are_escaped_in_every_format(tmp_path, what):
    name = HOSTILE_NAMES[what]
    board = _board(tmp_path, _ap(40.0, name=name), _ap(30.0, name="plain"))
    md = leaderboard.to_markdown(board)
    table = [line for line in md.splitlines() if line.startswith("| ") and "40.00" in line]
    cells = re.split(r"(?<!\\)\|", table[0]) if len(table) == 1 else []
    assert len(cells) == 6 and "<script>" not in md, table  # the name's cell and one per column, nothing split

    csv_rows = list(csv.reader(io.StringIO(leaderboard.to_csv(board))))
    cells = [row[0] for row in csv_rows[1:]]
    assert all(c[:1] not in "=+-@" for c in cells) and len(csv_rows) == 3
    assert "<script>alert" not in leaderboard.to_html(board)
    written = leaderboard.write(board, tmp_path / "out", ["html"])  # matplotlib renders the name as text
    assert (tmp_path / "out" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG" and written


def test_error_analysis_table_and_chart(tmp_path, capsys):
    def errors(loc, cls, trial, name):
        return dict(name=name, trial=trial, metrics={"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 41.0},
                                                     "errors": {"cls": cls, "loc": loc, "miss": 1.0}})

    board = _board(tmp_path, errors(6.0, 2.0, 0, "supervised"), errors(7.0, 2.0, 1, "supervised"),
                   errors(4.0, 3.0, 0, "moco"))
    assert board.errors == [("voc07", "errors/cls"), ("voc07", "errors/loc"), ("voc07", "errors/miss")]
    assert board.stat("supervised", "voc07", "errors/loc").values == (6.0, 7.0)
    md = leaderboard.to_markdown(board)
    assert "## Detection error analysis" in md and "| supervised | 2.00 ± 0.00 (2) | 6.50 ± 0.71 (2) | 1.00 ± 0.00 (2) |" in md
    assert ("voc07", "errors/loc") not in board.columns  # not a column of the main table
    written = leaderboard.write(board, tmp_path / "out", ["html"])
    assert (tmp_path / "out" / "leaderboard_errors.png") in written
    assert 'src="data:image/png;base64,' in (tmp_path / "out" / "leaderboard.html").read_text()  # embedded
    # the same through tools/leaderboard.py: printed, and the chart written
    assert tool("leaderboard")([str(tmp_path / "runs"), "--out", str(tmp_path / "cli"), "--published", "none"]) == 0
    assert "## Detection error analysis" in capsys.readouterr().out
    assert (tmp_path / "cli" / "leaderboard_errors.png").read_bytes()[:4] == b"\x89PNG"


def test_reproduction_pools_one_kind_and_one_protocol_per_cell(tmp_path):
    from benchmark.records.pooling import one_pool_per_cell

    for i, over in enumerate([dict(trial=0), dict(trial=1), dict(trial=2, amp=True), dict(trial=3, kind="smoke")]):
        write_record(tmp_path / "runs" / f"t{i}", **_ap(40.0 + i, name="moco", protocol_digest="p" * 64, **over))
    records, _ = results.gather([tmp_path / "runs"])
    kept, unpooled = one_pool_per_cell(records, "full")
    assert sorted(r.trial for r in kept) == [0, 1]
    reasons = {f.trial: f.reason for f in unpooled}
    assert reasons == {2: "not pooled with the other trials: AMP True vs False",
                       3: "a 'smoke' run, this reproduction counts 'full' runs"}


def test_failed_runs_are_counted_on_the_row_they_belong_to_not_one_of_the_same_text(tmp_path):
    """A failed full run named `moco [smoke]` is not a failure of moco's smoke row (issue 22, medium 1)."""
    board = _board(tmp_path, _ap(90.0, name="moco", kind="smoke"), dict(name="moco [smoke]", trial=1, status="failed"))
    rows = {r[0]: r for r in csv.reader(io.StringIO(leaderboard.to_csv(board)))}
    failed = rows["checkpoint"].index("failed runs")
    assert rows["moco [smoke]"][failed] == "0" and rows['"moco [smoke]"'][failed] == "1"
    assert board.failures[0].name == '"moco [smoke]"' and board.row("moco [smoke]").tags == ("smoke",)
