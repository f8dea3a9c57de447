"""The data section: images/s of detectron2's `build_detection_train_loader` with the smoke
config's mapper, for several worker counts (the first batch, worker start-up included, apart), and
the cost of the layout check that runs before compute (seconds per 1,000 VOC images: every file,
its image header and end marker, its annotation as the loader and the evaluator read it)."""
import time
from pathlib import Path

from benchmarks.common import quiet_logs, smoke_cfg, synthetic_data


def layout_check_figure(workdir, images: int) -> dict:
    """Seconds of the VOC layout check (benchmark.data.voc.check) over `images` synthetic images."""
    from benchmark.data import get_family

    voc = get_family("voc")
    root = voc.write_synthetic(Path(workdir) / "voc_layout", num_train=images)
    start = time.perf_counter()
    voc.validate("voc_2007_trainval", root)
    elapsed = time.perf_counter() - start
    return {"images": images, "s": elapsed, "s_per_1000_images": elapsed * 1000 / images}


def data_figures(workdir, *, workers=(0, 1, 2), batches=30, check_images=1000, progress=None) -> dict:
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
        if check_images:
            if progress:
                progress(f"data: layout check of {check_images} VOC images ...")
            out["layout_check"] = layout_check_figure(workdir, check_images)
    return out
