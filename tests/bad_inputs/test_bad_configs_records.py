"""Bad options and paper tables, and broken or foreign run records.

Options and tables are refused with one `error:` line before any compute. A broken record among
good ones is skipped and reported (one `refused: <file>: <problem>` line), the leaderboard of
the rest is still made (exit 0), and no record file is touched.
"""
import contextlib
import json
import math
import os

import pytest

from tests.helpers.records import make_record, write_record
from tests.helpers.refusal import refused
from tests.helpers.tally import BAD_INPUTS
from tests.helpers.tools import tool


@pytest.fixture(scope="module")
def ready(module_tmp, synthetic_checkpoint):
    """Valid weights and data, so that only the option under test is wrong."""
    from benchmark.data import write_synthetic
    from benchmark.weights.convert import prepare_weights

    root = module_tmp
    return prepare_weights(synthetic_checkpoint("moco", width=8), cache_dir=root / "cache").path, write_synthetic("voc", root / "voc")


# name: (argv after the valid ones, what the line must name, the problem it must state)
OPTIONS = {
    "option: unknown key": (["SOLVER.NO_SUCH_KEY", "3"], "SOLVER.NO_SUCH_KEY", "SOLVER.NO_SUCH_KEY"),
    "option: wrong type (str for int)": (["SOLVER.MAX_ITER", "abc"], "SOLVER.MAX_ITER", "Type mismatch"),
    "option: wrong type (list for float)": (["SOLVER.BASE_LR", "[1, 2]"], "SOLVER.BASE_LR", "Type mismatch"),
    "option: key without value": (["SOLVER.MAX_ITER"], "SOLVER.MAX_ITER", "odd count"),
    "option: negative iterations": (["SOLVER.MAX_ITER", "-5"], "SOLVER.MAX_ITER",
                                    "SOLVER.MAX_ITER must be a positive number, got -5"),
    "option: zero batch": (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH", "SOLVER.IMS_PER_BATCH must be a positive number"),
    "option: infinite LR": (["SOLVER.BASE_LR", "1e999"], "SOLVER.BASE_LR", "SOLVER.BASE_LR must be a positive number, got inf"),
    "option: code as a value": (["SOLVER.MAX_ITER", "__import__('os').mkdir('MARKER_code_ran')"], "SOLVER.MAX_ITER",
                                "Type mismatch"),
    "option: unknown task": (["--task", "voc2077"], "voc2077", "known tasks: cityscapes"),
    "option: --trials 0": (["--trials", "0"], "--trials", "--trials must be >= 1"),
    "option: negative seed": (["--seed", "-3"], "--seed", "--seed must be in 0..2**32-1"),
    # yacs answers these with the whole node dumped over 15 to 152 lines: one line names the group instead
    "option: a group of keys given one value": (["MODEL.RESNETS", "[1]"], "MODEL.RESNETS",
                                                "is a group of 15 keys (DEFORM_MODULATED"),
    "option: a top-level group given one value": (["SOLVER", "x"], "SOLVER", "not one value; set one of them"),
}


@pytest.mark.parametrize("name", OPTIONS)
def test_bad_options_are_refused_before_compute(ready, tmp_path, capsys, monkeypatch, name):
    argv, must_name, problem = OPTIONS[name]
    weights, data = ready
    monkeypatch.chdir(tmp_path)  # where the code-as-a-value marker would appear
    out = tmp_path / "out"
    task = [] if "--task" in argv else ["--task", "voc07"]
    options, overrides = (argv, []) if argv[0].startswith("--") else ([], argv)
    refused(capsys, name, lambda: tool("run_transfer")([*task, *options, "--smoke", "--weights", str(weights),
                                                        "--data-root", str(data), "--output", str(out), *overrides]),
            must_name, problem=problem, protect=[data], absent=[out, tmp_path / "MARKER_code_ran"])


# name: (table text after its columns, the problem); every table has columns {voc07: [bbox/AP]}
TABLES = {
    "paper table: misspelt row key": ("rows: [{name: a, zo: moco_v2_imagenet, cells: {}}]", "row a has unknown key(s) zo"),
    "paper table: misspelt table key": ("tolerence: {voc07: {bbox/AP: 1}}\nrows: []", "the table has unknown key(s) tolerence"),
    "paper table: not YAML": ("rows: [", "not valid YAML"),
    "paper table: unknown zoo name": ("rows: [{name: a, zoo: ../../etc/passwd}]", "unsafe zoo name"),
    "paper table: a cell of no column": ("rows: [{name: a, cells: {voc07: {bbox/AP50: {value: 1, source: s}}}}]",
                                         "row a has a cell voc07 bbox/AP50 that is not a column"),
    "paper table: a row without a name": ("rows: [{zoo: exemplar_v1}]", "every row needs a name"),
}


@pytest.mark.parametrize("name", TABLES)
def test_bad_paper_tables_are_refused(tmp_path, capsys, name):
    body, problem = TABLES[name]
    path = tmp_path / "table.yaml"
    path.write_text("columns: {voc07: [bbox/AP]}\n" + body + "\n")
    refused(capsys, name, lambda: tool("reproduce")(["--table", str(path), "--dry-run", "--output", str(tmp_path / "out")]),
            path, problem=problem, protect=[tmp_path], absent=[tmp_path / "out"])


def test_a_metric_the_task_lacks_is_refused(tmp_path, capsys):
    path = tmp_path / "table.yaml"
    path.write_text("columns: {voc07: [bbox/mIoU]}\nrows: []\n")
    refused(capsys, "paper table: metric the task lacks",
            lambda: tool("reproduce")(["--table", str(path), "--dry-run", "--output", str(tmp_path / "out")]),
            path, problem="task voc07 has no metric 'bbox/mIoU'", protect=[tmp_path], absent=[tmp_path / "out"])


GOOD_METRICS = {"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 42.0}}


@contextlib.contextmanager
def tallied(name):
    """Count an input checked by the test's own assertions: tried now, handled cleanly if they pass."""
    BAD_INPUTS.attempt(name)
    yield
    BAD_INPUTS.succeed(name)


def _good(name):
    return make_record(name=name, metrics=GOOD_METRICS)


def _text(record, **changes):
    return json.dumps({**record, **changes})


# name: (record -> the bytes or text of the broken file, the problem reported)
RECORDS = {
    "record: torn JSON": (lambda g: _text(g)[: len(_text(g)) // 2], "not valid JSON"),
    "record: unknown schema": (lambda g: _text(g, schema_version=99), "schema_version 99 is not understood"),
    "record: no schema": (lambda g: json.dumps({k: v for k, v in g.items() if k != "schema_version"}), "schema_version None"),
    "record: a list": (lambda g: json.dumps([g]), "not a run record"),
    "record: missing keys": (lambda g: json.dumps({k: v for k, v in g.items() if k not in ("task", "seed")}),
                             "missing keys task, seed"),
    "record: unknown status": (lambda g: _text(g, status="running"), "status 'running' is not one of"),
    "record: failed without a reason": (lambda g: _text(g, status="failed", reason=None), "a failed run must say why"),
    "record: metric as text": (lambda g: _text(g, metrics={"bbox": {"AP": "46.6"}}), "metric bbox/AP is '46.6'"),
    "record: NaN metric": (lambda g: _text(g, metrics={"bbox": {"AP": math.nan}}), "metric bbox/AP is nan"),
    "record: weights without a name": (lambda g: _text(g, weights={"sha256": None}), "weights must be an object with a name"),
    "record: binary garbage": (lambda g: b"\xff\xfe\x00garbage", "not valid JSON"),
    "record: metric overflowing to infinity": (lambda g: _text(g).replace('"AP": 40.0', '"AP": 1e400'),
                                               "metric bbox/AP is inf, not a finite number"),
    "record: name a number": (lambda g: _text(g, weights={**g["weights"], "name": 7}), "weights must be an object with a name"),
    "record: name a list": (lambda g: _text(g, weights={**g["weights"], "name": ["a"]}), "weights must be an object with a name"),
    "record: unknown weights key": (lambda g: _text(g, weights={**g["weights"], "claimed": "x"}),
                                    "weights has unknown keys 'claimed'"),
    "record: trial as text": (lambda g: _text(g, trial="0"), "trial is '0', expected a whole number >= 0"),
    "record: trial as a boolean": (lambda g: _text(g, trial=True), "trial is True, expected a whole number >= 0"),
    "record: negative world size": (lambda g: _text(g, world_size=-1), "world_size is -1, expected a whole number >= 1"),
    "record: task a number": (lambda g: _text(g, task=7), "task is 7, expected a non-empty string"),
    "record: unknown kind": (lambda g: _text(g, kind="best"), "kind 'best' is not one of"),
    "record: unknown key": (lambda g: _text(g, verified=True), "unknown keys 'verified'"),
    "record: amp as text": (lambda g: _text(g, amp="no"), "amp is 'no', expected true or false"),
    "record: negative duration": (lambda g: _text(g, duration_s=-5), "duration_s is -5, expected a finite number"),
    "record: resume of another shape": (lambda g: _text(g, resume={"count": "1"}), "resume is {'count': '1'}, expected"),
    "record: deviations not strings": (lambda g: _text(g, deviations=[{"x": 1}]), "deviations is [{'x': 1}], expected a list of strings"),
    "record: nested 100000 deep": (lambda g: "[" * 100000 + "]" * 100000, "nested too deeply to be a run record"),
    "record: empty file": (lambda g: "", "not valid JSON"),
}


def _a_folder(path):
    path.mkdir()


def _a_fifo(path):
    os.mkfifo(path)  # reading it would block for ever


NOT_FILES = {"record: a folder named results.json": _a_folder, "record: a FIFO named results.json": _a_fifo}


@pytest.mark.parametrize("name", NOT_FILES)
def test_a_results_json_that_is_no_file_is_skipped_and_reported(tmp_path, capsys, name):
    write_record(tmp_path / "good" / "trial_0", name="good", metrics=GOOD_METRICS)
    bad = tmp_path / "bad" / "trial_0" / "results.json"
    bad.parent.mkdir(parents=True)
    NOT_FILES[name](bad)
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path)]) == 0
        captured = capsys.readouterr()
        assert captured.err.strip().splitlines() == [f"refused: {bad}: not a regular file, so not a run record"]
        assert "| good | 40.00 (1) |" in captured.out


def test_a_version_1_record_is_read_upgraded(tmp_path):
    """Records of the first release stay readable: kind from their deviations, nothing pooled with v2."""
    from benchmark.records import results

    v1 = {k: v for k, v in _good("old").items() if k in results.V1_KEYS}
    v1.update(schema_version=1, weights={"name": "old", "sha256": None, "source": "old.pth"},
              deviations=["smoke run: synthetic data and a tiny schedule"])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(v1))
    record = results.read_record(path)
    assert (record.schema_version, record.kind, record.protocol_digest) == (2, "smoke", None)
    assert record.weights == results.RecordWeights(name="old", sha256=None, source="old.pth", source_sha256=None, format=None)
    assert record.as_json()["resume"] == results.NOT_RESUMED and record.assumptions == ()
    assert json.loads(path.read_text()) == v1  # the file is not touched
    # the last version 1 writer already stored kind, protocol_digest, assumptions, resume: kept
    late = {**v1, "kind": "full", "protocol_digest": "7" * 64, "assumptions": ["voc07-schedule: x"],
            "resume": {"count": 1, "from_iterations": [10], "exact": True, "note": None}}
    path.write_text(json.dumps(late))
    record = results.read_record(path)
    assert (record.kind, record.protocol_digest, record.resume.count) == ("full", "7" * 64, 1)
    path.write_text(json.dumps({**late, "kind": "best"}))
    with pytest.raises(results.RecordError, match="kind 'best' is not one of"):
        results.read_record(path)


@pytest.mark.parametrize("name", RECORDS)
def test_a_broken_record_is_skipped_and_reported(tmp_path, capsys, name):
    make, problem = RECORDS[name]
    write_record(tmp_path / "good" / "trial_0", name="good", metrics=GOOD_METRICS)
    bad = tmp_path / "bad" / "trial_0" / "results.json"
    bad.parent.mkdir(parents=True)
    content = make(_good("bad"))
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = bad.read_bytes()
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path)]) == 0
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"refused: {bad}: "), lines
        assert problem in lines[0]
        assert "| good | 40.00 (1) |" in captured.out and "## Records refused" in captured.out
        assert bad.read_bytes() == before


def test_only_broken_records_is_an_error(tmp_path, capsys):
    bad = tmp_path / "trial_0" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{")
    with tallied("records: nothing usable"):
        assert tool("leaderboard")([str(tmp_path)]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"refused: {bad}: not valid JSON")
        assert lines[1] == f"error: no usable run record under {tmp_path}"


def test_hostile_names_are_escaped_in_html(tmp_path):
    write_record(tmp_path / "runs" / "a", name="<script>alert(1)</script>")
    with tallied("record: HTML in a checkpoint name"):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--out", str(tmp_path / "board"), "--format", "html"]) == 0
        html = (tmp_path / "board" / "leaderboard.html").read_text()
        assert html.count("<script>") == 1 and "<script>alert" not in html  # only the page's own sorting script
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# name: (overrides of the second record of name "moco", its row's label, the first record's). The first
# release averaged a smoke AP 99 with a real AP 40 into 69.5 +- 41.7; unlike runs are separate rows.
UNLIKE_RUNS = {
    "board: a smoke and a real record of one name": (dict(kind="smoke"), "moco [smoke]"),
    "board: an eval-only and a fine-tuned record": (dict(kind="eval-only"), "moco [eval-only]"),
    "board: a sanity and a real record": (dict(kind="sanity"), "moco [sanity]"),
    "board: an AMP and an FP32 record": (dict(amp=True), "moco [AMP]"),
    "board: another world size": (dict(world_size=2), "moco [world size 2]", "moco [world size 1]"),
    "board: another protocol (schedule, options)": (dict(protocol_digest="9" * 64), "moco [protocol 99999999]",
                                                    "moco [protocol 11111111]"),
}


@pytest.mark.parametrize("name", UNLIKE_RUNS)
def test_unlike_runs_are_never_pooled_on_the_board(tmp_path, capsys, name):
    over, label, first = (UNLIKE_RUNS[name] + ("moco",))[:3]
    base = dict(name="moco", protocol_digest="1" * 64, world_size=1)
    write_record(tmp_path / "runs" / "real", metrics={"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 42.0}}, **base)
    write_record(tmp_path / "runs" / "other", trial=1, metrics={"bbox": {"AP": 99.0, "AP50": 99.0, "AP75": 99.0}},
                 **{**base, **over})
    before = sorted((p, p.read_bytes()) for p in (tmp_path / "runs").rglob("*") if p.is_file())
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none"]) == 0
        out = capsys.readouterr().out
        rows = [line for line in out.splitlines() if line.startswith("| moco")]
        assert len(rows) == 2, rows
        assert any(r.startswith(f"| {first} | 40.00 (1) ") for r in rows) and any(r.startswith(f"| {label} | 99.00 (1) ")
                                                                             for r in rows), rows
        assert "69.50" not in out
        assert sorted((p, p.read_bytes()) for p in (tmp_path / "runs").rglob("*") if p.is_file()) == before


# A row's identity is (name, tags, published or not), never its label's text: a weights name that reads like a
# tagged or published label must neither be averaged with that row nor hide it (issue 22, medium 1).
# name: ([(folder, record overrides)], --published, the label the forged name's own row must show)
FORGED_ROWS = {
    "board: a full run named like another checkpoint's smoke row": (
        [("smoke", dict(name="moco", kind="smoke", metrics={"bbox": {"AP": 90.0, "AP50": 90.0, "AP75": 90.0}})),
         ("full", dict(name="moco [smoke]", trial=1, metrics={"bbox": {"AP": 10.0, "AP50": 10.0, "AP75": 10.0}}))],
        "none", '"moco [smoke]"'),
    "board: a full run named like another checkpoint's row of two tags": (
        [("smoke", dict(name="moco", kind="smoke", amp=True, metrics={"bbox": {"AP": 90.0, "AP50": 90.0, "AP75": 90.0}})),
         ("full", dict(name="moco [smoke, AMP]", trial=1, metrics={"bbox": {"AP": 10.0, "AP50": 10.0, "AP75": 10.0}}))],
        "none", '"moco [smoke, AMP]"'),
    "board: a record named like a published row": (
        [("fake", dict(name="supervised [published: moco_voc0712]", task="voc0712",
                       metrics={"bbox": {"AP": 10.0, "AP50": 10.0, "AP75": 10.0}}))],
        "moco_voc0712", '"supervised [published: moco_voc0712]"'),
}


@pytest.mark.parametrize("name", FORGED_ROWS)
def test_a_name_cannot_forge_a_rows_tags(tmp_path, capsys, name):
    specs, published, forged_label = FORGED_ROWS[name]
    for folder, over in specs:
        write_record(tmp_path / "runs" / folder, **over)
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", published]) == 0
        out = capsys.readouterr().out
        table = out.split("\n\n## ")[0]
        assert "50.00" not in table and " (2)" not in table  # 90 and 10 never averaged
        forged = [line for line in table.splitlines() if line.startswith(f"| {forged_label} |")]
        assert len(forged) == 1 and forged[0].split(" | ")[1].startswith("10.00 (1)"), table  # its own row, shown
        labels = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
        assert len(labels) == len(set(labels)), labels  # every row's label names it alone


# A star says "best among the rows it was compared with": a row alone in its tag group, or a task column that only
# one row of its group has, was compared with nothing and gets none (issue 22, low 15).
# name: ([(folder, record overrides)], {row label: whether its voc07 bbox/AP cell is starred})
LONE_ROWS = {
    "board: a smoke run alone in its tag group": (
        [("full_a", dict(name="a", metrics={"bbox": {"AP": 40.0, "AP50": 60.0, "AP75": 42.0}})),
         ("full_b", dict(name="b", metrics={"bbox": {"AP": 30.0, "AP50": 50.0, "AP75": 32.0}})),
         ("smoke", dict(name="a", kind="smoke", metrics={"bbox": {"AP": 99.0, "AP50": 99.0, "AP75": 99.0}}))],
        {"a": True, "b": False, "a [smoke]": False}),
    "board: a single smoke run of zeros": (
        [("smoke", dict(name="moco", kind="smoke", metrics={"bbox": {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}}))],
        {"moco [smoke]": False}),
    "board: a single full run": ([("full", dict(name="moco"))], {"moco": False}),
}


@pytest.mark.parametrize("name", LONE_ROWS)
def test_a_row_compared_with_nothing_gets_no_star(tmp_path, capsys, name):
    specs, starred = LONE_ROWS[name]
    for folder, over in specs:
        write_record(tmp_path / "runs" / folder, **over)
    capsys.readouterr()
    with tallied(name):
        assert tool("leaderboard")([str(tmp_path / "runs"), "--published", "none", "--out", str(tmp_path / "board")]) == 0
        md = (tmp_path / "board" / "leaderboard.md").read_text()
        cells = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in md.split("\n\n## ")[0].splitlines()
                 if line.startswith("| ") and not line.startswith(("| checkpoint", "| ---"))}
        assert {label: "★" in cell for label, cell in cells.items()} == starred, md
        csv_marks = [line.split(",")[7] for line in (tmp_path / "board" / "leaderboard.csv").read_text().splitlines()[1:]]
        assert csv_marks.count("best") == sum(starred.values())
