"""The images to invert: read from files (Resize + CenterCrop, the authors' transform) or the defaults.

RECIPE: Resize(256) then CenterCrop(224) of an RGB image, then ToTensor (values in [0, 1])
[Good_transfer:reconstruction.py args initial_size 256, img_size 224; myDataLoader]. torchvision's
Resize on a PIL image scales the shorter side to 256 with bilinear filtering (PIL's, antialiased), the
longer side to int(256 x long / short); CenterCrop's top-left corner is round((side - 224) / 2).

Default images (no --images): a few synthetic scenes drawn like the tests' synthetic detection data
(benchmark.data.drawing: textured background, coloured shapes), seeded, so that the command and its
tests run without any dataset.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
DEFAULT_COUNT = 2  # the Must-show run: two synthetic images
_FAMILY_CODE = 20  # benchmark.data.drawing.rng's family code for these images (the VOC/COCO writers use others)


class ImageError(ValueError):
    """An image that cannot be used, named by its path."""


def list_images(sources) -> list:
    """The image files of `sources` (files, or folders whose image files are taken, sorted), checked to open."""
    paths = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
            if not found:
                raise ImageError(f"{source}: no image file ({', '.join(SUFFIXES)}) in this folder")
            paths += found
        elif source.is_file():
            paths.append(source)
        else:
            raise ImageError(f"{source}: no such file or folder")
    for path in paths:
        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError) as exc:
            raise ImageError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    stems = [p.stem for p in paths]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:  # each image's outputs are named by its stem
        raise ImageError(f"{paths[stems.index(twice[0])]}: two images are named {twice[0]!r} (outputs are named by stem)")
    return paths


def write_default_images(folder, count: int = DEFAULT_COUNT, size: int = 320, seed: int = 0) -> list:
    """`count` seeded synthetic scenes (size x size PNG) in `folder`, written once; their paths."""
    from benchmark.data.drawing import detection_image, random_classes, rng
    from benchmark.fileio import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"synthetic_{i}.png"
        if not path.is_file():
            r = rng(seed, _FAMILY_CODE, 0, i)
            img, _ = detection_image(r, size, size, random_classes(r, 20, max_objects=3), large=True)
            with atomic_write(path) as f:
                Image.fromarray(img).save(f, format="PNG")
        paths.append(path)
    return paths


def load(path, resize: int, crop: int) -> torch.Tensor:
    """3 x crop x crop RGB in [0, 1]: the image scaled to `resize` on its shorter side, centre-cropped."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        if w <= h:
            size = (resize, int(resize * h / w))
        else:
            size = (int(resize * w / h), resize)
        im = im.resize(size, Image.BILINEAR)
        left, top = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def save_png(rgb: torch.Tensor, path) -> None:
    """3 x H x W in [0, 1] -> an 8-bit PNG at `path`, written atomically (ToPILImage's x 255, truncated)."""
    from benchmark.fileio import atomic_write

    array = (rgb.detach().cpu().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format="PNG")
