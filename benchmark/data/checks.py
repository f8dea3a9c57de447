"""What every family's layout check shares: the error it raises and the file, JSON and image checks.

detectron2's loaders fail late and obscurely (an `assert` deep in a dataloader worker, minutes
into a run, or a `ValueError: 'cat' is not in list`). Each family's `check` (benchmark.data.voc,
.coco, .cityscapes, .imagenet) walks what its loader will read and raises one `DatasetLayoutError`
naming the first missing or corrupt path and pointing to datasets.md, where the expected trees
are written out.

RULE: what is cheap to check is checked before compute: every file exists; every image is
complete (its JPEG/PNG end marker is there: a truncated file fails here naming it, not in a loader
worker without a name); every annotation file has the shape its loader expects, its boxes and
masks fit its images, and its categories are the task's (COCO: exactly detectron2's 80).
Decoding pixels (label ids) is left to the run, where they are decoded anyway.
"""
import json
import os
from pathlib import Path

DOC = "datasets.md"
# A JSON annotation file bigger than this is checked for truncation only (its ends), not parsed:
# parsing instances_train2017.json (448 MB) costs ~20 s and GBs of memory, and the loader parses it anyway.
FULL_PARSE_MAX_BYTES = 64 << 20


class DatasetLayoutError(ValueError):
    """A dataset folder or file is missing or unreadable; the message names it."""


def fail(name, problem, path):
    raise DatasetLayoutError(f"dataset {name}: {problem} {path} (expected layout and preparation: see {DOC})")


def need_dir(name, path):
    if not Path(path).is_dir():
        fail(name, "missing folder", path)


def need_file(name, path, what="missing file"):
    if not Path(path).is_file():
        fail(name, what, path)


_JPEG_END, _PNG_END = b"\xff\xd9", b"IEND\xaeB`\x82"
_TAIL = 1024  # bytes read from an image's end: its end marker lies there (trailing padding tolerated)
_HEAD = 4096  # bytes read from an image's start: a JPEG's frame header or a PNG's IHDR usually lies there


def check_image_complete(name, path) -> tuple:
    """An image file that is cut short, or whose header no loader will open, fails here naming it;
    returns its (width, height) from the header (two small reads and a header parse, no decoding).

    JPEG ends with the EOI marker FFD9, which entropy-coded data never holds (0xFF is stuffed), and
    PNG with its IEND chunk; any other file must at least be an image PIL recognises. The header is
    read as every loader of the suite (detectron2's read_image, torchvision's ImageFolder) reads it,
    through PIL: a size beyond PIL's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, which PIL
    warns about and, at twice the limit, refuses with DecompressionBombError, not an OSError) is
    refused here instead of after training, when the test split is first read.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as e:
        fail(name, f"unreadable image ({e.strerror or e})", path)
    dims = None
    if head.startswith(b"\xff\xd8"):
        if _JPEG_END not in tail:
            fail(name, "truncated image (its JPEG end marker is missing; copy or download the file again)", path)
        dims = _jpeg_size(head)
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        if _PNG_END not in tail:
            fail(name, "truncated image (its PNG IEND chunk is missing; copy or download the file again)", path)
        if head[12:16] == b"IHDR":
            dims = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if dims is None or not 0 < dims[0] * dims[1] <= _pil_limit():
        return image_header_size(name, path)  # PIL reads the header, and words what is wrong with it
    return dims


def _pil_limit() -> int:
    """PIL's decompression-bomb limit now (a user may raise it: Image.MAX_IMAGE_PIXELS)."""
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS or 2**62


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def _jpeg_size(head: bytes):
    """(width, height) from a JPEG's first start-of-frame segment within `head`, or None (then PIL reads it).

    Reading it here saves PIL's parse of every segment on the check's hot path (half its cost).
    """
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None


def image_header_size(name, path) -> tuple:
    """(width, height) of an image from its header, as PIL (every loader here) opens it; refused when PIL
    cannot read it or when it exceeds PIL's decompression-bomb limit."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        fail(name, f"image header claims more than PIL's limit of {Image.MAX_IMAGE_PIXELS:,} pixels (a "
                   "decompression bomb, or a file that is not the dataset's image; PIL's loader refuses it)", path)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        fail(name, f"unreadable image ({type(e).__name__}: not an image PIL can read)", path)
    if width < 1 or height < 1:
        fail(name, f"image of size {width}x{height}", path)
    return width, height


def check_ids(name, ids, listing) -> None:
    """A split's ids: each a plain file name stem (no folder, no `..`), none listed twice.

    An id listed twice is read twice by the loader, and an evaluator counts its objects twice (VOC's
    voc_eval: perfect detections then score AP50 54.5); an id with a path part reads outside the data root.
    """
    seen = set()
    for fileid in ids:
        if "/" in fileid or "\\" in fileid or fileid in (".", "..") or fileid.startswith("."):
            fail(name, f"split id {fileid!r} is not a plain file name (it would read outside the data folder), in",
                 listing)
        if fileid in seen:
            fail(name, f"split lists {fileid!r} twice (it would be read, and its objects evaluated, twice), in",
                 listing)
        seen.add(fileid)


def check_json_file(name, path):
    """Parse `path` (or, when huge, check its ends); return the parsed value or None."""
    size = path.stat().st_size
    if size > FULL_PARSE_MAX_BYTES:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
            f.seek(max(0, size - 64))
            tail = f.read().rstrip()
        if not (head.startswith(b"{") and tail.endswith(b"}")):
            fail(name, "corrupt (truncated?) JSON annotation file", path)
        return None
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(name, f"corrupt JSON annotation file ({e})", path)
