#!/usr/bin/env python
"""`make demo`: the whole suite on CPU in about a minute, on data and weights made here.

Writes synthetic VOC data and a synthetic MoCo-format checkpoint, converts it to detectron2
weights, fine-tunes `voc07 --smoke` on it and prints the run record. Everything lands under
demo_output/ (or the folder given); running it again reuses what is there.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    out = Path((argv or sys.argv[1:] or ["demo_output"])[0])
    from benchmark.checkpoints import make_synthetic_checkpoint
    from benchmark.convert import convert_file
    from benchmark.data import write_synthetic
    from benchmark.engine import Options, run

    data = write_synthetic("voc", out / "data")
    raw = out / "moco_synthetic.pth"
    if not raw.exists():
        make_synthetic_checkpoint(raw, layout="moco")
    converted = convert_file(raw, out / "moco_synthetic.pkl", force=True)
    print(converted.summary())
    rc = run(Options(task="voc07", weights=str(converted.output), data_root=str(data), smoke=True,
                     output=str(out / "voc07"), name="moco_synthetic"))
    print((out / "voc07" / "trial_0" / "results.json").read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
