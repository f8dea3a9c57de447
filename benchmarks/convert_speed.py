"""The convert section: wall time and peak memory of converting a full ResNet-50 MoCo checkpoint
(query + key encoders, queue), measured in a fresh process so that the memory peak is the
converter's alone. benchmarks/bench_convert.py prints it on its own (`convert_table`)."""
import contextlib
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from tabulate import tabulate

# Converting comes before every run and must be neither its slow nor its memory-hungry step: a full
# R50 MoCo checkpoint (query + key encoders, queue) converts in under 2 s, and the converter's peak
# memory stays under 3x the checkpoint's size (the loaded tensors, the renamed arrays, the pickle
# being written), so that a machine that can load a checkpoint can also convert it.
CONVERT_TARGETS = {"wall_s": 2.0, "peak_rss_x_checkpoint": 3.0}
MIB = 2 ** 20
ROOT = Path(__file__).resolve().parents[1]


def _rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextlib.contextmanager
def peak_rss():
    """Yields a dict that gets "growth" (bytes): peak resident memory during the block minus before.

    Linux: the peak (VmHWM) is reset to the current size before the block (clear_refs 5), so
    earlier peaks of the process do not hide this one. Elsewhere: getrusage's lifetime maximum.
    """
    out = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before, read = _rss_bytes("VmRSS"), (lambda: _rss_bytes("VmHWM"))
        out["method"] = "VmHWM"
    except OSError:
        ru = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731 (Linux: KiB)
        before, read = ru(), ru
        out["method"] = "ru_maxrss"
    yield out
    out["growth"] = max(0, read() - before)


def convert_figures(src, dst) -> dict:
    """Convert `src` to `dst` twice in this process: timed with its peak RSS, then under tracemalloc.

    tracemalloc slows every allocation, so the wall time comes from the first, untraced run.
    """
    from benchmark.weights.convert import convert_file

    size = Path(src).stat().st_size
    gc.collect()
    with peak_rss() as rss:
        t0 = time.perf_counter()
        result = convert_file(src, dst, force=True)
        wall = time.perf_counter() - t0
    del result
    gc.collect()
    tracemalloc.start()
    result = convert_file(src, dst, force=True)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"checkpoint_mib": size / MIB, "format": result.format, "depth": result.depth,
            "tensors": result.tensors, "wall_s": wall, "peak_rss_growth_mib": rss["growth"] / MIB,
            "peak_rss_x_checkpoint": rss["growth"] / size, "peak_rss_method": rss["method"],
            "traced_peak_mib": traced / MIB, "traced_peak_x_checkpoint": traced / size,
            "targets": dict(CONVERT_TARGETS)}


_CHILD = ("import json, sys; sys.path.insert(0, sys.argv[1]); from benchmarks.convert_speed import convert_figures; "
          "print(json.dumps(convert_figures(sys.argv[2], sys.argv[3])))")


def measure_convert(src=None, workdir=None) -> dict:
    """`convert_figures` in a fresh process (its memory peak is the converter's alone).

    Without `src`, a synthetic MoCo v2 ResNet-50 checkpoint of the real size is written first,
    by another process too, so that building it counts nowhere.
    """
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if src is None:
            src = Path(tmp, "moco_v2_r50.pth")
            subprocess.run([sys.executable, "-m", "benchmark.weights.synthetic", str(src), "--layout", "moco"],
                           check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(src), str(Path(tmp, "out.pkl"))],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"converting {src} failed: {tail}")
        fig = json.loads(proc.stdout.strip().splitlines()[-1])
    fig["within_target"] = (fig["wall_s"] < fig["targets"]["wall_s"]
                            and fig["peak_rss_x_checkpoint"] < fig["targets"]["peak_rss_x_checkpoint"])
    return fig


def convert_table(fig) -> str:
    """`measure_convert`'s figures as the table benchmarks/bench_convert.py prints."""
    t = fig["targets"]
    rows = [("checkpoint", f"{fig['checkpoint_mib']:.1f} MiB",
             f"{fig['format']}, ResNet-{fig['depth']}, {fig['tensors']} tensors kept"),
            ("wall time", f"{fig['wall_s']:.2f} s", f"target < {t['wall_s']:g} s"),
            ("peak RSS growth", f"{fig['peak_rss_growth_mib']:.1f} MiB",
             f"{fig['peak_rss_x_checkpoint']:.2f}x checkpoint (target < {t['peak_rss_x_checkpoint']:g}x; "
             f"{fig['peak_rss_method']})"),
            ("peak traced", f"{fig['traced_peak_mib']:.1f} MiB",
             f"{fig['traced_peak_x_checkpoint']:.2f}x checkpoint (tracemalloc: Python/numpy allocations)")]
    return tabulate(rows, headers=("what", "figure", "detail"), tablefmt="github", disable_numparse=True)

