"""The leaderboard's cost on a lab's history: N run records -> Markdown, CSV, the pairs file and HTML.

The records are made here, valid and varied as a lab's would be: about three trials per checkpoint
(5,000 records are ~1,700 rows), two tasks (voc07 and voc0712, three metrics each), one checkpoint in
ten also with a smoke run (a tagged row). They are written as results.json files and gathered from
disk, as `tools/leaderboard.py` does; each stage is timed on its own (gather, build, md, csv, pairs, html
with its PNG chart), after a small board that pays the imports. Target (issue 22): 5,000 records in under 30 s on this machine, all stages.
"""
import json
import random
import time
from pathlib import Path

BOARD_TARGET_S = 30.0  # issue 22: 5,000 records, every format, on this 2-core machine
TRIALS = 3


def write_records(folder, n, seed=0) -> Path:
    """`n` valid run records under `folder` (about n / 3 checkpoints); returns the folder."""
    from benchmark.records.results import new_record

    rng = random.Random(seed)
    folder = Path(folder)
    for i in range(n):
        row, trial = divmod(i, TRIALS)
        name = f"ckpt_{row:05d}"
        task = "voc07" if row % 2 else "voc0712"
        kind = "smoke" if row % 10 == 9 and trial == 2 else "full"
        level = 30.0 + 30.0 * rng.random() if trial == 0 else 40.0 + (row % 97) * 0.2 + rng.gauss(0, 0.5)
        record = new_record(task=task, kind=kind, weights={"name": name, "sha256": None, "source": f"{name}.pth"},
                            seed=trial, trial=trial, status="finished",
                            metrics={"bbox": {"AP": level, "AP50": level + 20.0, "AP75": level + 3.0}},
                            iterations=100, world_size=1, ims_per_batch=16, duration_s=1.0,
                            config_digest="cd" * 32, protocol_digest="ab" * 32, environment={})
        out = folder / name / task / f"trial_{trial}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(record))
    return folder


def board_figures(workdir, sizes=(500, 1000, 2000, 5000), progress=None) -> dict:
    """{"sizes": {n: {rows, gather_s, build_s, md_s, csv_s, pairs_s, pairs, html_s, total_s}}, "target_s",
    "within_target"} for each number of records in `sizes` (the largest is the one held to the target)."""
    from benchmark.records import leaderboard, results

    # a small board first, not reported: its imports (scipy, matplotlib: ~5 s) would be charged to the first size
    warm = write_records(Path(workdir) / "board_warmup", 12)
    leaderboard.write(leaderboard.build(*results.gather([warm])), Path(workdir) / "board_warmup_out")
    figures = {}
    for n in sizes:
        if progress:
            progress(f"board: {n} records ...")
        runs = write_records(Path(workdir) / f"board_{n}", n)
        out = Path(workdir) / f"board_{n}_out"
        t = {}
        start = time.perf_counter()
        records, problems = results.gather([runs])
        t["gather_s"] = time.perf_counter() - start
        mark = time.perf_counter()
        board = leaderboard.build(records, problems)
        t["build_s"] = time.perf_counter() - mark
        for fmt in ("md", "csv", "html"):
            mark = time.perf_counter()
            leaderboard.write(board, out, [fmt])
            t[f"{fmt}_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        pairs = leaderboard.pairs(board)  # also written by csv: timed alone to show its share
        t["pairs_s"] = time.perf_counter() - mark
        t["total_s"] = t["gather_s"] + t["build_s"] + t["md_s"] + t["csv_s"] + t["html_s"]
        figures[n] = {"records": len(records), "rows": len(board.rows), "pairs": len(pairs), **t}
    largest = figures[max(sizes)]
    return {"sizes": figures, "target_s": BOARD_TARGET_S, "within_target": largest["total_s"] < BOARD_TARGET_S}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for n, f in board_figures(tmp, progress=print)["sizes"].items():
            print(n, {k: round(v, 2) if isinstance(v, float) else v for k, v in f.items()})
