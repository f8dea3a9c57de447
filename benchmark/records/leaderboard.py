"""The leaderboard: a pure function of run records -> tables (Markdown, CSV, HTML) and a chart.

Rows are checkpoints (the record's weights name), columns each task's metrics (the task
registry's order), cells `mean ± std (n)` over the finished trials: std is the *sample* standard
deviation (ddof=1, the spread one would expect between reruns; none for n = 1). Failed runs are
listed apart with their reasons and never enter a mean; records that results.gather refused
(other schema versions, torn files) are listed with its message. Output depends on the records
only (sorted, no timestamps), so the same records give byte-identical Markdown and CSV.
"""
import dataclasses
import html
import io
import math
from pathlib import Path

from benchmark.fileio import atomic_write
from benchmark.tasks import UnknownTaskError, get_task

FORMATS = ("md", "csv", "html")


@dataclasses.dataclass(frozen=True)
class Stat:
    values: tuple  # one per finished trial, in trial order

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None for a single value."""
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / (self.n - 1))

    def format(self, digits=2) -> str:
        if self.std is None:
            return f"{self.mean:.{digits}f} ({self.n})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.n})"


@dataclasses.dataclass(frozen=True)
class Failure:
    name: str
    task: str
    trial: int
    reason: str
    path: str


@dataclasses.dataclass
class Board:
    columns: list  # [(task, metric)]
    rows: list  # [(name, {(task, metric): Stat})], sorted
    failures: list  # [Failure]
    problems: list  # [str] records refused by results.gather
    sort_by: tuple | None  # (task, metric) or None

    def stat(self, name, task, metric):
        return dict(self.rows).get(name, {}).get((task, metric))


def metric_value(record: dict, metric: str):
    """record["metrics"]["bbox"]["AP"] for metric "bbox/AP"; None when absent or NaN."""
    group, _, name = metric.partition("/")
    value = record.get("metrics", {}).get(group, {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def task_metrics(task: str, records=()) -> tuple:
    """The task's metrics in registry order; for an unregistered task, those its records carry."""
    try:
        return get_task(task).metrics
    except UnknownTaskError:
        found = {f"{g}/{m}" for r in records for g, ms in r["metrics"].items() for m in ms}
        return tuple(sorted(found))


def aggregate(records) -> tuple[dict, list]:
    """({(name, task): {metric: Stat}}, [Failure]) over finished and failed records.

    Duplicate trials (the same name, task and trial found twice) count once: the first by path.
    """
    values, failures, seen = {}, [], set()
    for r in sorted(records, key=lambda r: (r["weights"]["name"], r["task"], r["trial"], r.get("_path", ""))):
        name, task = r["weights"]["name"], r["task"]
        key = (name, task, r["trial"])
        if key in seen:
            continue
        seen.add(key)
        if r["status"] != "finished":
            failures.append(Failure(name, task, r["trial"], r["reason"] or "", r.get("_path", "")))
            continue
        for metric in task_metrics(task, [r]):
            v = metric_value(r, metric)
            if v is not None:
                values.setdefault((name, task), {}).setdefault(metric, []).append(v)
    stats = {k: {m: Stat(tuple(v)) for m, v in ms.items()} for k, ms in values.items()}
    return stats, failures


def build(records, problems=(), sort_by=None) -> Board:
    """The leaderboard of `records` (results.gather's first value; `problems` its second).

    `sort_by`: a task name (sorted by its primary metric, best first) or None (the first task).
    Rows without a value in that column go last; ties and the rest sort by name.
    """
    stats, failures = aggregate(records)
    tasks = sorted({r["task"] for r in records})
    if sort_by is not None and sort_by not in tasks:
        raise ValueError(f"cannot sort by task {sort_by!r}: no record of it (tasks found: {', '.join(tasks) or 'none'})")
    sort_task = sort_by or (tasks[0] if tasks else None)
    if sort_task:
        tasks.remove(sort_task)
        tasks.insert(0, sort_task)
    columns = [(t, m) for t in tasks for m in task_metrics(t, [r for r in records if r["task"] == t])]
    names = sorted({r["weights"]["name"] for r in records})
    rows = [(n, {(t, m): s for (n2, t), ms in stats.items() if n2 == n for m, s in ms.items()}) for n in names]
    key = None
    if sort_task:
        try:
            primary = get_task(sort_task).primary_metric
        except UnknownTaskError:
            primary = columns[0][1]
        key = (sort_task, primary)
        rows.sort(key=lambda row: (key not in row[1], -row[1][key].mean if key in row[1] else 0.0, row[0]))
    return Board(columns, rows, failures, list(problems), key)


# --------------------------------------------------------------------------- writers

def _header(c):
    return f"{c[0]} {c[1]}"


def _legend(board) -> str:
    order = f"sorted by {_header(board.sort_by)}, best first" if board.sort_by else "no records"
    return (f"Each cell: mean ± sample standard deviation (ddof=1) over finished trials, (n) trials; "
            f"one trial shows no std. Rows {order}.")


def to_markdown(board: Board, title="Leaderboard") -> str:
    out = [f"# {title}", "", _legend(board), ""]
    if board.rows:
        out.append("| checkpoint | " + " | ".join(_header(c) for c in board.columns) + " |")
        out.append("| --- |" + " ---: |" * len(board.columns))
        for name, cells in board.rows:
            out.append(f"| {name} | " + " | ".join(cells[c].format() if c in cells else "-" for c in board.columns) + " |")
    else:
        out.append("No finished or failed run records found.")
    if board.failures:
        out += ["", "## Failed runs (not counted)", "", "| checkpoint | task | trial | reason | record |",
                "| --- | --- | ---: | --- | --- |"]
        for f in board.failures:
            out.append(f"| {f.name} | {f.task} | {f.trial} | {_md_cell(f.reason)} | {f.path} |")
    if board.problems:
        out += ["", "## Records refused", ""] + [f"- {_md_cell(p)}" for p in board.problems]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _num(x) -> str:
    return "" if x is None else f"{x:.4f}"


def to_csv(board: Board) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["checkpoint"] + [f"{_header(c)} {part}" for c in board.columns for part in ("mean", "std", "n")]
               + ["failed runs"])
    failed = {}
    for f in board.failures:
        failed[f.name] = failed.get(f.name, 0) + 1
    for name, cells in board.rows:
        row = [name]
        for c in board.columns:
            s = cells.get(c)
            row += ["", "", 0] if s is None else [_num(s.mean), _num(s.std), s.n]
        w.writerow(row + [failed.get(name, 0)])
    return buf.getvalue()


def plot(board: Board, path) -> Path:
    """A PNG bar chart: each task's primary metric per checkpoint with ±std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primaries = []
    for task in dict.fromkeys(t for t, _ in board.columns):
        try:
            primaries.append((task, get_task(task).primary_metric))
        except UnknownTaskError:
            primaries.append(next(c for c in board.columns if c[0] == task))
    names = [n for n, _ in board.rows]
    fig, axes = plt.subplots(1, max(1, len(primaries)), figsize=(max(4.0, 0.5 * len(names) + 2) * max(1, len(primaries)), 4),
                             squeeze=False)
    for ax, col in zip(axes[0], primaries):
        stats = [dict(board.rows)[n].get(col) for n in names]
        means = [s.mean if s else 0.0 for s in stats]
        errs = [(s.std or 0.0) if s else 0.0 for s in stats]
        ax.bar(range(len(names)), means, yerr=errs, capsize=4, color="#4878a8")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(_header(col))
        ax.set_ylabel(col[1])
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def to_html(board: Board, chart: str | None = None, title="Leaderboard") -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
           "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
           "td.n{text-align:right}</style></head><body>", f"<h1>{e(title)}</h1>", f"<p>{e(_legend(board))}</p>"]
    if chart:
        out.append(f"<p><img src=\"{e(chart)}\" alt=\"primary metrics with error bars\"></p>")
    out.append("<table><tr><th>checkpoint</th>" + "".join(f"<th>{e(_header(c))}</th>" for c in board.columns) + "</tr>")
    for name, cells in board.rows:
        out.append(f"<tr><td>{e(name)}</td>" + "".join(
            f"<td class=\"n\">{e(cells[c].format()) if c in cells else '-'}</td>" for c in board.columns) + "</tr>")
    out.append("</table>")
    if board.failures:
        out.append("<h2>Failed runs (not counted)</h2><ul>")
        out += [f"<li>{e(f.name)} {e(f.task)} trial {f.trial}: {e(f.reason)} ({e(f.path)})</li>" for f in board.failures]
        out.append("</ul>")
    if board.problems:
        out.append("<h2>Records refused</h2><ul>" + "".join(f"<li>{e(p)}</li>" for p in board.problems) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(board: Board, out_dir, formats=FORMATS, stem="leaderboard") -> list[Path]:
    """Write `stem`.md/.csv/.html (+ `stem`.png with html) into `out_dir`, each atomically."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "md":
            text = to_markdown(board)
        elif fmt == "csv":
            text = to_csv(board)
        else:
            written.append(plot(board, out_dir / f"{stem}.png"))
            text = to_html(board, chart=f"{stem}.png")
        with atomic_write(path, "w") as f:
            f.write(text)
        written.append(path)
    return written
