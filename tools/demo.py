#!/usr/bin/env python
"""`make demo`: two checkpoints converted, fine-tuned, evaluated and ranked on a CPU, in a few minutes.

A thin entry point over `benchmark.cli.demo` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
