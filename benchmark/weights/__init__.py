"""Checkpoints -> detectron2 weights: the first stage of the pipeline.

Modules from the bottom up (each imports only those above it in this list):

    errors.py     ConversionError, the one error of the stage ('<file>: <problem>')
    formats.py    checkpoint formats as data: a pure rename per source, its input settings, the
                  architecture (expected shapes, depth and width, the config keys that build it)
    loading.py    safe loaders: torch.load(weights_only=True), the restricted unpickler for .pkl
    tensors.py    the values checked: kept tensors as float32 (half upcast exactly), refused dtypes and keys
    download.py   http(s) downloads into the cache: streamed, verified, atomic; LocalFile
    zoo.py        the released checkpoints by name (configs/zoo.yaml) and their sha256 pins
    spec.py       what the user passed as --weights, parsed once (path, converted .pkl, URL, zoo:NAME)
    convert.py    convert_file / prepare_weights: spec -> local file -> state dict -> written .pkl
    synthetic.py  random ResNet checkpoints in the public layouts, any depth and width (tests, demo)
"""
