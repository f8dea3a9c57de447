"""MAFL on CelebA (mafl_landmarks): CelebA's aligned images and landmark list, MAFL's train/test name lists.

Layout under a data root (datasets.md, "MAFL"): `celeba/Img/img_align_celeba/*.jpg` (178x218),
`celeba/Anno/list_landmarks_align_celeba.txt` (a count line, a header line, then one row per image:
name and the x, y of lefteye, righteye, nose, leftmouth, rightmouth), `celeba/Eval/list_eval_partition.txt`
(name and 0 train / 1 val / 2 test) and MAFL's `celeba/MAFL/training.txt` (19,000 names) and
`testing.txt` (1,000), as DVE's MAFLAligned reads them (shared/REFERENCES.md, Table 5).

RULES
- Split lists: each must be byte for byte the published one (`LIST_SHA256`, from zhzhanp/TCDCN-face-alignment);
  a list with one line changed is refused, naming the file and the expected sha256. The one exception:
  a tree the suite wrote itself (its `celeba/.synthetic` marker holding {"format": "mafl", ...}, written by
  benchmark.data.synthetic) cannot hold the published lists; its lists are checked for shape only (names,
  no duplicates, every image, landmark and partition row).
- The known caveat (assumption `mafl-test-overlap`, stored in every record of the task): MAFL's test faces
  with an id in CelebA's train or val range (below `CELEBA_TEST_FIRST_ID`, 904 of the 1,000 published)
  may have been seen, without labels, by CelebA-pretrained checkpoints. The check counts them in the
  user's list and says so before compute.
- Landmarks are pixel coordinates of the aligned image, (x, y) per point, in `LANDMARKS` order.
Pure Python at import; numpy and detectron2 are imported inside the functions.
"""
import hashlib
import logging
import shutil
from pathlib import Path

from benchmark.data.checks import check_image_complete, fail, need_dir, need_file
from benchmark.data.family import DatasetFamily, frozen_layouts
from benchmark.data.synthetic import test_split_copies_training

logger = logging.getLogger(__name__)

SEED_CODE = 6  # of the synthetic images (benchmark.data.drawing.rng)
LANDMARKS = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")  # CelebA's column order
# MAFL's lists (shared/REFERENCES.md, Table 5: zhzhanp/TCDCN-face-alignment at 9712ab5, MAFL/).
LIST_SHA256 = {
    "training": "435e0488efcb97dee718118b74b4110d42d9524289238f51692b1d60883ccba6",
    "testing": "0a93fa3202133333045ce4cef5043a2cb1f4b8858b8e96f3ae7f54becfa07f9e",
}
LIST_NAMES = {"training": 19000, "testing": 1000}
CELEBA_TEST_FIRST_ID = 182638  # CelebA ids 1..182637 are its train and val partitions, 182638.. its test one
IMAGE_DIR = "Img/img_align_celeba"
LANDMARK_FILE = "Anno/list_landmarks_align_celeba.txt"
PARTITION_FILE = "Eval/list_eval_partition.txt"
SYNTHETIC_MARK = ".synthetic"  # benchmark.data.synthetic's marker in each top folder it wrote
CHECK_THREADS = 16  # images checked at once (two small reads each; see benchmark.data.imagenet)


def _paths(celeba_dir, mafl_dir, split):
    celeba = Path(celeba_dir)
    return celeba / IMAGE_DIR, celeba / LANDMARK_FILE, celeba / PARTITION_FILE, Path(mafl_dir) / f"{split}.txt"


def is_synthetic(celeba_dir) -> bool:
    """Whether the CelebA tree was written by benchmark.data.synthetic: its marker file holds the writer's
    parameters, {"format": "mafl", ...} (an empty or foreign file is no marker)."""
    import json

    try:
        params = json.loads((Path(celeba_dir) / SYNTHETIC_MARK).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(params, dict) and params.get("format") == "mafl"


def read_names(path) -> list:
    """The image names of a MAFL list, one per line (the published files end without a newline)."""
    return Path(path).read_text().split()


def read_landmarks(path, names=None) -> dict:
    """{image name: ((x, y) * 5)} of CelebA's landmark file (integers, pixels of the aligned image);
    only `names` when given. Raises ValueError naming the line of a malformed row."""
    wanted = None if names is None else set(names)
    out = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if number <= 2 or not parts:  # the count line and the header
                continue
            if wanted is not None and parts[0] not in wanted:
                continue
            if len(parts) != 1 + 2 * len(LANDMARKS):
                raise ValueError(f"line {number}: {len(parts) - 1} values, expected {2 * len(LANDMARKS)}")
            try:
                values = [float(v) for v in parts[1:]]
            except ValueError:
                raise ValueError(f"line {number}: not numbers: {' '.join(parts[1:])}") from None
            out[parts[0]] = tuple((values[2 * k], values[2 * k + 1]) for k in range(len(LANDMARKS)))
    return out


def read_partition(path) -> dict:
    """{image name: 0 train | 1 val | 2 test} of CelebA's list_eval_partition.txt."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def train_val_overlap(names) -> int:
    """How many of `names` have a CelebA id in its train/val range (below CELEBA_TEST_FIRST_ID)."""
    return sum(1 for n in names if Path(n).stem.isdigit() and int(Path(n).stem) < CELEBA_TEST_FIRST_ID)


def sha256_of(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def register(registered, *, celeba_dir, mafl_dir, split):
    """A MAFL split as dataset dicts {"file_name", "image_id", "landmarks": [[x, y]] * 5}."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    def load(celeba_dir=celeba_dir, mafl_dir=mafl_dir, split=split):
        images, landmark_file, _, names_file = _paths(celeba_dir, mafl_dir, split)
        names = read_names(names_file)
        points = read_landmarks(landmark_file, names)
        return [{"file_name": str(images / n), "image_id": k, "landmarks": [list(p) for p in points[n]]}
                for k, n in enumerate(names)]

    DatasetCatalog.register(registered, load)
    MetadataCatalog.get(registered).set(celeba_dir=celeba_dir, mafl_dir=mafl_dir, split=split,
                                        keypoint_names=LANDMARKS)


# ----------------------------------------------------------------------------- layout check

def check_list(name, path, split, synthetic=False) -> list:
    """The names of a MAFL list; refused unless it is the published file (module's rule)."""
    need_file(name, path)
    if not synthetic:
        expected, found = LIST_SHA256[split], sha256_of(path)
        if found != expected:
            fail(name, f"not MAFL's published {split}.txt (sha256 {found}, expected {expected}; "
                       f"{LIST_NAMES[split]} names, from zhzhanp/TCDCN-face-alignment MAFL/):", path)
    names = read_names(path)
    if not names:
        fail(name, "empty name list", path)
    if len(set(names)) != len(names):
        fail(name, f"{len(names) - len(set(names))} names listed twice in", path)
    return names


def check(name, *, celeba_dir, mafl_dir, split):
    """Every file a MAFL split reads: its list (sha256), CelebA's landmark and partition files with a row
    for each listed name, and each listed image complete; for the test split, the caveat counted."""
    images, landmark_file, partition_file, names_file = _paths(celeba_dir, mafl_dir, split)
    need_dir(name, celeba_dir)
    need_dir(name, images)
    need_file(name, landmark_file)
    need_file(name, partition_file)
    names = check_list(name, names_file, split, synthetic=is_synthetic(celeba_dir))
    try:
        points = read_landmarks(landmark_file, names)
    except (ValueError, UnicodeDecodeError) as e:
        fail(name, f"malformed landmark file ({e}):", landmark_file)
    missing = [n for n in names if n not in points]
    if missing:
        fail(name, f"{len(missing)} listed images without a landmark row (first: {missing[0]}) in", landmark_file)
    partition = read_partition(partition_file)
    missing = [n for n in names if n not in partition]
    if missing:
        fail(name, f"{len(missing)} listed images without a partition row (first: {missing[0]}) in", partition_file)
    files = [images / n for n in names]
    for path in files:
        if not path.is_file():
            fail(name, "missing image", path)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for start in range(0, len(files), 4096):
            for _ in pool.map(lambda p: check_image_complete(name, p), files[start:start + 4096]):
                pass
    if split == "testing":
        logger.warning("dataset %s: %s", name, overlap_caveat(names))


def check_settings(name, cfg, *, celeba_dir, mafl_dir, split):
    """The run's settings fit the split: the head's BENCHMARK.LANDMARKS.NUM_LANDMARKS is MAFL's five points,
    and the crop (CROP_TOP, CROP_LEFT, CROP_SIZE) lies inside every listed image (else the run would fail at
    its first batch, or train on a crop PIL pads with black)."""
    lm = cfg.BENCHMARK.LANDMARKS
    images, _, _, names_file = _paths(celeba_dir, mafl_dir, split)
    if lm.NUM_LANDMARKS != len(LANDMARKS):
        fail(name, f"BENCHMARK.LANDMARKS.NUM_LANDMARKS {lm.NUM_LANDMARKS}: MAFL annotates {len(LANDMARKS)} points "
                   f"({', '.join(LANDMARKS)}) in", Path(celeba_dir) / LANDMARK_FILE)
    right, bottom = lm.CROP_LEFT + lm.CROP_SIZE, lm.CROP_TOP + lm.CROP_SIZE
    from concurrent.futures import ThreadPoolExecutor

    files = [images / n for n in read_names(names_file)]
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for path, (width, height) in zip(files, pool.map(lambda f: check_image_complete(name, f), files)):
            if right > width or bottom > height:
                fail(name, f"BENCHMARK.LANDMARKS crop rows {lm.CROP_TOP}..{bottom}, columns {lm.CROP_LEFT}..{right} "
                           f"does not fit the {width}x{height} image", path)


def overlap_caveat(names) -> str:
    """The caveat of the test list `names` (module's rule), counted."""
    seen = train_val_overlap(names)
    return (f"{seen} of the {len(names)} test faces have a CelebA id in its train/val range (below "
            f"{CELEBA_TEST_FIRST_ID}); CelebA-pretrained checkpoints may have seen them without labels "
            "(assumption mafl-test-overlap, stored in the record)")


# ----------------------------------------------------------------------------- synthetic data

def synthetic_ids(p) -> tuple:
    """(training ids, test ids) of the synthetic faces: training from 1; the test ids straddle
    CELEBA_TEST_FIRST_ID, half below (the caveat's case) and half at or above it."""
    train = list(range(1, p["num_train"] + 1))
    first = CELEBA_TEST_FIRST_ID - p["num_test"] // 2
    return train, list(range(first, first + p["num_test"]))


def face_landmarks(r, h, w):
    """Five landmarks (x, y) of one synthetic face around the real aligned faces' mean shape
    (eyes ~(69, 109) and (106, 113), nose ~(89, 134), mouth ~(73, 152), (108, 154) in 178x218), shifted,
    scaled and rotated at random so that one mean shape cannot fit them all (benchmark.engine.sanity's check
    says how far the mean shape is off)."""
    import numpy as np

    sx, sy = w / 178.0, h / 218.0
    mean = np.array([[-18.5, -22.0], [18.5, -22.0], [0.0, 3.0], [-16.0, 22.0], [16.0, 22.0]])
    angle = r.uniform(-0.25, 0.25)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = r.uniform(0.75, 1.25)
    centre = np.array([89.0 + r.uniform(-32, 32), 120.0 + r.uniform(-32, 32)])
    pts = centre + scale * mean @ rot.T
    return np.round(pts * [sx, sy]).astype(int), scale * min(sx, sy)


def draw_face(r, h, w):
    """(H x W x 3 uint8 image, 5 x 2 int landmarks): a face ellipse, dark eyes, a nose triangle, a red mouth."""
    import numpy as np
    from PIL import Image, ImageDraw

    from benchmark.data.drawing import texture

    pts, s = face_landmarks(r, h, w)
    img = Image.fromarray(np.clip(texture(r, h, w, (90, 110, 120)), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
    d.ellipse([cx - 38 * s, cy - 48 * s, cx + 38 * s, cy + 50 * s], fill=(225, 185, 150))
    (ex0, ey0), (ex1, ey1), (nx, ny), (mx0, my0), (mx1, my1) = (tuple(int(v) for v in p) for p in pts)
    e = max(2.0, 5 * s)
    for x, y in ((ex0, ey0), (ex1, ey1)):
        d.ellipse([x - 2 * e, y - e, x + 2 * e, y + e], fill=(255, 255, 255))
        d.ellipse([x - e, y - e, x + e, y + e], fill=(20, 20, 60))
    d.polygon([(nx, ny), (nx - 2 * e, ny - 4 * e), (nx + 2 * e, ny - 4 * e)], fill=(150, 90, 70))
    d.line([(mx0, my0), ((mx0 + mx1) / 2, (my0 + my1) / 2 + e), (mx1, my1)], fill=(200, 30, 40),
           width=max(2, int(e)))
    for x, y in ((mx0, my0), (mx1, my1)):  # the corners, where the landmarks are
        d.ellipse([x - e / 2, y - e / 2, x + e / 2, y + e / 2], fill=(200, 30, 40))
    return np.asarray(img), pts


def synthesize(out, p):
    """celeba/{Img/img_align_celeba/*.jpg, Anno/list_landmarks_align_celeba.txt, Eval/list_eval_partition.txt,
    MAFL/training.txt, MAFL/testing.txt}: num_train and num_test faces (the learning check's test faces copy
    the training ones, their landmark rows too)."""
    from PIL import Image

    from benchmark.data.drawing import rng

    h, w = p["image_size"]
    celeba = out / "celeba"
    images = celeba / IMAGE_DIR
    for folder in (images, celeba / "Anno", celeba / "Eval", celeba / "MAFL"):
        folder.mkdir(parents=True)
    train_ids, test_ids = synthetic_ids(p)
    rows, drawn = {}, []
    for split_code, ids in enumerate((train_ids, test_ids)):
        for i, ident in enumerate(ids):
            name = f"{ident:06d}.jpg"
            if split_code == 1 and test_split_copies_training(p):
                shutil.copyfile(images / drawn[i], images / name)
                rows[name] = rows[drawn[i]]
                continue
            pixels, pts = draw_face(rng(p["seed"], SEED_CODE, split_code, i), h, w)
            Image.fromarray(pixels).save(images / name, quality=95)
            rows[name] = pts
            drawn.append(name)
    names = sorted(rows)
    lines = [str(len(names)), " ".join(f"{k}_{c}" for k in LANDMARKS for c in "xy")]
    lines += [f"{n} " + " ".join(str(int(v)) for v in rows[n].reshape(-1)) for n in names]
    (celeba / LANDMARK_FILE).write_text("\n".join(lines) + "\n")
    (celeba / PARTITION_FILE).write_text(
        "".join(f"{n} {0 if int(n[:6]) < CELEBA_TEST_FIRST_ID else 2}\n" for n in names))
    for split, ids in (("training", train_ids), ("testing", test_ids)):
        (celeba / "MAFL" / f"{split}.txt").write_text("\n".join(f"{i:06d}.jpg" for i in ids))  # no final newline


# ----------------------------------------------------------------------------- evaluator

def evaluator(dataset_name, output_dir=None, distributed=True):
    """DVE's inter-ocular error over the split (benchmark.data.evaluators.LandmarkEvaluator)."""
    from benchmark.data.evaluators import LandmarkEvaluator

    return LandmarkEvaluator(distributed=distributed)


FAMILY = DatasetFamily(
    name="mafl",
    datasets=frozen_layouts({
        "mafl_train": {"celeba_dir": "celeba", "mafl_dir": "celeba/MAFL", "split": "training"},
        "mafl_test": {"celeba_dir": "celeba", "mafl_dir": "celeba/MAFL", "split": "testing"},
    }),
    tops=("celeba",),
    smoke_image_size=(218, 178),  # CelebA's aligned size: the protocol's crop (top 30, 178x178) applies as it is
    smoke_overlay="mafl_landmarks.yaml",
    evaluator_type="landmarks",
    register_split=register,
    check=check,
    synthesize=synthesize,
    evaluator=evaluator,
    check_settings=check_settings,
)
