"""The inversion figure: one row per image, the source crop in the first column, then one
reconstruction per checkpoint, each captioned with its PSNR and SSIM (the paper's figure lays its
reconstructions out the same way: sources beside each checkpoint's reconstruction)."""
from pathlib import Path

import numpy as np
from PIL import Image


def grid(path, sources: list, columns: list, rows: list) -> Path:
    """Write the grid PNG at `path` (atomically).

    `sources`: per row, the source crop's PNG path; `columns`: the checkpoint names; `rows`: per row, per
    column, (reconstruction PNG path, {"PSNR", "SSIM"}).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.fileio import atomic_write

    n, c = len(sources), len(columns) + 1
    fig, axes = plt.subplots(n, c, figsize=(2.2 * c, 2.4 * n), squeeze=False)
    try:
        for i, (source, row) in enumerate(zip(sources, rows)):
            cells = [(source, None, "source")] + [(p, s, name) for (p, s), name in zip(row, columns)]
            for j, (png, scores, name) in enumerate(cells):
                ax = axes[i][j]
                ax.imshow(np.asarray(Image.open(png).convert("RGB")))
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(name.replace("$", r"\$"), fontsize=9)
                if scores is not None:
                    ax.set_xlabel(f"PSNR {scores['PSNR']:.2f} dB  SSIM {scores['SSIM']:.3f}", fontsize=7)
                else:
                    ax.set_xlabel(Path(png).stem.replace("$", r"\$"), fontsize=7)
        fig.tight_layout()
        with atomic_write(path) as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
    return Path(path)
