"""A trial's folder (OUTPUT/trial_k): who may write it, and when what is in it is reused.

The rules, so that a number on the board is what its record says:
- One writer at a time. A run holds an exclusive lock on the trial folder from before it looks at
  it until its record is written; a second run into the same folder is refused at once
  with one line (it never picks up the other's checkpoints mid-training).
- A finished trial is reused (skipped) only when it is the same run: same task, same sha256 of the
  weights that were loaded, same config digest (`benchmark.tasks.config.config_digest`: the whole
  config, seed included, less OUTPUT_DIR and the weights' path), and smoke or not alike. Any
  difference is a refusal naming it; the folder is never overwritten behind the user's back.
- An interrupted trial resumes from its last checkpoint only when the folder's config.yaml is of
  the same config; checkpoints of another configuration are refused the same way.
- Evaluation-only runs write their own record in `trial_k/eval_only/`, never over a fine-tuning one.
- metrics.json holds each iteration once: a resumed run first drops what its killed predecessor
  logged after the checkpoint it resumes from (those iterations are trained again).
"""
import contextlib
import fcntl
import json
import os
from pathlib import Path

from benchmark.fileio import atomic_write

CHECKPOINT_POINTER = "last_checkpoint"  # detectron2's file naming the latest checkpoint
EVAL_ONLY_DIR = "eval_only"


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


def same_run_problem(record: dict, *, task: str, sha256: str, digest: str, smoke: bool):
    """Why a finished `record` is not the run now asked for (None: it is the same run)."""
    if record.get("task") != task:
        return f"it is a {record.get('task')!r} run, not {task!r}"
    recorded_sha = (record.get("weights") or {}).get("sha256")
    if recorded_sha != sha256:
        return f"its weights have sha256 {str(recorded_sha)[:12]}..., the weights given now {sha256[:12]}..."
    deviations = record.get("deviations") or []
    was_smoke = any(str(d).startswith("smoke run") for d in deviations)
    if was_smoke != smoke:
        return "it is a --smoke run and this one is not" if was_smoke else "this is a --smoke run and it is not"
    if record.get("config_digest") != digest:
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
