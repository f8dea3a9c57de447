"""Write small synthetic datasets in the exact on-disk layouts of VOC, COCO 2017 and Cityscapes.

DIR then works as a data root: `run_transfer.py --data-root DIR` (or DETECTRON2_DATASETS=DIR)
resolves voc_2007_trainval, coco_2017_val, cityscapes_fine_sem_seg_train, ... to it. Each class
is one shape in one colour over a textured background, so a model can learn it in minutes on a
CPU. The same arguments write the same files; a DIR already holding the same dataset is left as
it is. See datasets.md.

Exit status: 0 written (or already there); 1 DIR unusable (one line 'error: ...'); 2 usage error.
"""
import argparse
import math
import sys
from pathlib import Path

from benchmark.data.families import FAMILIES, get_family
from benchmark.fileio import unusable_output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="data root to write into")
    parser.add_argument("--format", default="all", choices=[*FAMILIES, "all"],
                        help="dataset family (default: all)")
    parser.add_argument("--num-train", type=int, default=8, help="images per training split (default: 8)")
    parser.add_argument("--num-test", type=int, default=4, help="images in the test split (default: 4)")
    parser.add_argument("--size", nargs="+", default=None, metavar="H W | real",
                        help="image height and width (default: the family's smoke size, "
                             + ", ".join(f"{f.name} {f.smoke_image_size[0]} {f.smoke_image_size[1]}"
                                         for f in FAMILIES.values()) + "); 'real': the size the protocol trains "
                             "on, per family (benchmark.tasks.config.real_image_size)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--layout", choices=("images", "imagenet"), default=None,
                        help="miniimagenet only: the release's images/ folder (default) or ImageNet train folders "
                             "(imagenet/train, CloserLookFewShot's mapping); see datasets.md")
    args = parser.parse_args(argv)
    real = args.size == ["real"]
    if real:
        from benchmark.tasks.config import real_image_size  # reads the task configs (torch, detectron2)
    if not real and args.size is not None:
        if len(args.size) != 2 or not all(v.isdigit() for v in args.size):
            parser.error(f"--size: expected two whole numbers H W or 'real', got {' '.join(args.size)}")
        args.size = [int(v) for v in args.size]
    formats = tuple(FAMILIES) if args.format == "all" else (args.format,)
    problem = _bad_option(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    problem = unusable_output(args.out, "--out")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    fmt = formats[0]
    try:
        if "cityscapes" in formats:  # before any family is written
            fmt = "cityscapes"
            family = get_family(fmt)
            if not real:  # real-size images are tested at their own size, not the smoke overlay's
                _check_cityscapes_smoke_size(family, tuple(args.size) if args.size else family.smoke_image_size)
        for fmt in formats:
            family = get_family(fmt)
            size = real_image_size(fmt) if real else tuple(args.size) if args.size else family.smoke_image_size
            layout = {"layout": args.layout} if fmt == "miniimagenet" and args.layout else {}
            family.write_synthetic(args.out, num_train=args.num_train, num_test=args.num_test, image_size=size,
                                   seed=args.seed, **layout)
            print(f"{fmt}: {args.out}")
    except OSError as e:
        where = e.filename or args.out
        print(f"error: synthetic {fmt} dataset in {args.out}: {where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except ValueError as e:
        text = str(e)
        print(f"error: {text}" if str(args.out) in text else f"error: synthetic {fmt} dataset in {args.out}: {text}",
              file=sys.stderr)
        return 1
    return 0


def _bad_option(args):
    """The option that cannot be used, named with its value and why (None: all can), before anything is written."""
    if args.seed < 0:  # numpy's generators take non-negative seeds only (and say so without naming the flag)
        return f"--seed {args.seed}: the random seed must be 0 or more"
    for flag, value in (("--num-train", args.num_train), ("--num-test", args.num_test)):
        if value < 2:  # detectron2's VOC loader cannot read a one-line image list (np.loadtxt gives a 0-d array)
            return f"{flag} {value}: a split needs at least 2 images"
    return None


def _check_cityscapes_smoke_size(family, size):
    """Refuse Cityscapes images whose smoke-test features would be smaller than the ASPP pool kernel.

    DeepLabV3's image pooling kernel is the training crop over the output stride (16); at test the
    image is resized as MIN/MAX_SIZE_TEST of the smoke overlay say, and features smaller than the
    kernel fail the run at evaluation ("kernel size can't be greater than actual input size").
    """
    import yaml

    smoke = yaml.safe_load(family.smoke_overlay_path.read_text())
    crop = smoke["INPUT"]["CROP"]["SIZE"]
    crop = tuple(int(c) for c in (crop.strip("()").split(",") if isinstance(crop, str) else crop))
    kernel = (crop[0] // 16, crop[1] // 16)
    short, longest = int(smoke["INPUT"]["MIN_SIZE_TEST"]), int(smoke["INPUT"]["MAX_SIZE_TEST"])
    h, w = (int(v) for v in size)
    scale = short / min(h, w)
    if max(h, w) * scale > longest:
        scale = longest / max(h, w)
    features = tuple(math.ceil(int(v * scale + 0.5) / 16) for v in (h, w))
    if features[0] < kernel[0] or features[1] < kernel[1]:
        raise ValueError(f"cityscapes images of {h}x{w} give {features[0]}x{features[1]} test features in --smoke runs "
                         f"({family.smoke_overlay_path}), smaller than the ASPP pool kernel {kernel[0]}x{kernel[1]}; "
                         f"use --size with a height:width near 1:2 (default {family.smoke_image_size[0]} "
                         f"{family.smoke_image_size[1]})")


if __name__ == "__main__":
    sys.exit(main())
