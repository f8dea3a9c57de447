"""detectron2's names for torchvision's ResNet keys, written out independently of
benchmark/weights/formats.py (as MoCo's detection/convert-pretrain-to-detectron2.py does it), and
the arrays every converted file of given synthetic weights must hold: the tests' renaming oracle."""
from benchmark.weights.synthetic import torchvision_weights


def detectron2_name(tv_key: str) -> str:
    """detectron2's name for a torchvision ResNet key: layerN -> res(N+1), bnN -> convN.norm,
    downsample -> shortcut, the stem's conv1/bn1 under stem."""
    k = tv_key if "layer" in tv_key else "stem." + tv_key
    for t in [1, 2, 3, 4]:
        k = k.replace(f"layer{t}", f"res{t + 1}")
    for t in [1, 2, 3]:
        k = k.replace(f"bn{t}", f"conv{t}.norm")
    return k.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def expected_backbone(seed=0, depth=50, width=64) -> dict:
    """{detectron2 name: tensor} every converted file of these synthetic weights must hold exactly."""
    return {detectron2_name(k): v for k, v in torchvision_weights(seed, depth, width).items()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}  # a backbone has no classifier
