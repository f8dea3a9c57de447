#!/usr/bin/env python
"""Cross-check of benchmark.tasks.errors against the reference TIDE implementation (tidecv).

tidecv is not a dependency of the suite (every module of it imports opencv-python, its plots
pandas and seaborn), so this comparison runs where it is installed, not in the test suite:
    pip install tidecv opencv-python-headless pandas seaborn
    python benchmarks/compare_tidecv.py [--cases 300]
It builds random cases (jittered, re-classed, duplicated and spurious boxes, ignore regions: every
error type), runs both and prints the largest difference of AP and of each error's dAP.
Last run (tidecv 1.0.1, numpy 2.3.5, 4 Dec 2026): 295 of 300 cases compared (tidecv divides by zero
on the other 5), every difference 0.
Exit status: 0 all within --tolerance; 1 a difference above it; 2 tidecv is not installed.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` imports from the checkout, wherever this runs from

from benchmark.tasks.errors import ImageDetections, analyse  # noqa: E402

NAMES = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss"}


def _random_case(rng):
    """A few images of jittered, re-classed, duplicated and spurious boxes (every error type)."""
    images = []
    for _ in range(int(rng.integers(2, 8))):
        n = int(rng.integers(0, 6))
        gb = np.concatenate([rng.uniform(0, 200, (n, 2)), rng.uniform(10, 80, (n, 2))], 1)
        gc, ign = rng.integers(0, 3, n), rng.random(n) < 0.15
        db, dc = [], []
        for k in range(n):
            for _ in range(int(rng.integers(0, 3))):
                b = gb[k] + rng.normal(0, 0.25, 4) * np.r_[gb[k, 2:], gb[k, 2:]]
                b[2:] = np.abs(b[2:]) + 1
                db.append(b)
                dc.append(gc[k] if rng.random() < 0.8 else rng.integers(0, 3))
        for _ in range(int(rng.integers(0, 3))):
            db.append(np.r_[rng.uniform(0, 250, 2), rng.uniform(5, 50, 2)])
            dc.append(rng.integers(0, 3))
        images.append(ImageDetections(gb, gc, np.array(db).reshape(-1, 4), rng.random(len(db)), dc, ign))
    return images


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--tolerance", type=float, default=1e-9)
    args = p.parse_args(argv)
    try:
        import tidecv
    except ImportError as exc:
        print(f"error: tidecv is not installed ({exc}); see --help", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    worst, compared = {}, 0
    for _ in range(args.cases):
        images = _random_case(rng)
        gt, pred = tidecv.Data("gt"), tidecv.Data("pred")
        for i, im in enumerate(images):
            gt.add_image(i, str(i))
            for b, c, ig in zip(im.gt_boxes, im.gt_classes, im.gt_ignore):
                (gt.add_ignore_region if ig else gt.add_ground_truth)(i, int(c), box=[float(x) for x in b])
            for b, c, s in zip(im.det_boxes, im.det_classes, im.det_scores):
                pred.add_detection(i, int(c), float(s), box=[float(x) for x in b])
        tide = tidecv.TIDE()
        try:
            run = tide.evaluate(gt, pred, mode=tidecv.TIDE.BOX)
            main_errors, special = tide.get_main_errors()["pred"], tide.get_special_errors()["pred"]
        except ZeroDivisionError:  # tidecv's AP of no class; ours is None
            continue
        ours = analyse(images)
        want = {k: main_errors[v] for k, v in NAMES.items()} | {"fp": special["FalsePos"], "fn": special["FalseNeg"]}
        got = {"ap": ours.ap, **ours.errors}
        for key, value in ({"ap": run.ap} | want).items():
            worst[key] = max(worst.get(key, 0.0), abs(float(got[key]) - float(value)))
        compared += 1
    print(f"{compared} cases compared; largest difference per value:")
    for key, diff in worst.items():
        print(f"  {key:5s} {diff:.3g}")
    ok = all(d <= args.tolerance for d in worst.values())
    print("PASS" if ok else f"DIFFERENCE ABOVE {args.tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
