#!/usr/bin/env python
"""Reproduce a paper table (configs/paper/NAME.yaml) and say, cell by cell, whether it holds.

A thin entry point over `benchmark.cli.reproduce` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
