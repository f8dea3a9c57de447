"""The false-positive chart (benchmark.records.fp_chart): the stacked shares it draws, one run or two
side by side, and the leaderboard page's section for VOC rows that wrote the analysis."""
import json
import re

import pytest

from benchmark.records import fp_chart
from benchmark.tasks import fp_analysis
from tests.helpers.records import write_record
from tests.helpers.tools import tool
from tests.tasks.test_fp_analysis import A_IOU_03, CAR, CAT, DOG, NOTHING, A, B, C, image


@pytest.fixture(scope="module")
def detail():
    """The analysis of tests/tasks/test_fp_analysis.py's constructed detections, as a run writes it."""
    one = image([(CAT, A)], [(CAT, 0.9, NOTHING), (CAT, 0.8, A_IOU_03), (CAT, 0.7, A), (CAT, 0.6, A),
                             (DOG, 0.95, A), (CAR, 0.85, A)])
    two = image([(CAT, B), (DOG, C)], [(CAT, 0.5, B), (DOG, 0.9, C)])
    return json.loads(json.dumps(fp_analysis.analyse([one, two], fp_analysis.VOC_CLASSES)))


def polygons(svg) -> dict:
    """{type title: points} of the first panel's areas."""
    return {m.group(2): m.group(1) for m in re.finditer(r'<polygon points="([^"]+)"[^>]*><title>(\w+):', svg)}


def test_the_detail_file_name_is_the_analysis_one():
    assert fp_chart.DETAIL_NAME == fp_analysis.DETAIL_NAME and fp_chart.FP_TYPES == fp_analysis.FP_TYPES


def test_a_panel_stacks_the_shares_of_each_type():
    # after 1 false positive: all Loc; after 10: 5 Loc, 5 Oth. Plot 220x130 at (34, 18); x log10(n) / 1.
    curve = {"n": [1, 10], "loc": [1, 5], "sim": [0, 0], "oth": [0, 5], "bg": [0, 0]}
    svg = fp_chart.panel_svg({"curve": curve}, "cat", 0, 0)
    areas = polygons(svg)
    assert areas["Loc"] == "34.0,18.0 254.0,83.0 254.0,148.0 34.0,148.0"  # 100% then 50%, from the bottom
    assert areas["Oth"] == "34.0,18.0 254.0,18.0 254.0,83.0 34.0,18.0"  # 0% then the other 50%, on top
    assert areas["Sim"] == "34.0,18.0 254.0,83.0 254.0,83.0 34.0,18.0"  # none: no height
    assert "Loc: 5 of the top 10 false positives" in svg and "Oth: 5 of the top 10 false positives" in svg


def test_a_class_without_false_positives_says_so():
    svg = fp_chart.panel_svg({"curve": {"n": [], "loc": [], "sim": [], "oth": [], "bg": []}}, "cow", 0, 0)
    assert "no false positive" in svg and "<polygon" not in svg


def test_one_run_has_a_panel_per_chosen_class_per_group_and_all(detail):
    svg = fp_chart.chart_svg([("moco", detail)], classes=["cat", "dog"])
    titles = re.findall(r'font-weight="bold">([^<]+)</text>', svg)
    assert titles == ["moco", "cat", "dog", "animals (group)", "vehicles (group)", "furniture (group)", "all classes"]
    # animals: 4 false positives merged by score (Sim, BG, Loc, Loc); all classes add the car's Oth
    assert "Loc: 2 of the top 4 false positives" in svg and "Oth: 1 of the top 5 false positives" in svg
    assert svg.count("no false positive") == 1  # furniture


def test_two_runs_side_by_side(detail):
    other = json.loads(json.dumps(detail))
    other["classes"]["cat"]["curve"] = {"n": [1], "loc": [0], "sim": [0], "oth": [0], "bg": [1]}
    one = fp_chart.chart_svg([("moco", detail)], classes=["cat"])
    two = fp_chart.chart_svg([("moco", detail), ("supervised", other)], classes=["cat"])
    width = lambda svg: int(re.search(r'width="(\d+)"', svg).group(1))  # noqa: E731
    assert width(two) == 2 * width(one)
    assert "supervised" in two and "BG: 1 of the top 1 false positives" in two and "BG: 1 of the top 3 false" in two


def test_the_default_classes_are_those_with_most_false_positives(detail):
    assert fp_chart.default_classes(detail) == ["cat", "car", "dog"]  # 3, then 1 and 1 by name


def _voc_runs(root, detail):
    for name, trials in (("moco_a", 2), ("supervised_b", 1)):
        for trial in range(trials):
            folder = root / "runs" / name / f"trial_{trial}"
            write_record(folder, name=name, task="voc07", trial=trial, kind="smoke",
                         metrics={"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 40.0}, "fp": {"loc": 40.0}})
            if name == "moco_a":
                d = folder / "inference" / "voc_2007_test"
                d.mkdir(parents=True)
                (d / fp_chart.DETAIL_NAME).write_text(json.dumps(detail))
    return root / "runs"


def test_the_leaderboard_page_shows_the_chart_of_voc_rows_that_have_one(tmp_path, detail):
    runs = _voc_runs(tmp_path, detail)
    assert tool("leaderboard")([str(runs), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert "<h2>False-positive analysis (Hoiem et al.)</h2>" in page
    assert "<h3>moco_a [smoke], voc07</h3>" in page and "supervised_b [smoke], voc07</h3>" not in page
    assert page.count("<svg") - page.count('aria-label="Share of each false-positive type') >= 1  # the task charts too
    assert "Loc: 2 of the top 4 false positives" in page


def test_a_page_of_many_rows_draws_the_first_chart_rows_and_says_how_many_more(tmp_path, detail):
    """A board of 1,700 rows embedded 1,700 bars per task chart and 1,700 Hoiem charts; the page draws the first 40
    of each (best first, as the PNG does) and says what it left out; the table keeps every row."""
    from benchmark.records.render import CHART_ROWS

    n = CHART_ROWS + 3
    for i in range(n):
        folder = tmp_path / "runs" / f"r{i:02d}"
        write_record(folder, name=f"r{i:02d}", task="voc07", kind="smoke",
                     metrics={"bbox": {"AP": 99.0 - i / 10, "AP50": 60.0, "AP75": 40.0}, "fp": {"loc": 40.0}})
        d = folder / "inference" / "voc_2007_test"
        d.mkdir(parents=True)
        (d / fp_chart.DETAIL_NAME).write_text(json.dumps(detail))
    assert tool("leaderboard")([str(tmp_path / "runs"), "--out", str(tmp_path / "board")]) == 0
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    # the published rows (the paper's, below these APs) count among the rows, never among the 40 drawn here
    bar_chart = re.search(r'<svg[^>]*aria-label="voc07 bbox/AP \(first 40 of (\d+) rows\)">.*?</svg>', page)
    assert int(bar_chart.group(1)) > n
    bar_chart = bar_chart.group(0)
    assert bar_chart.count('<rect class="bar') == CHART_ROWS
    drawn = re.findall(r'<title>([^<]+): [0-9.]+ \([^)]*\)</title></rect>', bar_chart)
    published = [label for label in drawn if "[published" in label]  # the board lists them first
    assert drawn == published + [f"r{i:02d} [smoke]" for i in range(CHART_ROWS - len(published))]
    assert int(re.search(r"first 40 of (\d+)", bar_chart).group(1)) == n + len(published)
    table = page.split("</table>")[0]
    assert all(f'data-value="r{i:02d} [smoke]"' in table for i in range(n))  # the table: every row
    # Hoiem charts: one per measured row that wrote the analysis, the first 40 of the 43
    assert page.count("<h3>") == CHART_ROWS and "<h3>r39 [smoke], voc07</h3>" in page and "<h3>r40" not in page
    assert "3 more charts left out (the first 40 are drawn)" in page


def test_a_broken_detail_file_is_skipped_not_fatal(tmp_path, detail):
    runs = _voc_runs(tmp_path, detail)
    for f in runs.rglob(fp_chart.DETAIL_NAME):
        f.write_text("{not json")
    assert tool("leaderboard")([str(runs), "--out", str(tmp_path / "board")]) == 0
    assert "False-positive analysis" not in (tmp_path / "board" / "leaderboard.html").read_text()
    assert fp_chart.load_detail(next(runs.rglob(fp_chart.DETAIL_NAME))) is None


# ------------------------------------------------------------------ tools/fp_chart.py

def test_the_tool_draws_two_runs_side_by_side(tmp_path, detail):
    runs = _voc_runs(tmp_path, detail)
    a, b = runs / "moco_a" / "trial_0", runs / "moco_a" / "trial_1" / "results.json"
    out = tmp_path / "both.svg"
    assert tool("fp_chart")([str(a), str(b), "--labels", "MoCo", "again", "--classes", "cat", "--out", str(out)]) == 0
    svg = out.read_text()
    assert svg == fp_chart.chart_svg([("MoCo", detail), ("again", detail)], classes=["cat"]) + "\n"
    assert tool("fp_chart")([str(a), "--out", str(tmp_path / "one.svg")]) == 0  # default classes, label the folder
    assert f">{a}</text>" in (tmp_path / "one.svg").read_text()


@pytest.mark.parametrize("case", ["no analysis", "unknown class", "labels"])
def test_the_tool_refuses_with_one_error_line_and_writes_nothing(tmp_path, detail, capsys, case):
    runs = _voc_runs(tmp_path, detail)
    a, b = runs / "moco_a" / "trial_0", runs / "supervised_b" / "trial_0"
    argv, message = {
        "no analysis": ([str(b)], f"error: {b}: no fp_analysis.json (expected under {b}/inference/<dataset>/; only VOC runs write it)"),
        "unknown class": ([str(a), "--classes", "cat", "unicorn"], "error: --classes: unicorn not in "),
        "labels": ([str(a), "--labels", "x", "y"], "error: --labels: 2 labels for 1 runs"),
    }[case]
    out = tmp_path / "chart.svg"
    assert tool("fp_chart")([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not out.exists()
