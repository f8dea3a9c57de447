#!/usr/bin/env python
"""Write small synthetic datasets in the exact on-disk layouts of VOC, COCO 2017 and Cityscapes.

A thin entry point over `benchmark.cli.make_synthetic` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.make_synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
