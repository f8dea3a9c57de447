"""A trial's folder (OUTPUT/trial_k): who may write it, and when what is in it is reused.

The rules, so that a number on the board is what its record says:
- One writer at a time. A run holds an exclusive lock on the trial folder from before it looks at
  it until its record is written; a second run into the same folder is refused at once
  with one line (it never picks up the other's checkpoints mid-training).
- A finished trial is reused (skipped) only when it is the same run: same task, same sha256 of the
  weights that were loaded, same config digest (`benchmark.tasks.config.config_digest`: the whole
  config, seed included, less OUTPUT_DIR and the weights' path), and the same kind (full, smoke,
  sanity; a v1 record's from its deviations). Any difference is a refusal naming it; the folder
  is never overwritten behind the user's back.
- An interrupted trial resumes from its last checkpoint only when the folder's config.yaml is of
  the same config; checkpoints of another configuration are refused the same way.
- Evaluation-only runs write their own record in `trial_k/eval_only/`, never over a fine-tuning one.
- metrics.json holds each iteration once: a resumed run first drops what its killed predecessor
  logged after the checkpoint it resumes from (those iterations are trained again).
- Every attempt at a trial is in its attempts log (`attempts.json`, `AttemptLog`): where it
  started, how long it ran, how it ended. The record's `resume` and `duration_s` are made from it,
  so a resumed trial says so, from which iterations, and costs the time of all its attempts.
"""
import contextlib
import datetime
import fcntl
import json
import os
from pathlib import Path

from benchmark.fileio import atomic_write, write_json_atomic

CHECKPOINT_POINTER = "last_checkpoint"  # detectron2's file naming the latest checkpoint
EVAL_ONLY_DIR = "eval_only"
ATTEMPTS_NAME = "attempts.json"
ATTEMPTS_VERSION = 1


class TrialBusy(Exception):
    """Another run holds the trial folder."""


@contextlib.contextmanager
def locked(folder):
    """Hold the trial folder's lock for the duration; raise TrialBusy when another run has it.

    The lock is flock(2) on the folder itself: it puts no file in the folder (so a refused run
    changes nothing there), and the kernel releases it when its holder dies, even by SIGKILL.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrialBusy(f"{folder} is in use by another run; wait for it to end or choose another --output") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def same_run_problem(record, *, task: str, sha256: str, digest: str, kind: str):
    """Why a finished `record` (records.results.Record) is not the run now asked for (None: it is the same run).

    `kind`: the run kind asked for. A version 1 record's kind was read from its deviations when it was read.
    """
    if record.task != task:
        return f"it is a {record.task!r} run, not {task!r}"
    if record.weights.sha256 != sha256:
        return f"its weights have sha256 {record.weights.sha256[:12]}..., the weights given now {sha256[:12]}..."
    if record.kind != kind:
        if {record.kind, kind} == {"smoke", "full"}:  # the common case, said as the flag
            return ("it is a --smoke run and this one is not" if record.kind == "smoke"
                    else "this is a --smoke run and it is not")
        return f"it is a {record.kind!r} run and this one is {kind!r}"
    if record.config_digest != digest:
        return "its config differs (another option, seed, world size or suite version); see its config.yaml"
    return None


def foreign_checkpoint_problem(folder, digest: str, digest_of_file):
    """Why the checkpoints in `folder` must not be resumed from (None: none there, or ours)."""
    folder = Path(folder)
    if not (folder / CHECKPOINT_POINTER).is_file():
        return None
    config = folder / "config.yaml"
    if not config.is_file():
        return "it holds checkpoints but no config.yaml saying what they are of"
    if digest_of_file(config) != digest:
        return "it holds checkpoints of another configuration (its config.yaml differs from this run's)"
    return None


def drop_metrics_after(metrics_file, iteration: int) -> int:
    """Keep only metrics.json rows of iterations <= `iteration` (atomically); return rows dropped."""
    path = Path(metrics_file)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line torn by the kill
            dropped += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] > iteration:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        with atomic_write(path, "w") as f:
            f.write("".join(f"{line}\n" for line in kept))
    return dropped


class AttemptLog:
    """A trial's attempts log, `trial_k/attempts.json` (written atomically by rank 0 only).

    {"version": 1, "config_digest": <the trial's config digest>, "attempts": [
        {"start_iteration": int, "end_iteration": int, "duration_s": float, "status": "running" |
         "finished" | "failed" | "killed", "exact": bool | None, "note": str | None, "started": ISO time}]}
    An attempt is added when it starts training (`begin`) and rewritten as it goes (`update`, at
    least at every checkpoint), so a killed attempt keeps its time up to then; the next attempt
    marks it "killed". A log of another config digest (or unreadable) is started anew: its
    attempts were of another run.
    """

    def __init__(self, folder, digest: str):
        self.path = Path(folder) / ATTEMPTS_NAME
        self.digest = digest
        self.attempts = []
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("config_digest") == digest and isinstance(data.get("attempts"), list):
            self.attempts = [a for a in data["attempts"] if isinstance(a, dict)]
        for attempt in self.attempts:
            if attempt.get("status") == "running":  # its process died without a word
                attempt["status"] = "killed"

    def begin(self, start_iteration: int, duration_s: float = 0.0, exact=None, note=None) -> None:
        """A new attempt from `start_iteration`; `exact`/`note`: for a resumed one, whether it continues
        exactly as an uninterrupted run would, and if not why."""
        self.attempts.append({
            "start_iteration": int(start_iteration), "end_iteration": int(start_iteration),
            "duration_s": round(float(duration_s), 3), "status": "running",
            "exact": None if start_iteration == 0 else bool(exact), "note": None if start_iteration == 0 else note,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })
        self.write()

    def update(self, iteration: int, duration_s: float, status: str = None) -> None:
        current = self.attempts[-1]
        current["end_iteration"], current["duration_s"] = int(iteration), round(float(duration_s), 3)
        if status:
            current["status"] = status
        self.write()

    def write(self) -> None:
        write_json_atomic(self.path, {"version": ATTEMPTS_VERSION, "config_digest": self.digest,
                                      "attempts": self.attempts})

    def total_duration(self) -> float:
        """Seconds over all attempts of this trial (restarted and resumed ones included)."""
        return round(sum(float(a.get("duration_s") or 0.0) for a in self.attempts), 3)

    def resume_summary(self) -> dict:
        """The record's `resume`: {count, from_iterations, exact, note} over the resumed attempts."""
        resumed = [a for a in self.attempts if int(a.get("start_iteration") or 0) > 0]
        inexact = [a for a in resumed if not a.get("exact")]
        note = None
        if inexact:
            note = inexact[0].get("note") or "the resumed run is not known to continue as an uninterrupted one would"
        return {"count": len(resumed), "from_iterations": [int(a["start_iteration"]) for a in resumed],
                "exact": not inexact, "note": note}
