"""Drawing the synthetic images that several families share: seeded textures and class-styled shapes.

The content is learnable: each class is one shape in one saturated colour over a muted, noisy,
textured background, so a detector's loss falls within a few dozen iterations. Everything is
seeded (`rng`): the same arguments give the same pixels. Used by the families' synthetic writers
(benchmark.data.voc, .coco, .cityscapes, .imagenet).
"""
import numpy as np
from PIL import Image, ImageDraw

# Class i is drawn as shape i % 4 in colour (i % 4 + i // 4) % 5: the 20 (shape, colour) pairs are
# all different, and the first four classes differ in both shape and colour.
SHAPES = ("rectangle", "ellipse", "triangle", "diamond")
COLOURS = ((220, 40, 40), (40, 190, 60), (40, 80, 230), (235, 200, 30), (200, 40, 210))


def class_style(i):
    """(shape, RGB colour) of class index i (0..19)."""
    return SHAPES[i % 4], COLOURS[(i % 4 + i // 4) % 5]


def rng(seed, family_code, split, index):
    """The generator of one image: each family passes its own code, so families never share images."""
    return np.random.default_rng([seed, family_code, split, index])


def texture(rng, h, w, base, amplitude=40.0):
    """A muted texture: `base` colour, a random low-frequency wave and per-pixel noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fy, fx = rng.uniform(0.03, 0.25, size=2)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(fy * yy + fx * xx + phase)[..., None] * (amplitude / 2)
    noise = rng.normal(0, amplitude / 4, size=(h, w, 3))
    return np.asarray(base, np.float32) + wave + noise


def shape_polygon(shape, x0, y0, x1, y1):
    """Vertices (x, y) of `shape` inscribed in the box [x0, x1] x [y0, y1]; extents touch the box."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "rectangle":
        pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    elif shape == "triangle":
        pts = [(cx, y0), (x1, y1), (x0, y1)]
    elif shape == "diamond":
        pts = [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    elif shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)  # a multiple of 4: touches all 4 sides
        pts = list(zip(cx + (x1 - x0) / 2 * np.cos(t), cy + (y1 - y0) / 2 * np.sin(t)))
    else:
        raise ValueError(shape)
    return [(round(float(x), 2), round(float(y), 2)) for x, y in pts]


def random_classes(rng, num_classes, max_objects=4):
    return [int(c) for c in rng.integers(num_classes, size=int(rng.integers(1, max_objects + 1)))]


def place_objects(rng, h, w, classes, large=False):
    """Non-overlapping integer boxes (x0, y0, x1, y1), one per class in `classes`, small to large.

    Sizes are log-uniform up to a limit that shrinks with the number of objects and on each failed
    try, so that crowded images still fit every object. `large`: from half that limit only (no
    object smaller than half the largest that fits), for the learning checks.
    """
    objects = []
    largest = 0.8 * min(h, w) / max(1.0, np.sqrt(len(classes) / 2))
    for cls in classes:
        for attempt in range(60):
            top = max(12.0, largest * 0.93 ** attempt)
            smallest = max(10.0, top / 2) if large else 10.0
            side = float(np.exp(rng.uniform(np.log(smallest), np.log(top))))
            bw = int(np.clip(side * rng.uniform(0.7, 1.4), 8, w - 4))
            bh = int(np.clip(side * rng.uniform(0.7, 1.4), 8, h - 4))
            x0 = int(rng.integers(1, w - bw - 1))
            y0 = int(rng.integers(1, h - bh - 1))
            box = (x0, y0, x0 + bw, y0 + bh)
            if all(box[2] + 2 < o[0] or o[2] + 2 < box[0] or box[3] + 2 < o[1] or o[3] + 2 < box[1]
                   for _, o in objects):
                objects.append((int(cls), box))
                break
    return objects


def draw_objects(rng, img, objects):
    """Paint each object's polygon in its class colour (with a little noise) onto `img` (HxWx3)."""
    h, w = img.shape[:2]
    polys = []
    for cls, box in objects:
        shape, colour = class_style(cls)
        poly = shape_polygon(shape, *box)
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon(poly, fill=1)
        m = np.asarray(mask, bool)
        img[m] = np.asarray(colour, np.float32) + rng.normal(0, 8, size=(int(m.sum()), 3))
        polys.append(poly)
    return polys


def detection_image(rng, h, w, classes, large=False):
    """A textured background with non-overlapping objects: (uint8 image, [(cls, box, polygon)])."""
    img = texture(rng, h, w, rng.uniform(90, 160, size=3))
    objects = place_objects(rng, h, w, classes, large)
    polys = draw_objects(rng, img, objects)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, [(cls, box, poly) for (cls, box), poly in zip(objects, polys)]
