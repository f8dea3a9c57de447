"""Checkpoints -> detectron2 weights: the first stage of the pipeline.

Modules from the bottom up (each imports only those above it in this list):

    errors.py        ConversionError, the one error of the stage ('<file>: <problem>')
    formats.py       checkpoint formats as data (Source, SOURCES) and the pure rename of a state
                     dict into detectron2's names; the formats' input settings; --list-formats
    detect.py        which format a checkpoint is and where its ResNet's state dict sits
                     (locate); an unknown layout named in one line with the nearest format
    architecture.py  the ResNet the weights must be: expected shapes, depth and width read from
                     the weights, validation of names and shapes, the config keys that build it
    loading.py       safe loaders: torch.load(weights_only=True), the restricted unpickler for .pkl
    tensors.py       the values checked: kept tensors as float32 (half upcast exactly), refused
                     dtypes and keys, NaN/Inf, negative BatchNorm variances
    download.py      http(s) downloads into the cache: streamed, verified, atomic; LocalFile
    zoo.py           the released checkpoints by name (configs/zoo.yaml) and their sha256 pins
    spec.py          what the user passed as --weights, parsed once (path, converted .pkl, URL, zoo:NAME)
    convert.py       convert_file / prepare_weights: spec -> local file -> state dict -> written .pkl
    synthetic.py     random ResNet checkpoints in the public layouts, any depth and width (tests, demo)
"""
