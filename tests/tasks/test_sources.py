"""Every protocol value names its source, every source is a listed file read at a commit, and the
tasks' assumptions are exactly those their configs tag (benchmark/tasks/sources.py)."""
import re

import pytest

from benchmark import CONFIG_DIR
from benchmark.tasks import get_task, list_tasks, sources

PROTOCOL_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p.name not in ("zoo.yaml", "sources.yaml"))
SOURCES = sources.load_sources()


def _resolves(kind, name) -> bool:
    if kind in SOURCES["repositories"]:
        return f"{kind}:{name}" in SOURCES["files"]
    if kind in ("paper", "doc"):
        return f"{kind}:{name}" in SOURCES["documents"]
    if kind == "assumption":
        return name in SOURCES["assumptions"]
    return kind == "suite" and bool(name.strip())


def test_the_protocol_configs_are_the_task_configs_and_their_bases():
    names = [p.name for p in PROTOCOL_CONFIGS]
    assert names == ["Base-DeepLabV3-OS16.yaml", "Base-RCNN-C4-Transfer.yaml", "cityscapes.yaml", "coco.yaml",
                     "coco_2x.yaml", "fewshot_miniimagenet.yaml", "imagenet_linear.yaml", "mafl_landmarks.yaml",
                     "voc07.yaml", "voc0712.yaml"]
    assert {t.config for t in list_tasks()} <= set(names)


@pytest.mark.parametrize("path", PROTOCOL_CONFIGS, ids=lambda p: p.name)
def test_every_value_line_carries_a_source_that_is_listed(path):
    lines = sources.value_lines(path)
    assert len(lines) >= 3  # the parser found the values
    for key, number, tags in lines:
        if key in ("_BASE_", "VERSION"):
            continue
        assert tags, f"{path.name}:{number} {key} has no [source] tag"
        for kind, name in tags:
            assert _resolves(kind, name), f"{path.name}:{number} {key}: [{kind}:{name}] is not in sources.yaml"
    for kind, name in sources.file_tags(path):  # header comments cite listed sources too
        assert _resolves(kind, name), f"{path.name}: [{kind}:{name}] is not in sources.yaml"


def test_every_listed_source_is_a_file_at_a_commit_and_is_cited():
    cited = {f"{k}:{n}" for p in PROTOCOL_CONFIGS for k, n in sources.file_tags(p)}
    for key, entry in SOURCES["files"].items():
        repo, _, path = key.partition(":")
        assert repo in SOURCES["repositories"] and path, key
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), key
        assert isinstance(entry["verified"], bool), key
        assert entry["verified"] or entry.get("note"), f"{key}: unverified without a note saying why"
        assert key in cited, f"{key} is listed but no config cites it"
    for key in SOURCES["documents"]:
        assert key in cited, f"{key} is listed but no config cites it"
    cited_assumptions = {n for p in PROTOCOL_CONFIGS for k, n in sources.file_tags(p) if k == "assumption"}
    assert cited_assumptions == set(SOURCES["assumptions"])


def test_the_schedules_read_from_unpublished_or_later_files_are_assumptions():
    assert sources.assumption_ids(get_task("voc07").assumptions) == ["voc07-schedule"]
    assert sources.assumption_ids(get_task("coco").assumptions) == ["coco-1x-schedule"]
    assert sources.assumption_ids(get_task("cityscapes").assumptions) == ["cityscapes-codebase"]
    # MoCo's published configs, key for key; coco_2x overrides the 1x values that carry coco's assumption
    assert get_task("voc0712").assumptions == () and get_task("coco_2x").assumptions == ()
    text = get_task("voc07").assumptions[0]
    assert "VISSL" in text and "after the paper" in text and "not published" in text
    assert "mmsegmentation" in get_task("cityscapes").assumptions[0]


def test_the_assumed_values_are_the_ones_tagged():
    tagged = {key for key, (_, tags) in sources.effective_tags(get_task("voc07").config_path).items()
              if ("assumption", "voc07-schedule") in tags}
    assert tagged == {"SOLVER.MAX_ITER", "SOLVER.STEPS", "SOLVER.WARMUP_ITERS"}
    tagged = {key for key, (_, tags) in sources.effective_tags(get_task("coco").config_path).items()
              if ("assumption", "coco-1x-schedule") in tags}
    assert tagged == {"SOLVER.MAX_ITER", "SOLVER.STEPS"}


def test_no_config_or_task_cites_a_file_moco_never_published():
    # MoCo's detection/configs holds coco_R_50_C4_2x_moco.yaml only; the 1x values are detectron2's.
    texts = [p.read_text() for p in CONFIG_DIR.rglob("*.yaml")] + [t.source for t in list_tasks()]
    assert not any("coco_R_50_C4_1x_moco" in text for text in texts)


@pytest.mark.parametrize("name", [t.name for t in list_tasks()])
def test_the_files_a_task_source_names_are_listed(name):
    listed = {key.partition(":")[2].rsplit("/", 1)[-1] for key in SOURCES["files"]}
    named = re.findall(r"[\w.-]+\.(?:yaml|py)\b", get_task(name).source)  # configs, or a script (main_lincls.py)
    if not named and name == "mafl_landmarks":
        # Its protocol is read from shared/REFERENCES.md's entries, not from a file read at a full commit:
        # the source says it is assumed, and its config's values carry the assumption tags.
        assert "assumed" in get_task(name).source and "landmark-head" in sources.assumption_ids(get_task(name).assumptions)
        return
    assert named and set(named) <= listed, (name, named)


@pytest.mark.parametrize("text,tags", [
    ("A:\n  B: 1\n", ()),  # no tag: the rule test above fails such a line
    ("A:\n  B: 1  # why [suite:because]\n", (("suite", "because"),)),
    ("# [assumption:x] above explains, does not source\nA:\n  B: 1\n", ()),
])
def test_value_lines_parse_nesting_and_tags(tmp_path, text, tags):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    ((key, number, found),) = sources.value_lines(path)
    assert (key, found) == ("A.B", tags) and number == text.count("\n")
