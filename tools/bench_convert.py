#!/usr/bin/env python
"""Time and memory of converting a full ResNet-50 MoCo checkpoint (query + key encoders, queue).

Target (issue 2): under 2 s and a peak memory under 3x the checkpoint's size. Without INPUT a
synthetic MoCo v2 checkpoint of the real size is written to a temporary folder by a separate
process, so that building it does not count towards this process's peak memory.
    python tools/bench_convert.py [INPUT.pth]
"""
import argparse
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.convert import convert_file  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="checkpoint to convert (default: a synthetic MoCo v2 ResNet-50)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(args.input) if args.input else Path(tmp, "moco_v2_r50.pth")
        if not args.input:
            subprocess.run([sys.executable, "-m", "benchmark.checkpoints", str(src), "--layout", "moco"], check=True)
        size = src.stat().st_size
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        tracemalloc.start()
        start = time.perf_counter()
        result = convert_file(src, Path(tmp, "out.pkl"), force=True)
        wall = time.perf_counter() - start
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
        mib = 2**20
        print(f"checkpoint: {size / mib:.1f} MiB ({result.format}, ResNet-{result.depth}, {result.tensors} tensors kept)")
        print(f"wall time:  {wall:.2f} s  (target < 2 s)")
        print(f"peak RSS growth:  {rss_peak / mib:.1f} MiB = {rss_peak / size:.2f}x checkpoint (target < 3x)")
        print(f"peak traced (tracemalloc, Python/numpy allocations): {traced_peak / mib:.1f} MiB = {traced_peak / size:.2f}x")
        ok = wall < 2 and rss_peak < 3 * size
        print("PASS" if ok else "OVER TARGET")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
