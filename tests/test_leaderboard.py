"""The leaderboard: fixture records -> byte-identical tables, statistics checked by hand."""
import importlib.util
import math
from pathlib import Path

import pytest

from benchmark.records import leaderboard
from benchmark.records import results

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOOL = Path(__file__).resolve().parents[1] / "tools" / "leaderboard.py"


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


def _tool():
    spec = importlib.util.spec_from_file_location("leaderboard_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(FIXTURES)
    main = _tool().main
    assert main(["records", "--sort-by", "voc07", "--out", str(tmp_path), "--format", "md,csv"]) == 0
    out, err = capsys.readouterr()
    assert out == (FIXTURES / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.csv").read_text() == (FIXTURES / "leaderboard.csv").read_text()
    assert "refused: records/old_schema/voc07/trial_0/results.json: schema_version 0" in err
    assert main([str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: no such folder or file"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
    assert capsys.readouterr().err.strip() == f"error: no usable run record under {empty}"
