"""Write small synthetic datasets in the exact on-disk layouts of VOC, COCO 2017 and Cityscapes.

DIR then works as a data root: `run_transfer.py --data-root DIR` (or DETECTRON2_DATASETS=DIR)
resolves voc_2007_trainval, coco_2017_val, cityscapes_fine_sem_seg_train, ... to it. Each class
is one shape in one colour over a textured background, so a model can learn it in minutes on a
CPU. The same arguments write the same files; a DIR already holding the same dataset is left as
it is. See datasets.md.

Exit status: 0 written (or already there); 1 DIR unusable (one line 'error: ...'); 2 usage error.
"""
import argparse
import sys
from pathlib import Path

from benchmark.data.families import FAMILIES, get_family


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="data root to write into")
    parser.add_argument("--format", default="all", choices=[*FAMILIES, "all"],
                        help="dataset family (default: all)")
    parser.add_argument("--num-train", type=int, default=8, help="images per training split (default: 8)")
    parser.add_argument("--num-test", type=int, default=4, help="images in the test split (default: 4)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="image height and width (default: the family's smoke size, "
                             + ", ".join(f"{f.name} {f.smoke_image_size[0]} {f.smoke_image_size[1]}"
                                         for f in FAMILIES.values()) + ")")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    formats = tuple(FAMILIES) if args.format == "all" else (args.format,)
    try:
        for fmt in formats:
            get_family(fmt).write_synthetic(args.out, num_train=args.num_train, num_test=args.num_test,
                                            image_size=tuple(args.size) if args.size else None, seed=args.seed)
            print(f"{fmt}: {args.out}")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
