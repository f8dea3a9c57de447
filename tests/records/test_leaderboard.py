"""The leaderboard: fixture records -> byte-identical tables, statistics checked by hand."""
import math

import pytest

from benchmark.records import leaderboard, results
from tests.helpers import ROOT, one_error_line, tool, write_record

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
    assert board.failures == [leaderboard.Failure("supervised_b", "voc07", 2, "loss became NaN at iteration 120",
                                                  "records/supervised_b/voc07/trial_2/results.json")]
    assert board.problems == ["records/old_schema/voc07/trial_0/results.json: schema_version 0 is not understood by "
                              "this suite (it reads version 1); re-run or convert the record"]
    assert [name for name, _ in board.rows] == ["moco_a", "supervised_b"]  # old_schema is no row


def test_sorting_by_a_tasks_primary_metric(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    records, _ = results.gather(["records"])
    assert [n for n, _ in leaderboard.build(records, sort_by="cityscapes").rows] == ["supervised_b", "moco_a"]
    assert leaderboard.build(records, sort_by="cityscapes").columns[0] == ("cityscapes", "sem_seg/mIoU")
    with pytest.raises(ValueError, match="cannot sort by task 'coco': no record of it"):
        leaderboard.build(records, sort_by="coco")


def test_html_with_png_chart(board, tmp_path):
    written = leaderboard.write(board, tmp_path, ["md", "html"], stem="lb")
    assert [p.name for p in written] == ["lb.md", "lb.png", "lb.html"]
    assert (tmp_path / "lb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "lb.html").read_text()
    assert '<img src="lb.png"' in page and "<td class=\"n\">47.00 ± 1.00 (3)</td>" in page
    assert "loss became NaN at iteration 120" in page and "schema_version 0" in page
    with pytest.raises(ValueError, match="unknown format"):
        leaderboard.write(board, tmp_path, ["pdf"])


def test_cli_writes_the_golden_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(FIXTURES)
    assert tool("leaderboard")(["records", "--sort-by", "voc07", "--out", str(tmp_path), "--format", "md,csv"]) == 0
    out, err = capsys.readouterr()
    assert out == (FIXTURES / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.csv").read_text() == (FIXTURES / "leaderboard.csv").read_text()
    assert (tmp_path / "leaderboard.md").read_text() == (FIXTURES / "leaderboard.md").read_text()
    assert err.splitlines() == [
        "refused: records/old_schema/voc07/trial_0/results.json: schema_version 0 is not understood by this suite "
        "(it reads version 1); re-run or convert the record",
        f"wrote {tmp_path / 'leaderboard.md'}", f"wrote {tmp_path / 'leaderboard.csv'}"]


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
