"""Draw Hoiem's false-positive chart of one VOC run, or of two side by side, as an SVG file.

  python tools/fp_chart.py output/moco/voc07/trial_0 --out moco.svg
  python tools/fp_chart.py RUN_A RUN_B --labels MoCo supervised --classes cat car chair --out both.svg

A RUN is a trial folder, its results.json, or an fp_analysis.json that a VOC run wrote
(TRIAL/inference/<dataset>/fp_analysis.json). The chart (benchmark.records.fp_chart): the share of
each false-positive type (Loc, Sim, Oth, BG) among the top-ranked false positives against how many
are considered, per chosen class (default: the three with the most false positives in the first
run), per group of the toolbox's VOC set-up and over all classes; one column per run.
Exit status: 0 the chart was written; 1 a run without the analysis, an unknown class or a bad
option (one line `error: ...`, nothing written).
"""
import argparse
import sys
from pathlib import Path


def _detail_path(run) -> Path:
    from benchmark.records import fp_chart

    p = Path(run)
    if p.is_file() and p.name == fp_chart.DETAIL_NAME:
        return p
    found = fp_chart.find_detail(p if p.is_file() else p / "results.json")
    if found is None:
        raise ValueError(f"{run}: no {fp_chart.DETAIL_NAME} (expected under {p if p.is_dir() else p.parent}/inference/<dataset>/; "
                         "only VOC runs write it)")
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="trial folders, results.json or fp_analysis.json files (one column each)")
    p.add_argument("--out", required=True, help="the SVG file to write")
    p.add_argument("--labels", nargs="+", help="a label per run (default: the trial folder's path)")
    p.add_argument("--classes", nargs="+", help="classes to draw (default: the first run's three with most false positives)")
    args = p.parse_args(argv)
    from benchmark.fileio import atomic_write, unusable_output
    from benchmark.records import fp_chart

    try:
        out = Path(args.out)
        problem = unusable_output(out.parent, "--out") or (
            f"--out {out}: is a folder; name the SVG file to write" if out.is_dir() else None)
        if problem:
            raise ValueError(problem)
        if args.labels and len(args.labels) != len(args.runs):
            raise ValueError(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
        runs = []
        for i, run in enumerate(args.runs):
            path = _detail_path(run)
            detail = fp_chart.load_detail(path)
            if detail is None:
                raise ValueError(f"{path}: not a false-positive analysis (unreadable, too big or missing its classes)")
            unknown = [c for c in args.classes or () if c not in detail["classes"]]
            if unknown:
                raise ValueError(f"--classes: {', '.join(unknown)} not in {path} (its classes: {', '.join(detail['classes'])})")
            trial = path.parents[2] if path.parent.parent.name == "inference" else path
            runs.append((args.labels[i] if args.labels else str(trial), detail))
        svg = fp_chart.chart_svg(runs, classes=args.classes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with atomic_write(args.out, "w") as f:
        f.write(svg + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
