"""Published baselines as leaderboard rows, built from the shipped paper tables.

The leaderboard (records.leaderboard.build) takes these rows as data; it never imports this module,
so records stays below reproduce (reproduce imports records, never the other way round).

Every published value comes from a paper table (configs/paper/*.yaml), whose values
come from docs/REFERENCES.md with their sources; nothing else is a published number. A published
row is labelled `NAME [published]`, carries each cell's source, shows a std and the number of runs
only where the table says they are the publication's own (`spread_published`; otherwise n is "not
stated"), marks secondary values as such, and is never pooled or compared with measured rows.
Rows of one name with identical cells in several tables are shown once, naming every table.

A table's `other_work` (another work's numbers, e.g. CloserLook's ResNet-18 Baseline beside Table 4)
become rows too, labelled `NAME [other work, same protocol: TABLE]` or `[other work, same metric only:
TABLE]`, each value with its published 95% interval where the work gives one; like published rows they
are never pooled, tested or marked, and the judge never sees them (it reads the table's rows only).
"""
import dataclasses

from benchmark.records.pooling import format_interval
from benchmark.reproduce import paper


@dataclasses.dataclass(frozen=True)
class PublishedStat:
    """One published number, shaped like records.pooling.Stat where the leaderboard's writers read it."""
    mean: float
    std: float | None
    n: int | None  # runs the value averages; None: not stated
    source: str
    secondary: bool = False
    values: tuple = ()  # no trials of ours: never enters a mean or a test
    interval: float | None = None  # the published 95% interval's half-width (other work), as pooling.Stat.interval
    other_work: bool = False

    def format(self, digits=2) -> str:
        what = "other work" if self.other_work else "secondary" if self.secondary else "published"
        n = f"n={self.n}, " if self.n else ""
        ci = "" if self.interval is None else f" {format_interval(self.interval, digits)}"
        if self.std is None:
            return f"{self.mean:.{digits}f}{ci} ({n}{what})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}{ci} ({n}{what})"


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    name: str
    tables: tuple  # the paper tables it appears in
    cells: dict  # {(task, metric): PublishedStat}
    note: str | None = None
    kind: str = "published"  # or paper.OtherWork.kind: the label's tag before the tables


def published_rows(tables=None) -> list[PublishedRow]:
    """The rows with at least one published value of `tables` (names or paths; None: every shipped table)."""
    rows = []
    for name in (paper.list_tables() if tables is None else tables):
        table = paper.load_table(name)
        for row in table.rows:
            if not row.cells:
                continue
            cells = {}
            for (task, metric), ref in row.cells.items():
                stated = table.spread_published
                cells[(task, metric)] = PublishedStat(ref.value, table.std.get((task, metric)) if stated else None,
                                                      table.published_trials if stated else None, ref.source,
                                                      ref.secondary)
            _add(rows, PublishedRow(row.name, (table.name,), cells, row.note))
        for other in table.other_work:
            cells = {key: PublishedStat(v.value, None, None, other.source, interval=v.interval, other_work=True)
                     for key, v in other.cells.items()}
            _add(rows, PublishedRow(other.name, (table.name,), cells, other.what, other.kind))
    return rows


def _add(rows, new):
    """Append `new`, or name its table on an equal row already there (same name, kind and cells)."""
    same = next((r for r in rows if (r.name, r.kind, r.cells) == (new.name, new.kind, new.cells)), None)
    if same is not None:
        rows[rows.index(same)] = dataclasses.replace(same, tables=same.tables + new.tables)
    else:
        rows.append(new)
