"""The task registry: each transfer task is a frozen record of its protocol (no torch, no detectron2).

A task names its config (under configs/), its datasets, its dataset family (which gives the
evaluator) and the metrics it reports. The protocol values themselves live in the config files
and are pinned by tests/tasks/test_config.py against the published protocols; where each comes from is in their
[tags] (configs/sources.yaml), and a task's `assumptions` are read from those tags.
"""
import fnmatch
from dataclasses import dataclass
from pathlib import Path

from benchmark import CONFIG_DIR

# Metrics that count AP points lost to errors, of the detection tasks' error analyses (benchmark.tasks.errors,
# benchmark.tasks.fp_analysis); the shares of Hoiem's error types (fp/loc ...) have no better direction.
ERROR_POINTS_PREFIXES = ("errors/", "fp/dap_")


@dataclass(frozen=True, kw_only=True)  # keywords only: eight fields, several of one type, are easy to misplace
class Task:
    name: str
    config: str  # path under configs/
    train: tuple  # protocol dataset names (voc_2007_trainval); registered per data root under names of ours
    test: tuple
    # Its dataset family (benchmark.data.families.FAMILIES): "voc" | "coco" | "cityscapes" | "imagenet".
    # The family says where the datasets live, how they are registered, validated, synthesized and evaluated.
    data_format: str
    # A record's metric "group/name" may carry its 95% confidence interval's half-width as
    # "group/name" + INTERVAL_SUFFIX (few-shot accuracy: 1.96 * std / sqrt(episodes)).
    primary_metric: str  # "group/metric" in the run record's metrics
    metrics: tuple  # every "group/metric" the task reports, primary first
    source: str  # where the protocol comes from
    description: str = ""
    # Metrics of `metrics` for which a lower value is better (an error, a distance); all others are
    # higher-is-better. The leaderboard's best mark and the paper tables' direction checks read it.
    lower_is_better: tuple = ()

    def __post_init__(self):
        # An unknown family, or a dataset its family does not place, is refused when the task is
        # made, not when it runs.
        for name in (*self.train, *self.test):
            self.family.layout(name)
        if not set(self.lower_is_better) <= set(self.metrics):
            raise ValueError(f"task {self.name!r}: lower_is_better {self.lower_is_better} not among its metrics")

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of `metric` ("group/name") is the better one. The error analyses' AP points lost
        to a kind of error (TIDE's `errors/*`, Hoiem's `fp/dap_*`) are errors: lower is better."""
        if metric.startswith(ERROR_POINTS_PREFIXES):
            return False
        return metric not in self.lower_is_better

    @property
    def config_path(self) -> Path:
        return CONFIG_DIR / self.config

    @property
    def assumptions(self) -> tuple:
        """The protocol values no publication gives for this task, as 'ID: why' (empty when fully
        published): the [assumption:ID] tags of its config chain (benchmark.tasks.sources)."""
        from benchmark.tasks.sources import config_assumptions

        return config_assumptions(self.config_path)

    @property
    def family(self):
        """The DatasetFamily of `data_format` (pure Python, like this module)."""
        from benchmark.data.families import get_family

        return get_family(self.data_format)


INTERVAL_SUFFIX = "_ci95"  # "fewshot/1shot" -> "fewshot/1shot_ci95": the half-width of its 95% interval


class UnknownTaskError(KeyError):
    def __str__(self):
        return self.args[0]


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}"
        ) from None


def list_tasks(pattern: str = "*") -> list[Task]:
    return [t for n, t in sorted(_TASKS.items()) if fnmatch.fnmatchcase(n, pattern)]
