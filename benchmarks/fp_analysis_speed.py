#!/usr/bin/env python
"""Seconds of Hoiem's false-positive analysis (benchmark.tasks.fp_analysis) of VOC-like detections,
beside TIDE's (benchmark.tasks.errors) on the same ones: what a VOC run's evaluation adds.

  python benchmarks/fp_analysis_speed.py [--images 1000] [--detections 100] [--repeats 3]

Per image: 1-4 objects of random VOC classes, `--detections` boxes (each object jittered, the rest
random boxes of random classes), random scores; the median of --repeats runs. numpy only.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.tasks import errors, fp_analysis  # noqa: E402


def images(n, dets, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 300, size=(k, 2))
        gt = np.concatenate([xy, rng.uniform(40, 200, size=(k, 2))], 1)
        cls = rng.integers(0, 20, size=k)
        hits = gt[rng.integers(0, k, size=dets // 2)] * rng.normal(1, 0.15, size=(dets // 2, 4))
        rand = np.concatenate([rng.uniform(0, 400, size=(dets - dets // 2, 2)), rng.uniform(20, 200, size=(dets - dets // 2, 2))], 1)
        out.append(errors.ImageDetections(gt, cls, np.concatenate([np.abs(hits), rand]), rng.uniform(0, 1, size=dets),
                                          rng.integers(0, 20, size=dets), rng.uniform(size=k) < 0.1))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--detections", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    data = images(args.images, args.detections)
    for name, fn in (("hoiem fp_analysis", lambda: fp_analysis.analyse(data, fp_analysis.VOC_CLASSES)),
                     ("tide errors", lambda: errors.analyse(data))):
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        print(f"{name}: {float(np.median(times)):.2f} s per {args.images} images x {args.detections} detections "
              f"(median of {args.repeats}; min {min(times):.2f}, max {max(times):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
