"""The run record: schema, atomic write, read, gather."""
import json
import os

import numpy as np
import pytest

from benchmark.fileio import atomic_write
from benchmark.records import results
from tests.helpers.records import make_record, write_record


def test_round_trip_converts_numpy_scalars(tmp_path):
    path = write_record(tmp_path, metrics={"bbox": {"AP": np.float64(46.6), "AP50": np.float32(70.0)}})
    assert path == tmp_path / "results.json"
    back = results.read_record(path)
    assert back.metrics == {"bbox": {"AP": 46.6, "AP50": 70.0}}
    assert type(back.metrics["bbox"]["AP"]) is float and type(back.metrics["bbox"]["AP50"]) is float
    assert back.schema_version == results.SCHEMA_VERSION
    assert results.is_finished(tmp_path)


def test_a_read_record_is_typed_and_gives_back_the_json_written(tmp_path):
    path = write_record(tmp_path, deviations=["smoke run: synthetic data"], kind="smoke")
    record = results.read_record(path)
    assert (record.weights.name, record.resume.count, record.deviations, record.metric("bbox/AP")) == (
        "moco", 0, ("smoke run: synthetic data",), 46.6)
    assert record.as_json() == json.loads(path.read_text())  # the file's JSON form, field for field
    with pytest.raises(TypeError):  # typed fields only: no second, dict-shaped way to read it
        record["status"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float64("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_metric_kept_as_null(value):
    assert make_record(metrics={"bbox": {"AP": value, "AP50": 1.0}})["metrics"] == {"bbox": {"AP": None, "AP50": 1.0}}


@pytest.mark.parametrize("reason", [None, ""], ids=["None", "empty"])
def test_a_failed_run_without_a_reason_is_refused(reason):
    with pytest.raises(results.RecordError, match="a failed run must say why"):
        make_record(status="failed", reason=reason)


def test_a_failed_run_keeps_its_reason():
    assert make_record(status="failed", reason="loss became NaN at iteration 3")["reason"] == "loss became NaN at iteration 3"


@pytest.mark.parametrize("text, message", [
    (lambda good: json.dumps({**good, "schema_version": 99}), "schema_version 99 is not understood"),
    (lambda good: '{"schema_version": 1, "task": ', "not valid JSON .*; the record is torn or corrupt"),
    (lambda good: "", "not valid JSON .*; the record is torn or corrupt"),
], ids=["other schema", "torn", "empty"])
def test_unreadable_records_are_refused(tmp_path, text, message):
    (tmp_path / "results.json").write_text(text(make_record()))
    with pytest.raises(results.RecordError, match=f"^{tmp_path / 'results.json'}: {message}"):
        results.read_record(tmp_path / "results.json")
    assert not results.is_finished(tmp_path)


def test_a_missing_record_is_not_finished(tmp_path):
    with pytest.raises(results.RecordError, match="no such run record"):
        results.read_record(tmp_path / "results.json")
    assert not results.is_finished(tmp_path)


def test_gather_reports_problems_and_keeps_going(tmp_path):
    write_record(tmp_path / "run1", seed=1)
    write_record(tmp_path / "run2", seed=2)
    (tmp_path / "run3").mkdir()
    (tmp_path / "run3" / "results.json").write_text("not json")
    records, problems = results.gather([tmp_path])
    assert [(r.seed, r.path) for r in records] == [(1, str(tmp_path / "run1" / "results.json")),
                                                          (2, str(tmp_path / "run2" / "results.json"))]
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'run3' / 'results.json'}: not valid JSON")


def test_gather_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing: no such folder or file"):
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
