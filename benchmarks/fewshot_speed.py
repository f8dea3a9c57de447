"""The few-shot section: what fewshot_miniimagenet's evaluation costs on this machine, with the
features cached in the run folder versus not (benchmark.engine.fewshot).

Cached: a run (or a rerun) whose run folder holds the features only trains the episodes' heads;
`episodes_s_per_100` is measured on the protocol's default head (CloserLookFewShot's Baseline: 100
epochs of SGD over the support set, 200 steps per 1-shot and 700 per 5-shot episode), half 1-shot,
half 5-shot, on one process. Not cached: the features of mini-ImageNet's 12,000 test images are
extracted first (a ResNet-18 at 224 px, torchvision init; measured on `images` synthetic 84 px images
and scaled), which a full run pays once for its 1,200 episodes.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/fewshot_speed.py`: `benchmarks` imports from the checkout

from benchmarks.common import quiet_logs  # noqa: E402

TEST_IMAGES = 12000  # mini-ImageNet's test.csv: 20 classes x 600 images
PROTOCOL_EPISODES = 1200  # 600 1-shot + 600 5-shot


def _config():
    from benchmark.tasks import get_task
    from benchmark.tasks.config import build_config
    from benchmark.weights.architecture import architecture_settings

    cfg, _ = build_config(get_task("fewshot_miniimagenet"), architecture_settings(18, 64), ["MODEL.DEVICE", "cpu"],
                          device_memory_gb=None)
    return cfg


def episode_seconds(cfg, episodes: int) -> float:
    """Seconds of `episodes` episodes (half 1-shot, half 5-shot) on cached features, one process."""
    from benchmark.engine.fewshot import episode_params, run_episodes

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20), 600)
    features = rng.normal(size=(labels.size, 512)).astype(np.float32)
    items = [(1, e) for e in range(episodes // 2)] + [(5, e) for e in range(episodes - episodes // 2)]
    start = time.perf_counter()
    run_episodes(features, labels, episode_params(cfg), items, workers=1)
    return time.perf_counter() - start


def extraction_images_per_s(cfg, workdir, images: int) -> float:
    """Images/s of the feature extraction (decode, resize 257, crop 224, ResNet-18 forward) on this CPU."""
    import torch
    from detectron2.modeling import build_model
    from PIL import Image

    from benchmark.engine.fewshot import extract_features

    folder = Path(workdir) / "fewshot_images"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for i in range(images):
        path = folder / f"n0000000{i:08d}.jpg"
        Image.fromarray(rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    model = build_model(cfg).eval()
    with torch.no_grad():
        extract_features(model, cfg, files[:2])  # warm-up: first-call allocations
        start = time.perf_counter()
        extract_features(model, cfg, files)
    return images / (time.perf_counter() - start)


def fewshot_figures(workdir=None, *, episodes=100, images=64, progress=None) -> dict:
    with quiet_logs(), tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cfg = _config()
        if progress:
            progress(f"few-shot: {episodes} episodes on cached features ...")
        per_100 = episode_seconds(cfg, episodes) * 100 / episodes
        if progress:
            progress(f"few-shot: feature extraction of {images} images ...")
        rate = extraction_images_per_s(cfg, tmp, images)
    extraction = TEST_IMAGES / rate
    return {"episodes": episodes, "episodes_s_per_100": per_100, "extraction_images": images,
            "extraction_images_per_s": rate, "extraction_s_full": extraction,
            "protocol_s_cached": per_100 * PROTOCOL_EPISODES / 100,
            "protocol_s_uncached": per_100 * PROTOCOL_EPISODES / 100 + extraction,
            "uncached_s_per_100": per_100 + extraction * 100 / PROTOCOL_EPISODES}


def rows(f) -> list:
    """The bench table's rows of this section."""
    return [("few-shot, 100 episodes, features cached", f"{f['episodes_s_per_100']:.1f} s",
             f"Baseline head, half 1-shot, half 5-shot; the protocol's 1,200: {f['protocol_s_cached']:.0f} s"),
            ("few-shot, 100 episodes, features not cached", f"{f['uncached_s_per_100']:.1f} s",
             f"ResNet-18 extraction {f['extraction_images_per_s']:.1f} img/s: 12,000 images "
             f"{f['extraction_s_full']:.0f} s once per run; the protocol's 1,200: {f['protocol_s_uncached']:.0f} s")]


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    figures = fewshot_figures(progress=print)
    for name, value, note in rows(figures):
        print(f"{name:45s} {value:>10s}  {note}")
