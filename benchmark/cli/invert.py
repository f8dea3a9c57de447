"""Reconstruct images from a checkpoint's features with a deep image prior (the paper's reconstruction figure).

  python tools/invert.py --weights moco.pth --weights zoo:supervised_r50          # the defaults: two
                                                                                    # synthetic images, res5
  python tools/invert.py --weights W --images photos/ --layer res3 --output inversion/

For each image and checkpoint, a fresh Deep Image Prior `skip` generator is fitted so that the
checkpoint's features of its output match those of the image (Zhao et al.'s released recipe:
Resize(256) + CenterCrop(224), fixed uniform noise 32x256x256 x0.1, MSE on the features, Adam lr 1e-3,
3,001 steps, the output's top-left 224 crop; shared/REFERENCES.md "Feature inversion"). Every random
draw follows --seed; all images of a batch and all checkpoints run at once on one device; a rerun
skips the images already complete. Writes OUTPUT/inversion_LAYER/: the reconstructions, grid.png
(images x checkpoints, the source first) and one run record per checkpoint (kind "analysis": PSNR,
SSIM and the final feature loss per image), which tools/leaderboard.py shows apart from fine-tuning runs.

Exit status: 0 done; 1 bad input (one line 'error: ...' naming the file or option, before any compute,
nothing written); 2 usage error.
"""
import argparse
import sys

from benchmark.inversion.recipe import LAYERS, Settings


def main(argv=None):
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", required=True,
                   help="a checkpoint (path, converted .pkl, http(s) URL or zoo:NAME); repeat for several")
    p.add_argument("--images", nargs="+", help="image files or folders (default: two synthetic scenes)")
    p.add_argument("--layer", default=d.layer, choices=LAYERS, help=f"features to invert (default {d.layer}: layer4)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"Adam steps (default {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--resize", type=int, default=d.resize, help=f"shorter side before the crop (default {d.resize})")
    p.add_argument("--crop", type=int, default=d.crop, help=f"centre crop and reconstruction size (default {d.crop})")
    p.add_argument("--noise-size", type=int, default=d.noise_size, help=f"side of the generator's noise (default {d.noise_size})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random draw (default {d.seed})")
    p.add_argument("--batch", type=int, default=4, help="images inverted at once, times the checkpoints (default 4)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--output", default="output/inversion", help="output folder (default output/inversion)")
    args = p.parse_args(argv)

    from benchmark.cli import quiet_third_party_deprecations
    from benchmark.inversion.images import ImageError
    from benchmark.inversion.run import run
    from benchmark.weights.convert import ConversionError

    settings = Settings(layer=args.layer, steps=args.steps, lr=args.lr, resize=args.resize, crop=args.crop,
                        noise_size=args.noise_size, seed=args.seed)
    try:
        with quiet_third_party_deprecations():
            result = run(args.weights, args.images, args.output, settings, batch=args.batch, device=args.device,
                         say=lambda line: print(line, file=sys.stderr, flush=True))
    except (ConversionError, ImageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{result['inverted']} reconstruction(s) made, {result['skipped']} already complete")
    print(f"grid:    {result['grid']}")
    for path in result["records"]:
        print(f"record:  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
