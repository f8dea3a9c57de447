"""The data section: images/s of detectron2's `build_detection_train_loader` with the smoke
config's mapper, for several worker counts (the first batch, worker start-up included, apart)."""
import time
from pathlib import Path

from benchmarks.common import quiet_logs, smoke_cfg, synthetic_data


def data_figures(workdir, *, workers=(0, 1, 2), batches=30, progress=None) -> dict:
    """Images/s of detectron2's train loader (smoke config's DatasetMapper) per worker count."""
    from detectron2.data import DatasetMapper, build_detection_train_loader
    from detectron2.utils.env import seed_all_rng

    workdir = Path(workdir)
    out = {"batches": batches, "workers": {}}
    with quiet_logs():
        datasets = synthetic_data("voc07", workdir / "voc")
        for n in workers:
            if progress:
                progress(f"data: train loader with {n} workers ...")
            cfg = smoke_cfg(workdir / "data", datasets, ["DATALOADER.NUM_WORKERS", str(n)])
            seed_all_rng(0)
            loader = build_detection_train_loader(cfg, mapper=DatasetMapper(cfg, is_train=True))
            it = iter(loader)
            t0 = time.perf_counter()
            next(it)  # worker start-up and the first batch: reported apart
            first = time.perf_counter() - t0
            images = 0
            t0 = time.perf_counter()
            for _ in range(batches):
                images += len(next(it))
            elapsed = time.perf_counter() - t0
            del it, loader
            out["images_per_batch"] = int(cfg.SOLVER.IMS_PER_BATCH)
            out["workers"][str(n)] = {"images_per_s": images / elapsed, "images": images, "first_batch_s": first}
    return out
