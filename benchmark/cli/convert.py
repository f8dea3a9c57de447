"""Convert a pretrained checkpoint into detectron2 weights (a validated .pkl).

INPUT is a file, an http(s) URL (downloaded into the cache, see $BENCHMARK_CACHE) or zoo:NAME.
The format (MoCo v1/v2/v3, SwAV, DINO, Barlow Twins, VICReg, BYOL, SimCLR v1/v2, PyContrast,
DenseCL/mmselfsup, solo-learn, VISSL, timm, Exemplar, torchvision; --list-formats prints them with
their sources) is detected unless --format names it. Layouts with torchvision's very keys (Exemplar,
supervised, Barlow Twins, VICReg, DINO's backbone-only file, BYOL, SimCLR v1) are detected as
torchvision and the summary says so: pass --format NAME to record which it is (zoo:NAME knows).
A file holding two networks (DINO's teacher and student, PyContrast's online and EMA encoders,
timm's state_dict and state_dict_ema) gives the first, and the summary says which; the other has a
format of its own (dino_student, pycontrast_ema, timm_ema). Bottleneck ResNet-50/101/152 of any width
(64: torchvision's; 128: SimCLR's ResNet-50 x2) and basic-block ResNet-18/34 (width 64; for the tasks
whose heads need no bottleneck: imagenet_linear, fewshot_miniimagenet, mafl_landmarks) are read. The output holds only the ResNet
backbone (heads, MoCo's key encoder and queue dropped) and records its provenance and the
config keys a model fine-tuned from it needs: the input settings (RGB, torchvision mean/std,
STRIDE_IN_1X1 False) and the architecture (MODEL.RESNETS.DEPTH and the widths).

Every kept tensor is written as float32: float16/bfloat16 are upcast exactly, float64 rounded as
the model would (the summary's dtype line says so); float8, quantized, sparse, meta, complex, bool
or integer tensors, non-string keys and negative BatchNorm variances are refused naming the key.
The input is never overwritten, --force or not (an OUTPUT that is the input, also through a link,
is refused); a raw checkpoint named .pkl needs -o OTHER.pkl. A URL's user:password@ and query
values are never shown or stored; downloads enter the cache only complete and loadable, within
$BENCHMARK_DOWNLOAD_DEADLINE seconds (default 4 h).

Exit status: 0 converted; 1 bad input (one line 'error: <file>: <problem>', no output written);
2 usage error.
"""
import argparse
import sys

from benchmark.weights.convert import ConversionError, convert_file
from benchmark.weights.formats import SOURCES, format_table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="checkpoint path, http(s) URL, or zoo:NAME")
    parser.add_argument("--list-formats", action="store_true", help="print the checkpoint formats and their sources, and exit")
    parser.add_argument("-o", "--output", help="output .pkl (default: INPUT with .pkl beside it; in the cache for URLs)")
    parser.add_argument("--format", default="auto", choices=["auto", *SOURCES], help="source format (default: detect)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUTPUT")
    args = parser.parse_args(argv)
    if args.list_formats:
        print(format_table(), end="")
        return 0
    if args.input is None:
        parser.error("INPUT is required (or --list-formats)")
    try:
        result = convert_file(args.input, args.output, fmt=args.format, force=args.force)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
