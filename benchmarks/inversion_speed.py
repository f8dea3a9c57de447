"""The inversion section: seconds per inversion step (tools/invert.py) on this machine.

One step is the authors' (benchmark.inversion.loop): the `skip` generators' forward on their 32 x 256 x 256
noise, the top-left 224 crop through a ResNet-50 (width 64, torchvision initialisation; the weights do
not change the cost) to res5, the feature MSE, the backward through both and Adam's update. Measured with
`batch` generators at once (images x checkpoints; tools/invert.py --batch 4 and one checkpoint by
default, the Must-show run two images), after one warm-up step; a full inversion is `Settings().steps`
(3,001) such steps.
"""
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/inversion_speed.py`: `benchmarks` imports from the checkout

from benchmarks.common import quiet_logs  # noqa: E402


def inversion_figures(workdir=None, *, batch=2, steps=3, crop=224, noise_size=256, width=64, progress=None) -> dict:
    import torch

    from benchmark.inversion import loop
    from benchmark.inversion.features import FeatureExtractor
    from benchmark.inversion.recipe import Settings
    from benchmark.weights.convert import prepare_weights
    from benchmark.weights.synthetic import make_synthetic_checkpoint

    with quiet_logs(), tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if progress:
            progress(f"inversion: {steps} steps of {batch} generator(s) at {crop} px, ResNet-50 width {width} ...")
        path = make_synthetic_checkpoint(Path(tmp) / "r50.pth", "torchvision", 0, 50, width, "torchvision")
        extractor = FeatureExtractor(prepare_weights(str(path), cache_dir=Path(tmp) / "cache"), "res5")
        sources = torch.rand((batch, 3, crop, crop), generator=torch.Generator().manual_seed(0))
        loop.invert([extractor], sources, 1, 0, noise_size)  # warm-up: first-call allocations
        start = time.perf_counter()
        loop.invert([extractor], sources, steps, 0, noise_size)
        elapsed = time.perf_counter() - start
    # the timed call also extracts the targets and renders the result once: less than one step's work
    per_step = elapsed / steps
    full = Settings().steps
    return {"batch": batch, "steps": steps, "crop": crop, "noise_size": noise_size, "width": width,
            "s_per_step": per_step, "s_per_step_per_image": per_step / batch, "full_steps": full,
            "s_full_inversion_batch": per_step * full}


def rows(f) -> list:
    """The bench table's rows of this section."""
    return [(f"inversion step @{f['crop']}px, batch {f['batch']}", f"{f['s_per_step']:.2f} s",
             f"{f['s_per_step_per_image']:.2f} s per image; the recipe's {f['full_steps']:,} steps: "
             f"{f['s_full_inversion_batch'] / 60:.0f} min for the batch (R50 width {f['width']}, noise {f['noise_size']})")]


if __name__ == "__main__":
    figures = inversion_figures(progress=print)
    for name, value, note in rows(figures):
        print(f"{name:45s} {value:>10s}  {note}")
