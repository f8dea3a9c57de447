"""The inversion itself: G generators fitted at once, each to one (image, checkpoint) target.

RECIPE [Good_transfer:reconstruction.py]: a fresh `skip` generator per image, its fixed noise as input
(generator.py); each step computes the generator's output, takes its top-left crop x crop corner
(`net(net_input)[:, :, :224, :224]`), runs the checkpoint's network on it and minimises the MSE between
those features and the source image's (nn.MSELoss: the mean over the feature's elements), with Adam
(lr 1e-3, PyTorch's default betas and eps) on the generator's parameters only. The result is the last
output's crop after the last step, computed the authors' way (the generator still in training mode)
and de-normalised.

Batched: the loss is the sum of the G per-generator MSEs, so each block's gradient is that of its own
loss (generator.py says why the blocks never mix). `steps` counts optimizer steps exactly; the authors'
`while n_iter <= max_iter` loop takes max_iter + 1.
"""
import time

import torch
import torch.nn.functional as F

from benchmark.inversion import generator

LR = 1e-3  # [Good_transfer:reconstruction.py --lr 0.001, readme]


def invert(extractors, sources, steps: int, seed: int, noise_size: int, lr: float = LR, progress=None) -> dict:
    """Reconstruct each of `sources` (N x 3 x crop x crop RGB in [0, 1]) from each extractor's features.

    `extractors`: FeatureExtractor per checkpoint, all on one device. Returns {"images": C x N x 3 x crop x
    crop RGB in [0, 1] (CPU), "loss": C x N final feature MSE (of the returned images' crops, before
    clamping), "rel_loss": that MSE over the target features' mean square}. `progress(step, steps)` is called after each step.
    """
    device = extractors[0].mean.device
    c, n, crop = len(extractors), sources.shape[0], sources.shape[-1]
    if noise_size < crop:
        raise ValueError(f"noise size {noise_size} is smaller than the crop {crop}")
    sources = sources.to(device)
    with torch.no_grad():
        targets = [e(e.normalise(sources)) for e in extractors]
    net, z = generator.build(c * n, noise_size, seed)
    # channels_last: grouped convolutions' backward in this layout runs ~2x faster on CPU (measured here with
    # torch 2.14: G=2 at 128 px, 1.27 s vs 2.59 s per step), and it changes no number beyond rounding
    net = net.to(device, memory_format=torch.channels_last).train()
    z = z.to(device).contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def losses(out):
        crops = out[:, :, :crop, :crop].reshape(c, n, 3, crop, crop)
        per = [F.mse_loss(e(crops[k]), targets[k], reduction="none").flatten(1).mean(1) for k, e in enumerate(extractors)]
        return crops, torch.stack(per)

    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        _, loss = losses(net(z))
        loss.sum().backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps)
    with torch.no_grad():
        crops, loss = losses(net(z))
        images = torch.stack([e.denormalise(crops[k]) for k, e in enumerate(extractors)])
        # The MSE over the target's mean square: scale-free (0 exact, 1 as far off as all-zero features), so
        # checkpoints whose features differ in scale compare (an N(0, 1)-initialised ResNet's res3 MSE is ~1e26).
        power = torch.stack([t.pow(2).flatten(1).mean(1) for t in targets]).clamp_min(torch.finfo(loss.dtype).tiny)
    return {"images": images.cpu(), "loss": loss.cpu(), "rel_loss": (loss / power).cpu()}


class Progress:
    """A progress line with the ETA, at most every `period_s` seconds and at the end."""

    def __init__(self, what: str, period_s: float = 10.0, out=None):
        import sys

        self.what, self.period_s, self.out = what, period_s, out or sys.stderr
        self.start = self.last = time.monotonic()

    def __call__(self, step: int, steps: int) -> None:
        now = time.monotonic()
        if now - self.last < self.period_s and step < steps:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / step * (steps - step)
        print(f"{self.what}: step {step}/{steps} ({100 * step / steps:.0f}%), {elapsed:.0f} s elapsed, "
              f"ETA {eta:.0f} s", file=self.out, flush=True)
