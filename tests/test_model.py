"Generator and discriminator: shapes, the bicubic skip, gradient flow, build_models."
import pytest
import torch
import torch.nn.functional as F

from srgan_nb.config import RunConfig
from srgan_nb.model import Generator, Discriminator, bicubic, build_models, count_parameters, layer_shapes



@pytest.mark.parametrize('scale', [2, 4, 8])
@pytest.mark.parametrize('hw', [(24, 24), (7, 13), (1, 1)])
def test_generator_shapes(scale, hw):
    g = Generator(scale=scale, n_blocks=2, channels=16)
    out = g(torch.rand(2, 3, *hw))
    assert out.shape == (2, 3, hw[0] * scale, hw[1] * scale)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_generator_bad_scale():
    with pytest.raises(ValueError, match='scale'): Generator(scale=3)


def test_generator_configurable_size():
    small, big = Generator(n_blocks=2, channels=16), Generator(n_blocks=3, channels=24)
    assert len(small.blocks) == 2 and len(big.blocks) == 3
    assert small.head[0].out_channels == 16 and big.head[0].out_channels == 24
    assert count_parameters(big) > count_parameters(small)


@pytest.mark.parametrize('size', [96, 128])
def test_discriminator_sizes(size):
    d = Discriminator(hr_size=size)
    logits = d(torch.rand(2, 3, size, size))
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_discriminator_too_small():
    with pytest.raises(ValueError, match='16x16'): Discriminator()(torch.rand(1, 3, 8, 8))


def test_discriminator_paper_layout():
    d = Discriminator()
    convs = [m for m in d.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4
    bns = [m for m in d.features[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns == []  # no BN on the first layer
    assert all(any(isinstance(m, torch.nn.BatchNorm2d) for m in blk) for blk in d.features[1:])
    assert d.classifier[1].out_features == 1024 and d.classifier[-1].out_features == 1


def test_bicubic_skip_is_bicubic_at_init():
    torch.manual_seed(0)
    g = Generator(scale=4, n_blocks=2, channels=16, bicubic_skip=True)
    x = torch.rand(2, 3, 10, 9)
    torch.testing.assert_close(g(x), bicubic(x, 4), atol=1e-6, rtol=0)
    # and it really is torch's bicubic upscale (not e.g. nearest)
    assert not torch.allclose(g(x), F.interpolate(x, scale_factor=4, mode='nearest'), atol=1e-3)
    # without the skip the output is not the bicubic upscale
    g2 = Generator(scale=4, n_blocks=2, channels=16)
    assert (g2(x) - bicubic(x, 4)).abs().max() > 1e-3


def test_bicubic_skip_learns_residual():
    "After one step the output departs from bicubic: the zero-initialised tail receives gradient."
    torch.manual_seed(0)
    g = Generator(scale=2, n_blocks=2, channels=16, bicubic_skip=True)
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    F.mse_loss(g(x), y).backward()
    assert g.tail.weight.grad.abs().sum() > 0
    opt.step()
    assert (g(x) - bicubic(x, 2)).abs().max() > 1e-4


@pytest.mark.parametrize('bicubic_skip', [False, True])
def test_gradients_reach_every_generator_parameter(bicubic_skip):
    torch.manual_seed(0)
    g = Generator(scale=2, n_blocks=2, channels=16, bicubic_skip=bicubic_skip)
    if bicubic_skip:  # a zero tail blocks gradient upstream; give it one small step's worth of weights
        with torch.no_grad(): g.tail.weight.normal_(0, 1e-3)
    F.mse_loss(g(torch.rand(2, 3, 8, 8)), torch.rand(2, 3, 16, 16)).backward()
    dead = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_build_models_follows_config():
    cfg = RunConfig(n_blocks=3, channels=16, scale=2, hr_size=64, bicubic_skip=True)
    g, d = build_models(cfg)
    assert (g.scale, g.n_blocks, g.channels, g.bicubic_skip) == (2, 3, 16, True)
    assert d.hr_size == 64
    sr = g(torch.rand(2, 3, 32, 32))
    assert sr.shape == (2, 3, 64, 64) and d(sr).shape == (2,)


def test_layer_shapes_walkthrough():
    g = Generator(scale=4, n_blocks=2, channels=16)
    df = layer_shapes(g, torch.rand(1, 3, 6, 5), depth=2)
    assert df.output_shape.iloc[-1] == (1, 3, 24, 20)
    assert set(df.columns) == {'layer', 'type', 'output_shape', 'parameters'}
    assert not g._forward_hooks and all(not m._forward_hooks for m in g.modules())  # hooks removed


# ---------------------------------------------------------------- ICNR (Aitken et al. 2017)
def _phase_spread(y):
    "Largest difference between the four 2x2 sub-pixel phases of `y` and the first one."
    p = [y[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]
    return max(float((q - p[0]).abs().max()) for q in p[1:])


def test_icnr_upsample_block_has_no_checkerboard():
    "A fresh ICNR block maps a flat input to a flat output (four equal phases); the default initialisation gives a checkerboard."
    from srgan_nb.model import UpsampleBlock, icnr_
    torch.manual_seed(0)
    flat = torch.full((2, 16, 7, 5), 0.4)
    with torch.no_grad():
        assert _phase_spread(UpsampleBlock(16, icnr=True)(flat)) < 1e-6
        assert _phase_spread(UpsampleBlock(16, icnr=True)(torch.randn(2, 16, 7, 5))) < 1e-6  # any input, borders included
        assert _phase_spread(UpsampleBlock(16)(flat)) > 1e-2
    conv = icnr_(torch.nn.Conv2d(16, 64, 3, padding=1))
    assert torch.equal(conv.weight[0::4], conv.weight[3::4]) and torch.equal(conv.bias[1::4], conv.bias[2::4])
    # the same scale as PyTorch's default initialisation (kaiming uniform over the same fan-in)
    ref = torch.nn.Conv2d(16, 64, 3).weight
    assert 0.8 < float(conv.weight.detach().std() / ref.detach().std()) < 1.25
    with pytest.raises(ValueError, match='multiple'): icnr_(torch.nn.Conv2d(4, 6, 3))


def test_icnr_in_the_generator_and_build_models():
    "Generator(icnr=True) initialises every x2 stage with ICNR; build_models applies it only to a generator trained from scratch."
    torch.manual_seed(0)
    g = Generator(scale=8, n_blocks=1, channels=8, icnr=True)
    h = torch.rand(1, 8, 5, 5)
    with torch.no_grad():
        for stage in g.upsample:
            assert _phase_spread(stage(h)) < 1e-6
            h = stage(h)
        assert g(torch.rand(1, 3, 6, 6)).shape == (1, 3, 48, 48)
        gi, _ = build_models(RunConfig(n_blocks=1, channels=8, icnr=True))
        assert _phase_spread(gi.upsample[0](torch.rand(1, 8, 5, 5))) < 1e-6
        gp, _ = build_models(RunConfig(n_blocks=1, channels=8))  # off by default
        assert _phase_spread(gp.upsample[0](torch.rand(1, 8, 5, 5))) > 1e-3
        gl, _ = build_models(RunConfig(n_blocks=1, channels=8, icnr=True, init_generator='psnr'))  # weights will be loaded
        assert _phase_spread(gl.upsample[0](torch.rand(1, 8, 5, 5))) > 1e-3
