"""The one run-record factory of the tests: a complete, valid record with `over` applied."""
from pathlib import Path

RECORD_DEFAULTS = dict(
    task="voc07", weights={"name": "moco", "sha256": "ab" * 32, "source": "moco.pth"},
    seed=0, trial=0, status="finished", metrics={"bbox": {"AP": 46.6, "AP50": 70.0, "AP75": 50.0}},
    iterations=20, world_size=1, ims_per_batch=2, duration_s=1.5, config_digest="cd" * 32,
    environment={"torch": "x"},
)


def make_record(**over) -> dict:
    """A complete, valid run record (benchmark.records.results.new_record) with `over` applied.

    `name="x"` is a shortcut for weights={"name": "x", ...}. A failed record gets a reason unless
    `over` gives one.
    """
    from benchmark.records import results

    fields = {k: (dict(v) if isinstance(v, dict) else v) for k, v in RECORD_DEFAULTS.items()}
    if "name" in over:
        fields["weights"] = {**fields["weights"], "name": over.pop("name")}
    fields.update(over)
    if fields["status"] == "failed":
        fields.setdefault("reason", "it failed")
    return results.new_record(**fields)


def write_record(folder, **over) -> Path:
    """Write make_record(**over) as FOLDER/results.json (atomically, as the engine does)."""
    from benchmark.records import results

    return results.write_record(Path(folder), make_record(**over))
