"""Several processes write run records into one output root while the leaderboard reads it.

Four writer processes start together; each writes 25 records of its own and, after each,
overwrites one record they all share. Meanwhile this process gathers the root over and over
(benchmark.records.results.gather, then benchmark.records.leaderboard.build) and runs tools/leaderboard.py on it:
every read must see only whole, valid records, the count never goes down, and none is lost.
"""
import subprocess
import sys
import time

import pytest

from benchmark.records import leaderboard, results
from tests.helpers.tools import ROOT, child_env

WRITERS, RECORDS = 4, 25

WRITER = """
import sys, time
from pathlib import Path
root, w, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
from benchmark.records import results
from tests.helpers.records import make_record
while not go.exists():
    time.sleep(0.01)
for j in range(int(sys.argv[4])):
    rec = make_record(name=f"writer{w}", seed=j, trial=j, metrics={"bbox": {"AP": float(j), "AP50": 2.0 * j}},
                      environment={"padding": str(w) * 100000})
    results.write_record(root / f"writer{w}" / f"trial_{j}", rec)
    results.write_record(root / "shared", rec)
"""


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_concurrent_writers_and_readers_lose_nothing(tmp_path, faults):
    root, go = tmp_path / "output", tmp_path / "GO"
    root.mkdir()
    logs = [open(tmp_path / f"writer{w}.log", "wb") for w in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(w), str(go), str(RECORDS)], cwd=ROOT,
                              env=child_env(), stdout=log, stderr=subprocess.STDOUT) for w, log in enumerate(logs)]
    faults.attempt(f"{WRITERS} concurrent writers + gather/leaderboard readers on one root")
    time.sleep(3)  # let the children import before they all start at once
    go.touch()
    reads, seen, cli_runs = 0, 0, 0
    try:
        while any(p.poll() is None for p in procs) or reads == 0:
            records, problems = results.gather([root])
            assert problems == []  # no torn or half-written record, ever
            own = [r for r in records if "shared" not in r.path]
            assert len(own) >= seen  # a record once seen never disappears
            seen = len(own)
            for r in records:  # whole: the padding is complete and metrics match the trial
                w = r.weights.name[-1]
                assert r.environment["padding"] == w * 100000
                assert r.metrics["bbox"] == {"AP": float(r.trial), "AP50": 2.0 * r.trial}
            if records:
                board = leaderboard.build(records)
                assert board.problems == [] and board.failures == []
            if reads % 10 == 5:
                cli = subprocess.run([sys.executable, "-m", "benchmark.cli.leaderboard", str(root)], cwd=ROOT, env=child_env(),
                                     capture_output=True, text=True, timeout=120)
                assert cli.returncode in (0, 1) and "refused" not in cli.stderr, cli.stderr
                cli_runs += 1
            reads += 1
    finally:
        for p in procs:
            p.wait(timeout=120)
        for log in logs:
            log.close()
    assert [p.returncode for p in procs] == [0] * WRITERS, [(tmp_path / f"writer{w}.log").read_text()[-2000:] for w in range(WRITERS)]
    records, problems = results.gather([root])
    assert problems == []
    assert len(records) == WRITERS * RECORDS + 1  # every record, plus the shared one
    board = leaderboard.build(records)
    # the shared record repeats one writer's trial: the leaderboard counts each trial once
    assert {row.label: row.cells[("voc07", "bbox/AP")].n for row in board.rows} == {
        f"writer{w}": RECORDS for w in range(WRITERS)}
    assert not list(root.rglob("*.tmp"))
    assert reads > 1 and cli_runs >= 1, (reads, cli_runs)
    faults.succeed(f"{WRITERS} concurrent writers + gather/leaderboard readers on one root")


def test_files_written_atomically_are_readable_like_any_other(tmp_path, faults):
    """A shared cache or output root on a cluster: mkstemp's 0600 would lock other users out."""
    import os
    import stat

    from benchmark.fileio import atomic_write

    faults.attempt("another user reading a shared output root")
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "results.json", "w") as f:
            f.write("{}")
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "results.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o644
    faults.succeed("another user reading a shared output root")
