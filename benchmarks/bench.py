"""The whole bench behind benchmarks/run_bench.py: what the suite costs on top of detectron2, here.

Not part of the installed package: run from a checkout (`python benchmarks/run_bench.py`), which
puts the repository root on sys.path so that this module imports as `benchmarks.bench`.

Eight sections, each a module with a function returning a JSON-ready dict of figures (seconds,
images/s, MiB): `train_speed.train_figures` (our engine's Trainer against detectron2's
DefaultTrainer), `eval_speed.eval_figures` (VOC and COCO evaluation), `data_speed.data_figures`
(the train loader and the layout check), `convert_speed.measure_convert` (the converter, in a fresh
process), `fewshot_speed.fewshot_figures` (few-shot episodes, features cached or not),
`board_speed.board_figures` (the leaderboard of 500 to 5,000 records, every format) and
`inversion_speed.inversion_figures` (seconds per feature-inversion step at 224 px); what
they share is in `benchmarks.common`. Here: `run` measures the chosen sections, `summary(report)`
is the table the command prints (tabulate), `problems(report)` the targets missed.
"""
import os
import tempfile
import time

from tabulate import tabulate

from benchmarks.board_speed import BOARD_TARGET_S, board_figures
from benchmarks.common import machine, torch_threads
from benchmarks.convert_speed import measure_convert
from benchmarks.data_speed import data_figures
from benchmarks.eval_speed import SAME_NUMBERS, eval_figures
from benchmarks.fewshot_speed import fewshot_figures
from benchmarks.fewshot_speed import rows as fewshot_rows
from benchmarks.inversion_speed import inversion_figures
from benchmarks.inversion_speed import rows as inversion_rows
from benchmarks.train_speed import TRAIN_TARGET, train_figures

SECTIONS = ("train", "eval", "data", "convert", "fewshot", "board", "inversion")

# Settings of a full run (a few minutes on 2 CPU cores) and of --quick (tests, small CI machines).
PRESETS = {
    "default": {"train": dict(sizes=(128, 192), warmup=2, rounds=10, block=1),
                "eval": dict(num_images=300, repeats=3),
                "data": dict(workers=(0, 1, 2), batches=100, check_images=1000),
                "fewshot": dict(episodes=100, images=64),
                "board": dict(sizes=(500, 1000, 2000, 5000)),  # issue 22: 5,000 records (~1,700 rows) in < 30 s
                "inversion": dict(batch=2, steps=3)},  # the recipe's 224 px, ResNet-50; the Must-show run's 2 images
    "quick": {"train": dict(sizes=(64, 96), warmup=1, rounds=4, block=1),
              "eval": dict(num_images=40, repeats=2),
              "data": dict(workers=(0, 1, 2), batches=10, check_images=100),
              "fewshot": dict(episodes=10, images=8),
              "board": dict(sizes=(60, 120)),
              "inversion": dict(batch=2, steps=1, crop=64, noise_size=128, width=8)},
}



def run(sections=SECTIONS, quick=False, threads=1, workdir=None, progress=print) -> dict:
    """Measure the chosen sections; return {"machine", "quick", section: figures, "load_after"}.

    `threads`: torch threads for everything (None: torch's default), put back afterwards. One by
    default: the figures that matter are ratios, and one thread per process keeps OpenMP's
    spinning threads from turning other loads on a shared machine into noise many times the
    effect being measured.
    """
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    preset = PRESETS["quick" if quick else "default"]
    chosen = [s for s in SECTIONS if s in sections]
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="bench-", dir=workdir) as tmp:
        report = {"machine": machine(), "quick": bool(quick)}
        for k, name in enumerate(chosen):
            say = (lambda msg, k=k: progress(f"[{k + 1}/{len(chosen)}] {msg}")) if progress else None
            start = time.perf_counter()
            if name == "train":
                report["train"] = train_figures(tmp, progress=say, **preset["train"])
            elif name == "eval":
                report["eval"] = eval_figures(tmp, progress=say, **preset["eval"])
            elif name == "data":
                report["data"] = data_figures(tmp, progress=say, **preset["data"])
            elif name == "fewshot":
                report["fewshot"] = fewshot_figures(tmp, progress=say, **preset["fewshot"])
            elif name == "board":
                report["board"] = board_figures(tmp, progress=say, **preset["board"])
            elif name == "inversion":
                report["inversion"] = inversion_figures(tmp, progress=say, **preset["inversion"])
            else:
                if say:
                    say("convert: full ResNet-50 MoCo checkpoint, in a fresh process ...")
                report["convert"] = measure_convert(workdir=tmp)
            report[name]["section_s"] = time.perf_counter() - start
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def problems(report) -> list:
    """The suite's targets the report misses, as sentences (empty: all met).

    faster-coco-eval is a comparison, not a target (the suite does not use it): its speed and its
    numbers are in the summary, not here.
    """
    out = []
    t = report.get("train")
    if t and not t["within_target"]:
        size, f = max(t["sizes"].items(), key=lambda kv: kv[1]["ratio"])
        lo, hi = f["round_ratio_spread"]
        line = (f"training overhead {t['ratio']:.3f} > {TRAIN_TARGET} at {size} px. Profile: run_step "
                f"(detectron2's code in both) {f['ours_run_step_s']:.3f} vs {f['plain_run_step_s']:.3f} s, "
                f"hooks {f['ours_hooks_s'] * 1e3:.2f} vs {f['plain_hooks_s'] * 1e3:.2f} ms, our finite-weights "
                f"guard {f['guard_amortized_s'] * 1e3:.1f} ms/iter amortized: hooks-only ratio {f['hook_ratio']:.4f}; "
                f"CPU-time ratio {f['cpu_ratio']:.3f}; per-round ratios {lo:.3f}..{hi:.3f}")
        if lo <= 1.0 <= hi and f["hook_ratio"] <= TRAIN_TARGET:
            line += (f"; they span 1.0: the excess is machine noise (load {report.get('load_after')}), "
                     "not the engine; re-measure on an idle machine")
        out.append(line)
    e = report.get("eval")
    if e and not e["coco_suite_max_abs_diff"] <= SAME_NUMBERS:
        out.append(f"the suite's COCO evaluation ({e['coco_suite_backend']}) differs from pycocotools' COCOeval "
                   f"on the same predictions by {e['coco_suite_max_abs_diff']:.2g} AP")
    c = report.get("convert")
    if c and not c["within_target"]:
        out.append(f"converter over target ({c['wall_s']:.2f} s, {c['peak_rss_x_checkpoint']:.2f}x checkpoint; "
                   f"targets < {c['targets']['wall_s']:g} s, < {c['targets']['peak_rss_x_checkpoint']:g}x)")
    b = report.get("board")
    if b and not b["within_target"]:
        n = max(b["sizes"], key=int)
        out.append(f"leaderboard of {n} records over target ({b['sizes'][n]['total_s']:.1f} s; target < {BOARD_TARGET_S:g} s)")
    return out


def _same(diff) -> str:
    return "identical numbers" if diff <= SAME_NUMBERS else f"numbers differ by up to {diff:.2g} AP"


def _train_rows(t) -> list:
    rows = []
    for size, f in t["sizes"].items():
        lo, hi = f["round_ratio_spread"]
        rows.append((f"train s/iter @{size}px, ours vs plain",
                     f"{f['ours_s_per_iter']:.3f} vs {f['plain_s_per_iter']:.3f}",
                     f"ratio {f['ratio']:.3f} (rounds {lo:.3f}..{hi:.3f}; of medians {f['ratio_of_medians']:.3f}; "
                     f"CPU time {f['cpu_ratio']:.3f}; hooks only {f['hook_ratio']:.4f})"))
        rows.append((f"train run_step, hooks @{size}px, ours",
                     f"{f['ours_run_step_s']:.3f} s, {f['ours_hooks_s'] * 1e3:.2f} ms",
                     f"plain {f['plain_run_step_s']:.3f} s, {f['plain_hooks_s'] * 1e3:.2f} ms; guard "
                     f"{f['guard_check_s'] * 1e3:.1f} ms / {f['guard_period']} it"))
    rows.append(("train overhead (worst size)", f"{t['ratio']:.3f}",
                 f"target <= {TRAIN_TARGET}: {'met' if t['within_target'] else 'MISSED'}"))
    return rows


def _eval_rows(e) -> list:
    rows = [(f"eval VOC 11-point, {e['images']} img", f"{e['voc_s']:.2f} s",
             f"{e['voc_detections']} detections, AP50 {e['voc_AP50']:.1f}"),
            (f"eval COCO bbox+segm pycocotools, {e['images']} img", f"{e['coco_pycocotools_s']:.2f} s",
             f"{e['coco_detections']} detections, AP {e['coco_bbox_AP']:.1f} bbox, {e['coco_segm_AP']:.1f} segm"),
            ("eval COCO, the suite's COCOEvaluator", f"{e['coco_suite_s']:.2f} s",
             f"{e['coco_suite_backend']}: {_same(e['coco_suite_max_abs_diff'])}")]
    if e.get("faster_coco_eval"):
        rows.append((f"eval COCO, faster-coco-eval {e['faster_coco_eval']}", f"{e['coco_faster_s']:.2f} s",
                     f"{e['coco_speedup']:.2f}x pycocotools' speed, {_same(e['coco_max_abs_diff'])}"))
    else:
        rows.append(("eval COCO, faster-coco-eval", "not installed", "no comparison"))
    return rows


def _data_rows(d) -> list:
    rows = [(f"data loader, {n} workers", f"{f['images_per_s']:.0f} img/s", f"first batch {f['first_batch_s']:.2f} s")
            for n, f in d["workers"].items()]
    if d.get("layout_check"):
        c = d["layout_check"]
        rows.append(("layout check, VOC", f"{c['s_per_1000_images']:.2f} s per 1,000 images",
                     f"{c['images']} images in {c['s']:.2f} s, before compute"))
    return rows


def _convert_rows(c) -> list:
    return [("convert R50 MoCo", f"{c['wall_s']:.2f} s",
             f"{c['checkpoint_mib']:.0f} MiB file, peak RSS +{c['peak_rss_growth_mib']:.0f} MiB "
             f"({c['peak_rss_x_checkpoint']:.2f}x)")]


def _board_rows(b) -> list:
    return [(f"leaderboard, {n} records", f"{f['total_s']:.2f} s",
             f"{f['rows']} rows, {f['pairs']} pairs: gather {f['gather_s']:.2f}, build {f['build_s']:.2f}, md "
             f"{f['md_s']:.2f}, csv+pairs {f['csv_s']:.2f}, html+png {f['html_s']:.2f} s")
            for n, f in sorted(b["sizes"].items(), key=lambda kv: int(kv[0]))]


_SECTION_ROWS = {"train": _train_rows, "eval": _eval_rows, "data": _data_rows, "convert": _convert_rows,
                 "fewshot": fewshot_rows, "board": _board_rows,
                 "inversion": inversion_rows}


def summary_rows(report) -> list:
    """(what, figure, detail) rows of `summary`, one per figure, each a string (no "|": the
    table is Markdown): the sections' rows in SECTIONS order, then the machine's."""
    rows = []
    for name in SECTIONS:
        if report.get(name):
            rows += _SECTION_ROWS[name](report[name])
    m = report["machine"]
    rows.append(("machine", f"{m['cpus']} CPUs, {m['torch_threads']} threads",
                 f"load {m['load_average']} -> {report.get('load_after')}"))
    return rows


def summary(report) -> str:
    """The final table benchmarks/run_bench.py prints (Markdown pipes: pastes into README.md)."""
    return tabulate(summary_rows(report), headers=("what", "figure", "detail"), tablefmt="github",
                    disable_numparse=True)
