"Tiled inference: tiled == untiled, any image mode, output size, folder batches, comparison images, clear errors."
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from srgan_nb.model import Generator
from srgan_nb.infer import (receptive_radius, probe_radius, tile_spans, prepare_generator, upscale_tensor,
                            upscale_image, upscale_batch, upscale_command, compare_image, fold_batchnorm,
                            is_gray, luma, keep_gray, output_mode, Upscaler)
from srgan_nb.images import load_image, make_lr


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
    # the written SR equals the in-memory upscale of what was read; gray in, gray (L) out
    assert [Image.open(tmp_path/'out'/f).mode for f in ('gray_sr.png', 'gray_sr_compare.png', 'photo_sr.png')] == ['L', 'L', 'RGB']
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path/'out'/'gray_sr.png')),
                                  upscale_image(gen, load_image(src/'gray.png'), tile=16)[..., 0])
    assert list(df['mode']) == ['L', 'RGB', 'RGB']


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


# --- gray stays gray ---------------------------------------------------------------------------------------------

def test_luma_is_pil_convert_l_and_keeps_gray_values():
    rgb = (np.random.default_rng(5).random((40, 33, 3)) * 256).astype(np.uint8)
    np.testing.assert_array_equal(luma(rgb), np.asarray(Image.fromarray(rgb).convert('L')))
    assert np.abs(luma(rgb) - rgb @ np.array([0.299, 0.587, 0.114])).max() <= 0.5 + 1e-3   # BT.601, rounded
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(luma(np.dstack([v, v, v])), v)                          # gray pixels keep their value
    np.testing.assert_array_equal(luma(rgb.transpose(2, 0, 1), axis=0), luma(rgb))


def test_is_gray_and_keep_gray():
    g = np.repeat(np.arange(30, dtype=np.uint8).reshape(5, 6, 1), 3, axis=2)
    c = g.copy(); c[4, 5, 2] += 1
    assert is_gray(g) and is_gray(g[..., 0]) and is_gray(np.dstack([g, np.zeros((5, 6), np.uint8)])) and not is_gray(c)
    sr = (np.random.default_rng(6).random((20, 24, 3)) * 256).astype(np.uint8)
    assert keep_gray(sr, c) is sr                                   # colour LR: the SR untouched
    k = keep_gray(sr, g)
    assert k.shape == sr.shape and k.dtype == np.uint8 and is_gray(k)
    np.testing.assert_array_equal(k[..., 1], luma(sr))
    assert [output_mode(m, k) for m in ('L', 'I;16', 'LA', 'P', 'RGB', 'RGBA')] == ['L'] * 4 + ['RGB'] * 2
    assert output_mode('P', sr) == output_mode('L', sr) == 'RGB'


def _mode_image(mode, gray8):
    "An image file's content in PIL `mode` made from the 8-bit gray `gray8` (and one colour palette for 'P colour')."
    if mode == 'L': return Image.fromarray(gray8)
    if mode == 'I;16': return Image.fromarray(gray8.astype(np.uint16) * 257)
    if mode == 'I': return Image.fromarray(gray8.astype(np.int32) * 257, 'I')
    if mode == 'LA': return Image.fromarray(np.dstack([gray8, np.full_like(gray8, 255)]), 'LA')
    if mode == 'P': return Image.fromarray(gray8).convert('P')      # a palette of grays
    if mode == 'RGB': return Image.fromarray(np.dstack([gray8] * 3))
    if mode == 'RGBA': return Image.fromarray(np.dstack([gray8] * 3 + [np.full_like(gray8, 255)]))
    raise ValueError(mode)


@pytest.mark.parametrize('mode,written', [('L', 'L'), ('I;16', 'L'), ('I', 'L'), ('LA', 'L'), ('P', 'L'),
                                          ('RGB', 'RGB'), ('RGBA', 'RGB')])
def test_gray_inputs_come_out_gray(tmp_path, gen, img, mode, written):
    "Every gray input (by mode, or RGB/RGBA with equal channels) gives an SR with equal channels, in L where the file had no colour."
    im = _mode_image(mode, img[..., 1])
    assert im.mode == mode
    src = tmp_path/('in.tif' if mode == 'I' else 'in.png')         # PNG holds no 32-bit I; TIFF does
    im.save(src)
    with Image.open(src) as back: assert back.mode == mode
    df = upscale_command(src, tmp_path/'out.png', gen, tile=16, device='cpu', precision='fp32', progress=False)
    with Image.open(tmp_path/'out.png') as out:
        assert out.mode == written and out.size == (212, 148) and df['mode'].iloc[0] == written
        a = np.asarray(out)
    assert is_gray(a)
    lr = load_image(src)
    raw = upscale_image(gen, lr, tile=16, gray=False)
    assert not is_gray(raw)                                        # the generator alone tints gray: the test can fail
    np.testing.assert_array_equal(a if a.ndim == 2 else a[..., 0], luma(raw))


def test_colour_palette_and_colour_photo_untouched(tmp_path, gen, img):
    Image.fromarray(img).convert('P').save(tmp_path/'p.png'); Image.fromarray(img).save(tmp_path/'c.png')
    upscale_command([tmp_path/'p.png', tmp_path/'c.png'], tmp_path/'o', gen, tile=16, device='cpu', precision='fp32', progress=False)
    for f in ('p', 'c'):
        with Image.open(tmp_path/'o'/f'{f}_sr.png') as out: assert out.mode == 'RGB'
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path/'o'/f'{f}_sr.png')),
                                      upscale_image(gen, load_image(tmp_path/f'{f}.png'), tile=16, gray=False))


def test_upscale_batch_gray_per_patch(gen, img):
    lr = torch.from_numpy(img[:24, :24].copy()).permute(2, 0, 1)[None].repeat(3, 1, 1, 1)
    lr[1] = lr[1, :1]                                              # patch 1 gray
    raw, kept = upscale_batch(gen, lr), upscale_batch(gen, lr, gray=True)
    assert not is_gray(raw[1], axis=0) and is_gray(kept[1], axis=0)  # default: the raw generator (training measures it)
    assert torch.equal(kept[[0, 2]], raw[[0, 2]])
    np.testing.assert_array_equal(kept[1].permute(1, 2, 0).numpy(), upscale_image(gen, lr[1].permute(1, 2, 0).numpy()))
    up = Upscaler(gen, precision='fp32')
    assert torch.equal(up.batch(lr), kept) and 'gray kept gray' in up.describe()


@pytest.fixture(scope='module')
def face_lr():
    "A 40x40 colour LR face crop (scikit-image's astronaut, ships with the package: no network)."
    from skimage import data as skd
    return make_lr(skd.astronaut()[40:200, 170:330], 4)


@pytest.mark.parametrize('mode,written', [('L', 'L'), ('I;16', 'L'), ('RGB', 'RGB')])
def test_shipped_gan_gray_through_cli(tmp_path, face_lr, mode, written):
    "`srgan-nb upscale` with the shipped gan model: gray in (L, 16-bit, RGB with equal channels), gray out, in its mode."
    from srgan_nb.cli import main
    gray8 = luma(face_lr)
    _mode_image(mode, gray8).save(tmp_path/'face.png')
    assert main(['upscale', str(tmp_path/'face.png'), '-o', str(tmp_path/'sr.png'), '--model', 'gan',
                 '--device', 'cpu', '--precision', 'fp32']) == 0
    with Image.open(tmp_path/'sr.png') as out: assert out.mode == written and out.size == (160, 160); a = np.asarray(out)
    assert is_gray(a)
    raw = Upscaler('gan', precision='fp32', gray=False)(np.dstack([gray8] * 3))
    assert np.ptp(raw.astype(int), axis=2).max() > 0   # the gan model alone does not keep the channels equal (by up to 2 levels
                                                        # since the chroma anchor; the gan shipped before it tinted by up to 62)
    np.testing.assert_array_equal(a if a.ndim == 2 else a[..., 2], luma(raw))


def test_shipped_gan_colour_unchanged_through_cli(tmp_path, face_lr):
    "A colour photo: the written SR is exactly the generator's output without the gray handling."
    from srgan_nb.cli import main
    Image.fromarray(face_lr).save(tmp_path/'face.png')
    assert main(['upscale', str(tmp_path/'face.png'), '-o', str(tmp_path/'sr.png'), '--model', 'gan',
                 '--device', 'cpu', '--precision', 'fp32']) == 0
    with Image.open(tmp_path/'sr.png') as out: assert out.mode == 'RGB'; a = np.asarray(out)
    np.testing.assert_array_equal(a, Upscaler('gan', precision='fp32', gray=False)(face_lr))
    assert not is_gray(a)


def test_set14_gray_photo_stays_gray(shared):
    "Set14's grayscale img_003 (x4 LR) through the shipped gan model: raw output's channels differ, kept output gray, Y-PSNR equal to rounding."
    from srgan_nb.metrics import psnr
    p = shared/'Set14'/'img_003.png'
    if not p.exists(): pytest.skip(f'{p} absent')
    hr = load_image(p); lr = make_lr(hr, 4)
    up = Upscaler('gan', precision='fp32')
    kept = up(lr); up.gray = False; raw = up(lr)
    assert is_gray(lr) and is_gray(kept) and np.ptp(raw.astype(int), axis=2).max() > 0   # raw: channels differ (2 levels today)
    assert abs(psnr(kept, hr) - psnr(raw, hr)) < 0.05
