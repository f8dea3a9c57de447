"""The leaderboard as one self-contained HTML page a researcher can share.

One file, nothing fetched when it is opened (inline CSS, inline script, inline SVG charts, the
error-analysis chart as a data: URI): it opens the same from a laptop, an e-mail attachment or a
CI artifact. What it shows: the board with sortable columns (click a header; numbers sort by
value, best first on the first click: the highest, or the lowest in a lower-is-better column marked
render.LOWER; rows without a value last), badges for rows that are not a full published-protocol run
(smoke, sanity, eval-only, AMP, world size, protocol, deviating) and for published baselines,
each measured cell linking to its trials' records and configs, one chart per task (its primary
metric, ± std error bars; published values drawn hollow and dashed, so they are never mistaken
for ours), the error analysis, Hoiem's false-positive chart of VOC rows (benchmark.records.fp_chart),
the deviations, the failed runs and the refused records.
Every text that comes from a record is HTML-escaped, its characters of no glyph (ANSI escapes, NUL, bidi
overrides, zero-width) shown as escapes (records.escape). Links are relative URLs from the page's folder, each
path part percent-encoded (never a scheme such as javascript:), or absent when the page has no folder.
"""
import base64
import html
import os
import urllib.parse
from pathlib import Path

from benchmark.records import fp_chart
from benchmark.records.escape import visible
from benchmark.records.pooling import higher_is_better
from benchmark.records.render import (
    CHART_ROWS,
    DEVIATIONS_TITLE,
    ERRORS_TITLE,
    FAILURES_TITLE,
    NO_RECORDS,
    PROBLEMS_TITLE,
    charted_note,
    column_title,
    deviating,
    legend,
)
from benchmark.tasks import UnknownTaskError, get_task


def e(text) -> str:
    """HTML-escaped, with the characters that have no glyph shown as escapes (records.escape.visible)."""
    return html.escape(visible(text))


def _href(path: Path, base: Path | None) -> str | None:
    """A link to `path` as a relative URL from the page's folder `base`, or None (no link) without one.
    Each part is percent-encoded, so a folder named `javascript:alert(1)` is a path, never a URL scheme,
    and `#`, `?` or a newline in a name cannot cut the link short."""
    if base is None:
        return None
    rel = os.path.relpath(path, base)
    return "/".join(urllib.parse.quote(part, safe="") for part in rel.split(os.sep))

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px}
th{background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.n{text-align:right;white-space:nowrap}
tr.published td{background:#fff8ef}
td:first-child{white-space:nowrap}
.badge{display:inline-block;white-space:nowrap;font-size:11px;border-radius:3px;padding:0 4px;margin-left:4px;color:#fff;background:#777}
.badge.smoke,.badge.sanity,.badge.eval-only{background:#b05a00}
.badge.published{background:#c77c1e}.badge.other-work{background:#7a5c99}.badge.deviating{background:#a33}.badge.AMP{background:#4a6fa5}
.links a{font-size:10px;margin-left:3px;color:#36c}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}
.legend{max-width:70em;font-size:13px}
"""

# Sorting: stable, by data-value (a number, or text for the first column); empty cells last.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      // first click: best first (descending; ascending where lower is better, data-lower)
      var lower = th.getAttribute("data-lower") === "1";
      var sorted = th.getAttribute("aria-sort");
      var asc = sorted ? sorted === "descending" : lower;
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) { return row.cells[col].getAttribute("data-value"); };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || x === null) { return (y === "" || y === null) ? 0 : 1; }
        if (y === "" || y === null) { return -1; }
        var nx = parseFloat(x), ny = parseFloat(y), c;
        c = (col === 0 || isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _badges(row) -> str:
    out = []
    for tag in row.tags:
        kind = ("other-work" if row.other_work else "published") if row.published else tag.split()[0]
        out.append(f'<span class="badge {e(kind)}">{e(tag)}</span>')
    if not row.published and any(row.deviations.values()) and not set(row.tags) & {"smoke", "sanity"}:
        out.append('<span class="badge deviating">deviating</span>')
    return "".join(out)


def _links(row, task, base: Path | None) -> str:
    links = []
    for i, record in enumerate(row.records.get(task, ())):
        if not record:
            continue
        path = Path(record)
        href = _href(path, base)
        if href is None:
            continue
        links.append(f'<a href="{e(href)}" title="record of trial {i}: {e(str(path))}">r{i}</a>')
        config = path.parent / "config.yaml"
        if config.is_file():
            links.append(f'<a href="{e(_href(config, base))}" title="config of trial {i}">cfg</a>')
    return f'<span class="links">{"".join(links)}</span>' if links else ""


def _inversion_figures(board, base: Path | None) -> list:
    """Relative links to the grid figures of the feature-inversion records shown (benchmark.inversion.run's
    layout: TASK/FIGURE_NAME above each checkpoint's record folder); only figures that exist."""
    from benchmark.inversion.recipe import FIGURE_NAME, TASK_PREFIX  # constants only, no torch

    figures = {}
    for row in board.rows:
        for task, records in row.records.items():
            for record in records if task.startswith(TASK_PREFIX) else ():
                path = Path(record).parent.parent / FIGURE_NAME
                if record and path.is_file():
                    figures.setdefault(os.path.relpath(path, base if base is not None else Path.cwd()), task)
    return [f'<li><a href="{e(href)}">{e(task)}: {e(href)}</a></li>' for href, task in sorted(figures.items())]


def _cell(board, row, col, base) -> str:
    s = row.cells.get(col)
    if s is None:
        return '<td class="n" data-value="">-</td>'
    mark = board.marks.get((row.id,) + col, "")
    title = f' title="{e(s.source)}"' if row.published else ""
    return (f'<td class="n" data-value="{s.mean!r}"{title}>{e(s.format())}{" " + e(mark) if mark else ""}'
            f'{"" if row.published else _links(row, col[0], base)}</td>')


def _table(board, columns, rows, base, cls="sortable") -> list:
    out = [f'<table class="{cls}"><thead><tr><th>checkpoint</th>'
           + "".join(f"<th{_lower(c)}>{e(c[0])}<br>{e(column_title(c)[len(c[0]) + 1:])}</th>" for c in columns)
           + "</tr></thead><tbody>"]
    for row in rows:
        klass = ' class="published"' if row.published else ""
        out.append(f'<tr{klass}><td data-value="{e(row.label)}">{e(row.name)}{_badges(row)}</td>'
                   + "".join(_cell(board, row, c, base) for c in columns) + "</tr>")
    out.append("</tbody></table>")
    return out


def _lower(column) -> str:
    """The header attribute that makes a lower-is-better column sort lowest first on the first click."""
    return "" if higher_is_better(*column) else ' data-lower="1" title="lower is better"'


def _primary(board, task):
    try:
        return (task, get_task(task).primary_metric)
    except UnknownTaskError:
        return next(c for c in board.columns if c[0] == task)


def _short(label, most=40) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"


def svg_chart(board, col, width=None) -> str:
    """An inline SVG bar chart of one column: a bar per row with a value (the first CHART_ROWS), ± std
    error bars; published values hollow and dashed."""
    having = [r for r in board.rows if col in r.cells]
    rows = having[:CHART_ROWS]
    title = column_title(col) + charted_note(len(rows), len(having))
    labels = [_short(r.label) for r in rows]
    bar, gap, left, top, plot_h = 26, 10, 46, 24, 150
    bottom = 16 + int(5.6 * max((len(t) for t in labels), default=4))  # room for the vertical labels
    height = top + plot_h + bottom
    width = width or max(240, left + len(rows) * (bar + gap) + gap)
    highs = [r.cells[col].mean + (r.cells[col].std or 0.0) for r in rows] or [1.0]
    vmax = max(max(highs), 1e-9) * 1.1
    y = lambda v: top + plot_h * (1 - v / vmax)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
           f'role="img" aria-label="{e(title)}">',
           f'<text x="{left}" y="14" font-size="13" font-weight="bold">{e(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#444"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>']
    for frac in (0.0, 0.5, 1.0):
        v = vmax / 1.1 * frac
        out.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{v:.1f}</text>')
    for i, row in enumerate(rows):
        s = row.cells[col]
        x = left + gap + i * (bar + gap)
        style = ('fill="#fff" stroke="#c77c1e" stroke-width="2" stroke-dasharray="4 2"' if row.published
                 else 'fill="#4878a8"')
        kind = "published" if row.published else "measured"
        out.append(f'<rect class="bar {kind}" x="{x}" y="{y(s.mean):.1f}" width="{bar}" '
                   f'height="{max(0.0, top + plot_h - y(s.mean)):.1f}" {style}>'
                   f'<title>{e(row.label)}: {e(s.format())}</title></rect>')
        if s.std:
            cx, lo, hi = x + bar / 2, y(max(0.0, s.mean - s.std)), y(s.mean + s.std)
            out.append(f'<path class="errorbar" d="M{cx},{lo:.1f}V{hi:.1f}M{cx - 5},{lo:.1f}H{cx + 5}'
                       f'M{cx - 5},{hi:.1f}H{cx + 5}" stroke="#222" fill="none"/>')
        lx, ly = x + bar / 2 + 4, top + plot_h + 6
        out.append(f'<text x="{lx}" y="{ly}" font-size="10" text-anchor="end" '
                   f'transform="rotate(-90 {lx} {ly})">{e(labels[i])}<title>{e(row.label)}</title></text>')
    out.append("</svg>")
    return "".join(out)


def _is_voc(task) -> bool:
    """Whether `task` is of the VOC family, whose runs carry Hoiem's false-positive analysis."""
    try:
        return get_task(task).data_format == "voc"
    except UnknownTaskError:
        return False


def render(board, title="Leaderboard", base=None, errors_png: bytes | None = None) -> str:
    """The page. `base`: the folder the page is written to (links to records are relative to it);
    `errors_png`: the error-analysis chart's PNG bytes, embedded."""
    base = Path(base) if base is not None else None
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
           f"<h1>{e(title)}</h1>", f'<p class="legend">{e(legend(board))} Click a column header to sort.</p>']
    if board.rows:
        out += _table(board, board.columns, board.rows, base)
        tasks = list(dict.fromkeys(t for t, _ in board.columns))
        out.append('<h2>Primary metric per task</h2><div class="charts">')
        out += [svg_chart(board, _primary(board, t)) for t in tasks]
        out.append("</div><p class=\"legend\">Filled bars: measured here (± sample std over trials); hollow dashed bars: "
                   "published values (± the published std where the publication gives one).</p>")
    else:
        out.append(f"<p>{e(NO_RECORDS)}</p>")
    if board.errors:
        out.append(f"<h2>{e(ERRORS_TITLE)}</h2><p class=\"legend\">AP lost to each error type (TIDE's dAP, "
                   "lower is better); mean ± std (n) over finished trials.</p>")
        if errors_png:
            data = base64.b64encode(errors_png).decode()
            out.append(f'<p><img alt="AP lost per error type" src="data:image/png;base64,{data}"></p>')
        out += _table(board, board.errors, [r for r in board.rows if any(c in r.cells for c in board.errors)], base)
    out += fp_chart.page_section(board, [t for t in dict.fromkeys(t for t, _ in board.columns) if _is_voc(t)])
    figures = _inversion_figures(board, base)
    if figures:
        out += ["<h2>Feature inversion</h2><ul>", *figures, "</ul>"]
    rows_deviating = deviating(board)
    if rows_deviating:
        out.append(f"<h2>{e(DEVIATIONS_TITLE)}</h2><ul>")
        out += [f"<li>{e(row.label)}, {e(task)}: {e('; '.join(devs))}</li>" for row, task, devs in rows_deviating]
        out.append("</ul>")
    if board.failures:
        out.append(f"<h2>{e(FAILURES_TITLE)}</h2><ul>")
        out += [f"<li>{e(f.name)} {e(f.task)} trial {f.trial}: {e(f.reason)} ({e(f.path)})</li>" for f in board.failures]
        out.append("</ul>")
    if board.problems:
        out.append(f"<h2>{e(PROBLEMS_TITLE)}</h2><ul>" + "".join(f"<li>{e(p)}</li>" for p in board.problems) + "</ul>")
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
