"""What the leaderboard's Markdown (leaderboard) and HTML page (page) say alike: the legend, the
column headers, the marks, the section titles and the deviations listed under the table.

Each writer escapes these texts for its own format; keeping them here makes the two formats say the
same thing and keeps the writers from reaching into each other.
"""
from benchmark.records.pooling import ALPHA

BEST, TIED = "★", "≈"  # best mean in its column among comparable rows; not significantly different from it
NO_RECORDS = "No finished or failed run records found."
ERRORS_TITLE = "Detection error analysis"
DEVIATIONS_TITLE = "Deviations from the published protocol"
FAILURES_TITLE = "Failed runs (not counted)"
PROBLEMS_TITLE = "Records refused"


def header(column) -> str:
    """A (task, metric) column as its header text: "voc07 bbox/AP"."""
    return f"{column[0]} {column[1]}"


def legend(board) -> str:
    """How to read the board: what a cell holds, the order of the rows, the marks, the tags."""
    order = f"sorted by {header(board.sort_by)}, best first" if board.sort_by else "no records"
    return (f"Each cell: mean ± sample standard deviation (ddof=1) over finished trials, (n) trials; "
            f"one trial shows no std. Rows {order}. {BEST} best mean in its column among comparable rows "
            f"(equal tags); {TIED} not significantly different from it (Welch's t-test, p >= {ALPHA}, "
            f"both with >= 2 trials); rows with one trial are not tested. Runs that measure different "
            f"things (tags in brackets: smoke, sanity, eval-only, AMP, world size, protocol) are never averaged together."
            + (" Rows [published: TABLE] are published values (the paper tables, from docs/REFERENCES.md with their "
               "sources): n and ± std only where the publication gives them, secondary values marked; never averaged "
               "with, tested against or marked among measured rows." if any(r.published for r in board.rows) else ""))


def deviating(board) -> list:
    """[(row, task, deviations)] of every row and task whose runs departed from the published protocol."""
    return [(row, task, devs) for row in board.rows for task, devs in sorted(row.deviations.items()) if devs]
