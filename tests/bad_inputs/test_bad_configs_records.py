"""Bad options and paper tables, and broken or foreign run records.

Options and tables are refused with one `error:` line before any compute. A broken record among
good ones is skipped and reported (one `refused: <file>: <problem>` line), the leaderboard of
the rest is still made (exit 0), and no record file is touched.
"""
import json
import math

import pytest

from badlib import count, refused, tool

run_transfer = tool("run_transfer")
leaderboard = tool("leaderboard")


@pytest.fixture(scope="module")
def ready(module_tmp, synthetic_checkpoint):
    """Valid weights and data, so that only the option under test is wrong."""
    from benchmark.weights.convert import prepare_weights
    from benchmark.data import write_synthetic

    root = module_tmp
    return prepare_weights(synthetic_checkpoint("moco"), cache_dir=root / "cache").path, write_synthetic("voc", root / "voc")


OPTIONS = {
    "option: unknown key": (["SOLVER.NO_SUCH_KEY", "3"], "SOLVER.NO_SUCH_KEY"),
    "option: wrong type (str for int)": (["SOLVER.MAX_ITER", "abc"], "Type mismatch"),
    "option: wrong type (list for float)": (["SOLVER.BASE_LR", "[1, 2]"], "Type mismatch"),
    "option: key without value": (["SOLVER.MAX_ITER"], "odd count"),
    "option: negative iterations": (["SOLVER.MAX_ITER", "-5"], "SOLVER.MAX_ITER must be a positive number, got -5"),
    "option: zero batch": (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH must be a positive number"),
    "option: infinite LR": (["SOLVER.BASE_LR", "1e999"], "SOLVER.BASE_LR must be a positive number, got inf"),
    "option: code as a value": (["SOLVER.MAX_ITER", "__import__('os').mkdir('MARKER_code_ran')"], "Type mismatch"),
}


def test_bad_options_are_refused_before_compute(ready, tmp_path, capsys, monkeypatch):
    weights, data = ready
    monkeypatch.chdir(tmp_path)  # where the code-as-a-value marker would appear
    for name, (opts, problem) in OPTIONS.items():
        out = tmp_path / "out"
        refused(capsys, name, lambda: run_transfer(["--task", "voc07", "--smoke", "--weights", str(weights),
                                                    "--data-root", str(data), "--output", str(out), *opts]),
                opts[0], problem=problem, protect=[data], absent=[out, tmp_path / "MARKER_code_ran"])
    for name, argv, problem in [("option: unknown task", ["--task", "voc2077"], "known tasks: cityscapes"),
                                ("option: --trials 0", ["--task", "voc07", "--trials", "0"], "--trials must be >= 1"),
                                ("option: negative seed", ["--task", "voc07", "--seed", "-3"], "--seed must be in 0..2**32-1")]:
        refused(capsys, name, lambda: run_transfer([*argv, "--smoke", "--weights", str(weights), "--data-root", str(data),
                                                    "--output", str(tmp_path / "out")]),
                argv[1] if name.endswith("task") else argv[-2], problem=problem, protect=[data], absent=[tmp_path / "out"])


TABLES = {
    "paper table: misspelt row key": ("rows: [{name: a, zo: moco_v2_imagenet, cells: {}}]", "row a has unknown key(s) zo"),
    "paper table: misspelt table key": ("tolerence: {voc07: {bbox/AP: 1}}\nrows: []", "the table has unknown key(s) tolerence"),
    "paper table: metric the task lacks": ("rows: []", None),
    "paper table: not YAML": ("rows: [", "not valid YAML"),
    "paper table: unknown zoo name": ("rows: [{name: a, zoo: ../../etc/passwd}]", "unsafe zoo name"),
}


def test_bad_paper_tables_are_refused(tmp_path, capsys):
    reproduce = tool("reproduce")
    for i, (name, (body, problem)) in enumerate(TABLES.items()):
        path = tmp_path / f"table{i}.yaml"
        columns = "columns: {voc07: [bbox/AP]}\n" if problem is not None else "columns: {voc07: [bbox/mIoU]}\n"
        path.write_text(columns + body + "\n")
        refused(capsys, name, lambda: reproduce(["--table", str(path), "--dry-run", "--output", str(tmp_path / "out")]),
                path, problem=problem or "task voc07 has no metric 'bbox/mIoU'", protect=[tmp_path],
                absent=[tmp_path / "out"])


def _good(name, trial=0, ap=40.0):
    from benchmark.records import results

    return results.new_record(task="voc07", weights={"name": name, "sha256": None, "source": "x"}, seed=trial,
                              trial=trial, status="finished", metrics={"bbox": {"AP": ap, "AP50": 60.0, "AP75": 42.0}},
                              iterations=16, world_size=1, ims_per_batch=2, duration_s=1.0, config_digest="0" * 64,
                              environment={})


def _text(record, **changes):
    return json.dumps({**record, **changes})


RECORDS = {
    "record: torn JSON": (lambda g: _text(g)[: len(_text(g)) // 2], "not valid JSON"),
    "record: unknown schema": (lambda g: _text(g, schema_version=2), "schema_version 2 is not understood"),
    "record: no schema": (lambda g: json.dumps({k: v for k, v in g.items() if k != "schema_version"}), "schema_version None"),
    "record: a list": (lambda g: json.dumps([g]), "not a run record"),
    "record: missing keys": (lambda g: json.dumps({k: v for k, v in g.items() if k not in ("task", "seed")}), "missing keys task, seed"),
    "record: unknown status": (lambda g: _text(g, status="running"), "status 'running' is not one of"),
    "record: failed without a reason": (lambda g: _text(g, status="failed", reason=None), "a failed run must say why"),
    "record: metric as text": (lambda g: _text(g, metrics={"bbox": {"AP": "46.6"}}), "metric bbox/AP is '46.6'"),
    "record: NaN metric": (lambda g: _text(g, metrics={"bbox": {"AP": math.nan}}), "metric bbox/AP is nan"),
    "record: weights without a name": (lambda g: _text(g, weights={"sha256": None}), "weights must be an object with a name"),
    "record: binary garbage": (lambda g: b"\xff\xfe\x00garbage", "not valid JSON"),
    "record: empty file": (lambda g: "", "not valid JSON"),
}


def test_broken_records_are_skipped_and_reported(tmp_path, capsys):
    from benchmark.records import results

    for i, (name, (make, problem)) in enumerate(RECORDS.items()):
        root = tmp_path / str(i)
        results.write_record(root / "good" / "trial_0", _good("good"))
        bad = root / "bad" / "trial_0" / "results.json"
        bad.parent.mkdir(parents=True)
        content = make(_good("bad"))
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        before = bad.read_bytes()
        capsys.readouterr()
        rc = leaderboard([str(root)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        ok = (rc == 0 and len(lines) == 1 and lines[0].startswith(f"refused: {bad}: ") and problem in lines[0]
              and "| good | 40.00 (1) |" in captured.out and "## Records refused" in captured.out
              and bad.read_bytes() == before)
        count(name, ok)
        assert ok, (name, rc, lines, captured.out)


def test_only_broken_records_is_an_error(tmp_path, capsys):
    bad = tmp_path / "trial_0" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{")
    rc = leaderboard([str(tmp_path)])
    lines = capsys.readouterr().err.strip().splitlines()
    ok = rc == 1 and lines[0].startswith(f"refused: {bad}: ") and lines[1].startswith("error: no usable run record")
    count("records: nothing usable", ok)
    assert ok, lines


def test_hostile_names_are_escaped_in_html(tmp_path, capsys):
    from benchmark.records import results

    results.write_record(tmp_path / "runs" / "a", _good("<script>alert(1)</script>"))
    rc = leaderboard([str(tmp_path / "runs"), "--out", str(tmp_path / "board"), "--format", "html"])
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    ok = rc == 0 and "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    count("record: HTML in a checkpoint name", ok)
    assert ok
