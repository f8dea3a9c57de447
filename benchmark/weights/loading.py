"""Safe loaders (being split out of convert.py)."""
from benchmark.weights.convert import load_checkpoint, load_converted  # noqa: F401
