#!/usr/bin/env python
"""Time and memory of converting a full ResNet-50 MoCo checkpoint (query + key encoders, queue).

Target: under 2 s and a peak memory under 3x the checkpoint's size. The conversion is
measured in a fresh process (benchmarks.bench.measure_convert); without INPUT a synthetic MoCo v2
checkpoint of the real size is written to a temporary folder first, by another process.
    python benchmarks/bench_convert.py [INPUT.pth]
Exit status: 0 within target; 1 over target.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `benchmarks` imports from the checkout, wherever this runs from

from benchmarks.bench import convert_table, measure_convert  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="checkpoint to convert (default: a synthetic MoCo v2 ResNet-50)")
    args = parser.parse_args(argv)
    fig = measure_convert(args.input)
    print(convert_table(fig))
    print("PASS" if fig["within_target"] else "OVER TARGET")
    return 0 if fig["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
