"""tools/invert.py as a user runs it: outputs, the record, resuming, and refusals before any compute."""
import json

import numpy as np
import pytest
from PIL import Image

from benchmark.records.results import read_record
from tests.helpers.tools import tool

SMALL = ["--steps", "2", "--resize", "73", "--crop", "64", "--noise-size", "128"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    root = tmp_path_factory.mktemp("ckpts")
    return [make_synthetic_checkpoint(root / "sup.pth", "torchvision", 0, 50, 8, "torchvision"),
            make_synthetic_checkpoint(root / "moco.pth", "moco", 1, 50, 8, "torchvision")]


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_checkpoints_two_default_images_give_pictures_grid_records_and_resume(tmp_path, checkpoints, capsys):
    out = tmp_path / "out"
    argv = ["--weights", str(checkpoints[0]), "--weights", str(checkpoints[1]), "--output", str(out), *SMALL]
    assert tool("invert")(argv) == 0
    assert "4 reconstruction(s) made, 0 already complete" in capsys.readouterr().out
    task = out / "inversion_res5"
    grid = Image.open(task / "grid.png")
    assert grid.size[0] > grid.size[1]  # 3 columns (source + 2 checkpoints) x 2 rows
    for name in ("sup", "moco"):
        record = read_record(task / name / "results.json")
        assert record.kind == "analysis" and record.task == "inversion_res5" and record.iterations == 2
        assert record.environment["image_metrics"].startswith("torchmetrics ")
        assert "steps 2 (the authors' recipe: 3001)" in record.deviations
        per_image = []
        for stem in ("synthetic_0", "synthetic_1"):
            stored = json.loads((task / name / f"{stem}.json").read_text())
            assert record.metrics[f"image:{stem}"] == {m: stored[m] for m in ("PSNR", "SSIM", "loss")}
            # the PSNR is the reconstruction's against the source crop: recomputed from the two PNGs (8-bit)
            rec = np.asarray(Image.open(task / name / f"{stem}.png"), np.float64) / 255
            src = np.asarray(Image.open(task / "sources" / f"{stem}.png"), np.float64) / 255
            assert rec.shape == src.shape == (64, 64, 3)
            assert abs(10 * np.log10(1 / np.mean((rec - src) ** 2)) - stored["PSNR"]) < 0.1
            per_image.append(stored["PSNR"])
        assert record.metrics["inversion"]["PSNR"] == pytest.approx(np.mean(per_image))
    before = _files(out)
    assert tool("invert")(argv) == 0  # everything complete: nothing inverted again, nothing changed but the records' time
    assert "0 reconstruction(s) made, 4 already complete" in capsys.readouterr().out
    after = _files(out)
    assert {k: v for k, v in after.items() if k.name != "results.json"} == \
        {k: v for k, v in before.items() if k.name != "results.json"}
    (task / "moco" / "synthetic_1.json").unlink()  # an interrupted pair: only it is made again
    assert tool("invert")(argv) == 0
    assert "1 reconstruction(s) made, 3 already complete" in capsys.readouterr().out
    assert _files(out)[(task / "moco" / "synthetic_1.png").relative_to(out)] == before[(task / "moco" / "synthetic_1.png").relative_to(out)]


@pytest.mark.parametrize("args, message", [
    (["--noise-size", "100"], "--noise-size 100: must be a multiple of 64"),
    (["--crop", "300"], "--crop 300 is larger than --resize 256"),
    (["--steps", "0"], "--steps 0: must be at least 1"),
    (["--images", "MISSING.png"], "MISSING.png: no such file or folder"),
    (["--batch", "0"], "--batch 0: must be at least 1"),
    (["--device", "gpu0"], "--device 'gpu0': not a torch device"),
    (["--seed", "-1"], "--seed -1: must be in 0..2**32-1"),
    (["--seed", str(10**23)], f"--seed {10**23}: must be in 0..2**32-1"),  # was torch's overflow, mid-run
    (["--lr", "nan"], "--lr nan: must be a positive number"),
])
def test_bad_options_are_one_error_line_and_write_nothing(tmp_path, checkpoints, capsys, args, message):
    out = tmp_path / "out"
    assert tool("invert")(["--weights", str(checkpoints[0]), "--output", str(out), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_a_missing_checkpoint_or_an_unreadable_image_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert tool("invert")(["--weights", str(tmp_path / "none.pth"), "--output", str(out)]) == 1
    assert "none.pth" in capsys.readouterr().err
    assert tool("invert")(["--weights", str(tmp_path / "none.pth"), "--images", str(bad), "--output", str(out)]) == 1
    assert "bad.png: not a readable image" in capsys.readouterr().err
    assert not out.exists()
