"""ImageNet as an ImageFolder (imagenet_linear): layout under a data root, registration, layout check,
synthetic writer, evaluator.

The common ImageFolder layout: one folder per class (its WordNet id) in each split. Class indices
are the sorted class folders of the training split (`classes_dir`), val included, as torchvision's
ImageFolder gives them. Evaluator: top-1/top-5 accuracy (benchmark.data.evaluators). detectron2 is
imported inside the functions only.
"""
import os
import shutil
from pathlib import Path

from benchmark.data.checks import check_image_complete, fail, need_dir
from benchmark.data.family import DatasetFamily, frozen_layouts
from benchmark.data.synthetic import test_split_copies_training

SEED_CODE = 4  # of the synthetic images (benchmark.data.drawing.rng)
# What torchvision's ImageFolder takes as an image (torchvision.datasets.folder.IMG_EXTENSIONS),
# compared case-insensitively as it does: ImageNet's files end in .JPEG.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Images are checked by this many threads at once: the check is two small reads per file, so on a
# network filesystem it waits on latency; 1.33M ImageNet files take minutes in one thread.
CHECK_THREADS = 16
MAX_CLASSES = 4  # of the synthetic data


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def imagefolder_classes(folder) -> list:
    """The class folders of an ImageFolder split, sorted (their index is the label), as torchvision's."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def imagefolder_files(folder) -> list:
    """[(path, class folder name)] of every image of the split, sorted by class then file name."""
    out = []
    for cls in imagefolder_classes(folder):
        with os.scandir(os.path.join(folder, cls)) as it:
            names = sorted(e.name for e in it if _is_image(e.name) and e.is_file())
        out += [(os.path.join(folder, cls, n), cls) for n in names]
    return out


def register(registered, *, image_dir, classes_dir):
    """An ImageFolder split as dataset dicts {"file_name", "label", "image_id"}, labels indexing the
    sorted class folders of `classes_dir` (the training split), as torchvision's ImageFolder does."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    def load(image_dir=image_dir, classes_dir=classes_dir):
        index = {c: i for i, c in enumerate(imagefolder_classes(classes_dir))}
        return [{"file_name": path, "label": index[cls], "image_id": k}
                for k, (path, cls) in enumerate(imagefolder_files(image_dir))]

    DatasetCatalog.register(registered, load)
    MetadataCatalog.get(registered).set(image_dir=image_dir, classes_dir=classes_dir)


# ----------------------------------------------------------------------------- layout check

def _few(names, n=3) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def check(name, *, image_dir, classes_dir):
    """An ImageFolder split: class folders there, each holding images, the same classes as the
    training split (`classes_dir`), and every image complete (benchmark.data.checks)."""
    folder = Path(image_dir)
    need_dir(name, folder)
    classes = imagefolder_classes(folder)
    if not classes:
        loose = sum(1 for e in os.scandir(folder) if e.is_file() and _is_image(e.name))
        if loose:
            fail(name, f"no class folders (<wnid>/) but {loose} images directly in", folder.as_posix() +
                 "; move each image into the folder of its class (datasets.md: ImageNet val, valprep.sh)")
        fail(name, "no class folders (<wnid>/*.JPEG) in", folder)
    if Path(classes_dir) != folder:
        expected = set(imagefolder_classes(classes_dir)) if Path(classes_dir).is_dir() else set()
        missing, extra = expected - set(classes), set(classes) - expected
        if missing or extra:
            parts = ([f"{len(missing)} classes of the training split missing ({_few(missing)})"] if missing else []) + \
                    ([f"{len(extra)} classes not in the training split ({_few(extra)})"] if extra else [])
            fail(name, f"class folders differ from {classes_dir}'s: {'; '.join(parts)}, in", folder)
    files = []
    for cls in classes:
        with os.scandir(folder / cls) as it:
            images = sorted(e.name for e in it if _is_image(e.name) and e.is_file())
        if not images:
            fail(name, f"class folder {cls} without images ({', '.join(IMAGE_EXTENSIONS)}):", folder / cls)
        files += [folder / cls / n for n in images]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for start in range(0, len(files), 4096):  # in chunks: the first bad file (in order) ends the check soon
            for _ in pool.map(lambda p: check_image_complete(name, p), files[start:start + 4096]):
                pass


def check_settings(name, cfg, *, image_dir, classes_dir):
    """The linear layer has an output for every class of the training split (BENCHMARK.LINEAR.NUM_CLASSES);
    else the run would fail at its start, after the model is built."""
    classes, outputs = len(imagefolder_classes(classes_dir)), cfg.BENCHMARK.LINEAR.NUM_CLASSES
    if classes > outputs:
        fail(name, f"BENCHMARK.LINEAR.NUM_CLASSES {outputs}: the linear layer needs an output for each of the "
                   f"{classes} classes of", classes_dir)


# ----------------------------------------------------------------------------- synthetic data

def synthetic_classes(num_test):
    """The synthetic class folders (WordNet-id-like names): min(4, num_test) of them, so that every
    class has a validation image. Class i is a texture around colour i of the drawing palette: the
    classes differ by colour, which a linear layer on any reasonable features separates."""
    return [f"n{90000000 + i:08d}" for i in range(min(MAX_CLASSES, num_test))]


def synthesize(out, p):
    """imagenet/{train,val}/<wnid>/*.png: num_train / num_test images in all, dealt round the classes.
    PNG (lossless) so that the colours are exact; ImageFolder takes any of its image extensions."""
    import numpy as np
    from PIL import Image

    from benchmark.data.drawing import COLOURS, rng, texture

    h, w = p["image_size"]
    classes = synthetic_classes(p["num_test"])
    drawn = []
    for split_code, (split, n) in enumerate((("train", p["num_train"]), ("val", p["num_test"]))):
        for c in classes:
            (out / "imagenet" / split / c).mkdir(parents=True)
        for i in range(n):
            k = i % len(classes)
            path = out / "imagenet" / split / classes[k] / f"{classes[k]}_{i:05d}.png"
            if split == "val" and test_split_copies_training(p):
                shutil.copyfile(drawn[i], path)
                continue
            r = rng(p["seed"], SEED_CODE, split_code, i)
            colour = np.asarray(COLOURS[k % len(COLOURS)], np.float32) * r.uniform(0.8, 1.0)
            Image.fromarray(np.clip(texture(r, h, w, colour), 0, 255).astype(np.uint8)).save(path)
            drawn.append(path)


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    """Top-1/top-5 accuracy over the split; `dataset_name` and `output_dir` are not needed."""
    from benchmark.data.evaluators import ClassificationEvaluator

    return ClassificationEvaluator(distributed=distributed)


FAMILY = DatasetFamily(
    name="imagenet",
    datasets=frozen_layouts({
        "imagenet_train": {"image_dir": "imagenet/train", "classes_dir": "imagenet/train"},
        "imagenet_val": {"image_dir": "imagenet/val", "classes_dir": "imagenet/train"},
    }),
    tops=("imagenet",),
    smoke_image_size=(48, 48),  # the smoke overlay crops 32 px out of these
    smoke_overlay="imagenet_linear.yaml",
    evaluator_type="classification",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
    check_settings=check_settings,
)
