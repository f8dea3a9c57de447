#!/usr/bin/env python
"""Fine-tune a pretrained checkpoint on a transfer task and write OUTPUT/trial_k/results.json.

A thin entry point over `benchmark.cli.run_transfer` (also installed as a console script; see setup.py).
"""
import sys
from pathlib import Path

# Run from a checkout without installing: the package is the folder above tools/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.cli.run_transfer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
