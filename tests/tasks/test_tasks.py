"""The task registry: lookup, patterns, errors."""
import pytest

from benchmark import CONFIG_DIR
from benchmark.tasks import Task, UnknownTaskError, get_task, list_tasks, register_task


def test_six_tasks_registered():
    assert [t.name for t in list_tasks()] == ["cityscapes", "coco", "coco_2x", "fewshot_miniimagenet", "imagenet_linear", "mafl_landmarks",
                                                 "voc07", "voc0712"]


@pytest.mark.parametrize("name", ["cityscapes", "coco", "coco_2x", "imagenet_linear", "voc07", "voc0712"])
def test_a_task_has_its_config_in_the_package_and_its_primary_metric_first(name):
    task = get_task(name)
    assert task.primary_metric == task.metrics[0]
    assert task.config_path == CONFIG_DIR / f"{name}.yaml" and task.config_path.is_file()


def test_pattern():
    assert [t.name for t in list_tasks("voc*")] == ["voc07", "voc0712"]
    assert [t.name for t in list_tasks("coco*")] == ["coco", "coco_2x"]
    assert list_tasks("nothing*") == []


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTaskError) as exc:
        get_task("voc2007")
    assert str(exc.value) == ("unknown task 'voc2007'; known tasks: cityscapes, coco, coco_2x, "
                              "fewshot_miniimagenet, imagenet_linear, mafl_landmarks, voc07, voc0712")


def test_duplicate_registration_is_an_error_and_changes_nothing():
    registered = get_task("voc07")
    duplicate = Task(name="voc07", config="x.yaml", train=(), test=(), data_format="voc", primary_metric="bbox/AP",
                     metrics=("bbox/AP",), source="test")
    with pytest.raises(ValueError, match="task 'voc07' is already registered"):
        register_task(duplicate)
    assert get_task("voc07") is registered


def test_a_task_is_made_with_keywords_only():
    """Fields named at every call: a positional Task silently put a metric where the family goes."""
    with pytest.raises(TypeError):
        Task("voc08", "x.yaml", (), (), "voc", "bbox/AP", ("bbox/AP",), "test")
