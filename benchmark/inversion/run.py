"""The inversion command's work: inputs checked first, then images x checkpoints inverted in batches,
resumable per image, then the reconstructions, the grid figure and one run record per checkpoint.

Layout under OUTPUT (TASK is `inversion_<layer>`):

    OUTPUT/TASK/grid.png                 images x checkpoints, the source crop first (figure.py)
    OUTPUT/TASK/sources/<stem>.png       the source crops the numbers compare against
    OUTPUT/TASK/<weights>/<stem>.png     a reconstruction
    OUTPUT/TASK/<weights>/<stem>.json    its numbers and the settings and weights it was made with
    OUTPUT/TASK/<weights>/results.json   the run record (kind "analysis")
    OUTPUT/inputs/synthetic_<i>.png      the default images, when no image is given

Resuming: an (image, checkpoint) pair whose PNG and JSON exist, and whose JSON names the same settings
and the same weights (sha256), is complete; a batch (a fixed slice of --batch images of the image list, x
all checkpoints) whose pairs are all complete is not run again. Every file is written atomically, so a
killed run leaves complete pairs or none. A pair made with other settings is made again.

The record (benchmark.records.results; kind "analysis", never pooled with fine-tuning runs, whose kinds
differ): task TASK, metrics {"inversion": means over the images of PSNR, SSIM and the final feature loss
(the MSE over the target features' mean square, loop.invert's rel_loss);
"image:<stem>": the same per image, kept in the record but not shown on the board
(records.pooling.ITEM_GROUP_MARK)}, iterations the steps, ims_per_batch the images per batch, the
metrics' implementation and version in `environment["image_metrics"]`, each departure from the authors'
recipe in `deviations`.
"""
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

from benchmark.fileio import unusable_output
from benchmark.inversion import images as image_io
from benchmark.inversion.recipe import FIGURE_NAME, RECORD_KIND, Settings
from benchmark.records.pooling import ITEM_GROUP_MARK


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def prepare(weights_specs, image_sources, output, settings: Settings):
    """Every check before compute: (settings, [PreparedWeights], [image paths] or None for the defaults).
    Raises ValueError (settings, names, images, output) or ConversionError (weights)."""
    from benchmark.weights.convert import prepare_weights

    settings.check()
    problem = unusable_output(output, "--output")
    if problem:
        raise ValueError(problem)
    paths = image_io.list_images(image_sources) if image_sources else None
    if not weights_specs:
        raise ValueError("--weights: give at least one checkpoint")
    prepared = [prepare_weights(spec) for spec in weights_specs]
    names = [p.name for p in prepared]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"--weights: two checkpoints are named {twice[0]!r} (their outputs would collide)")
    bad = [n for n in names if n in ("sources", FIGURE_NAME) or n.startswith(".")]
    if bad:
        raise ValueError(f"--weights: a checkpoint named {bad[0]!r} would collide with the run's own files")
    return prepared, paths


def _pair_done(folder: Path, stem: str, key: dict) -> dict | None:
    """The stored numbers of a complete pair made with `key` (settings + weights), else None."""
    png, meta = folder / f"{stem}.png", folder / f"{stem}.json"
    if not (png.is_file() and meta.is_file()):
        return None
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def run(weights_specs, image_sources, output, settings: Settings = Settings(), batch: int = 4, device: str = "cpu",
        say=print) -> dict:
    """Invert every image from every checkpoint's `settings.layer`; returns {"records": [paths], "grid": path,
    "inverted": pairs computed now, "skipped": pairs already complete}."""
    import torch

    from benchmark.env import environment
    from benchmark.fileio import write_json_atomic
    from benchmark.inversion import figure, loop, metrics
    from benchmark.inversion.features import FeatureExtractor
    from benchmark.records.results import new_record, write_record

    if batch < 1:
        raise ValueError(f"--batch {batch}: must be at least 1")
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here")
    prepared, paths = prepare(weights_specs, image_sources, output, settings)
    output = Path(output)
    # built before anything is written: a checkpoint lacking a tensor of the layer's stages is refused first
    extractors = [FeatureExtractor(p, settings.layer).to(device) for p in prepared]
    if paths is None:
        paths = image_io.write_default_images(output / "inputs")
    task_dir = output / settings.task
    recipe = dataclasses.asdict(settings)
    keys = [{"settings": recipe, "weights_sha256": p.sha256} for p in prepared]
    folders = [task_dir / p.name for p in prepared]
    crops = {}
    for path in paths:
        crops[path.stem] = image_io.load(path, settings.resize, settings.crop)
        source_png = task_dir / "sources" / f"{path.stem}.png"
        image_io.save_png(crops[path.stem], source_png)
    stems = [path.stem for path in paths]
    # Batches are fixed slices of the whole image list: a pair's numbers depend, at rounding level, on the
    # batch it ran in (grouped convolutions), so a resumed run recomputes the whole batch of an incomplete
    # image, as the first run did, and writes only the missing pairs: bit-identical to an uninterrupted run.
    chunks = [stems[i:i + batch] for i in range(0, len(stems), batch)]
    todo = [c for c in chunks if any(_pair_done(f, s, k) is None for s in c for f, k in zip(folders, keys))]
    inverted = 0
    for number, chunk in enumerate(todo, 1):
        what = f"batch {number}/{len(todo)} ({len(chunk)} image(s) x {len(prepared)} checkpoint(s))"
        say(f"inverting {what} at {settings.layer}, {settings.steps} steps")
        began = time.monotonic()
        result = loop.invert(extractors, torch.stack([crops[s] for s in chunk]), settings.steps, settings.seed,
                             settings.noise_size, settings.lr, progress=loop.Progress(what))
        seconds = (time.monotonic() - began) / (len(chunk) * len(prepared))
        for k, (folder, key) in enumerate(zip(folders, keys)):
            for i, stem in enumerate(chunk):
                if _pair_done(folder, stem, key) is not None:
                    continue  # complete from an earlier run, made in this very batch: kept
                image = result["images"][k, i]
                scores = metrics.image_scores(image, crops[stem])
                image_io.save_png(image, folder / f"{stem}.png")
                # the JSON last: it marks the pair complete
                write_json_atomic(folder / f"{stem}.json", {"key": key, **scores, "loss": float(result["rel_loss"][k, i]),
                                                              "seconds": seconds})
                inverted += 1
    env = {**environment(), "image_metrics": metrics.implementation()}
    records, table = [], []
    for p, folder, key in zip(prepared, folders, keys):
        numbers = {path.stem: _pair_done(folder, path.stem, key) for path in paths}
        per_image = {f"image{ITEM_GROUP_MARK}{stem}": {m: d[m] for m in (*metrics.METRICS, "loss")} for stem, d in numbers.items()}
        means = {m: math.fsum(v[m] for v in per_image.values()) / len(per_image) for m in (*metrics.METRICS, "loss")}
        record = new_record(
            task=settings.task, kind=RECORD_KIND, weights=p.record_fields(), seed=settings.seed, trial=0,
            status="finished", metrics={"inversion": means, **per_image}, iterations=settings.steps, world_size=1,
            ims_per_batch=min(batch, len(paths)), deviations=settings.deviations(),
            duration_s=math.fsum(d["seconds"] for d in numbers.values()),
            config_digest=_digest(key), protocol_digest=_digest(recipe), environment=env)
        records.append(write_record(folder, record))
        table.append([(folder / f"{path.stem}.png", numbers[path.stem]) for path in paths])
    grid = figure.grid(task_dir / FIGURE_NAME, [task_dir / "sources" / f"{path.stem}.png" for path in paths],
                       [p.name for p in prepared], [list(row) for row in zip(*table)])
    return {"records": records, "grid": grid, "inverted": inverted,
            "skipped": len(paths) * len(prepared) - inverted}
