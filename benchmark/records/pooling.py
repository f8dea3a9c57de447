"""Which run records are averaged together, and how cells are compared: shared by the leaderboard
and the reproduction.

A cell averages only records that measure the same thing, i.e. that agree on `pool_key` -- kind
(full, smoke, sanity, eval-only), AMP, world size and protocol digest. The leaderboard keeps every
pool as its own row, named by `row_tags`; a reproduction keeps one pool per (row, task) cell
(`one_pool_per_cell`) and reports the other records as not pooled. `aggregate` turns records into
`Stat`s (mean, sample std, n) and `Failure`s; `welch` tests two cells.

A metric with a 95% interval per trial (the record's "group/name" + INTERVAL_SUFFIX: few-shot accuracy,
1.96 std / sqrt(episodes) of that trial's episodes) keeps each trial's half-width beside its value; a
pooled cell shows the mean of the trials' half-widths (`Stat.interval`), and none when a trial lacks
one. The ± std of a cell stays the spread between trials; the interval is never pooled into it.
Which direction is better is the task's (`higher_is_better`, from Task.lower_is_better).

Nothing here imports torch, detectron2 or numpy at import time (scipy is imported by `welch`,
the error groups' names by `error_metrics` and `fp_metrics`, when called).
"""
import dataclasses
import json
import math

from benchmark.records.results import Record
from benchmark.tasks import UnknownTaskError, get_task
from benchmark.tasks.registry import INTERVAL_SUFFIX

# A metric group named "KIND:ITEM" holds one item's numbers (the feature inversion's "image:STEM", one per
# image); its means are the record's summary group ("inversion"). The record keeps them; the board shows only the
# summary, so a run over 100 images adds 3 columns, not 303.
ITEM_GROUP_MARK = ":"
ALPHA = 0.05  # significance level of the leaderboard's tied marks and of a reproduction's two-row checks
POOL_FIELDS = ("kind", "AMP", "world size", "protocol digest")  # pool_key's parts, in words


@dataclasses.dataclass(frozen=True)
class Stat:
    values: tuple  # one per finished trial, in trial order
    # Each trial's own 95% interval half-width (the record's "group/name" + INTERVAL_SUFFIX: the spread of its
    # episodes, few-shot accuracy), parallel to `values`, None for a trial that recorded none; () when no trial did.
    intervals: tuple = ()

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

    @property
    def interval(self) -> float | None:
        """The 95% interval half-width shown beside the mean: the mean of the trials' own half-widths (each the
        spread of that trial's episodes, not of the trials); None unless every trial recorded one."""
        if not self.intervals or any(h is None for h in self.intervals):
            return None
        return math.fsum(self.intervals) / len(self.intervals)

    def format(self, digits=2) -> str:
        ci = "" if self.interval is None else f" {format_interval(self.interval, digits)}"
        if self.std is None:
            return f"{self.mean:.{digits}f} ({self.n}){ci}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.n}){ci}"


def format_interval(half_width: float, digits=2) -> str:
    """A 95% interval's half-width as a cell shows it beside the mean: "[95% CI ± 0.80]" (render.legend says what it is)."""
    return f"[95% CI ± {half_width:.{digits}f}]"


def higher_is_better(task: str, metric: str) -> bool:
    """Whether a larger value is the better one in a (task, metric) column (Task.higher_is_better); an unregistered
    task's metrics count as higher-is-better, as every metric did before tasks could say otherwise, except a loss
    (`LOWER_IS_BETTER_NAMES`: an analysis record's, such as tools/invert.py's feature loss under its task
    inversion_<layer>, which no registry holds)."""
    try:
        return get_task(task).higher_is_better(metric)
    except UnknownTaskError:
        return metric.rsplit("/", 1)[-1] not in LOWER_IS_BETTER_NAMES


LOWER_IS_BETTER_NAMES = ("loss",)  # the last part of a metric of an unregistered task that is an error


@dataclasses.dataclass(frozen=True)
class Failure:
    name: str
    task: str
    trial: int
    reason: str
    path: str
    # the row it belongs to (a leaderboard RowId, or the weights name): counted per row by identity, never by `name`'s text
    row: object = dataclasses.field(default=None, compare=False, repr=False)


def pool_key(record: Record) -> tuple:
    """What two records must share to be averaged into one cell."""
    return (record.kind, record.amp, record.world_size, record.protocol_digest)


def describe_pool_difference(a: tuple, b: tuple) -> str:
    """The first way pool keys `a` and `b` differ, in words."""
    for name, x, y in zip(POOL_FIELDS, a, b):
        if x != y:
            return f"{name} {x!r} vs {y!r}"
    return "nothing"


def row_tags(records) -> dict:
    """{id(record): tags} naming how each record's pool differs from the board's usual one."""
    world_sizes, protocols = {}, {}
    for r in records:
        world_sizes.setdefault((r.task,) + pool_key(r)[:2], set()).add(r.world_size)
        protocols.setdefault((r.task,) + pool_key(r)[:3], set()).add(r.protocol_digest)
    tags = {}
    for r in records:
        kind, amp, world_size, digest = pool_key(r)
        t = []
        if kind != "full":
            t.append(kind)
        if amp:
            t.append("AMP")
        if len(world_sizes[(r.task, kind, amp)]) > 1:
            t.append(f"world size {world_size}")
        if len(protocols[(r.task, kind, amp, world_size)]) > 1:
            t.append(f"protocol {digest[:8]}" if digest else "protocol unrecorded (schema 1)")
        tags[id(r)] = tuple(t)
    return tags


def label_of(name: str, tags: tuple) -> str:
    """`name [tag, tag]`. A name that could be read as carrying tags (brackets) or as quoted is shown quoted
    (JSON), so that no weights name can print as another row's label: `moco [smoke]` as a full run's name is
    the row `"moco [smoke]"`, never `moco`'s smoke row."""
    plain = "[" not in name and "]" not in name and not name.startswith('"')
    shown = name if plain else json.dumps(name, ensure_ascii=False)
    return f"{shown} [{', '.join(tags)}]" if tags else shown


@dataclasses.dataclass(frozen=True, order=True)
class RowId:
    """A leaderboard row's identity: what is pooled into it and what its marks belong to. The tags come from
    the records' pool (row_tags) or from a published table, never from the name, so a name cannot forge them;
    the label shown is derived from the identity (label_of), never parsed back."""
    name: str
    tags: tuple = ()
    published: bool = False

    @property
    def label(self) -> str:
        return label_of(self.name, self.tags)

    def __str__(self) -> str:
        return self.label


def one_pool_per_cell(records, kind: str) -> tuple[list, list]:
    """The records a cell may average: of `kind`, and of the most common pool (pool_key) of their
    (row, task); each other record is a Failure naming how it differs, never pooled."""
    by_cell = {}
    for r in records:
        by_cell.setdefault((r.weights.name, r.task), []).append(r)
    kept, unpooled = [], []
    for cell in sorted(by_cell):
        group = sorted(by_cell[cell], key=lambda r: (r.trial, r.path or ""))
        keys = [pool_key(r) for r in group if r.kind == kind]
        common = max(keys, key=keys.count) if keys else None
        for r in group:
            if pool_key(r) == common:
                kept.append(r)
            else:
                why = (f"a {r.kind!r} run, this reproduction counts {kind!r} runs" if r.kind != kind
                       else f"not pooled with the other trials: {describe_pool_difference(pool_key(r), common)}")
                unpooled.append(Failure(r.weights.name, r.task, r.trial, why, r.path or ""))
    return kept, unpooled


def deduplicated(records) -> list:
    """Records sorted by (name, task, trial, path); a trial found twice (same pool) counts once."""
    seen, out = set(), []
    for r in sorted(records, key=lambda r: (r.weights.name, r.task, r.trial, r.path or "")):
        key = (r.weights.name, r.task, r.trial, pool_key(r))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def conflicts(records) -> list:
    """One line per record that `deduplicated` drops although its values differ from the kept one's (same name,
    task, trial and pool, other metrics or status): two runs claim one trial, and which is right cannot be told,
    so the rule (the first by path is kept) is said aloud with both files, never applied silently."""
    kept, out = {}, []
    for r in sorted(records, key=lambda r: (r.weights.name, r.task, r.trial, r.path or "")):
        key = (r.weights.name, r.task, r.trial, pool_key(r))
        first = kept.setdefault(key, r)
        if first is not r and (first.status, first.metrics, first.reason) != (r.status, r.metrics, r.reason):
            out.append(f"{r.path or 'a record'}: trial {r.trial} of {r.weights.name} on {r.task} is also recorded in "
                       f"{first.path or 'another record'} with other values; the first by path is kept, this one "
                       f"is not counted")
    return out


def task_metrics(task: str, records=()) -> tuple:
    """The task's metrics in registry order; for an unregistered task, those its records carry."""
    try:
        return get_task(task).metrics
    except UnknownTaskError:
        from benchmark.tasks.errors import ERROR_GROUP  # here: that module imports numpy
        from benchmark.tasks.fp_analysis import FP_GROUP

        found = {f"{g}/{m}" for r in records for g, ms in r.metrics.items() for m in ms
                 if g not in (ERROR_GROUP, FP_GROUP) and ITEM_GROUP_MARK not in g}
        # a metric's interval ("fewshot/1shot_ci95") is shown beside it, never as a metric of its own
        return tuple(sorted(m for m in found if not (m.endswith(INTERVAL_SUFFIX) and m[:-len(INTERVAL_SUFFIX)] in found)))


def error_metrics(records) -> tuple:
    """The "errors/<type>" metrics (a detection error analysis) that `records` carry, TIDE's order first."""
    from benchmark.tasks.errors import ERROR_GROUP, MAIN_ERRORS  # here: that module imports numpy

    found = {m for r in records for m in r.metrics.get(ERROR_GROUP, {})}
    return tuple(f"{ERROR_GROUP}/{m}" for m in [e for e in MAIN_ERRORS if e in found] + sorted(found - set(MAIN_ERRORS)))


def fp_metrics(records) -> tuple:
    """The "fp/<key>" metrics (Hoiem's false-positive analysis) that `records` carry, the analysis's order first."""
    from benchmark.tasks.fp_analysis import FP_GROUP, FP_METRICS  # here: that module imports numpy

    found = {f"{FP_GROUP}/{m}" for r in records for m in r.metrics.get(FP_GROUP, {})}
    return tuple([m for m in FP_METRICS if m in found] + sorted(found - set(FP_METRICS)))


def aggregate(records, row=None) -> tuple[dict, list]:
    """({(row, task): {metric: Stat}}, [Failure]) over finished and failed records.

    `row(record)` is a record's row identity (default: its weights name; the leaderboard's RowId),
    a failure's `name` its text. Callers must give records of one pool per (row, task) or rows that
    separate pools (the leaderboard tags its rows; a reproduction selects one pool first,
    one_pool_per_cell). Duplicate trials (the same row, task and trial found twice) count once: the
    first by path.
    """
    row_of = row or (lambda r: r.weights.name)
    values, intervals, failures = {}, {}, []
    for r in deduplicated(records):
        row, task = row_of(r), r.task
        if r.status != "finished":
            failures.append(Failure(str(row), task, r.trial, r.reason or "", r.path or "", row=row))
            continue
        for metric in task_metrics(task, [r]) + error_metrics([r]) + fp_metrics([r]):
            v = r.metric(metric)
            if v is not None:
                values.setdefault((row, task), {}).setdefault(metric, []).append(v)
                intervals.setdefault((row, task), {}).setdefault(metric, []).append(r.metric(metric + INTERVAL_SUFFIX))
    stats = {k: {m: Stat(tuple(v), _intervals(intervals[k][m])) for m, v in ms.items()} for k, ms in values.items()}
    return stats, failures


def _intervals(half_widths) -> tuple:
    """The trials' interval half-widths, () when none of them recorded one (most tasks: no interval)."""
    return () if all(h is None for h in half_widths) else tuple(half_widths)


def welch(a: Stat, b: Stat) -> float | None:
    """Two-sided p-value of Welch's t-test between two cells; None when either has < 2 trials."""
    if a.n < 2 or b.n < 2:
        return None
    from scipy.special import stdtr

    if a.std == 0 and b.std == 0:  # scipy gives NaN: equal constants do not differ, unequal ones do
        return 1.0 if a.mean == b.mean else 0.0
    # scipy.stats.ttest_ind(equal_var=False)'s formula, computed here: the same p-value, ~100x faster (a board
    # of 1,700 rows runs thousands of tests); t's distribution from scipy's Student t CDF.
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    t = (a.mean - b.mean) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return float(2.0 * stdtr(df, -abs(t)))
