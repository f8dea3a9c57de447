"""`make demo`: the whole suite on its built-in default, on a CPU, in a few minutes.

Synthetic VOC data and two generated ResNet-50 checkpoints in different layouts (MoCo v2 and a
plain torchvision state dict) -> convert both -> fine-tune `voc07 --smoke` on each -> leaderboard
in Markdown on the terminal, and as HTML with its PNG chart in the output folder. Nothing is
downloaded. Everything lands under demo_output/ (or the folder given); finished runs are reused.
"""
import argparse
import sys
import time
from pathlib import Path

CHECKPOINTS = (("moco_synthetic", "moco", 0), ("torchvision_synthetic", "torchvision", 1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="demo_output", help="output folder (default demo_output/)")
    args = p.parse_args(argv)
    out, start = Path(args.out), time.perf_counter()
    from benchmark.data import write_synthetic
    from benchmark.engine import Options, run
    from benchmark.records import leaderboard, results
    from benchmark.weights.convert import convert_file
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    def step(text):
        print(f"\n== [{time.perf_counter() - start:5.1f} s] {text}", flush=True)

    step(f"synthetic VOC data in {out / 'data'}")
    data = write_synthetic("voc", out / "data")
    for name, layout, seed in CHECKPOINTS:
        raw = out / f"{name}.pth"
        step(f"checkpoint {name}: random ResNet-50 in the {layout} layout -> {raw}")
        if not raw.exists():
            make_synthetic_checkpoint(raw, layout=layout, seed=seed)
        converted = convert_file(raw, out / f"{name}.pkl", force=True)
        print(converted.summary())
        step(f"fine-tune voc07 --smoke on {name}")
        rc = run(Options(task="voc07", weights=str(converted.output), data_root=str(data), smoke=True,
                         output=str(out / "runs" / name), name=name))
        if rc != 0:
            print(f"error: the voc07 smoke run of {name} failed; see {out / 'runs' / name}", file=sys.stderr)
            return rc

    step("leaderboard")
    from benchmark.reproduce.published import published_rows

    records, problems = results.gather([out / "runs"])
    # beside the published voc07 baselines of the paper's Table 3, marked as published and never pooled
    board = leaderboard.build(records, problems, sort_by="voc07", published=published_rows(["table3"]))
    print(leaderboard.to_markdown(board, title="Demo leaderboard (voc07 --smoke, synthetic data)"))
    # Random weights and 16 iterations teach the detector nothing: the demo shows the machinery
    # (convert, fine-tune, evaluate with the official evaluator, gather), not a ranking.
    print("(AP near 0 is expected: the checkpoints are random weights fine-tuned for 16 iterations.)")
    for path in leaderboard.write(board, out / "leaderboard", ("md", "csv", "html")):
        print(f"wrote {path}")
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
