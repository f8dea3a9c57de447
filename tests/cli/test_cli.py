"""The command-line tools as a user runs them: listings, cheap imports, no global side effects."""
import json
import os
import re
import subprocess
import sys
import warnings

import pytest

from benchmark.tasks import list_tasks
from benchmark.weights import zoo
from tests.helpers.refusal import one_error_line
from tests.helpers.tools import ROOT, run_tool

HEAVY = ("torch", "detectron2")


def _columns(line):
    return re.split(r"\s{2,}", line.strip())


def test_list_tasks_prints_the_registry_as_a_table():
    out = run_tool("run_transfer", "--list-tasks")
    assert out.returncode == 0, out.stderr
    table, assumptions = out.stdout.split("\n\n")
    lines = table.splitlines()
    # each task's assumptions follow the table (configs/sources.yaml)
    assert [ln.split(":")[:2] for ln in assumptions.splitlines()[1:]] == [
        ["  cityscapes", " cityscapes-codebase"], ["  coco", " coco-1x-schedule"], ["  coco_2x", " none (every value published)"],
        ["  fewshot_miniimagenet", " fewshot-protocol"], ["  imagenet_linear", " linear-readoff-recipe"],
        ["  mafl_landmarks", " landmark-head"], ["  mafl_landmarks", " landmark-input"],
        ["  mafl_landmarks", " mafl-test-overlap"], ["  mafl_landmarks", " landmark-schedule"],
        ["  voc07", " voc07-schedule"], ["  voc0712", " none (every value published)"]]
    assert _columns(lines[0]) == ["task", "data", "primary metric", "config", "description"]
    assert [_columns(ln) for ln in lines[1:]] == [[t.name, t.data_format, t.primary_metric, t.config, t.description]
                                                  for t in list_tasks()]
    assert [ln.split()[0] for ln in lines[1:]] == ["cityscapes", "coco", "coco_2x", "fewshot_miniimagenet",
                                                   "imagenet_linear", "mafl_landmarks", "voc07", "voc0712"]


def test_list_zoo_names_every_checkpoint_with_its_format_source_and_note():
    out = run_tool("run_transfer", "--list-zoo")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    n = len(zoo.list_zoo())
    assert lines[0] == f"{n} checkpoints (ResNet-50); zoo:NAME downloads it once and pins its sha256" and lines[1] == ""
    assert _columns(lines[2]) == ["name", "method", "format", "data", "paper", "source"]
    rows = [_columns(ln) for ln in lines[3:3 + n]]
    assert [r[0].split(" [")[0] for r in rows] == [e.name for e in zoo.list_zoo()]
    assert [r[2] for r in rows] == [e.shown_format for e in zoo.list_zoo()]
    assert [r[-1] for r in rows] == [e.source for e in zoo.list_zoo()]
    assert rows[[e.name for e in zoo.list_zoo()].index("mocov3_1000ep")][1:3] == ["MoCo v3, 1000 epochs", "mocov3"]
    urls = lines[3 + n:]
    assert urls[0] == "" and urls[1].startswith("URLs: the paper's (24): https://frontiers.blob.core.windows.net/")
    assert "  swav_800ep: https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar" in urls
    notes = [ln for ln in lines if ln.startswith("[")]
    assert notes[0].startswith("[1] supervised_imagenet: ") and "supervised_synthia.pth" in notes[0]  # Table 2's link
    assert notes[1].startswith("[2] moco_v2_places: ") and "moco_v2_palces.pth" in notes[1]
    assert out.stdout == run_tool("reproduce", "--list-zoo").stdout  # one table, two tools


def test_list_formats_names_every_format_with_its_source():
    from benchmark.weights.formats import SOURCES

    out = run_tool("convert", "--list-formats")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"{len(SOURCES)} checkpoint formats (bottleneck ResNet-50/101/152 of any width)"
    assert _columns(lines[2]) == ["name", "detected", "description", "source"]
    rows = [_columns(ln) for ln in lines[3:3 + len(SOURCES)]]
    assert [(r[0], r[-1]) for r in rows] == [(name, s.source) for name, s in SOURCES.items()]


def test_task_and_weights_are_required():
    out = run_tool("run_transfer", "--task", "voc07")
    assert out.returncode == 2 and "--task and --weights are required" in out.stderr


# The tools' cheap paths: a user waits for none of torch and detectron2 (seconds to import).
_CHEAP = [("run_transfer", "--help"), ("run_transfer", "--list-tasks"), ("run_transfer", "--list-zoo"),
          ("leaderboard", "--help"), ("reproduce", "--help"), ("reproduce", "--list-zoo"), ("fp_chart", "--help"),
          ("invert", "--help")]

# Runs tools/NAME.py as `python tools/NAME.py ARGS` does and reports, at exit, the exit status and
# which heavy modules were imported.
_RUN_SCRIPT = """
import json, runpy, sys
script, report, *args = sys.argv[1:]
sys.argv = [script, *args]
try:
    runpy.run_path(script, run_name="__main__")
    code = 0
except SystemExit as e:
    code = e.code
with open(report, "w") as f:
    json.dump({"code": code, "imported": sorted(m for m in %r if m in sys.modules)}, f)
""" % (HEAVY,)


@pytest.mark.parametrize("name, flag", _CHEAP, ids=[f"{n} {f}" for n, f in _CHEAP])
def test_cheap_paths_import_neither_torch_nor_detectron2(tmp_path, name, flag):
    report = tmp_path / "report.json"
    out = subprocess.run([sys.executable, "-c", _RUN_SCRIPT, str(ROOT / "tools" / f"{name}.py"), str(report), flag],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(report.read_text()) == {"code": 0, "imported": []}, out.stderr
    assert out.stdout.strip() and not out.stderr


_LIGHT_MODULES = ["benchmark.records", "benchmark.records.results", "benchmark.records.leaderboard",
                  "benchmark.records.pooling", "benchmark.records.render", "benchmark.records.page",
                  "benchmark.records.fp_chart", "benchmark.cli.fp_chart",
                  "benchmark.reproduce", "benchmark.reproduce.paper", "benchmark.reproduce.published",
                  "benchmark.reproduce.plan", "benchmark.reproduce.judge", "benchmark.reproduce.report",
                  "benchmark.reproduce.run", "benchmark.reproduce.launch", "benchmark.reproduce.cost",
                  "benchmark.cli", "benchmark.cli.run_transfer",
                  "benchmark.cli.leaderboard", "benchmark.cli.reproduce", "benchmark.cli.invert"]

# In a fresh interpreter: warning filters, logging levels and handlers before and after the imports.
_STATE_SCRIPT = """
import importlib, json, logging, sys, warnings

def state():
    loggers = {name: (lg.level, len(lg.handlers)) for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger)}
    return {"filters": [repr(f) for f in warnings.filters], "root": [logging.root.level, len(logging.root.handlers)],
            "loggers": loggers, "disabled": logging.root.manager.disable}

before = state()
for name in sys.argv[1:]:
    importlib.import_module(name)
after = state()
after["loggers"] = {k: v for k, v in after["loggers"].items() if k in before["loggers"] or v != (0, 0)}
print(json.dumps({"before": before, "after": after, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


@pytest.mark.parametrize("module", _LIGHT_MODULES)
def test_importing_a_records_or_cli_module_changes_no_warning_filter_nor_logging(tmp_path, module):
    out = subprocess.run([sys.executable, "-c", _STATE_SCRIPT, module], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["after"]["filters"] == got["before"]["filters"]
    assert got["after"]["root"] == got["before"]["root"]
    assert got["after"]["loggers"] == got["before"]["loggers"]  # new loggers only at NOTSET without handlers
    assert got["after"]["disabled"] == got["before"]["disabled"]
    assert got["heavy"] == []


JIT_NOTICE = "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."


def test_quieting_hides_the_jit_notice_only_while_working_and_restores_everything(monkeypatch):
    from benchmark.cli import quiet_third_party_deprecations

    monkeypatch.setenv("PYTHONWARNINGS", "default::UserWarning")
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_third_party_deprecations():
            warnings.warn(JIT_NOTICE, FutureWarning)  # what detectron2's import triggers in torch
            warnings.warn("something of ours is deprecated", FutureWarning)  # not third-party noise: shown
            child = os.environ["PYTHONWARNINGS"]
        warnings.warn(JIT_NOTICE, FutureWarning)  # after the work: shown again
    assert [str(w.message) for w in seen] == ["something of ours is deprecated", JIT_NOTICE]
    assert child == "default::UserWarning,ignore:`torch.jit.script` is deprecated:FutureWarning"  # for spawned workers
    assert warnings.filters == before
    assert os.environ["PYTHONWARNINGS"] == "default::UserWarning"


def test_spawned_workers_get_the_quieting_through_the_environment(tmp_path, monkeypatch):
    from benchmark.cli import quiet_third_party_deprecations

    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    code = f"import warnings; warnings.warn({JIT_NOTICE!r}, FutureWarning); warnings.warn('ours', FutureWarning)"
    with quiet_third_party_deprecations():
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0
    assert "ours" in child.stderr and "torch.jit.script" not in child.stderr
    assert "PYTHONWARNINGS" not in os.environ


@pytest.mark.slow  # a fresh interpreter importing torch and detectron2
def test_a_refused_run_says_one_line_without_third_party_notices(tmp_path):
    """The real path (engine, torch, detectron2 imported) under the tool's quieting: a run refused
    before compute prints its one error line and none of detectron2's torch.jit.script notices."""
    out = run_tool("run_transfer", "--task", "voc07", "--smoke", "--weights", tmp_path / "missing.pth",
                   "--output", tmp_path / "out", cwd=tmp_path)
    assert out.returncode == 1
    assert "missing.pth" in one_error_line(out.stderr)
    assert not (tmp_path / "out").exists()
