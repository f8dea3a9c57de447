#!/usr/bin/env python
"""Time and memory of converting a full ResNet-50 MoCo checkpoint (query + key encoders, queue).

Target (issue 2): under 2 s and a peak memory under 3x the checkpoint's size. The conversion is
measured in a fresh process (benchmarks.bench.measure_convert); without INPUT a synthetic MoCo v2
checkpoint of the real size is written to a temporary folder first, by another process.
    python tools/bench_convert.py [INPUT.pth]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench import measure_convert  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="checkpoint to convert (default: a synthetic MoCo v2 ResNet-50)")
    args = parser.parse_args()
    f = measure_convert(args.input)
    print(f"checkpoint: {f['checkpoint_mib']:.1f} MiB ({f['format']}, ResNet-{f['depth']}, {f['tensors']} tensors kept)")
    print(f"wall time:  {f['wall_s']:.2f} s  (target < 2 s)")
    print(f"peak RSS growth:  {f['peak_rss_growth_mib']:.1f} MiB = {f['peak_rss_x_checkpoint']:.2f}x checkpoint (target < 3x)")
    print(f"peak traced (tracemalloc, Python/numpy allocations): {f['traced_peak_mib']:.1f} MiB = {f['traced_peak_x_checkpoint']:.2f}x")
    print("PASS" if f["within_target"] else "OVER TARGET")
    return 0 if f["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
