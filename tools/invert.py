#!/usr/bin/env python
"""Reconstruct images from a checkpoint's features with a deep image prior (feature inversion).

A thin entry point over `benchmark.cli.invert` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.invert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
