"""What the leaderboard's Markdown (leaderboard) and HTML page (page) say alike: the legend, the
column headers, the marks, the section titles and the deviations listed under the table.

Each writer escapes these texts for its own format; keeping them here makes the two formats say the
same thing and keeps the writers from reaching into each other.
"""
from benchmark.records.pooling import ALPHA, higher_is_better

BEST, TIED = "★", "≈"  # best mean in its column among comparable rows; not significantly different from it
LOWER = "↓"  # after a column's title: lower is better (an error); its best mean is the lowest
NO_RECORDS = "No finished or failed run records found."
ERRORS_TITLE = "Detection error analysis"
DEVIATIONS_TITLE = "Deviations from the published protocol"
FAILURES_TITLE = "Failed runs (not counted)"
PROBLEMS_TITLE = "Records refused"
# Bars per task on a chart (the PNG and the page's SVG), and Hoiem charts on the page: the board's first rows
# having the column (best first). 1,700 bars make an image 85,000 px wide that nobody reads and that takes
# minutes to draw; the tables keep every row.
CHART_ROWS = 40


def charted_note(shown: int, total: int) -> str:
    """The words a chart's title adds when it leaves rows out ("" when it draws them all)."""
    return f" (first {shown} of {total} rows)" if total > shown else ""


def header(column) -> str:
    """A (task, metric) column as its header text: "voc07 bbox/AP"."""
    return f"{column[0]} {column[1]}"


def column_title(column) -> str:
    """A column's title where people read it (Markdown and HTML headers, charts): its header, with LOWER after
    a lower-is-better metric ("mafl_landmarks landmarks/iod_error ↓")."""
    return header(column) + ("" if higher_is_better(*column) else f" {LOWER}")


def _has_interval(board) -> bool:
    return any(s.interval is not None for row in board.rows for s in row.cells.values())


def legend(board, esc=str) -> str:
    """How to read the board: what a cell holds, the order of the rows, the marks, the tags. `esc` escapes the
    one text from records in it (the sorting column's name) for the writer's format (Markdown's md_cell)."""
    order = f"sorted by {esc(header(board.sort_by))}, best first" if board.sort_by else "no records"
    measured_published = any(r.published and not r.other_work for r in board.rows)
    return (f"Each cell: mean ± sample standard deviation (ddof=1) over finished trials, (n) trials; "
            f"one trial shows no std. Rows {order}. {BEST} best mean in its column among comparable rows "
            f"(equal tags; no mark where a column has one such row, which is compared with nothing); "
            f"{TIED} not significantly different from it (Welch's t-test, p >= {ALPHA}, "
            f"both with >= 2 trials); rows with one trial are not tested. Runs that measure different "
            f"things (tags in brackets: smoke, sanity, eval-only, AMP, world size, protocol) are never averaged together."
            + (f" {LOWER} after a column's name: lower is better (an error); its best mean is the lowest and its rows "
               "sort lowest first." if any(not higher_is_better(*c) for c in board.columns) else "")
            + (" [95% CI ± h] beside a mean: the half-width h of the 95% confidence interval over a trial's episodes "
               "(1.96 x std / sqrt(episodes), as the run recorded it); over several trials, h is the mean of the "
               "trials' own half-widths (each the spread of that trial's episodes), while the ± before (n) is the "
               "spread between trials." if _has_interval(board) else "")
            + (" Rows [published: TABLE] are published values (the paper tables, from docs/REFERENCES.md with their "
               "sources): n and ± std only where the publication gives them, secondary values marked; never averaged "
               "with, tested against or marked among measured rows." if measured_published else "")
            + (" Rows [other work, ...: TABLE] are other works' numbers listed beside a paper table (docs/REFERENCES.md, "
               "with their sources): 'same protocol' where that work ran the protocol this suite runs, 'same metric "
               "only' where it did not (other features or training); shown for context, never averaged with, tested "
               "against, marked among or judged with measured rows." if any(r.other_work for r in board.rows) else ""))


def deviating(board) -> list:
    """[(row, task, deviations)] of every row and task whose runs departed from the published protocol."""
    return [(row, task, devs) for row in board.rows for task, devs in sorted(row.deviations.items()) if devs]
