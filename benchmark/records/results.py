"""The run record: `OUTPUT_DIR/results.json`, one per fine-tuning run.

Schema (version 1), all keys always present:
  schema_version  int, SCHEMA_VERSION
  suite_version   str, benchmark.__version__ of the writer
  task            str, a registered task name
  weights         {"name": str, "sha256": str | None, "source": str}
                  name: what rows of a leaderboard are keyed by (zoo name or file stem)
  seed, trial     int, int
  status          "finished" | "failed"
  reason          str | None, why a run failed (None when finished)
  metrics         {group: {metric: float}}, the evaluator's numbers, e.g. {"bbox": {"AP": 46.6}}
  iterations      int, iterations trained
  world_size      int, number of processes
  ims_per_batch   int, total images per batch
  amp             bool
  deviations      [str], every departure from the task's published protocol
  duration_s      float
  config_digest   str, sha256 of the full config dump
  environment     dict, benchmark.env.environment()
  created         str, UTC ISO-8601 time of writing

Records are written atomically (benchmark.fileio) and readers refuse a record whose
schema_version they do not understand rather than guess at its meaning.
"""
import datetime
import json
import math
from pathlib import Path

from benchmark.fileio import write_json_atomic

SCHEMA_VERSION = 1
RECORD_NAME = "results.json"
STATUSES = ("finished", "failed")
REQUIRED = (
    "schema_version", "suite_version", "task", "weights", "seed", "trial", "status", "reason",
    "metrics", "iterations", "world_size", "ims_per_batch", "amp", "deviations", "duration_s",
    "config_digest", "environment", "created",
)


class RecordError(ValueError):
    """A results.json that cannot be used: torn, not a record, or of an unknown schema."""


def new_record(**fields) -> dict:
    """A complete record from `fields`; the bookkeeping keys are filled in here."""
    from benchmark import __version__

    record = {
        "schema_version": SCHEMA_VERSION,
        "suite_version": __version__,
        "reason": None,
        "metrics": {},
        "amp": False,
        "deviations": [],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(fields)
    record["metrics"] = clean_metrics(record["metrics"])
    validate(record)
    return record


def clean_metrics(metrics: dict) -> dict:
    """Plain floats (evaluators return numpy scalars, which JSON cannot hold); NaN kept as None."""
    out = {}
    for group, values in (metrics or {}).items():
        out[group] = {}
        for name, value in values.items():
            value = float(value)
            out[group][name] = value if math.isfinite(value) else None
    return out


def validate(record: dict, where: str = "record") -> dict:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a run record (expected a JSON object)")
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(
            f"{where}: schema_version {version!r} is not understood by this suite "
            f"(it reads version {SCHEMA_VERSION}); re-run or convert the record"
        )
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"{where}: missing keys {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise RecordError(f"{where}: status {record['status']!r} is not one of {STATUSES}")
    if record["status"] == "failed" and not record["reason"]:
        raise RecordError(f"{where}: a failed run must say why (reason is empty)")
    weights = record["weights"]
    if not isinstance(weights, dict) or not weights.get("name"):
        raise RecordError(f"{where}: weights must be an object with a name")
    _validate_metrics(record["metrics"], where)
    return record


def _validate_metrics(metrics, where):
    """{group: {metric: finite number | None}}: a record edited by hand or by another tool could hold
    strings or NaN (JSON allows it), which would poison every mean of a leaderboard cell."""
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
        raise RecordError(f"{where}: metrics must be an object of objects ({{group: {{metric: number}}}})")
    for group, values in metrics.items():
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RecordError(f"{where}: metric {group}/{name} is {value!r}, not a finite number or null")


def write_record(output_dir, record: dict) -> Path:
    """Validate and write `output_dir/results.json` atomically; return its path."""
    validate(record)
    return write_json_atomic(Path(output_dir) / RECORD_NAME, record)


def read_record(path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path}: no such run record") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}); the record is torn or corrupt") from None
    return validate(record, where=str(path))


def is_finished(output_dir) -> bool:
    """Whether `output_dir` holds a readable record of a finished run (used to skip reruns)."""
    try:
        return read_record(Path(output_dir) / RECORD_NAME)["status"] == "finished"
    except RecordError:
        return False


def gather(roots) -> tuple[list[dict], list[str]]:
    """All records under `roots` (folders or results.json files), sorted by path.

    Returns (records, problems): each record gets its path under "_path"; each unreadable record
    gives one line in problems instead of stopping the gathering.
    """
    paths = set()
    for root in map(Path, roots):
        if root.is_file():
            paths.add(root)
        elif root.is_dir():
            paths.update(root.rglob(RECORD_NAME))
        else:
            raise FileNotFoundError(f"{root}: no such folder or file")
    records, problems = [], []
    for path in sorted(paths):
        try:
            record = read_record(path)
        except RecordError as exc:
            problems.append(str(exc))
            continue
        record["_path"] = str(path)
        records.append(record)
    return records, problems
