"""Feature inversion (the paper's reconstruction figure): what a checkpoint's features keep of an image.

Modules from the bottom up:

    generator.py  Deep Image Prior's `skip` hourglass as the authors configured it, G generators at once
    features.py   a checkpoint's frozen detectron2 ResNet read at one layer (res2..res5, pooled)
    images.py     the source images: Resize + CenterCrop, the synthetic defaults, PNG writing
    loop.py       the inversion: Adam on the generators, the feature MSE, the progress line
    metrics.py    PSNR and SSIM (torchmetrics), named with their version
    figure.py     the grid figure: images x checkpoints, the source in the first column
    run.py        the command's work: inputs checked, resumable per image, outputs, the run record
"""
