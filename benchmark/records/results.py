"""The run record: `OUTPUT_DIR/results.json`, one per trial.

Schema (version 2), all keys always present, each of the type given (validate() checks every one):
  schema_version  int, SCHEMA_VERSION
  suite_version   str, benchmark.__version__ of the writer
  task            str, a registered task name
  kind            "full" | "smoke" | "sanity" | "eval-only" | "analysis" (tools/invert.py: no fine-tuning,
                  benchmark.inversion): what the run measures; runs of
                  different kinds are never reused for one another nor pooled on a board
  weights         {"name": str, "sha256": str | None, "source": str,
                   "source_sha256": str | None, "format": str | None}
                  name: what rows of a leaderboard are keyed by (zoo name or file stem);
                  sha256: of the converted file the run loaded (never a claim copied from it);
                  source: the --weights value (URL secrets redacted); source_sha256: the original
                  checkpoint's, only where the suite hashed it itself (null for a converted .pkl
                  given as --weights: its provenance only claims one); format: the layout it was converted from
  seed, trial     int, int >= 0
  status          "finished" | "failed"
  reason          str | None, why a run failed (None when finished)
  metrics         {group: {metric: finite float, |v| <= MAX_METRIC | None}}, e.g. {"bbox": {"AP": 46.6}}; None is
                  an evaluator's NaN. Group "errors" holds a detection error analysis.
  iterations      int >= 0, iterations trained
  world_size      int >= 1, number of processes
  ims_per_batch   int >= 1, total images per batch
  amp             bool
  deviations      [str], every departure from the task's published protocol
  assumptions     [str], the task's protocol values that no publication gives (Task.assumptions)
  duration_s      finite float >= 0, over every attempt of the trial (resumed ones included)
  resume          {"count": int, "from_iterations": [int], "exact": bool, "note": str | None}
  config_digest   str, sha256 of the config that ran
  protocol_digest str | None, the same less OUTPUT_DIR, MODEL.WEIGHTS and SEED: equal for every
                  trial of one protocol (None only in records upgraded from version 1)
  environment     dict, benchmark.env.environment()
  created         str, UTC ISO-8601 time of writing

Writers build the JSON form (new_record -> dict) and write it atomically (benchmark.fileio);
readers (read_record, gather) return a frozen `Record`: the fields above typed (`weights` a
RecordWeights, `resume` a Resume), plus the `path` it was read from. Readers refuse, with one line naming the file
and the field, a record of a schema_version they do not understand, one with a key they do not
know, and one whose field has the wrong type, rather than guess at its meaning: a hand-edited or
foreign file must not put a number on a board. Version 1 records (no kind, protocol_digest,
assumptions, resume; weights without source_sha256/format) are upgraded in memory: kind "smoke"
when a deviation says it was a smoke run, else "full"; protocol_digest None, so the board pools
them with no version 2 record. The last version 1 writer already stored some of the version 2
fields; those are kept (and checked like any other).
"""
import dataclasses
import datetime
import json
import math
import stat
from pathlib import Path

from benchmark.fileio import write_json_atomic

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RECORD_NAME = "results.json"
STATUSES = ("finished", "failed")
KINDS = ("full", "smoke", "sanity", "eval-only", "analysis")
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record is a few KB; anything this big is not one
# Every metric of this suite is a percentage, a score or an error of a few units; a finite 1e308 is none of them,
# and a cell's mean or std over such values overflows (OverflowError, the whole board lost). Far above any real
# value, far below where a sum or square of a few thousand trials could overflow.
MAX_METRIC = 1e12
NOT_RESUMED = {"count": 0, "from_iterations": [], "exact": True, "note": None}
V1_KEYS = (
    "schema_version", "suite_version", "task", "weights", "seed", "trial", "status", "reason",
    "metrics", "iterations", "world_size", "ims_per_batch", "amp", "deviations", "duration_s",
    "config_digest", "environment", "created",
)
REQUIRED = V1_KEYS + ("kind", "protocol_digest", "assumptions", "resume")
WEIGHTS_KEYS = ("name", "sha256", "source", "source_sha256", "format")


class RecordError(ValueError):
    """A results.json that cannot be used: torn, not a record, of an unknown schema or mistyped."""


@dataclasses.dataclass(frozen=True)
class RecordWeights:
    """The record's `weights`: what rows of a leaderboard are keyed by (`name`) and what was loaded."""
    name: str
    sha256: str | None
    source: str
    source_sha256: str | None
    format: str | None


@dataclasses.dataclass(frozen=True)
class Resume:
    """The record's `resume`: how often the trial was resumed, from which iterations, and whether exactly."""
    count: int
    from_iterations: tuple
    exact: bool
    note: str | None


@dataclasses.dataclass(frozen=True, eq=False)
class Record:
    """A validated run record as read (read_record, gather): typed fields, frozen; `path` is the file it
    was read from (None for one built in memory) and is not part of the schema.

    Callers read the typed fields (`record.weights.sha256`, `record.resume.count`, `record.metric("bbox/AP")`);
    `as_json()` gives the file's JSON form, for comparing with or passing on what was written.
    Records compare (and hash) by identity: two reads of one file are two records; compare their
    `as_json()` for equal content.
    """
    schema_version: int
    suite_version: str
    task: str
    kind: str
    weights: RecordWeights
    seed: int
    trial: int
    status: str
    reason: str | None
    metrics: dict  # {group: {metric: float | None}}
    iterations: int
    world_size: int
    ims_per_batch: int
    amp: bool
    deviations: tuple
    assumptions: tuple
    duration_s: float
    resume: Resume
    config_digest: str
    protocol_digest: str | None
    environment: dict
    created: str
    path: str | None = None

    @classmethod
    def from_json(cls, data: dict, path=None) -> "Record":
        """The record of `data` (validated and upgraded; RecordError when it is not a usable record)."""
        data = validate(data, where=str(path) if path is not None else "record")
        fields = {k: data[k] for k in REQUIRED}
        fields["weights"] = RecordWeights(**data["weights"])
        fields["resume"] = Resume(**{**data["resume"], "from_iterations": tuple(data["resume"]["from_iterations"])})
        fields["deviations"] = tuple(data["deviations"])
        fields["assumptions"] = tuple(data["assumptions"])
        return cls(**fields, path=None if path is None else str(path))

    def as_json(self) -> dict:
        """The record as results.json holds it (schema version 2; `path` left out)."""
        out = {k: getattr(self, k) for k in REQUIRED}
        out["weights"] = dataclasses.asdict(self.weights)
        out["resume"] = {**dataclasses.asdict(self.resume), "from_iterations": list(self.resume.from_iterations)}
        out["deviations"] = list(self.deviations)
        out["assumptions"] = list(self.assumptions)
        return out

    def metric(self, metric: str) -> float | None:
        """The value of "group/name" (e.g. "bbox/AP"); None when absent or NaN."""
        group, _, name = metric.partition("/")
        value = self.metrics.get(group, {}).get(name)
        return None if value is None or not math.isfinite(value) else float(value)


def new_record(**fields) -> dict:
    """A complete record from `fields`; the bookkeeping keys are filled in here.

    Defaults for what older writers do not pass: kind "full", no assumptions, not resumed,
    protocol_digest None, weights' source_sha256 and format None. Unknown keys are refused.
    """
    from benchmark import __version__

    record = {
        "schema_version": SCHEMA_VERSION,
        "suite_version": __version__,
        "reason": None,
        "metrics": {},
        "amp": False,
        "deviations": [],
        "kind": "full",
        "protocol_digest": None,
        "assumptions": [],
        "resume": dict(NOT_RESUMED),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(fields)
    if isinstance(record.get("weights"), dict):
        record["weights"] = {"source_sha256": None, "format": None, **record["weights"]}
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


def upgrade(record: dict) -> dict:
    """A version 1 record as version 2 (in memory; the file is not touched)."""
    record = dict(record)
    deviations = record.get("deviations")
    smoke = isinstance(deviations, list) and any(str(d).startswith("smoke run") for d in deviations)
    # the release before version 2 already wrote some of these into version 1 records: kept
    record.setdefault("kind", "smoke" if smoke else "full")
    record.setdefault("protocol_digest", None)
    record.setdefault("assumptions", [])
    record.setdefault("resume", dict(NOT_RESUMED))
    record["schema_version"] = SCHEMA_VERSION
    if isinstance(record.get("weights"), dict):
        record["weights"] = {"source_sha256": None, "format": None, **record["weights"]}
    return record


def validate(record: dict, where: str = "record") -> dict:
    """`record` itself when every key is known, present and of its type; else RecordError."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a run record (expected a JSON object)")
    version = record.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise RecordError(
            f"{where}: schema_version {version!r} is not understood by this suite "
            f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))}); re-run or convert the record"
        )
    missing = [k for k in (V1_KEYS if version == 1 else REQUIRED) if k not in record]
    if missing:
        raise RecordError(f"{where}: missing keys {', '.join(missing)}")
    unknown = sorted(k for k in record if k not in REQUIRED)
    if unknown:
        raise RecordError(f"{where}: unknown keys {', '.join(map(repr, unknown))} (schema version {version})")
    if version == 1:
        record = upgrade(record)

    def bad(key, expected):
        return RecordError(f"{where}: {key} is {_show(record_value(key))}, expected {expected}")

    def record_value(key):
        value = record
        for part in key.split("."):
            value = value[part]
        return value

    for key in ("suite_version", "task", "config_digest", "created"):
        if not isinstance(record[key], str) or not record[key]:
            raise bad(key, "a non-empty string")
    for key, low in (("seed", None), ("trial", 0), ("iterations", 0), ("world_size", 1), ("ims_per_batch", 1)):
        if not _is_int(record[key]) or (low is not None and record[key] < low):
            raise bad(key, "a whole number" + ("" if low is None else f" >= {low}"))
    if record["status"] not in STATUSES:
        raise RecordError(f"{where}: status {_show(record['status'])} is not one of {STATUSES}")
    if record["reason"] is not None and not isinstance(record["reason"], str):
        raise bad("reason", "a string or null")
    if record["status"] == "failed" and not record["reason"]:
        raise RecordError(f"{where}: a failed run must say why (reason is empty)")
    if record["kind"] not in KINDS:
        raise RecordError(f"{where}: kind {_show(record['kind'])} is not one of {KINDS}")
    if not isinstance(record["amp"], bool):
        raise bad("amp", "true or false")
    for key in ("deviations", "assumptions"):
        if not isinstance(record[key], list) or not all(isinstance(d, str) for d in record[key]):
            raise bad(key, "a list of strings")
    if not _is_number(record["duration_s"]) or record["duration_s"] < 0:
        raise bad("duration_s", "a finite number of seconds >= 0")
    if record["protocol_digest"] is not None and not isinstance(record["protocol_digest"], str):
        raise bad("protocol_digest", "a string or null")
    if not isinstance(record["environment"], dict):
        raise bad("environment", "an object")
    _validate_weights(record["weights"], where)
    _validate_resume(record["resume"], where)
    _validate_metrics(record["metrics"], where)
    return record


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:  # an integer of 400 digits is finite but no float: math.isfinite raises OverflowError on it
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validate_weights(weights, where):
    if not isinstance(weights, dict) or not isinstance(weights.get("name"), str) or not weights["name"].strip():
        raise RecordError(f"{where}: weights must be an object with a name (a non-empty string)")
    unknown = sorted(k for k in weights if k not in WEIGHTS_KEYS)
    if unknown:
        raise RecordError(f"{where}: weights has unknown keys {', '.join(map(repr, unknown))}")
    if not isinstance(weights.get("source"), str):
        raise RecordError(f"{where}: weights.source is {_show(weights.get('source'))}, expected a string")
    for key in ("sha256", "source_sha256", "format"):
        if weights.get(key) is not None and not isinstance(weights[key], str):
            raise RecordError(f"{where}: weights.{key} is {_show(weights[key])}, expected a string or null")


def _validate_resume(resume, where):
    ok = (isinstance(resume, dict) and set(resume) == set(NOT_RESUMED)
          and _is_int(resume["count"]) and resume["count"] >= 0
          and isinstance(resume["from_iterations"], list) and all(_is_int(i) for i in resume["from_iterations"])
          and isinstance(resume["exact"], bool)
          and (resume["note"] is None or isinstance(resume["note"], str)))
    if not ok:
        raise RecordError(f"{where}: resume is {_show(resume)}, expected "
                          "{count: int, from_iterations: [int], exact: bool, note: str or null}")


def _validate_metrics(metrics, where):
    """{group: {metric: finite number | None}}: a record edited by hand or by another tool could hold
    strings or NaN (JSON allows it), which would poison every mean of a leaderboard cell."""
    if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
        raise RecordError(f"{where}: metrics must be an object of objects ({{group: {{metric: number}}}})")
    for group, values in metrics.items():
        for name, value in values.items():
            if value is None:
                continue
            if not _is_number(value):
                raise RecordError(f"{where}: metric {group}/{name} is {_show(value)}, not a finite number or null")
            if abs(value) > MAX_METRIC:
                raise RecordError(f"{where}: metric {group}/{name} is {_show(value)}, beyond ±{MAX_METRIC:g}, "
                                  f"which no evaluator of this suite reports")


def write_record(output_dir, record: dict) -> Path:
    """Validate and write `output_dir/results.json` atomically; return its path."""
    validate(record)
    return write_json_atomic(Path(output_dir) / RECORD_NAME, record)


def read_record(path) -> Record:
    """The validated record at `path` (a version 1 record upgraded); RecordError when unusable."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise RecordError(f"{path}: no such run record") from None
    except OSError as exc:
        raise RecordError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read forever, a folder cannot be read
        raise RecordError(f"{path}: not a regular file, so not a run record")
    if info.st_size > MAX_RECORD_BYTES:
        raise RecordError(f"{path}: {info.st_size} bytes, too large for a run record "
                          f"(at most {MAX_RECORD_BYTES}); not read")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise RecordError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}); the record is torn or corrupt") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits (4300)
        raise RecordError(f"{path}: not a run record ({' '.join(str(exc).split())[:200]})") from None
    except RecursionError:
        raise RecordError(f"{path}: nested too deeply to be a run record") from None
    return Record.from_json(record, path)


def is_finished(output_dir) -> bool:
    """Whether `output_dir` holds a readable record of a finished run (used to skip reruns)."""
    try:
        return read_record(Path(output_dir) / RECORD_NAME).status == "finished"
    except RecordError:
        return False


def gather(roots) -> tuple[list[Record], list[str]]:
    """All records under `roots` (folders or results.json files), sorted by path.

    Returns (records, problems): each record knows its `path`; each unreadable record gives one
    line in problems instead of stopping the gathering.
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
            records.append(read_record(path))
        except RecordError as exc:
            problems.append(str(exc))
    return records, problems
