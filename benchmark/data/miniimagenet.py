"""mini-ImageNet (fewshot_miniimagenet): Ravi & Larochelle's split CSVs and the images in either layout.

Split files (`csv_dir`, default miniimagenet/): train.csv, val.csv, test.csv of Ravi & Larochelle
(twitter/meta-learning-lstm), rows `filename,label` after a `filename,label` header, e.g.
`n0153282900000005.jpg,n01532829`. Each file present is checked against its published sha256
(`SPLIT_SHA256`, from shared/REFERENCES.md "Table 4"); test.csv, the 20 novel classes the episodes
are drawn from, must be there.

Images, in one of the two layouts people have (the check says which it found):
- "images": the mini-ImageNet release's `images/` folder (`image_dir`, default miniimagenet/images),
  84x84 files named as in the CSVs;
- "imagenet": full ImageNet train class folders (`imagenet_dir`, default imagenet/train, the
  imagenet family's), with CloserLookFewShot's mapping (write_miniImagenet_filelist.py): a row's
  last five digits of the name, minus one, index its class folder's files sorted by the numeric
  part of their names (`n01532829_10007.JPEG` -> 10007).
When both are there, the `images/` folder is used.

RULE (synthetic data): a `csv_dir` holding the `.synthetic` marker that benchmark.data.synthetic
writes into every top folder it wrote is synthetic data. Its CSVs cannot match the published hashes;
they are checked for form (header, rows, classes), not for hashes. A real download never holds that
marker; the runs on it are --smoke / --sanity runs or tests.

Labels of the registered dataset: the index of the row's WordNet id among the split's sorted ids.
The few-shot evaluation (benchmark.engine.fewshot) draws its episodes from these dicts.
"""
import collections
import csv
import hashlib
import os
import re
from pathlib import Path

from benchmark.data.checks import check_image_complete, fail, need_dir
from benchmark.data.family import DatasetFamily, frozen_layouts

SEED_CODE = 6  # of the synthetic images (benchmark.data.drawing.rng)
# Ravi & Larochelle's split files at twitter/meta-learning-lstm 0df7fc7 (shared/REFERENCES.md, Table 4).
SPLIT_SHA256 = {
    "train.csv": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
    "val.csv": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
    "test.csv": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
}
HEADER = ["filename", "label"]
LAYOUTS = ("images", "imagenet")
SYNTHETIC_MARK = ".synthetic"  # benchmark.data.synthetic._OWN_MARK (this module may not import it privately)
_NAME = re.compile(r"^(n\d{8})(\d{8})\.jpg$")
_CLASSES = {"train": 2, "val": 2, "test": 6}  # synthetic classes per split (episodes take 5 of the test's 6)


def is_synthetic(csv_dir) -> bool:
    """Whether `csv_dir` is synthetic data (the module's RULE)."""
    return (Path(csv_dir) / SYNTHETIC_MARK).is_file()


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_split(name, path) -> list:
    """[(file name, wnid)] of a split CSV, its form checked (header, two columns, release-style names)."""
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != HEADER:
        fail(name, f"split file without the header {','.join(HEADER)!r} (Ravi & Larochelle's CSV expected):", path)
    out = []
    for k, row in enumerate(rows[1:], start=2):
        m = _NAME.match(row[0]) if len(row) == 2 else None
        if m is None or m.group(1) != row[1]:
            fail(name, f"line {k} is not 'nXXXXXXXXNNNNNNNN.jpg,nXXXXXXXX' ({','.join(row)!r}) in", path)
        out.append((row[0], row[1]))
    if not out:
        fail(name, "split file without rows:", path)
    return out


def check_split_file(name, path, synthetic=False) -> None:
    """A split CSV is the published one (sha256), or, for synthetic data, of the right form."""
    path = Path(path)
    if synthetic:
        read_split(name, path)
        return
    expected = SPLIT_SHA256[path.name]
    got = sha256_of(path)
    if got != expected:
        fail(name, f"{path.name} is not Ravi & Larochelle's split file (sha256 {got}, expected {expected}; "
                   "download it again from twitter/meta-learning-lstm, data/miniImagenet/):", path)


def numeric_part(file_name: str) -> int:
    """The number in an ImageNet train file name (`n01532829_10007.JPEG` -> 10007), CloserLookFewShot's sort key."""
    parts = re.split(r"_|\.", file_name)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"{file_name!r} is not an ImageNet train file name (nXXXXXXXX_N.JPEG)") from None


def row_index(file_name: str) -> int:
    """The 0-based position in its class folder (sorted by numeric_part) of a CSV row's image."""
    return int(Path(file_name).stem[-5:]) - 1


def _class_files(folder) -> list:
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and not e.name.startswith(".")]
    return sorted(names, key=numeric_part)


def which_layout(image_dir, imagenet_dir):
    """"images" when the release's images/ folder is there, else "imagenet" when ImageNet's train is, else None."""
    if Path(image_dir).is_dir():
        return "images"
    if Path(imagenet_dir).is_dir():
        return "imagenet"
    return None


def split_files(name, *, csv_dir, image_dir, imagenet_dir, split, check_images=False):
    """(layout, [(image path, wnid)]) of a split in the layout found (module's docstring); DatasetLayoutError
    naming what is missing."""
    need_dir(name, csv_dir)
    csv_path = Path(csv_dir) / f"{split}.csv"
    if not csv_path.is_file():
        fail(name, f"missing split file {split}.csv (Ravi & Larochelle's; see datasets.md):", csv_path)
    rows = read_split(name, csv_path)
    layout = which_layout(image_dir, imagenet_dir)
    if layout is None:
        fail(name, f"no images: neither the mini-ImageNet release's folder {image_dir} (84x84, named as in the CSVs) "
                   "nor ImageNet's train class folders", imagenet_dir)
    out = []
    if layout == "images":
        for file_name, wnid in rows:
            path = Path(image_dir) / file_name
            if not path.is_file():
                fail(name, f"images layout ({image_dir}): missing image of {csv_path.name}", path)
            out.append((str(path), wnid))
    else:
        listed = {}
        for file_name, wnid in rows:
            if wnid not in listed:
                folder = Path(imagenet_dir) / wnid
                if not folder.is_dir():
                    fail(name, f"imagenet layout ({imagenet_dir}, CloserLookFewShot's mapping): missing class folder "
                               f"of {csv_path.name}", folder)
                try:
                    listed[wnid] = _class_files(folder)
                except ValueError as exc:
                    fail(name, f"imagenet layout: {exc} in", folder)
            k = row_index(file_name)
            if not 0 <= k < len(listed[wnid]):
                fail(name, f"imagenet layout: row {file_name} maps to file {k + 1} of the sorted class folder, which "
                           f"holds {len(listed[wnid])}:", Path(imagenet_dir) / wnid)
            out.append((str(Path(imagenet_dir) / wnid / listed[wnid][k]), wnid))
    if check_images:
        for path, _ in out:
            check_image_complete(name, path)
    return layout, out


# ----------------------------------------------------------------------------- registration

def register(registered, *, csv_dir, image_dir, imagenet_dir, split):
    """The split as dataset dicts {"file_name", "label", "wnid", "image_id"}; labels index the split's sorted wnids."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    def load():
        layout, files = split_files(registered, csv_dir=csv_dir, image_dir=image_dir, imagenet_dir=imagenet_dir,
                                    split=split)
        index = {w: i for i, w in enumerate(sorted({w for _, w in files}))}
        return [{"file_name": p, "label": index[w], "wnid": w, "image_id": k} for k, (p, w) in enumerate(files)]

    DatasetCatalog.register(registered, load)
    MetadataCatalog.get(registered).set(csv_dir=csv_dir, image_dir=image_dir, imagenet_dir=imagenet_dir, split=split)


# ----------------------------------------------------------------------------- layout check

def check(name, *, csv_dir, image_dir, imagenet_dir, split):
    """Split files (published sha256, or synthetic: form only), then the images of `split` in the layout found,
    every one there and complete. The layout found is logged."""
    import logging

    need_dir(name, csv_dir)
    synthetic = is_synthetic(csv_dir)
    for file_name in SPLIT_SHA256:
        path = Path(csv_dir) / file_name
        if path.is_file() or file_name == f"{split}.csv":
            if not path.is_file():
                fail(name, f"missing split file {file_name} (Ravi & Larochelle's; see datasets.md):", path)
            check_split_file(name, path, synthetic)
    layout, files = split_files(name, csv_dir=csv_dir, image_dir=image_dir, imagenet_dir=imagenet_dir, split=split,
                                check_images=True)
    classes = len({w for _, w in files})
    logging.getLogger(__name__).info("dataset %s: %s layout (%s), %d images of %d classes%s", name, layout,
                                     image_dir if layout == "images" else imagenet_dir, len(files), classes,
                                     " (synthetic data)" if synthetic else "")
    return layout


def check_settings(name, cfg, *, csv_dir, image_dir, imagenet_dir, split):
    """The episodes the run's settings ask for can be drawn from `split`: BENCHMARK.FEWSHOT.WAYS classes, each
    with max(SHOTS) + QUERIES images (else the run would fail at its first episode, after the features)."""
    fs = cfg.BENCHMARK.FEWSHOT
    csv_path = Path(csv_dir) / f"{split}.csv"
    per_class = collections.Counter(wnid for _, wnid in read_split(name, csv_path))
    if len(per_class) < fs.WAYS:
        fail(name, f"BENCHMARK.FEWSHOT.WAYS {fs.WAYS}: an episode draws that many classes, the split has "
                   f"{len(per_class)}:", csv_path)
    need = max(fs.SHOTS) + fs.QUERIES
    wnid, fewest = min(per_class.items(), key=lambda kv: (kv[1], kv[0]))
    if fewest < need:
        fail(name, f"BENCHMARK.FEWSHOT.SHOTS {max(fs.SHOTS)} + QUERIES {fs.QUERIES}: an episode draws {need} images "
                   f"of a class, class {wnid} has {fewest}:", csv_path)


# ----------------------------------------------------------------------------- synthetic data

def synthetic_classes(split: str, sanity=False) -> list:
    """The synthetic WordNet-id-like classes of a split; a learning check's test split has 5, one per colour."""
    base = {"train": 91000000, "val": 92000000, "test": 93000000}[split]
    return [f"n{base + i:08d}" for i in range(5 if sanity and split == "test" else _CLASSES[split])]


def synthetic_image(seed, k, i, h, w, sanity=False):
    """Image i of synthetic test class k: a texture around colour k (a shade of it for k >= 5), so a linear
    head on any reasonable features tells the classes apart; with `sanity` the texture is weaker."""
    import numpy as np

    from benchmark.data.drawing import COLOURS, rng, texture

    r = rng(seed, SEED_CODE, k, i)
    colour = np.asarray(COLOURS[k % len(COLOURS)], np.float32) * (0.55 if k >= len(COLOURS) else 1.0)
    colour = colour * r.uniform(0.9, 1.0)
    return np.clip(texture(r, h, w, colour, amplitude=8.0 if sanity else 40.0), 0, 255).astype(np.uint8)


def synthesize(out, p):
    """miniimagenet/{train,val,test}.csv and the images in layout p["layout"] ("images", the default, or
    "imagenet"): every class of every split holds num_train images (the episodes draw support and query
    images from the test split's 6 classes, 5 for a learning check, p["sanity"]; num_test is not used:
    the episodes' support images are the "training" images, their queries other images of the same classes).
    ImageNet layout: imagenet/train/<wnid>/
    <wnid>_<n>.JPEG, numbered so that the numeric and the lexical order differ, one file more than the CSV
    names (ImageNet's folders hold more than mini-ImageNet takes)."""
    from PIL import Image

    layout = p.get("layout") or "images"
    if layout not in LAYOUTS:
        raise ValueError(f"unknown mini-ImageNet layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    h, w = p["image_size"]
    n = int(p["num_train"])
    top = out / "miniimagenet"
    top.mkdir(parents=True)
    if layout == "images":
        (top / "images").mkdir()
    for split_code, split in enumerate(("train", "val", "test")):
        rows = []
        for k, wnid in enumerate(synthetic_classes(split, p.get("sanity", False))):
            class_code = 10 * split_code + k
            if layout == "imagenet":
                folder = out / "imagenet" / "train" / wnid
                folder.mkdir(parents=True)
                numbers = [7 + 31 * j for j in range(n + 1)]  # 7, 38, 69, 100, ...: "100" < "38" lexically
            for i in range(n):
                file_name = f"{wnid}{i + 1:08d}.jpg"
                rows.append(f"{file_name},{wnid}")
                pixels = synthetic_image(p["seed"], class_code, i, h, w, p.get("sanity", False))
                path = top / "images" / file_name if layout == "images" else folder / f"{wnid}_{numbers[i]}.JPEG"
                Image.fromarray(pixels).save(path, format="JPEG", quality=95)
            if layout == "imagenet":
                Image.fromarray(synthetic_image(p["seed"], class_code, n, h, w)).save(
                    folder / f"{wnid}_{numbers[n]}.JPEG", format="JPEG", quality=95)
        (top / f"{split}.csv").write_text("\n".join([",".join(HEADER), *rows]) + "\n")


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    """The few-shot numbers come from the episodes (benchmark.engine.fewshot), not from a DatasetEvaluator."""
    raise NotImplementedError(f"{dataset_name}: few-shot accuracy is computed over episodes by "
                              "benchmark.engine.fewshot.FewShotTrainer, not by a detectron2 evaluator")


FAMILY = DatasetFamily(
    name="miniimagenet",
    datasets=frozen_layouts({
        # csv_dir: train.csv/val.csv/test.csv; image_dir: the release's 84x84 images/ folder;
        # imagenet_dir: full ImageNet train folders (CloserLookFewShot's row -> file mapping)
        "miniimagenet_test": {"csv_dir": "miniimagenet", "image_dir": "miniimagenet/images",
                              "imagenet_dir": "imagenet/train", "split": "test"},
    }),
    tops=("miniimagenet",),
    smoke_image_size=(84, 84),
    smoke_overlay="fewshot_miniimagenet.yaml",
    evaluator_type="fewshot",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
    check_settings=check_settings,
)
