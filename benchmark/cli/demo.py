"""`make demo`: the suite ranking two checkpoints by what they learn, on a CPU, in a few minutes.

Two ResNet-50s of width 8 (the real depth and code path at 1/64 of the cost), generated in two
layouts the converter reads (MoCo v2 and a plain torchvision state dict), that differ in one
thing only: how they were initialised. Each is converted, then fine-tuned with voc07's own
pipeline (Faster R-CNN R50-C4, its mapper and detectron2's official VOC evaluator) on the
learning-check data of `run_transfer --sanity`: a few synthetic images of large, distinct
objects, evaluated on the same images. Then the paper's two analyses run on them: Hoiem's
false-positive chart of the two runs side by side (analyses/fp_chart.svg) and a small feature
inversion of each checkpoint (runs/analysis/: records of kind "analysis", shown apart on the board).
The leaderboard (Markdown on the terminal, and as CSV and an HTML page with its charts in the output
folder) then shows measured, different numbers and says why. Nothing is downloaded. Everything
lands under demo_output/ (or the folder given); finished runs are reused.
"""
import argparse
import sys
import time
from pathlib import Path

TASK = "voc07"
WIDTH = 8
# 120 of the --sanity check's 200 iterations (its overlay's schedule, tests/learning), the LR step at
# 80% as there: ~45 s per run on 2 idle cores, and the gap between the two starting points is wide
# (measured, trial 0: AP50 95.0 from torchvision's init, 37.5 from N(0, 1); at 50 iterations only
# 11.7 against 7.7). Two trials each, so that the board shows a spread and tests the difference.
SCHEDULE = ("SOLVER.MAX_ITER", "120", "SOLVER.STEPS", "(96,)")
TRIALS = 2
INVERSION_STEPS = 150  # at 64 px: the scenes' coarse layout is back, ~2 min on 2 cores (README's picture)
# (name, layout, seed, init, why it starts where it starts)
CHECKPOINTS = (
    ("r50w8_torchvision_init", "moco", 0, "torchvision",
     "convolutions He-normal and BN at identity, as torchvision initialises a ResNet: features of order 1, "
     "as a pretrained network's"),
    ("r50w8_gaussian_init", "torchvision", 1, "random",
     "every tensor N(0, 1), BN scales included, as no trained network has: under BN each SGD step on the "
     "convolutions is ~400x smaller, so it learns less in the same iterations"),
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="demo_output", help="output folder (default demo_output/)")
    args = p.parse_args(argv)
    out, start = Path(args.out), time.perf_counter()
    from benchmark.cli import fp_chart, invert, leaderboard, run_transfer
    from benchmark.weights.convert import convert_file
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    def step(text):
        print(f"\n== [{time.perf_counter() - start:5.1f} s] {text}", flush=True)

    for name, layout, seed, init, why in CHECKPOINTS:
        raw = out / f"{name}.pth"
        step(f"checkpoint {name}: ResNet-50 (width {WIDTH}) in the {layout} layout, {init} init -> {raw}")
        print(f"   {init} init: {why}")
        if not raw.exists():
            make_synthetic_checkpoint(raw, layout=layout, seed=seed, width=WIDTH, init=init)
        converted = convert_file(raw, out / f"{name}.pkl", force=True)
        print(converted.summary())
        step(f"fine-tune {TASK} on {name}: the --sanity data, {SCHEDULE[1]} iterations, {TRIALS} trials")
        print("   (the learning check's own verdict lines follow: one starting point is expected to stay below its "
              "threshold, which is what the demo shows, not a bug)")
        # The check's exit status 3 (below its threshold) is expected here for the N(0, 1) start.
        rc = run_transfer.main(["--task", TASK, "--weights", str(converted.output), "--sanity", "--trials", str(TRIALS),
                                "--data-root", str(out / "data"), "--output", str(out / "runs" / name),
                                "--name", name, *SCHEDULE])
        if rc not in (0, 3):
            print(f"error: the {TASK} run of {name} failed; see {out / 'runs' / name}", file=sys.stderr)
            return rc

    step("the paper's two analyses: Hoiem's false-positive chart of the two voc07 runs, and feature inversion")
    if fp_chart.main([*(str(out / "runs" / name / "trial_0") for name, *_ in CHECKPOINTS), "--labels",
                      *(name for name, *_ in CHECKPOINTS), "--out", str(out / "analyses" / "fp_chart.svg")]) != 0:
        return 1
    # Each converted checkpoint's res3 features of the two default synthetic scenes, inverted with DIP at
    # 64 px for INVERSION_STEPS steps (the recipe's 224 px and 3,001 steps take hours on a CPU): a record
    # of kind "analysis" per checkpoint (PSNR, SSIM), which the board below shows apart, and grid.png.
    rc = invert.main([*(a for name, *_ in CHECKPOINTS for a in ("--weights", str(out / f"{name}.pkl"))),
                      "--layer", "res3", "--steps", str(INVERSION_STEPS), "--resize", "72", "--crop", "64",
                      "--noise-size", "128", "--output", str(out / "runs" / "analysis")])
    if rc != 0:
        return rc
    step("leaderboard")
    # Measured rows only: these runs are learning checks on 4 synthetic images, not comparable to a
    # paper's published VOC numbers.
    rc = leaderboard.main([str(out / "runs"), "--out", str(out / "leaderboard"), "--format", "md,csv,html",
                           "--sort-by", TASK, "--published", "none"])
    if rc != 0:
        return rc
    print(f"\nWhy the rows differ: both are the same network, converted by the same code, fine-tuned for the same "
          f"{SCHEDULE[1]} iterations on the same {TASK} pipeline and data (4 synthetic images of large objects, "
          "scored on those same images with the official VOC evaluator; the --sanity check trains 200 iterations "
          "and expects AP50 >= 90 there). Only their starting weights differ: "
          + "; ".join(f"{name}: {why}" for name, _, _, _, why in CHECKPOINTS)
          + ". How far a starting point gets under one fixed fine-tuning protocol is what this suite measures; "
          "real checkpoints get the full protocol on the real datasets (README: Commands).")
    board = out / "leaderboard"
    print(f"\nThe HTML page (sortable, with its charts, linking every run's record and config): "
          f"{(board / 'leaderboard.html').resolve()}")
    for path in sorted(board.iterdir()):
        print(f"  {path}")
    step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
