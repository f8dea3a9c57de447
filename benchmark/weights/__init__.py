"""Checkpoints -> detectron2 weights: the first stage of the pipeline.

    spec.py       what the user passed as --weights, parsed once (path, converted .pkl, URL, zoo:NAME)
    download.py   http(s) downloads into the cache: streamed, verified, atomic
    zoo.py        the released checkpoints by name (configs/zoo.yaml) and their sha256 pins
    formats.py    checkpoint formats as data: a pure rename per source, plus the input settings
    loading.py    safe loaders: torch.load(weights_only=True), the restricted unpickler for .pkl
    convert.py    convert_state_dict / convert_file / prepare_weights: the one downward path
    synthetic.py  random ResNet checkpoints in the public layouts (smoke runs, demo, tests)
"""
