"""Deep Image Prior's `skip` hourglass, as the authors of the paper configured it, for G images at once.

RECIPE (nanxuanzhao/Good_transfer `code_reconstruction_DIP/reconstruction.py` at 060ba39, which calls
DmitryUlyanov/deep-image-prior `models/skip.py`; shared/REFERENCES.md "Feature inversion"): input depth
32, num_channels_down = num_channels_up = [16, 32, 64, 128, 128, 128], num_channels_skip = [4] * 6,
filter sizes [7, 7, 5, 5, 3, 3] down and up, 1x1 skip convolutions, a 1x1 convolution after each up
block (need1x1_up), biases, zero padding, 'avg' downsampling (a stride-1 convolution then a 2x2 average
pool), 'nearest' upsampling, LeakyReLU(0.2), BatchNorm after every convolution but the last, no sigmoid.
One generator has 2,606,763 parameters (tests/inversion check it).

Batched (`groups` G): the G generators are one network whose channels are G blocks, every convolution
grouped by G. A grouped convolution, a per-channel BatchNorm on a batch of one (DIP's generators run
in training mode on their single noise image: its statistics are per generator), an element-wise
activation, pooling and upsampling never mix two blocks, and Adam is element-wise: each block follows
exactly the trajectory it would follow alone, while one process runs them all in one pass.

Every random draw comes from the `torch.Generator` given (`init_generator`): the noise first, then the
weights in module order, with PyTorch's own default initialisations (Conv2d.reset_parameters), drawn for
one generator and copied into each of the G blocks, so all G start from the same weights and noise and
their reconstructions differ only by their targets.
"""
import math

import torch
from torch import nn

from benchmark.inversion import recipe

INPUT_DEPTH = 32  # [Good_transfer:reconstruction.py input_depth]
CHANNELS_DOWN = (16, 32, 64, 128, 128, 128)  # [Good_transfer:reconstruction.py]
CHANNELS_UP = (16, 32, 64, 128, 128, 128)  # [Good_transfer:reconstruction.py]
CHANNELS_SKIP = (4, 4, 4, 4, 4, 4)  # [Good_transfer:reconstruction.py]
FILTERS_DOWN = (7, 7, 5, 5, 3, 3)  # [Good_transfer:reconstruction.py]
FILTERS_UP = (7, 7, 5, 5, 3, 3)  # [Good_transfer:reconstruction.py]
FILTER_SKIP = 1  # skip()'s default filter_skip_size [deep-image-prior:models/skip.py]
LEAKY_SLOPE = 0.2  # act('LeakyReLU') [deep-image-prior:models/common.py]
NOISE_SCALE = 0.1  # get_noise(..., var=1./10), uniform [Good_transfer:reconstruction.py]
SCALE = recipe.SCALE  # six halvings: the noise side must be a multiple of 64
assert 2 ** len(CHANNELS_DOWN) == SCALE
PARAMETERS = 2_606_763  # one generator [shared/REFERENCES.md]


def _conv(cin, cout, k, groups):
    # DIP's conv(): zero padding (k - 1) / 2, bias, stride 1 (downsampling is a separate pool)
    return nn.Conv2d(groups * cin, groups * cout, k, padding=(k - 1) // 2, bias=True, groups=groups)


def _block(cin, cout, k, groups):
    return [_conv(cin, cout, k, groups), nn.BatchNorm2d(groups * cout), nn.LeakyReLU(LEAKY_SLOPE)]


class _Concat(nn.Module):
    """DIP's Concat(1, skip, deeper) per block: [skip_g, deeper_g] for each of the G generators."""

    def __init__(self, skip, deeper, groups):
        super().__init__()
        self.skip, self.deeper, self.groups = skip, deeper, groups

    def forward(self, x):
        a, b = self.skip(x), self.deeper(x)
        n, g, (h, w) = a.shape[0], self.groups, a.shape[2:]
        if b.shape[2:] != a.shape[2:]:  # DIP crops here; a noise side divisible by 64 never needs it
            raise ValueError(f"skip generator: feature sizes {tuple(a.shape[2:])} and {tuple(b.shape[2:])} differ")
        return torch.cat([a.reshape(n, g, -1, h, w), b.reshape(n, g, -1, h, w)], dim=2).reshape(n, -1, h, w)


class SkipGenerator(nn.Module):
    """`groups` DIP `skip` generators side by side: (1, G*32, S, S) noise -> (G, 3, S, S) images."""

    def __init__(self, groups: int = 1, out_channels: int = 3):
        super().__init__()
        self.groups = groups
        self.net = self._level(0, INPUT_DEPTH)
        self.head = _conv(CHANNELS_UP[0], out_channels, 1, groups)

    def _level(self, i, cin):
        g, last = self.groups, i == len(CHANNELS_DOWN) - 1
        skip = nn.Sequential(*_block(cin, CHANNELS_SKIP[i], FILTER_SKIP, g))
        deeper = [_conv(cin, CHANNELS_DOWN[i], FILTERS_DOWN[i], g), nn.AvgPool2d(2, 2),
                  nn.BatchNorm2d(g * CHANNELS_DOWN[i]), nn.LeakyReLU(LEAKY_SLOPE),
                  *_block(CHANNELS_DOWN[i], CHANNELS_DOWN[i], FILTERS_DOWN[i], g)]
        if not last:
            deeper.append(self._level(i + 1, CHANNELS_DOWN[i]))
        deeper.append(nn.Upsample(scale_factor=2, mode="nearest"))
        k = CHANNELS_DOWN[i] if last else CHANNELS_UP[i + 1]
        return nn.Sequential(
            _Concat(skip, nn.Sequential(*deeper), g),
            nn.BatchNorm2d(g * (CHANNELS_SKIP[i] + k)),
            *_block(CHANNELS_SKIP[i] + k, CHANNELS_UP[i], FILTERS_UP[i], g),
            *_block(CHANNELS_UP[i], CHANNELS_UP[i], 1, g),  # need1x1_up [deep-image-prior:models/skip.py]
        )

    def forward(self, noise):
        out = self.head(self.net(noise))
        return out.reshape(self.groups * out.shape[0], -1, *out.shape[2:])

    @torch.no_grad()
    def init_(self, generator: torch.Generator) -> "SkipGenerator":
        """PyTorch's default Conv2d initialisation (kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in))) drawn
        from `generator` for one generator and copied into every block; BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                one = torch.empty(m.weight.shape[0] // self.groups, *m.weight.shape[1:])
                nn.init.kaiming_uniform_(one, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(one[0].numel())
                bias = torch.empty(one.shape[0]).uniform_(-bound, bound, generator=generator)
                m.weight.copy_(one.repeat(self.groups, 1, 1, 1))
                m.bias.copy_(bias.repeat(self.groups))
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        return self


def noise(size: int, generator: torch.Generator, groups: int = 1) -> torch.Tensor:
    """DIP's fixed input: uniform noise x 0.1 of 1 x 32 x size x size, the same for each of the G blocks."""
    if size % SCALE:
        raise ValueError(f"noise size {size}: must be a multiple of {SCALE} (the generator halves it six times)")
    one = torch.rand((1, INPUT_DEPTH, size, size), generator=generator) * NOISE_SCALE
    return one.repeat(1, groups, 1, 1)


def build(groups: int, size: int, seed: int) -> tuple:
    """(generator, noise) for G images: noise drawn first, then the weights, all from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    z = noise(size, gen, groups)
    return SkipGenerator(groups).init_(gen), z


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
