"Tiled inference: tiled == untiled, any image mode, output size, folder batches, comparison images, clear errors."
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from srgan_nb.model import Generator
from srgan_nb.infer import (receptive_radius, probe_radius, tile_spans, prepare_generator, upscale_tensor,
                            upscale_image, upscale_command, compare_image, fold_batchnorm)
from srgan_nb.data import load_image





def _randomize_bn(g):
    "Non-trivial BatchNorm statistics, so that eval-mode BN is not the identity."
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.1, 0.1)
    return g


@pytest.fixture(scope='module')
def gen():
    torch.manual_seed(0)
    return _randomize_bn(Generator(n_blocks=2, channels=8)).eval()


@pytest.fixture(scope='module')
def img():
    return (np.random.default_rng(1).random((37, 53, 3)) * 255).astype(np.uint8)


def test_radius_matches_probe():
    g = Generator(n_blocks=16, channels=8).eval()
    r, p = receptive_radius(g), probe_radius(g, 4, size=85)
    assert p == 40 and r >= p and r - p <= 1  # 4 + 33 + 1 + 0.5 + 1 = 39.5 LR pixels


@pytest.mark.parametrize('tile', [9, 20])
def test_tiled_equals_untiled_float(gen, tile):
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(tile))
    g = prepare_generator(gen)
    with torch.no_grad():
        full = g(x)
        tiled = upscale_tensor(g, x, tile=tile, overlap=receptive_radius(g))
        short = upscale_tensor(g, x, tile=tile, overlap=1)
    assert tiled.shape == full.shape == (1, 3, 148, 212)
    assert (tiled - full).abs().max() < 1e-4
    assert (short - full).abs().max() > 1e-3  # the test can fail: too small a margin shows seams


def test_tiled_equals_untiled_original_generator(gen):
    "Folding BN is only float rounding: tiles of the prepared copy match the untouched generator in eval mode."
    x = torch.rand(1, 3, 29, 41)
    with torch.no_grad(): ref = gen(x)
    tiled = upscale_tensor(prepare_generator(gen), x, tile=10, overlap=receptive_radius(gen))
    assert (tiled - ref).abs().max() < 1e-4
    assert any(isinstance(m, nn.BatchNorm2d) for m in gen.modules())


def test_upscale_image_tiled_vs_untiled_uint8(gen, img):
    a = upscale_image(gen, img, tile=13)
    b = upscale_image(gen, img, tile=None)
    assert a.shape == (148, 212, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # rounding of values within 1e-4 of a .5 boundary


def test_bicubic_skip_generator_starts_at_bicubic(img):
    g = Generator(n_blocks=2, channels=8, bicubic_skip=True).eval()
    sr = upscale_image(g, img, tile=16)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    ref = F.interpolate(x, scale_factor=4, mode='bicubic', align_corners=False).clamp(0, 1).mul(255).round()
    assert np.abs(sr.astype(int) - ref[0].permute(1, 2, 0).numpy().astype(int)).max() <= 1


def test_stand_in_callable_needs_overlap(img):
    bic = lambda t: F.interpolate(t, scale_factor=4, mode='bicubic', align_corners=False)
    with pytest.raises(ValueError, match='overlap'): upscale_image(bic, img)
    assert upscale_image(bic, img, overlap=2, tile=9).shape == (148, 212, 3)


def test_tile_spans_cover():
    for n in (1, 5, 37, 53, 1001):
        for t in (1, 4, 16, 64):
            s = tile_spans(n, t)
            assert s[0][0] == 0 and s[-1][1] == n and all(a[1] == b[0] for a, b in zip(s, s[1:]))
            assert max(b - a for a, b in s) <= t


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'I;16', 'P'])
def test_modes_read_as_rgb(tmp_path, img, mode):
    if mode == 'L': im = Image.fromarray(img[..., 0])
    elif mode == 'RGBA': im = Image.fromarray(np.dstack([img, np.full(img.shape[:2], 128, np.uint8)]))
    elif mode == 'I;16': im = Image.fromarray(img[..., 0].astype(np.uint16) * 257)
    else: im = Image.fromarray(img).convert('P')
    im.save(tmp_path/'x.png')
    a = load_image(tmp_path/'x.png')
    assert a.shape == (37, 53, 3) and a.dtype == np.uint8
    if mode == 'L': assert (a[..., 1] == img[..., 0]).all()


def test_output_size_scale_2():
    g = Generator(scale=2, n_blocks=1, channels=8).eval()
    assert upscale_image(g, np.zeros((11, 7, 3), np.uint8), tile=4).shape == (22, 14, 3)


def test_folder_batch_writes_files(tmp_path, gen, img):
    src = tmp_path/'in'; (src/'sub').mkdir(parents=True)
    Image.fromarray(img[..., 0]).save(src/'gray.png')                              # gray
    Image.fromarray(np.dstack([img[:20, :30], np.full((20, 30), 200, np.uint8)])).save(src/'sub'/'rgba.png')  # RGBA
    Image.fromarray(img).save(src/'photo.jpg', quality=90)
    (src/'notes.txt').write_text('not an image')
    df = upscale_command([src], tmp_path/'out', gen, tile=16, compare=True, device='cpu', precision='fp32', progress=False)
    assert len(df) == 3 and df['error'].isna().all()
    written = sorted(str(p.relative_to(tmp_path/'out')) for p in (tmp_path/'out').rglob('*') if p.is_file())
    assert written == ['gray_sr.png', 'gray_sr_compare.png', 'photo_sr.png', 'photo_sr_compare.png',
                       'sub/rgba_sr.png', 'sub/rgba_sr_compare.png']
    assert Image.open(tmp_path/'out'/'sub'/'rgba_sr.png').size == (120, 80)
    assert Image.open(tmp_path/'out'/'gray_sr.png').size == (212, 148)
    # the written SR equals the in-memory upscale of what was read
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path/'out'/'gray_sr.png')),
                                  upscale_image(gen, load_image(src/'gray.png'), tile=16))


def test_single_file_jpeg_out(tmp_path, gen, img):
    Image.fromarray(img).save(tmp_path/'a.png')
    df = upscale_command(tmp_path/'a.png', tmp_path/'big.jpg', gen, tile=None, compare=True, device='cpu', progress=False)
    assert df.loc[0, 'output'].endswith('big.jpg')
    with Image.open(tmp_path/'big.jpg') as im: assert im.format == 'JPEG' and im.size == (212, 148)
    assert (tmp_path/'big_compare.jpg').is_file()


def test_compare_image(img):
    sr = np.full((148, 212, 3), 7, np.uint8)
    c = compare_image(img, sr, gap=8)
    band = c.shape[0] - 148
    assert c.shape == (148 + band, 2 * 212 + 8, 3) and band > 0
    np.testing.assert_array_equal(c[band:, 220:], sr)             # right panel: SR
    assert np.abs(c[band:, :212].astype(int) - 7).max() > 20         # left panel: the bicubic upscale, not SR
    assert (c[:band] < 128).any()                                    # a label is drawn in the band


def test_errors(tmp_path, img, monkeypatch):
    Image.fromarray(img).save(tmp_path/'a.png')
    import srgan_nb.pretrained as P
    monkeypatch.setattr(P, 'weights_dir', lambda folder=None: tmp_path/'no-weights')  # an installation without shipped models
    with pytest.raises(P.WeightsError, match='no shipped model in this installation'):
        upscale_command([tmp_path/'a.png'], tmp_path/'o', None, progress=False)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        upscale_command([tmp_path/'a.png'], tmp_path/'o', tmp_path/'missing.pt', progress=False)
    with pytest.raises(FileNotFoundError, match='No such input'):
        upscale_command([tmp_path/'nope.png'], tmp_path/'o', tmp_path/'missing.pt', progress=False)
    (tmp_path/'b.png').write_bytes(b'not a png')
    g = Generator(n_blocks=1, channels=8)
    with pytest.warns(UserWarning, match='skipped'):
        df = upscale_command([tmp_path/'a.png', tmp_path/'b.png'], tmp_path/'o', g, progress=False)
    assert df['output'].notna().sum() == 1


def test_checkpoint_round_trip(tmp_path, gen, img):
    train = pytest.importorskip('srgan_nb.train')
    if not hasattr(train, 'save_generator'): pytest.skip('srgan_nb.train.save_generator not there yet')
    train.save_generator(gen, tmp_path/'g.pt')
    Image.fromarray(img).save(tmp_path/'a.png')
    upscale_command(tmp_path/'a.png', tmp_path/'o.png', tmp_path/'g.pt', tile=16, device='cpu', precision='fp32', progress=False)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path/'o.png')), upscale_image(gen, img, tile=16))


def test_bf16_close_to_fp32(gen, img):
    a = upscale_image(gen, img, precision='fp32').astype(int)
    b = upscale_image(gen, img, precision='bf16').astype(int)
    assert np.abs(a - b).mean() < 2


@pytest.mark.parametrize('scale', [2, 4])
def test_shuffled_tail_is_exact(scale):
    "The tail computed before the last pixel shuffle gives the generator's output (distinct PReLU slopes, odd sizes)."
    import copy
    from srgan_nb.infer import shuffle_tail, ShuffledTail
    g = Generator(scale=scale, n_blocks=1, channels=8).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.PReLU): m.weight.uniform_(0, 0.5)
    x = torch.rand(1, 3, 11, 14)
    fused = shuffle_tail(copy.deepcopy(g))
    assert isinstance(fused.upsample[-1], ShuffledTail)
    with torch.no_grad(): assert torch.allclose(fused(x), g(x), atol=1e-5)
