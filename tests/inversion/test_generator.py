"""DIP's skip generator as the authors configured it: its size, its seeding, and batching that never mixes generators."""
import torch

from benchmark.inversion import generator


def test_one_generator_has_the_authors_parameter_count():
    net, z = generator.build(1, 256, seed=0)
    assert generator.parameter_count(net) == 2_606_763  # shared/REFERENCES.md, DIP skip with the authors' lists
    assert z.shape == (1, 32, 256, 256)
    assert 0.0 <= float(z.min()) and float(z.max()) <= 0.1  # uniform noise x 0.1
    assert net(z).shape == (1, 3, 256, 256)  # no sigmoid: values are not squashed into [0, 1]


def test_the_same_seed_gives_the_same_generator_and_noise_and_another_seed_does_not():
    a, za = generator.build(1, 128, seed=3)
    b, zb = generator.build(1, 128, seed=3)
    c, zc = generator.build(1, 128, seed=4)
    assert torch.equal(za, zb) and not torch.equal(za, zc)
    pa, pb, pc = (torch.cat([p.flatten() for p in n.parameters()]) for n in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_batched_generators_give_each_generator_its_own_output_and_gradient():
    """Two generators side by side (grouped convolutions, per-generator BatchNorm) are two generators alone."""
    single, z1 = generator.build(1, 128, seed=0)
    pair, z2 = generator.build(2, 128, seed=0)
    assert generator.parameter_count(pair) == 2 * 2_606_763
    out1, out2 = single(z1), pair(z2)
    assert out2.shape == (2, 3, 128, 128)
    torch.testing.assert_close(out2[0], out1[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out2[1], out1[0], atol=1e-4, rtol=1e-4)
    # a loss on the second image only moves the second generator's weights: the first block's gradient is zero
    out2[1].square().mean().backward()
    head = pair.head.weight.grad
    assert float(head[:3].abs().max()) == 0.0 and float(head[3:].abs().max()) > 0.0
