#!/usr/bin/env python
"""Measure, side by side on this machine, what the suite costs on top of detectron2.

Sections (all by default; each prints a progress line, a summary table ends the run):
  train    seconds/iteration of our engine's Trainer vs detectron2's plain DefaultTrainer, same
           config (voc07 --smoke), weights, data and threads, at two image sizes; target <= 1.03
  eval     VOC 11-point and COCO bbox+segm evaluation of a few hundred synthetic images: COCO
           with pycocotools, the suite's evaluator (must give pycocotools' numbers) and, when it
           is installed, faster-coco-eval (speed-up and largest metric difference)
  data     detectron2 train loader images/s with 0, 1 and 2 workers
  convert  time and peak memory of converting a full ResNet-50 MoCo checkpoint

Run from a checkout (benchmarks/ is not part of the installed package):
  python benchmarks/run_bench.py --json bench.json          # a few minutes on 2 CPU cores
  python benchmarks/run_bench.py --quick --sections eval,data

Exit status: 0 all targets met; 1 a target missed (said why); 2 usage.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` imports from the checkout, wherever this runs from

from benchmark.fileio import write_json_atomic  # noqa: E402
from benchmarks import bench  # noqa: E402


def sections(text):
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in bench.SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(bad) or repr(text)}; choose from {','.join(bench.SECTIONS)}")
    return names


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (tests, small CI machines)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON, for later comparison")
    p.add_argument("--sections", type=sections, default=list(bench.SECTIONS),
                   help="comma list of train,eval,data,convert,fewshot,board,inversion")
    p.add_argument("--threads", type=int, default=1, help="torch threads for every section (default 1: steadier on a shared machine)")
    args = p.parse_args(argv)
    report = bench.run(args.sections, quick=args.quick, threads=args.threads,
                       progress=lambda msg: print(msg, flush=True))
    print("\n" + bench.summary(report))
    if args.json:
        write_json_atomic(args.json, report)
        print(f"figures written to {args.json}")
    missed = bench.problems(report)
    for line in missed:
        print(f"OVER TARGET: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
