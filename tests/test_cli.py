"""The listing flags of tools/run_transfer.py, run as a user runs them."""
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "run_transfer.py"


def _run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def test_list_zoo_names_every_released_checkpoint_with_its_note():
    out = _run("--list-zoo")
    assert out.returncode == 0, out.stderr
    for name in ("moco_v2_imagenet_aug_f", "supervised_imagenet", "moco_v2_places", "exemplar_v1", "exemplar_v2"):
        assert f"\n{name} " in out.stdout
    assert out.stdout.startswith("24 checkpoints")
    assert "supervised_synthia.pth" in out.stdout  # Table 2's published-link discrepancy is shown
    assert "moco_v2_palces.pth" in out.stdout


def test_list_tasks_and_usage_errors():
    out = _run("--list-tasks")
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == ["cityscapes", "coco", "coco_2x", "voc07", "voc0712"]
    missing = _run("--task", "voc07")
    assert missing.returncode == 2 and "--task and --weights are required" in missing.stderr
