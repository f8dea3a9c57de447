"""The leaderboard: a pure function of run records -> tables (Markdown, CSV, HTML) and charts.

Rows are checkpoints (the record's weights name), columns each task's metrics (the task
registry's order), cells `mean ± std (n)` over the finished trials: std is the *sample* standard
deviation (ddof=1, the spread one would expect between reruns; none for n = 1).

What is pooled (the rule of records.pooling): a cell averages only records that measure the
same thing, i.e. that agree on `pool_key` -- kind (full, smoke, sanity, eval-only), AMP, world
size and protocol digest. Records that differ in any of these are separate rows, whose label
names the difference: `moco [smoke]`, `moco [AMP]`, `moco [world size 2]` (when one task has
runs of several world sizes), `moco [protocol 1a2b3c4d]` (the first hex digits of the protocol
digest, when one task has runs of several protocols of one kind). A row is keyed by its identity
(pooling.RowId: name, tags, published or not), never by its label's text, and a name that could read
as tags is shown quoted: a full run named `moco [smoke]` is the row `"moco [smoke]"`, neither averaged
with moco's smoke run nor hidden by a published row of that text. The deviations of a row's runs
are listed under the table. Failed runs are listed apart with their reasons and never enter a
mean; records that results.gather refused are listed with its message. The legend, headers,
marks and section titles are records.render's, which the HTML page (records.page) shares.

Direction: a metric of Task.lower_is_better (an error) has its best mean the lowest; the best mark, the
sort order and its title (render.LOWER after the column's name) follow Task.higher_is_better, never an
assumption that larger is better. A metric with a per-trial 95% interval (the record's "group/name" +
INTERVAL_SUFFIX, few-shot accuracy) shows it beside the mean (pooling.Stat.format: over several trials,
the mean of the trials' half-widths); it is never a column of its own in Markdown or HTML, and the CSV
carries it as "TASK METRIC ci95" for the columns that have one.

Differences are tested, not eyeballed: within each group of comparable rows (equal tags), per
column that at least two rows of the group have, the row with the best mean is marked (a row compared
with nothing is best of nothing, so it is not marked), and every other row whose difference from it is not
significant (Welch's t-test, scipy, p >= ALPHA; both rows with >= 2 trials) is marked as tied.
Rows with one trial are not tested. The CSV holds the p-value of each row against its column's
best, and `pairs_csv` every pair among the PAIRS_TOP (20) best rows of each column and tag group.

Text from records (names, reasons, paths) is escaped for each format: Markdown table cells,
CSV cells that a spreadsheet would run as a formula, matplotlib's mathtext, HTML.
Output depends on the records only (sorted, no timestamps): the same records give byte-identical
Markdown and CSV.
"""
import dataclasses
import io
from pathlib import Path

from benchmark.fileio import atomic_write
from benchmark.records.escape import csv_text, md_cell, visible
from benchmark.records.pooling import (
    ALPHA,
    RowId,
    aggregate,
    conflicts,
    deduplicated,
    error_metrics,
    higher_is_better,
    row_tags,
    task_metrics,
    welch,
)
from benchmark.records.render import (
    BEST,
    CHART_ROWS,
    DEVIATIONS_TITLE,
    ERRORS_TITLE,
    FAILURES_TITLE,
    NO_RECORDS,
    PROBLEMS_TITLE,
    TIED,
    charted_note,
    column_title,
    deviating,
    header,
    legend,
)
from benchmark.tasks import UnknownTaskError, get_task

FORMATS = ("md", "csv", "html")


@dataclasses.dataclass
class Row:
    id: RowId  # (name, tags, published): what the row is keyed by; its label is derived from it
    cells: dict  # {(task, metric): Stat}
    deviations: dict = dataclasses.field(default_factory=dict)  # {task: [str]}
    records: dict = dataclasses.field(default_factory=dict)  # {task: [record path of each finished trial]}
    note: str | None = None
    other_work: bool = False  # another work's numbers beside a paper table (published, never judged or marked)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def tags(self) -> tuple:
        return self.id.tags

    @property
    def published(self) -> bool:  # a published baseline (reproduce.published): never pooled, tested or marked
        return self.id.published

    @property
    def label(self) -> str:  # name, plus the tags in brackets (pooling.label_of)
        return self.id.label


@dataclasses.dataclass
class Board:
    columns: list  # [(task, metric)]
    rows: list  # [Row], sorted
    failures: list  # [Failure]
    problems: list  # [str] records refused by results.gather
    sort_by: tuple | None  # (task, metric) or None
    marks: dict = dataclasses.field(default_factory=dict)  # {(RowId, task, metric): BEST | TIED}
    p_vs_best: dict = dataclasses.field(default_factory=dict)  # {(RowId, task, metric): p}
    errors: list = dataclasses.field(default_factory=list)  # [(task, error type)] columns of the error table

    def row(self, which) -> Row | None:
        """The row of a RowId, or of a label's text (labels are unique: pooling.label_of quotes a name that could
        read as another row's label)."""
        return next((r for r in self.rows if (r.id if isinstance(which, RowId) else r.label) == which), None)

    def stat(self, which, task, metric):
        row = self.row(which)
        return None if row is None else row.cells.get((task, metric))

    def mark(self, which, task, metric) -> str | None:
        row = self.row(which)
        return None if row is None else self.marks.get((row.id, task, metric))


# ------------------------------------------------------------------- significance

def _mark(rows, columns):
    """Best and tied marks per column within each group of comparable rows (equal tags). A column that only one
    row of a group has compares nothing: no mark (a lone smoke run of zeros is not "best")."""
    marks, p_best = {}, {}
    groups = {}
    for row in rows:
        if not row.published:
            groups.setdefault(row.tags, []).append(row)
    for group in groups.values():
        for col in columns:
            have = [r for r in group if col in r.cells]
            if len(have) < 2:
                continue
            sign = 1.0 if higher_is_better(*col) else -1.0  # an error's best mean is its lowest
            best = max(have, key=lambda r: (sign * r.cells[col].mean, r.cells[col].n))
            marks[(best.id,) + col] = BEST
            for r in have:
                if r is best:
                    continue
                p = welch(best.cells[col], r.cells[col])
                if p is not None:
                    p_best[(r.id,) + col] = p
                    if p >= ALPHA:
                        marks[(r.id,) + col] = TIED
    return marks, p_best


PAIRS_TOP = 20  # rows per column and tag group whose every pair is tested: 190 tests, not ~1.4M for 1,700 rows


def _pairs(board: Board):
    """(task, metric, row a, row b, p) for every pair of comparable rows (equal tags) with >= 2 trials each among
    the PAIRS_TOP best of their column (its direction; ties by label). Testing every pair grows with the square of
    the rows (5,000 records did not finish in 400 s); the pairs users compare are the leading ones, and every
    row's test against its column's best is in the main CSV (p vs best)."""
    for col in board.columns + board.errors:
        sign = -1.0 if higher_is_better(*col) else 1.0
        groups = {}
        for r in board.rows:
            if not r.published and col in r.cells and r.cells[col].n >= 2:
                groups.setdefault(r.tags, []).append(r)
        for tags in sorted(groups):
            have = sorted(groups[tags], key=lambda r: (sign * r.cells[col].mean, r.label))[:PAIRS_TOP]
            have.sort(key=board.rows.index)  # the board's order, as before the cap
            for i, a in enumerate(have):
                for b in have[i + 1:]:
                    yield col + (a, b, welch(a.cells[col], b.cells[col]))


def pairs(board: Board) -> list:
    """[(task, metric, label a, label b, p)] of the tested pairs (_pairs: the PAIRS_TOP best comparable rows of
    each column and tag group, >= 2 trials each)."""
    return [(task, metric, a.label, b.label, p) for task, metric, a, b, p in _pairs(board)]


# ----------------------------------------------------------------------- building

def build(records, problems=(), sort_by=None, published=()) -> Board:
    """The leaderboard of `records` (results.gather's first value; `problems` its second) and of
    the `published` baselines (reproduce.published.published_rows(), handed in by the caller), which add their tasks' columns.

    `sort_by`: a task name (sorted by its primary metric, best first) or None (the first task).
    Rows are grouped by their tags (untagged first), each group best first; rows without a value
    in that column go last; ties and the rest sort by label.
    """
    tags = row_tags(records)
    # keyed by identity, not by label text: a name that reads like `moco [smoke]` is not moco's smoke row
    row_id = {id(r): RowId(r.weights.name, tags[id(r)]) for r in records}
    stats, failures = aggregate(records, lambda r: row_id[id(r)])
    tasks = sorted({r.task for r in records})
    if sort_by is not None and sort_by not in tasks:
        raise ValueError(f"cannot sort by task {sort_by!r}: no record of it (tasks found: {', '.join(tasks) or 'none'})")
    sort_task = sort_by or (tasks[0] if tasks else None)
    if sort_task:
        tasks.remove(sort_task)
        tasks.insert(0, sort_task)
    columns = [(t, m) for t in tasks for m in task_metrics(t, [r for r in records if r.task == t])]
    errors = [(t, m) for t in tasks for m in error_metrics([r for r in records if r.task == t])]
    rows = {}
    for r in deduplicated(records):
        row = rows.setdefault(row_id[id(r)], Row(row_id[id(r)], {}))
        row.deviations.setdefault(r.task, [])
        row.deviations[r.task] += [d for d in r.deviations if d not in row.deviations[r.task]]
        if r.status == "finished":
            row.records.setdefault(r.task, []).append(r.path or "")
    for (key, task), ms in stats.items():
        rows[key].cells.update({(task, m): s for m, s in ms.items()})
    for pub in published:  # published=True: a record named like a published row is its own row, never hidden by it
        kind = pub.kind  # "published", or "other work, ...": another work's numbers beside a paper table
        key = RowId(pub.name, (f"{kind}: {', '.join(pub.tables)}",), published=True)
        rows[key] = Row(key, dict(pub.cells), note=pub.note, other_work=kind != "published")
        for task, metric in pub.cells:
            if task not in tasks:
                tasks.append(task)
    shown = {c for row in rows.values() if row.published for c in row.cells}
    columns += [(t, m) for t in tasks if t not in {c[0] for c in columns} for m in task_metrics(t) if (t, m) in shown]
    rows = sorted(rows.values(), key=lambda row: row.label)
    key = None
    if sort_task:
        try:
            primary = get_task(sort_task).primary_metric
        except UnknownTaskError:
            primary = columns[0][1]
        key = (sort_task, primary)
        sign = -1.0 if higher_is_better(*key) else 1.0  # best first: the highest, or an error's lowest
        # comparable rows together (measured untagged first, then the published, then the rest), each group best first
        rows.sort(key=lambda row: (_group_order(row), row.tags, key not in row.cells,
                                   sign * row.cells[key].mean if key in row.cells else 0.0, row.label))
    marks, p_best = _mark(rows, columns)
    return Board(columns, rows, failures, list(problems) + conflicts(records), key, marks, p_best, errors)


def _group_order(row) -> int:
    return 0 if not row.tags else 1 if row.published else 2


# --------------------------------------------------------------------------- writers

def _cell(board, row, col) -> str:
    s = row.cells.get(col)
    if s is None:
        return "-"
    mark = board.marks.get((row.id,) + col)
    return s.format() + (f" {mark}" if mark else "")


def to_markdown(board: Board, title="Leaderboard") -> str:
    out = [f"# {_md_cell(title)}", "", legend(board, _md_cell), ""]
    if board.rows:
        out.append("| checkpoint | " + " | ".join(_md_cell(column_title(c)) for c in board.columns) + " |")
        out.append("| --- |" + " ---: |" * len(board.columns))
        for row in board.rows:
            out.append(f"| {_md_cell(row.label)} | " + " | ".join(_cell(board, row, c) for c in board.columns) + " |")
    else:
        out.append(NO_RECORDS)
    if board.errors:
        out += ["", f"## {ERRORS_TITLE}", "",
                "AP lost to each error type (TIDE's dAP: the AP gained by fixing that error type alone; "
                "lower is better); mean ± std (n) over finished trials.", ""]
        out.append("| checkpoint | " + " | ".join(_md_cell(header(c)) for c in board.errors) + " |")
        out.append("| --- |" + " ---: |" * len(board.errors))
        for row in board.rows:
            if any(c in row.cells for c in board.errors):
                out.append(f"| {_md_cell(row.label)} | "
                           + " | ".join(row.cells[c].format() if c in row.cells else "-" for c in board.errors) + " |")
    rows_deviating = deviating(board)
    if rows_deviating:
        out += ["", f"## {DEVIATIONS_TITLE}", ""]
        out += [f"- {_md_cell(row.label)}, {_md_cell(task)}: " + "; ".join(_md_cell(d) for d in devs) for row, task, devs in rows_deviating]
    if board.failures:
        out += ["", f"## {FAILURES_TITLE}", "", "| checkpoint | task | trial | reason | record |",
                "| --- | --- | ---: | --- | --- |"]
        for f in board.failures:
            out.append(f"| {_md_cell(f.name)} | {_md_cell(f.task)} | {f.trial} | {_md_cell(f.reason)} | {_md_cell(f.path)} |")
    if board.problems:
        out += ["", f"## {PROBLEMS_TITLE}", ""] + [f"- {_md_cell(p)}" for p in board.problems]
    return "\n".join(out) + "\n"


_md_cell, _csv_text = md_cell, csv_text  # records.escape: hidden characters shown, each format's syntax escaped


def _num(x) -> str:
    return "" if x is None else f"{x:.4f}"


def to_csv(board: Board) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = board.columns + board.errors
    with_ci = {c for c in cols for row in board.rows if c in row.cells and row.cells[c].interval is not None}
    parts = lambda c: ("mean", "std", "n", "p vs best", "mark") + (("ci95",) if c in with_ci else ())  # noqa: E731
    w.writerow(["checkpoint", "name", "tags"] + [_csv_text(f"{header(c)} {part}") for c in cols for part in parts(c)]
               + ["failed runs", "published sources"])
    failed = {}
    for f in board.failures:
        failed[f.row] = failed.get(f.row, 0) + 1
    for row in board.rows:
        out = [_csv_text(row.label), _csv_text(row.name), _csv_text("; ".join(row.tags))]
        for c in cols:
            s = row.cells.get(c)
            key = (row.id,) + c
            mark = {BEST: "best", TIED: "tied"}.get(board.marks.get(key), "")
            out += ["", "", 0, "", ""] if s is None else [_num(s.mean), _num(s.std), "" if s.n is None else s.n,
                                                          _num(board.p_vs_best.get(key)), mark]
            if c in with_ci:  # the mean of the trials' own 95% half-widths (pooling.Stat.interval)
                out.append("" if s is None else _num(s.interval))
        sources = "; ".join(f"{header(c)}: {row.cells[c].source}" for c in cols if row.published and c in row.cells)
        w.writerow(out + [failed.get(row.id, 0), _csv_text(sources)])
    return buf.getvalue()


def pairs_csv(board: Board) -> str:
    """The Welch tests between comparable rows with >= 2 trials among the PAIRS_TOP best of each column and tag
    group (_pairs): task, metric, a, b, p."""
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "metric", "a", "b", "mean a", "mean b", "n a", "n b", "welch p"])
    for task, metric, a, b, p in _pairs(board):
        sa, sb = a.cells[(task, metric)], b.cells[(task, metric)]
        w.writerow([_csv_text(task), _csv_text(metric), _csv_text(a.label), _csv_text(b.label), _num(sa.mean),
                    _num(sb.mean), sa.n, sb.n, _num(p)])
    return buf.getvalue()


CHART_LABEL = 40  # characters of a row's label on a PNG chart: a 1 MB name took matplotlib minutes to lay out


def _charted(board, cols) -> tuple[list, str]:
    """(the rows a PNG chart of `cols` draws, the words a title adds when some are left out)."""
    rows = [row for row in board.rows if any(c in row.cells for c in cols)]
    return rows[:CHART_ROWS], charted_note(min(len(rows), CHART_ROWS), len(rows))


def _chart_label(label: str) -> str:
    label = visible(label)
    return label if len(label) <= CHART_LABEL else label[: CHART_LABEL - 1] + "…"


def _bars(ax, col, board):
    rows, cut = _charted(board, [col])
    labels = [_chart_label(row.label) for row in rows]
    stats = [row.cells.get(col) for row in rows]
    means = [s.mean if s else 0.0 for s in stats]
    errs = [(s.std or 0.0) if s else 0.0 for s in stats]
    ax.bar(range(len(labels)), means, yerr=errs, capsize=4, color="#4878a8")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(_chart_label(column_title(col)) + cut)
    ax.set_ylabel(_chart_label(col[1]))


def _save(fig, path):
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, metadata={"Software": None})


def plot(board: Board, path) -> Path:
    """A PNG bar chart: each task's primary metric per row with ±std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    primaries = []
    for task in dict.fromkeys(t for t, _ in board.columns):
        try:
            primaries.append((task, get_task(task).primary_metric))
        except UnknownTaskError:
            primaries.append(next(c for c in board.columns if c[0] == task))
    bars = max((len(_charted(board, [c])[0]) for c in primaries), default=0)
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):  # a `$` in a name is text
        fig, axes = plt.subplots(1, max(1, len(primaries)),
                                 figsize=(max(4.0, 0.5 * bars + 2) * max(1, len(primaries)), 4), squeeze=False)
        for ax, col in zip(axes[0], primaries):
            _bars(ax, col, board)
        fig.tight_layout()
        _save(fig, path)
    plt.close(fig)
    return Path(path)


def plot_errors(board: Board, path) -> Path:
    """A PNG per-task grouped bar chart of the error analysis: dAP per error type, one bar per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for t, _ in board.errors))
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(6 * max(1, len(tasks)), 4), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            cols = [c for c in board.errors if c[0] == task]
            rows, cut = _charted(board, cols)
            width = 0.8 / max(1, len(rows))
            for i, row in enumerate(rows):
                stats = [row.cells.get(c) for c in cols]
                ax.bar([j + i * width for j in range(len(cols))], [s.mean if s else 0.0 for s in stats], width,
                       yerr=[(s.std or 0.0) if s else 0.0 for s in stats], capsize=2, label=_chart_label(row.label))
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))],
                          [_chart_label(c[1].partition("/")[2]) for c in cols])
            ax.set_title(f"{_chart_label(task)}: AP lost per error type (dAP){cut}")
            ax.set_ylabel("dAP")
            ax.legend(fontsize=7)
        fig.tight_layout()
        _save(fig, path)
    plt.close(fig)
    return Path(path)


def to_html(board: Board, title="Leaderboard", base=None, errors_png: bytes | None = None) -> str:
    """The self-contained HTML page (records.page)."""
    from benchmark.records import page

    return page.render(board, title=title, base=base, errors_png=errors_png)


def write(board: Board, out_dir, formats=FORMATS, stem="leaderboard") -> list[Path]:
    """Write `stem`.md/.csv/.html into `out_dir`, each atomically; csv adds `stem`_pairs.csv (every
    Welch test), html adds `stem`.png (and `stem`_errors.png with an error analysis), which the
    self-contained page does not need."""
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
            with atomic_write(out_dir / f"{stem}_pairs.csv", "w") as f:
                f.write(pairs_csv(board))
            written.append(out_dir / f"{stem}_pairs.csv")
        else:  # the page embeds its charts; the PNGs are for the Markdown's readers
            written.append(plot(board, out_dir / f"{stem}.png"))
            errors_png = None
            if board.errors:
                written.append(plot_errors(board, out_dir / f"{stem}_errors.png"))
                errors_png = (out_dir / f"{stem}_errors.png").read_bytes()
            text = to_html(board, base=out_dir, errors_png=errors_png)
        with atomic_write(path, "w") as f:
            f.write(text)
        written.append(path)
    return written
