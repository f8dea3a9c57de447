"""Published baselines as leaderboard rows, built from the shipped paper tables.

The leaderboard (records.leaderboard.build) takes these rows as data; it never imports this module,
so records stays below reproduce (reproduce imports records, never the other way round).

Every published value comes from a paper table (configs/paper/*.yaml), whose values
come from docs/REFERENCES.md with their sources; nothing else is a published number. A published
row is labelled `NAME [published]`, carries each cell's source, shows a std and the number of runs
only where the table says they are the publication's own (`spread_published`; otherwise n is "not
stated"), marks secondary values as such, and is never pooled or compared with measured rows.
Rows of one name with identical cells in several tables are shown once, naming every table.
"""
import dataclasses

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

    def format(self, digits=2) -> str:
        what = "secondary" if self.secondary else "published"
        n = f"n={self.n}, " if self.n else ""
        if self.std is None:
            return f"{self.mean:.{digits}f} ({n}{what})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({n}{what})"


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    name: str
    tables: tuple  # the paper tables it appears in
    cells: dict  # {(task, metric): PublishedStat}
    note: str | None = None


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
            same = next((r for r in rows if r.name == row.name and r.cells == cells), None)
            if same is not None:
                rows[rows.index(same)] = dataclasses.replace(same, tables=same.tables + (table.name,))
            else:
                rows.append(PublishedRow(row.name, (table.name,), cells, row.note))
    return rows
