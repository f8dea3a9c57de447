#!/usr/bin/env python
"""Draw Hoiem's false-positive chart of one VOC run, or two side by side, as an SVG file.

A thin entry point over `benchmark.cli.fp_chart` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.fp_chart import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
