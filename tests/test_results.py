"""The run record: schema, atomic write, read, gather."""
import json
import os

import numpy as np
import pytest

from benchmark.records import results
from benchmark.fileio import atomic_write


def _record(**over):
    fields = dict(
        task="voc07", weights={"name": "moco", "sha256": "ab" * 32, "source": "moco.pth"},
        seed=0, trial=0, status="finished", metrics={"bbox": {"AP": np.float64(46.6), "AP50": 70.0}},
        iterations=20, world_size=1, ims_per_batch=2, duration_s=1.5, config_digest="cd",
        environment={"torch": "x"},
    )
    fields.update(over)
    return results.new_record(**fields)


def test_round_trip_converts_numpy_scalars(tmp_path):
    path = results.write_record(tmp_path, _record())
    assert path == tmp_path / "results.json"
    back = results.read_record(path)
    assert back["metrics"] == {"bbox": {"AP": 46.6, "AP50": 70.0}}
    assert type(back["metrics"]["bbox"]["AP"]) is float
    assert back["schema_version"] == results.SCHEMA_VERSION
    assert results.is_finished(tmp_path)


def test_nan_metric_kept_as_null(tmp_path):
    rec = _record(metrics={"bbox": {"AP": float("nan")}})
    assert rec["metrics"]["bbox"]["AP"] is None


def test_failed_run_needs_reason():
    with pytest.raises(results.RecordError, match="must say why"):
        _record(status="failed")
    rec = _record(status="failed", reason="loss became NaN at iteration 3")
    assert rec["reason"].startswith("loss became NaN")


def test_unknown_schema_and_torn_json_refused(tmp_path):
    (tmp_path / "a").mkdir()
    rec = _record()
    rec["schema_version"] = 99
    (tmp_path / "a" / "results.json").write_text(json.dumps(rec))
    with pytest.raises(results.RecordError, match="schema_version 99 is not understood"):
        results.read_record(tmp_path / "a" / "results.json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text('{"schema_version": 1, "task": ')
    with pytest.raises(results.RecordError, match="torn or corrupt"):
        results.read_record(tmp_path / "b" / "results.json")
    assert not results.is_finished(tmp_path / "b")


def test_gather_reports_problems_and_keeps_going(tmp_path):
    results.write_record(tmp_path / "run1", _record(seed=1))
    results.write_record(tmp_path / "run2", _record(seed=2))
    (tmp_path / "run3").mkdir()
    (tmp_path / "run3" / "results.json").write_text("not json")
    records, problems = results.gather([tmp_path])
    assert [r["seed"] for r in records] == [1, 2]
    assert len(problems) == 1 and "run3" in problems[0]
    with pytest.raises(FileNotFoundError):
        results.gather([tmp_path / "missing"])


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.json"]
