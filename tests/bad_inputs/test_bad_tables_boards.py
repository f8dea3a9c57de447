"""Issue 22, round 3: a paper table's numbers, types and YAML checked at load; a board that one hostile or
huge record cannot break, scramble or slow down.

Tables are refused with one `error:` line naming the file, before any run (the dry run writes nothing). A
record that would break the board is refused alone (one `refused:` line naming it) and the board of the rest
is still made. Text from records and tables reaches the terminal, Markdown, CSV and HTML with its hidden
characters shown as escapes and each format's syntax escaped.
"""
import csv
import io
import json
import re
import urllib.parse
from pathlib import Path

import pytest

from tests.bad_inputs.test_bad_configs_records import GOOD_METRICS, _good, _text, tallied
from tests.helpers.records import write_record
from tests.helpers.refusal import refused
from tests.helpers.tools import tool

COLUMNS = "columns: {voc07: [bbox/AP]}\n"
STD = "std: {voc07: {bbox/AP: 0.5}}\n"


def _cell(value):
    return f"rows: [{{name: a, cells: {{voc07: {{bbox/AP: {{value: {value}, source: s}}}}}}}}]\n"


BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join(["*" + chr(97 + i)] * 9) + "]\n" for i in range(8)))

# name: (the whole table text, the problem its error line states)
TABLES = {
    # medium 5: numbers (`std: .inf` made any result "hold")
    "paper table: infinite std": (COLUMNS + "std: {voc07: {bbox/AP: .inf}}\n" + _cell(40),
                                  "std of voc07 bbox/AP is inf, expected a finite number >= 0"),
    "paper table: NaN std": (COLUMNS + "std: {voc07: {bbox/AP: .nan}}\n" + _cell(40), "std of voc07 bbox/AP is nan"),
    "paper table: negative std": (COLUMNS + "std: {voc07: {bbox/AP: -0.5}}\n" + _cell(40), "std of voc07 bbox/AP is -0.5"),
    "paper table: infinite tolerance": (COLUMNS + "tolerance: {voc07: {bbox/AP: .inf}}\n" + _cell(40),
                                        "tolerance of voc07 bbox/AP is inf"),
    "paper table: negative tolerance": (COLUMNS + "tolerance: {voc07: {bbox/AP: -1}}\n" + _cell(40),
                                        "tolerance of voc07 bbox/AP is -1"),
    "paper table: negative value": (COLUMNS + STD + _cell(-5), "row a, voc07 bbox/AP: value is -5, expected a finite"),
    "paper table: infinite value": (COLUMNS + STD + _cell(".inf"), "row a, voc07 bbox/AP: value is inf"),
    "paper table: a value that is true": (COLUMNS + STD + _cell("true"), "row a, voc07 bbox/AP: value is True"),
    "paper table: negative published_trials": (COLUMNS + STD + "published_trials: -3\n" + _cell(40),
                                               "published_trials is -3, expected a whole number >= 1"),
    "paper table: fractional published_trials": (COLUMNS + STD + "published_trials: 2.5\n" + _cell(40),
                                                 "published_trials is 2.5, expected a whole number >= 1"),
    # medium 5: wrong types were tracebacks
    "paper table: published_trials as text": (COLUMNS + STD + "published_trials: five\n" + _cell(40),
                                              "published_trials is 'five'"),
    "paper table: a title that is a list": ("title: [a, b]\n" + COLUMNS + "rows: []\n", "title is ['a', 'b'], expected text"),
    "paper table: a task's columns a number": ("columns: {voc07: 5}\nrows: []\n", "the columns of task voc07 are 5"),
    "paper table: std a list": (COLUMNS + "std: [1, 2]\nrows: []\n", "std must map task -> {metric: value}"),
    "paper table: checks a number": (COLUMNS + "rows: []\nchecks: 5\n", "checks must be a list"),
    "paper table: a check's expr a number": (COLUMNS + "rows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: 5}]\n",
                                             "a check needs task, metric and expr (text)"),
    "paper table: a value as text": (COLUMNS + STD + _cell("'46.6'"), "value is '46.6'"),
    # medium 5: `other` and `synthetic` crashed the report after every run had trained
    "paper table: an other value without a source": (COLUMNS + "rows: [{name: a, other: [{what: x, value: 1}]}]\n",
                                                     "an other value needs source"),
    "paper table: an other value as text": (COLUMNS + "rows: [{name: a, other: [{what: x, value: abc, source: s}]}]\n",
                                            "other value of 'x' is 'abc'"),
    "paper table: an unknown synthetic layout": (COLUMNS + "rows: [{name: a, synthetic: {layout: nope}}]\n",
                                                 "synthetic layout 'nope' is not one of moco"),
    "paper table: a negative synthetic seed": (COLUMNS + "rows: [{name: a, synthetic: {seed: -1}}]\n",
                                               "synthetic seed is -1, expected a whole number >= 0"),
    "paper table: synthetic as text": (COLUMNS + "rows: [{name: a, synthetic: yes please}]\n",
                                       "synthetic is 'yes please', expected {layout, seed, width}"),
    # medium 5: a long check overflowed the recursion limit
    "paper table: a check of 10,000 characters": (
        COLUMNS + "rows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: '" + "a + " * 2500 + "a > 0'}]\n",
        "has 10005 characters; at most 2000"),
    "paper table: a check 600 levels deep": (
        COLUMNS + "rows: [{name: a}]\nchecks: [{task: voc07, metric: bbox/AP, expr: '" + "a+" * 600 + "a > 0'}]\n",
        "nests 604 levels deep; at most 60"),
    # medium 6: a 342-byte alias bomb expands to 387 million strings
    "paper table: a YAML alias bomb": (BOMB + COLUMNS + "rows: []\n", "expand to more than 200000 values"),
    "paper table: a recursive alias": ("title: &t [*t]\n" + COLUMNS + "rows: []\n", "a recursive alias (line 1)"),
    "paper table: nested 100,000 deep": ("title: " + "[" * 100000 + "]" * 100000 + "\n" + COLUMNS + "rows: []\n",
                                         "nested too deeply to be a paper table"),
    # low 13: duplicate keys overrode silently; a row of two checkpoints used the zoo silently
    "paper table: a key given twice": (COLUMNS + "rows: []\nrows: [{name: a}]\n", "key 'rows' appears twice in one mapping (line 3)"),
    "paper table: a row's cells given twice": (COLUMNS + STD + "rows:\n  - name: a\n    cells: {}\n    cells: {}\n",
                                               "key 'cells' appears twice"),
    "paper table: a row with both zoo and weights": (
        COLUMNS + "rows: [{name: a, zoo: moco_v2_imagenet, weights: /tmp/mine.pth}]\n",
        "row a gives both zoo and weights; a row runs one checkpoint"),
}


@pytest.mark.parametrize("name", TABLES)
def test_a_tables_numbers_types_and_yaml_are_checked_at_load(tmp_path, capsys, name):
    text, problem = TABLES[name]
    path = tmp_path / "table.yaml"
    path.write_text(text)
    refused(capsys, name, lambda: tool("reproduce")(["--table", str(path), "--dry-run", "--output", str(tmp_path / "out")]),
            path, problem=problem, protect=[tmp_path], absent=[tmp_path / "out"])


def test_a_check_that_divides_loads_and_is_judged(tmp_path):
    """`a / b` used to be evaluated at load on zeros (ZeroDivisionError): a table holding one never loaded."""
    from benchmark.records.pooling import Stat
    from benchmark.reproduce import judge, paper

    path = tmp_path / "table.yaml"
    path.write_text(COLUMNS + "rows: [{name: a}, {name: b}]\n"
                    "checks: [{task: voc07, metric: bbox/AP, expr: 'a / b > 1.2', claim: a beats b by 20%}]\n")
    with tallied("paper table: a check that divides"):
        table = paper.load_table(path)
        stats = {("a", "voc07"): {"bbox/AP": Stat((60.0,))}, ("b", "voc07"): {"bbox/AP": Stat((40.0,))}}
        _, checks = judge.judge(table, stats, ("voc07",), {"a", "b"})
        assert [(k.verdict, k.ok) for k in checks] == [("holds", True)]  # 60 / 40 = 1.5
        stats[("b", "voc07")] = {"bbox/AP": Stat((0.0,))}
        _, checks = judge.judge(table, stats, ("voc07",), {"a", "b"})
        assert [(k.verdict, k.judged, k.ok) for k in checks] == [
            ("does not hold: it divides by zero on our means", True, False)]


def test_the_shipped_tables_still_load_with_their_aliases():
    """Aliases are kept (table1 and table2 reuse a check's expression): only an expansion past the cap is refused."""
    from benchmark.reproduce import paper

    table1 = paper.load_table("table1")
    assert len({c.expr for c in table1.checks if "_aug_f" in c.expr}) == 1 < sum("_aug_f" in c.expr for c in table1.checks)


@pytest.mark.slow  # reproduce launches its run as a fresh interpreter importing torch and detectron2
def test_a_table_whose_runs_all_fail_is_no_pass(tmp_path, capsys):
    """Every run failing judged nothing: it said "PASS: 0/0 judged cells hold" and exited 0 (low 13)."""
    path = tmp_path / "table.yaml"
    path.write_text(COLUMNS + f"rows: [{{name: a, weights: {tmp_path / 'missing.pth'}}}]\n")
    out = tmp_path / "out"
    with tallied("reproduce: a table whose runs all fail"):
        assert tool("reproduce")(["--table", str(path), "--trials", "1", "--smoke", "--output", str(out)]) == 1
        said = capsys.readouterr().out
        line = "FAIL: 0/0 judged cells hold, 0/0 judged checks hold; 1 cells and 0 checks not judged; no planned run finished"
        assert line in said.splitlines(), said
        assert f"**{line}**" in (out / "table.md").read_text()


# --------------------------------------------------------------------------------------------- records

# medium 9: numbers that pass a JSON parser but break the board. name: (record -> text, the problem)
RECORDS = {
    "record: a finite metric of 1e308 (its mean overflows)": (
        lambda g: _text(g).replace('"AP": 40.0', '"AP": 1e308'), "metric bbox/AP is 1e+308, beyond ±1e+12"),
    "record: a metric as an integer of 400 digits": (
        lambda g: _text(g).replace('"AP": 40.0', '"AP": ' + "9" * 400), "metric bbox/AP is 99999"),
    "record: an integer of 5,000 digits": (
        lambda g: _text(g).replace('"trial": 0', '"trial": ' + "7" * 5000), "not a run record (Exceeds the limit (4300 digits)"),
}


@pytest.mark.parametrize("name", RECORDS)
def test_a_record_that_breaks_the_board_costs_only_itself(tmp_path, capsys, name):
    make, problem = RECORDS[name]
    write_record(tmp_path / "runs" / "good" / "trial_0", name="good", metrics=GOOD_METRICS)
    for trial in (0, 1):  # two of them: a cell's mean and std over the huge values
        bad = tmp_path / "runs" / "bad" / f"trial_{trial}" / "results.json"
        bad.parent.mkdir(parents=True)
        text = make(_good("bad"))
        bad.write_text(text.replace('"trial": 0', '"trial": 1') if trial else text)
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none", "--out", str(tmp_path / "board")]) == 0
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        refusals = [ln for ln in lines if ln.startswith("refused: ")]
        assert refusals and all(problem in ln and "/bad/trial_" in ln for ln in refusals), lines
        assert "Traceback" not in captured.err and "| good | 40.00 (1) |" in captured.out
        assert (tmp_path / "board" / "leaderboard.html").is_file() and (tmp_path / "board" / "leaderboard.csv").is_file()


# low 8: two records of one trial (same checkpoint, task, trial, pool) with other values. name: overrides of the second
CONFLICTS = {
    "board: one trial recorded twice with other values": dict(metrics={"bbox": {"AP": 60.0, "AP50": 80.0, "AP75": 62.0}}),
    "board: one trial recorded finished and failed": dict(status="failed", reason="out of memory", metrics={}),
}


@pytest.mark.parametrize("name", CONFLICTS)
def test_two_records_of_one_trial_are_not_dropped_silently(tmp_path, capsys, name):
    first = write_record(tmp_path / "runs" / "a", name="moco", metrics=GOOD_METRICS)
    second = write_record(tmp_path / "runs" / "b", name="moco", **CONFLICTS[name])
    write_record(tmp_path / "runs" / "c", name="moco", metrics=GOOD_METRICS)  # the same values as a: a copy, no warning
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none"]) == 0
        captured = capsys.readouterr()
        assert captured.err.strip().splitlines() == [
            f"warning: {second}: trial 0 of moco on voc07 is also recorded in {first} with other values; the first by "
            f"path is kept, this one is not counted"]
        assert "| moco | 40.00 (1) |" in captured.out and str(second) in captured.out.split("## Records refused")[1]


# ------------------------------------------------------------------------------------------ hidden text

HIDDEN = {"ANSI escape": "\x1b[2J\x1b[31m", "BEL": "\x07", "NUL": "\x00", "RTL override": "\u202e", "zero-width space": "\u200b",
          "C1 control": "\x9b", "line separator": "\u2028"}


@pytest.mark.parametrize("what", HIDDEN)
def test_hidden_characters_in_names_tasks_and_metrics_are_shown_escaped(tmp_path, capsys, what):
    """Low 2: untrusted text reached the terminal raw. Every output shows the character as its escape."""
    ch = HIDDEN[what]
    shown = ch.encode("unicode_escape").decode()  # Python's escape: \x1b, \u202e
    folder = tmp_path / "runs" / f"dir{ch if ch != chr(0) else ''}x"  # no file name can hold a NUL
    write_record(folder, name=f"moco{ch}v2", task=f"task{ch}x", metrics={"bbox": {f"A{ch}P": 40.0}})
    out = tmp_path / "board"
    capsys.readouterr()
    with tallied(f"record: {what} in a name, task, metric and folder"):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none", "--out", str(out)]) == 0
        captured = capsys.readouterr()
        texts = {"terminal": captured.out + captured.err, "md": (out / "leaderboard.md").read_text(),
                 "csv": (out / "leaderboard.csv").read_text(), "html": (out / "leaderboard.html").read_text()}
        for fmt, text in texts.items():
            assert ch[0] not in text, (fmt, shown)
        assert f"moco{shown}v2" in texts["csv"] and f"moco{shown}v2" in texts["html"]
        # Markdown doubles the backslash; a line break (U+2028 is one) becomes a space, as a newline does
        in_md = " " if ch.isspace() else shown.replace("\\", "\\\\")
        # a name with a bracket (ANSI's CSI) is shown quoted as JSON (pooling.label_of), which escapes it as \u001b
        label = f"| moco{in_md}v2 |" if "[" not in ch else '| "moco' + json.dumps(ch)[1:-1].replace("\\", "\\\\") + 'v2" |'
        assert label in texts["md"] and f"| task{in_md}x bbox/A{in_md}P |" in texts["md"]
        assert f"task{shown}x bbox/A{shown}P mean" in next(csv.reader(io.StringIO(texts["csv"])))


# low 3: names from records in Markdown headers and CSV headers. name: (task, metric, the Markdown header, the CSV header)
HEADERS = {
    "board: a task name with a pipe and HTML": ("voc|<b>x</b>", "bbox/AP", "voc\\|&lt;b&gt;x&lt;/b&gt; bbox/AP",
                                                "voc|<b>x</b> bbox/AP mean"),
    "board: a task name that is a spreadsheet formula": ("=HYPERLINK(\"http://x\")", "bbox/AP",
                                                         "=HYPERLINK(\"http://x\") bbox/AP",
                                                         "'=HYPERLINK(\"http://x\") bbox/AP mean"),
    "board: a metric name with a newline and a pipe": ("ok", "bbox/A\n|P", "ok bbox/A \\|P", "ok bbox/A\\x0a|P mean"),
}


@pytest.mark.parametrize("name", HEADERS)
def test_task_and_metric_names_are_escaped_in_headers(tmp_path, capsys, name):
    task, metric, md_header, csv_header = HEADERS[name]
    group, _, m = metric.partition("/")
    write_record(tmp_path / "runs" / "a", name="moco", task=task, metrics={group: {m: 40.0}})
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none", "--out", str(tmp_path / "b")]) == 0
        md = (tmp_path / "b" / "leaderboard.md").read_text()
        header = next(line for line in md.splitlines() if line.startswith("| checkpoint"))
        assert header == f"| checkpoint | {md_header} |", header
        assert f"sorted by {md_header}, best first" in md
        assert next(csv.reader(io.StringIO((tmp_path / "b" / "leaderboard.csv").read_text())))[3] == csv_header


def test_a_reproduction_reports_table_text_escaped(tmp_path):
    """Low 3: the report wrote a table's title, source and note raw into Markdown and CSV."""
    from benchmark.reproduce import judge, paper, report
    from benchmark.reproduce.plan import Options

    path = tmp_path / "table.yaml"
    path.write_text("title: \"<script>alert(1)</script>\"\nsource: \"a | b\\x1b[2J\"\n" + COLUMNS + STD
                    + "rows: [{name: a, note: \"<img src=x onerror=alert(1)> | \\u202egpj.exe\","
                      " cells: {voc07: {bbox/AP: {value: 40, source: \"=cmd|' /C calc'!A0\"}}}}]\n")
    with tallied("paper table: HTML, pipes, escapes and a formula in its text"):
        table = paper.load_table(path)
        cells, checks = judge.judge(table, {}, ("voc07",), set())
        md = report.to_markdown(table, cells, checks, [], [], Options(str(path)), "counts")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;. Source: a \\| b\\\\x1b[2J." in md
        assert "- a: &lt;img src=x onerror=alert(1)&gt; \\| \\\\u202egpj.exe" in md
        assert "<script>" not in md and "<img" not in md and "\x1b" not in md and "\u202e" not in md
        assert "| =cmd\\|' /C calc'!A0 |" in md
        rows = list(csv.reader(io.StringIO(report.to_csv(cells, checks))))
        assert rows[1][rows[0].index("paper_source")] == "'=cmd|' /C calc'!A0"


# ------------------------------------------------------------------------------------------ links, cost

HOSTILE_FOLDERS = ["javascript:alert(1)%0A%2F", "data:text,x", "#frag?q=1", "vbscript:msgbox"]


@pytest.mark.parametrize("folder", HOSTILE_FOLDERS)
def test_links_in_the_page_are_relative_paths(tmp_path, folder):
    """Medium 8: a record folder named `javascript:alert(1)%0A%2F` gave a javascript: href."""
    runs = tmp_path
    record = write_record(runs / folder, name="moco", metrics=GOOD_METRICS)
    (record.parent / "config.yaml").write_text("x: 1\n")
    from benchmark.records import leaderboard, results

    with tallied(f"record: a folder named {folder}"):
        board = leaderboard.build(*results.gather([runs]))
        page = leaderboard.to_html(board, base=runs)  # the page beside the records, as the issue wrote it
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert len(hrefs) == 6  # 3 cells, each: the record and its config
        for href in hrefs:
            assert not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href), href  # no scheme: a path relative to the page
            assert (runs / urllib.parse.unquote(href)).is_file(), href
        assert 'href="' not in leaderboard.to_html(board)  # no folder to be relative to: no links at all


def test_the_pairs_file_tests_the_leading_rows_not_every_pair(tmp_path):
    """Low 7: every pair of rows was tested (quadratic: 5,000 records did not finish in 400 s)."""
    from benchmark.records import leaderboard, results

    for row in range(25):
        for trial in (0, 1):
            ap = 30.0 + row + trial * 0.5
            write_record(tmp_path / f"r{row:02d}" / f"t{trial}", name=f"ckpt{row:02d}", trial=trial,
                         metrics={"bbox": {"AP": ap, "AP50": ap, "AP75": ap}})
    with tallied("board: 25 rows of 2 trials, pairs capped"):
        board = leaderboard.build(*results.gather([tmp_path]))
        pairs = [p for p in leaderboard.pairs(board) if p[1] == "bbox/AP"]
        assert len(pairs) == 20 * 19 // 2 == leaderboard.PAIRS_TOP * (leaderboard.PAIRS_TOP - 1) // 2
        assert {label for p in pairs for label in p[2:4]} == {f"ckpt{r:02d}" for r in range(5, 25)}  # the 20 best
        assert len([r for r in board.rows if board.p_vs_best.get((r.id, "voc07", "bbox/AP")) is not None]) == 24


def test_png_chart_labels_are_cut_short(tmp_path, monkeypatch):
    """Low 7: a 1 MB name made matplotlib lay out a 1 MB tick label (minutes)."""
    import matplotlib.axes

    from benchmark.records import leaderboard, results

    write_record(tmp_path / "runs" / "a", name="x" * 1_000_000, metrics={"bbox": {"AP": 90.0, "AP50": 90.0, "AP75": 90.0}})
    for i in range(45):
        write_record(tmp_path / "runs" / f"n{i}", name=f"n{i:02d}", metrics=GOOD_METRICS)
    labels = []
    real = matplotlib.axes.Axes.set_xticks
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticks",
                        lambda self, ticks, tick_labels=None, **kw: (labels.append(list(tick_labels or [])),
                                                                     real(self, ticks, tick_labels, **kw))[1])
    with tallied("record: a 1 MB name on the PNG chart"):
        board = leaderboard.build(*results.gather([tmp_path / "runs"]))
        leaderboard.plot(board, tmp_path / "chart.png")
        assert len(labels) == 1 and len(labels[0]) == leaderboard.CHART_ROWS == 40  # the first 40 of 46 rows
        assert max(len(t) for t in labels[0]) == 40 and Path(tmp_path / "chart.png").stat().st_size > 0
