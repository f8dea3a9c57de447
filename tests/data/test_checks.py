"""The image check's own header reading agrees with PIL's, which every loader of the suite uses."""
import io

import numpy as np
import pytest
from PIL import Image

from benchmark.data.checks import DatasetLayoutError, check_image_complete, image_header_size


@pytest.mark.parametrize("fmt,options", [
    ("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 6000}),
    ("PNG", {}), ("BMP", {}), ("WEBP", {}),
], ids=["jpeg", "progressive", "jpeg-large-exif", "png", "bmp", "webp"])
def test_header_size_is_pils(fmt, options, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"image.{fmt.lower()}"
    Image.fromarray(pixels).save(path, fmt, **options)
    assert check_image_complete("d", path) == image_header_size("d", path) == (53, 37)


def test_a_header_beyond_pils_limit_is_refused_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    buffer = io.BytesIO()
    Image.new("L", (40, 30)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,200 pixels: a warning in PIL, refused here
    with pytest.raises(DatasetLayoutError, match=r"decompression bomb.*big\.png"):
        check_image_complete("d", path)
