"""The chart of Hoiem et al.'s false-positive analysis, as inline SVG: for a class or a group of
classes, the share of each false-positive type (Loc, Sim, Oth, BG) among the top-ranked false
positives, stacked, against the number of false positives considered (log scale) -- the toolbox's
figure (Hoiem, Chodpathumwan, Dai, ECCV 2012, "Analysis of top-ranked false positives").

Its input is the detail a VOC run writes beside its evaluator's output
(`TRIAL/inference/<dataset>/fp_analysis.json`, benchmark.tasks.fp_analysis): each class's and
group's cumulative counts per type at points of a log grid ("curve"). `chart_svg` draws one run or
two side by side (one column per run, one row per class or group); `page_section` is the
leaderboard page's section for its VOC rows. Pure text and JSON: no numpy, torch or detectron2.
Every text that comes from a file is HTML-escaped.
"""
import html
import json
import math
from pathlib import Path

from benchmark.records.escape import visible
from benchmark.records.render import CHART_ROWS

DETAIL_NAME = "fp_analysis.json"  # = benchmark.tasks.fp_analysis.DETAIL_NAME (not imported: it needs numpy)
FP_TYPES = ("loc", "sim", "oth", "bg")
TITLES = {"loc": "Loc", "sim": "Sim", "oth": "Oth", "bg": "BG"}
COLORS = {"loc": "#4a6fa5", "sim": "#e0a030", "oth": "#6aa84f", "bg": "#b04a4a"}
GROUPS = ("animals", "vehicles", "furniture")  # the toolbox's VOC summary sets
MAX_DETAIL_BYTES = 32 * 1024 * 1024  # a detail is tens of KB; anything this big is not one
W, H, PAD = 220, 130, 34  # one panel: plot size and margin, px


def e(text) -> str:
    """HTML text of a label or class name from a run's files: hidden characters shown (records.escape), escaped."""
    return html.escape(visible(text))


def find_detail(record_path) -> Path | None:
    """The analysis detail of the trial whose results.json is `record_path`, or None."""
    found = sorted(Path(record_path).parent.glob(f"inference/*/{DETAIL_NAME}"))
    return found[0] if found else None


def load_detail(path) -> dict | None:
    """The detail JSON at `path`, or None when it is missing, too big or not an analysis (a page
    shows what it can; it never fails on one run's stray file)."""
    try:
        path = Path(path)
        if path.stat().st_size > MAX_DETAIL_BYTES:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("classes", "groups", "all"))
    return data if ok else None


def default_classes(detail, k=3) -> list:
    """The `k` classes with the most false positives (the most to say), by name for ties."""
    def n_fp(entry):
        curve = entry.get("curve", {})
        return curve["n"][-1] if curve.get("n") else 0
    ranked = sorted(detail["classes"].items(), key=lambda kv: (-n_fp(kv[1]), kv[0]))
    return [name for name, entry in ranked[:k] if n_fp(entry) > 0]


def _valid_curve(curve) -> bool:
    n = curve.get("n") if isinstance(curve, dict) else None
    return (isinstance(n, list) and len(n) > 0 and all(isinstance(v, int) and v > 0 for v in n)
            and all(isinstance(curve.get(t), list) and len(curve[t]) == len(n) for t in FP_TYPES))


def panel_svg(entry, title, x0, y0) -> str:
    """One panel at (x0, y0): the stacked shares of `entry`'s curve, or a note when it has none."""
    out = [f'<g transform="translate({x0},{y0})"><text x="{PAD}" y="12" font-size="12" font-weight="bold">{e(title)}</text>']
    top, left = 18, PAD
    curve = entry.get("curve") if isinstance(entry, dict) else None
    out.append(f'<rect x="{left}" y="{top}" width="{W}" height="{H}" fill="#fafafa" stroke="#999"/>')
    if not _valid_curve(curve):
        out.append(f'<text x="{left + W / 2}" y="{top + H / 2}" font-size="11" text-anchor="middle">no false positive</text></g>')
        return "".join(out)
    n = curve["n"]
    span = math.log10(n[-1]) if n[-1] > 1 else 1.0

    def x(v):
        return left + W * (math.log10(v) / span if n[-1] > 1 else 0.5)

    def y(frac):
        return top + H * (1 - frac)
    xs = [x(v) for v in n] if len(n) > 1 else [left, left + W]
    idx = list(range(len(n))) if len(n) > 1 else [0, 0]
    below = [0.0] * len(idx)
    for t in FP_TYPES:
        above = [b + curve[t][i] / n[i] for b, i in zip(below, idx)]
        pts = [f"{px:.1f},{y(a):.1f}" for px, a in zip(xs, above)] + \
              [f"{px:.1f},{y(b):.1f}" for px, b in reversed(list(zip(xs, below)))]
        out.append(f'<polygon points="{" ".join(pts)}" fill="{COLORS[t]}" stroke="none">'
                   f'<title>{TITLES[t]}: {curve[t][idx[-1]]} of the top {n[-1]} false positives</title></polygon>')
        below = above
    for frac in (0.0, 0.5, 1.0):
        out.append(f'<text x="{left - 4}" y="{y(frac) + 4:.1f}" font-size="10" text-anchor="end">{frac:.0%}</text>')
    ticks = [10 ** k for k in range(0, int(math.log10(n[-1])) + 1)] if n[-1] > 1 else [1]
    for v in ticks:
        out.append(f'<text x="{x(v):.1f}" y="{top + H + 12}" font-size="10" text-anchor="middle">{v}</text>')
    out.append(f'<text x="{left + W / 2}" y="{top + H + 25}" font-size="10" text-anchor="middle">'
               f'number of false positives (top {n[-1]})</text></g>')
    return "".join(out)


def chart_svg(runs, classes=None, groups=GROUPS) -> str:
    """The chart of one run or more side by side: `runs` [(label, detail)], one column each; one row
    per class of `classes` (default: the first run's default_classes) and per group of `groups`."""
    if not runs:
        raise ValueError("chart_svg: no run to draw")
    classes = default_classes(runs[0][1]) if classes is None else list(classes)
    panels = [("classes", c) for c in classes] + [("groups", g) for g in groups] + [("all", None)]
    col_w, row_h = W + PAD + 16, H + 18 + 34
    width, height = col_w * len(runs), 22 + row_h * len(panels) + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'role="img" aria-label="Share of each false-positive type among the top-ranked false positives">']
    for c, (label, detail) in enumerate(runs):
        out.append(f'<text x="{c * col_w + PAD}" y="14" font-size="13" font-weight="bold">{e(str(label))}</text>')
        for r, (kind, name) in enumerate(panels):
            entry = detail.get(kind, {}) if kind == "all" else detail.get(kind, {}).get(name, {})
            title = "all classes" if kind == "all" else (f"{name} (group)" if kind == "groups" else name)
            out.append(panel_svg(entry, title, c * col_w, 22 + r * row_h))
    lx = PAD
    for t in FP_TYPES:  # the legend
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{COLORS[t]}"/>'
                   f'<text x="{lx + 13}" y="{height - 5}" font-size="11">{TITLES[t]}</text>')
        lx += 50
    out.append("</svg>")
    return "".join(out)


def page_section(board, voc_tasks) -> list:
    """The leaderboard page's section: per row with a run of a task in `voc_tasks` that wrote the
    analysis, the chart of its first such trial (a row's trials differ by seed only); the first CHART_ROWS
    such charts, and a line saying how many more there are. [] when none."""
    out, more = [], 0
    for row in board.rows:
        for task in voc_tasks:
            details = [d for d in (find_detail(p) for p in row.records.get(task, ()) if p) if d is not None]
            if details and len(out) >= 2 * CHART_ROWS:
                more += 1  # not read: a board of 1,700 rows would embed 1,700 charts
                continue
            detail = load_detail(details[0]) if details else None
            if detail is not None:
                out.append(f"<h3>{e(row.label)}, {e(task)}</h3>")
                out.append(chart_svg([(f"{row.label} ({task}, {details[0].parent.name})", detail)]))
    if not out:
        return []
    if more:
        out.append(f'<p class="legend">{more} more charts left out (the first {CHART_ROWS} are drawn); draw any two '
                   "runs side by side with <code>tools/fp_chart.py RUN_A RUN_B</code>.</p>")
    head = ["<h2>False-positive analysis (Hoiem et al.)</h2>",
            '<p class="legend">Share of each type among the top-ranked false positives, against how many '
            "false positives are considered (log scale): poor localization (Loc), confusion with a similar "
            "class (Sim), with another class (Oth), background (BG); per class (the three with the most "
            "false positives), per group of the toolbox's VOC set-up and over all classes; one trial per row.</p>"]
    return head + out
