"""detectron2's names for torchvision's ResNet keys, written out independently of
benchmark/weights/formats.py (as MoCo's detection/convert-pretrain-to-detectron2.py does it), and
the arrays every converted file of given weights must hold: the tests' renaming oracle.

The renaming is the same for bottleneck (ResNet-50/101/152) and basic blocks (ResNet-18/34):
a basic block's conv1/bn1 and conv2/bn2 take the same names as a bottleneck's, it just has no
conv3, and its downsample (where torchvision has one) becomes the shortcut as well.
"""
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


def backbone_of(state_dict) -> dict:
    """{detectron2 name: tensor} of a torchvision ResNet state dict (any depth): the classifier and
    num_batches_tracked left out, every other tensor renamed, the `module.` of DataParallel stripped."""
    out = {}
    for key, value in state_dict.items():
        key = key[7:] if key[:7] == "module." else key
        if key.split(".")[0] == "fc" or key.split(".")[-1] == "num_batches_tracked":
            continue  # a backbone has no classifier; BN's counter is not a weight
        out[detectron2_name(key)] = value
    return out


def expected_backbone(seed=0, depth=50, width=64) -> dict:
    """{detectron2 name: tensor} every converted file of these synthetic weights must hold exactly."""
    return backbone_of(torchvision_weights(seed, depth, width))
