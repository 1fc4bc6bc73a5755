"Metrics: cross-checks against skimage/torchmetrics, known properties, the published bicubic figure, evaluation wiring."
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from PIL import Image
from skimage import data as skdata, filters, metrics as skm
from skimage.color import rgb2ycbcr

from srgan_nb import metrics as M, suite as Su
from srgan_nb import evaluate as E
from srgan_nb.images import crop_to_scale, make_lr, bicubic_upscale, load_image
from srgan_nb.sources import list_images




def _blur(img, sigma):
    return np.clip(filters.gaussian(img, sigma=sigma, channel_axis=-1) * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def hr():
    return skdata.astronaut()[100:300, 150:350].copy()  # 200x200, the size of the faces


@pytest.fixture(scope='module')
def toy_backbone():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2)).eval()


def test_y_channel_matches_skimage(hr):
    np.testing.assert_allclose(M.rgb_to_y(hr), rgb2ycbcr(hr)[..., 0], atol=1e-6)
    assert M.rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0)


@pytest.mark.parametrize('sigma', [0.6, 1.5])
def test_psnr_ssim_match_skimage(hr, sigma):
    sr = _blur(hr, sigma)
    y_sr, y_hr = M.shave(M.rgb_to_y(sr), 4), M.shave(M.rgb_to_y(hr), 4)
    assert M.psnr(sr, hr) == pytest.approx(skm.peak_signal_noise_ratio(y_hr, y_sr, data_range=255), abs=1e-9)
    assert M.psnr(sr, hr, y_channel=False) == pytest.approx(
        skm.peak_signal_noise_ratio(hr[4:-4, 4:-4], sr[4:-4, 4:-4], data_range=255), abs=1e-9)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert M.ssim(sr, hr) == pytest.approx(skm.structural_similarity(y_sr, y_hr, **kw), abs=1e-9)
    assert M.ssim(sr, hr, y_channel=False) == pytest.approx(
        skm.structural_similarity(sr[4:-4, 4:-4].astype(float), hr[4:-4, 4:-4].astype(float), channel_axis=-1, **kw), abs=1e-9)


def test_psnr_by_hand_and_border(hr):
    sr = hr.copy()
    sr[0, :, :] = 0                       # damage only the first row: inside the shaved border
    assert M.psnr(sr, hr, scale=4) == float('inf')
    assert np.isfinite(M.psnr(sr, hr, scale=0))
    sr = hr.astype(int)
    sr[50, 50, 1] += 10                   # one pixel of green off by 10
    sr = sr.astype(np.uint8)
    dy = 128.553 / 255 * 10
    assert M.psnr(sr, hr) == pytest.approx(10 * np.log10(255 ** 2 / (dy ** 2 / (192 * 192))), rel=1e-12)


def test_ssim_agrees_with_torchmetrics(hr):
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    sr = _blur(hr, 1.0)
    a, b = (torch.from_numpy(M.shave(M.rgb_to_y(x), 4))[None, None] for x in (sr, hr))
    _, smap = tm_ssim(a, b, data_range=255.0, kernel_size=11, sigma=1.5, return_full_image=True)
    assert float(smap[..., 5:-5, 5:-5].mean()) == pytest.approx(M.ssim(sr, hr), abs=1e-9)


def test_vif_properties_and_torchmetrics(hr):
    from torchmetrics.functional.image import visual_information_fidelity as tm_vif
    assert M.vif(hr, hr) == pytest.approx(1.0, abs=1e-5)
    v = [M.vif(_blur(hr, s), hr) for s in (0.5, 1.0, 2.0)]
    assert 1 > v[0] > v[1] > v[2] > 0
    sr = _blur(hr, 1.0)
    ref = tm_vif(*(torch.from_numpy(M.shave(M.rgb_to_y(x), 4)).float()[None, None] for x in (sr, hr)))
    assert M.vif(sr, hr) == pytest.approx(float(ref), abs=1e-5)
    # a contrast-enhanced copy scores above 1 (VIF is not bounded by 1)
    ref = (0.5 * hr.astype(float) + 64).round().astype(np.uint8)
    assert M.vif((0.7 * hr.astype(float) + 38).round().astype(np.uint8), ref) > 1.05


def test_bad_inputs_are_clear(hr):
    with pytest.raises(ValueError, match='uint8'):
        M.psnr(hr / 255.0, hr)
    with pytest.raises(ValueError, match='shape'):
        M.ssim(hr[:100], hr)
    with pytest.raises(ValueError, match='RGB'):
        M.psnr(hr[..., 0], hr[..., 0])
    with pytest.raises(ValueError, match='too small'):
        M.vif(hr[:40, :40], hr[:40, :40])
    with pytest.raises(ValueError, match='Unknown metric'):
        Su.MetricSuite(['psnr', 'fid'])


def test_feat_dist_effnet(hr):
    fd = M.FeatureDistance()
    assert fd.name == 'effnet_lite0'
    assert fd(hr, hr) == 0.0
    d = [fd(_blur(hr, s), hr) for s in (0.5, 1.0, 2.0)]
    assert 0 < d[0] < d[1] < d[2] <= 4


def test_lpips_unavailable_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch'))
    ok, why = M.lpips_status('alex')
    assert not ok and why.startswith('unavailable:') and 'alexnet' in why
    with pytest.raises(RuntimeError, match='unavailable'):
        M.LPIPSMetric('alex')
    suite = Su.MetricSuite(None, backbone=nn.Conv2d(3, 4, 3))
    assert 'lpips' not in suite.metrics and suite.notes['lpips'].startswith('unavailable')
    with pytest.warns(UserWarning, match='lpips unavailable'):
        Su.MetricSuite(['psnr', 'lpips'])


def test_lpips_from_local_weights(tmp_path, monkeypatch, hr):
    # a stand-in trunk file in torchvision's cache (random SqueezeNet weights, 5 MB): checks the wiring,
    # that nothing is downloaded, and LPIPS's basic properties; its values are not real LPIPS
    import torchvision
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch'))
    ck = tmp_path/'torch'/'hub'/'checkpoints'
    ck.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), ck/'squeezenet1_1-b8a52dc0.pth')
    ok, why = M.lpips_status('squeeze')
    assert ok, why
    lp = M.LPIPSMetric('squeeze')
    assert lp(hr, hr) == pytest.approx(0.0, abs=1e-7)
    assert lp(_blur(hr, 2.0), hr) > lp(_blur(hr, 0.5), hr) > 0
    df = E.evaluate({'bicubic': 'bicubic'}, [('a', hr)], metrics=['psnr', 'lpips'], lpips_net='squeeze', progress=False)
    assert 'lpips' in df.columns and np.isfinite(df.lpips).all()


def test_generator_method_is_the_inference_path_and_rounds():
    "A module becomes an infer.Upscaler (fp32 by default); the original stays in train mode and gets no gradient."
    from srgan_nb.infer import Upscaler
    g = nn.Sequential(nn.Upsample(scale_factor=4, mode='nearest'), nn.Conv2d(3, 3, 1))
    nn.init.dirac_(g[1].weight); nn.init.constant_(g[1].bias, 0.3 / 255)  # adds 0.3 levels: rounds back
    g.train()
    lr = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    up = E.as_method(g)
    assert isinstance(up, Upscaler) and up.precision == 'fp32' and 'fp32' in up.describe()
    sr = up(lr)
    assert sr.dtype == np.uint8 and sr.shape == (40, 48, 3)
    np.testing.assert_array_equal(sr, np.repeat(np.repeat(lr, 4, 0), 4, 1))
    assert g.training
    assert not any(p.grad is not None for p in g.parameters())


def test_evaluate_wiring(hr, toy_backbone):
    hr2 = skdata.chelsea()[:203, :197]    # not a multiple of 4: cropped to 200x196
    seen = []
    def nearest(lr):
        seen.append(lr.copy())
        return np.repeat(np.repeat(lr, 4, 0), 4, 1)
    df = E.evaluate({'bicubic': 'bicubic', 'nearest': nearest}, [('astro', hr), ('cat', hr2)], strategy='s1',
                    backbone=toy_backbone, progress=False)
    assert list(df.columns[:4]) == ['image_id', 'method', 'strategy', 'level']
    assert {'psnr', 'ssim', 'psnr_rgb', 'ssim_rgb', 'vif', 'feat_dist'} <= set(df.columns)
    assert len(df) == 6 and set(df.level) == {'image'} and set(df.strategy) == {'s1'}   # 2 methods and the HR reference row
    ref = df[df.method == Su.REFERENCE_METHOD]
    assert len(ref) == 2 and ref.niqe.notna().all() and ref.psnr.isna().all()
    cat = df[(df.image_id == 'cat')].iloc[0]
    assert (cat.height, cat.width) == (200, 196)
    # the LR the method saw is PIL BICUBIC of the cropped HR, and its score is what psnr() says
    crop = hr2[:200, :196]
    np.testing.assert_array_equal(seen[1], make_lr(crop, 4))
    row = df[(df.image_id == 'cat') & (df.method == 'bicubic')].iloc[0]
    assert row.psnr == pytest.approx(M.psnr(bicubic_upscale(make_lr(crop, 4), 4), crop))
    assert row.vif == pytest.approx(M.vif(bicubic_upscale(make_lr(crop, 4), 4), crop))
    # bicubic beats nearest on both images
    w = df.pivot(index='image_id', columns='method', values='psnr')
    assert (w.bicubic > w.nearest).all()


def test_evaluate_generator_equals_its_method(hr, toy_backbone):
    from srgan_nb.model import Generator
    torch.manual_seed(1)
    g = Generator(n_blocks=1, channels=8, bicubic_skip=True)
    nn.init.normal_(g.tail.weight, std=1e-3)
    df = E.evaluate({'bicubic': 'bicubic', 'gen': g}, [('astro', hr)], metrics=['psnr', 'ssim'], progress=False)
    sr = E.as_method(g)(make_lr(hr, 4))
    assert df.set_index('method').loc['gen', 'psnr'] == pytest.approx(M.psnr(sr, hr))
    assert 'fp32' in df.attrs['notes']['sr:gen']  # the evaluation says how its SR images were made
    assert df.set_index('method').loc['gen', 'psnr'] != df.set_index('method').loc['bicubic', 'psnr']
    with pytest.raises(ValueError, match='upscales x2'):
        E.evaluate({'gen': Generator(scale=2, n_blocks=1, channels=8)}, [('a', hr)], scale=4, progress=False)
    with pytest.raises(ValueError, match='shape'):
        E.evaluate({'bad': lambda lr: lr}, [('a', hr)], metrics=['psnr'], progress=False)


def test_evaluate_patches(hr, toy_backbone):
    from types import SimpleNamespace
    rng = np.random.default_rng(0)
    boxes = [(rng.integers(0, 104), rng.integers(0, 104)) for _ in range(4)]
    phr = np.stack([hr[y:y + 96, x:x + 96] for y, x in boxes])
    patches = SimpleNamespace(hr=phr, lr=np.stack([make_lr(p, 4) for p in phr]), image_ids=np.array(['a', 'a', 'b', 'b']))
    kw = dict(metrics=['psnr', 'ssim'], progress=False, whole=False)
    keep = E.evaluate({'bicubic': 'bicubic'}, [], patches=patches, patch_agg=None, **kw)
    assert len(keep) == 4 and set(keep.level) == {'patch'} and list(keep.patch) == [0, 1, 2, 3]
    mean = E.evaluate({'bicubic': 'bicubic'}, [], patches=patches, **kw)
    assert len(mean) == 2 and list(mean.n_patches) == [2, 2]
    assert mean.set_index('image_id').psnr['a'] == pytest.approx(keep.psnr[:2].mean())
    # both levels in one frame: stats keeps them apart, one value per image
    from srgan_nb.stats import summarize, StatsWarning
    both = E.evaluate({'bicubic': 'bicubic'}, [('a', hr), ('b', hr[::-1].copy())], patches=patches, metrics=['psnr'], progress=False)
    with pytest.warns(StatsWarning, match='n=2'):   # two images: intervals undefined, said so
        s = summarize(both, metrics=['psnr'])
    assert set(s.level) == {'image', 'patch'} and set(s.n) == {2}


def test_bicubic_set5_conformance(shared):
    set5 = shared/'Set5'
    if not set5.exists(): pytest.skip(f'{set5} absent')
    imgs = [(i, load_image(p)) for i, p in list_images(set5)]
    assert len(imgs) == 5
    df = E.evaluate({'bicubic': 'bicubic'}, imgs, metrics=['psnr', 'ssim'], progress=False)
    assert abs(df.psnr.mean() - 28.43) < 0.02, df.psnr.mean()
    assert abs(df.ssim.mean() - 0.8104) < 0.002, df.ssim.mean()   # SRGAN Table 2 (MATLAB SSIM): 0.8104


def _save_gen(path, seed):
    from srgan_nb.model import Generator
    from srgan_nb.model import save_generator
    torch.manual_seed(seed)
    g = Generator(n_blocks=1, channels=8, bicubic_skip=True)
    nn.init.normal_(g.tail.weight, std=1e-3)
    save_generator(g, path)
    return g


def test_evaluate_run(reports_tmp):
    "hr_size 48: VIF (41x41 after the border) cannot be computed on the 48x48 test patches and is NaN there."
    from srgan_nb.config import make_config, run_path
    from srgan_nb.data import load_split_images
    from srgan_nb.model import Generator
    cfg = make_config('s2', data_source='samples', quick=True, num_workers=0, hr_size=48,
                      reference_models='false')  # this run's methods only (the shipped rows: tests/test_pretrained.py)
    folder = run_path(cfg)/'s2'
    folder.mkdir(parents=True)
    g = _save_gen(folder/'generator_srgan.pt', 0)
    _save_gen(folder/'generator_srresnet.pt', 1)
    from srgan_nb.data import prepare
    prepare(cfg)   # the data stage (evaluation's loaders only read it)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        df = E.evaluate_run(cfg, 's2', metrics=['psnr', 'ssim', 'vif'], progress=False)
    assert sum(str(w.message).startswith('vif: images of 48x48 are too small') for w in caught) == 1
    images = load_split_images(cfg, 'test')
    ids = {i for i, _ in images}
    img, patch = df[df.level == 'image'], df[df.level == 'patch']
    assert set(img.method) == {'bicubic', 'bicubic_skip_init', 'srresnet', 'srgan'} and set(img.strategy) == {'s2'}   # quick: no dial, no control
    for m in ('bicubic', 'bicubic_skip_init', 'srresnet', 'srgan'):
        assert set(img[img.method == m].image_id) == ids
    assert set(patch.image_id) == ids and set(patch.method) == {'bicubic', 'srresnet', 'srgan'}   # the reference: whole images only
    assert patch.vif.isna().all() and patch.psnr.notna().all() and img.vif.notna().all()
    untrained = E.as_method(Generator(n_blocks=1, channels=8, bicubic_skip=True))
    i0, hr0 = images[0]
    hr0 = crop_to_scale(hr0, 4)
    ref = img[(img.image_id == i0) & (img.method == 'bicubic_skip_init')].iloc[0]
    assert ref.psnr == pytest.approx(M.psnr(untrained(make_lr(hr0, 4)), hr0), abs=1e-9)
    row = img[(img.image_id == i0) & (img.method == 'srgan')].iloc[0]
    assert row.psnr == pytest.approx(M.psnr(E.as_method(g)(make_lr(hr0, 4)), hr0), abs=1e-9)
    ev = folder/'eval'
    assert {'per_image.csv', 'summary.csv', 'table.csv', 'notes.json'} <= {p.name for p in ev.iterdir()}
    back = pd.read_csv(ev/'per_image.csv')
    assert len(back) == len(df)
    assert 'NaN where images of 48x48' in json.loads((ev/'notes.json').read_text())['vif']
    summ = pd.read_csv(ev/'summary.csv')
    assert set(summ[summ.level == 'image'].n) == {len(ids)}
    assert summ[(summ.method == 'srgan') & (summ.metric == 'psnr') & (summ.level == 'image')].diff_mean_diff.notna().all()
    # with NIQE, one HR reference row per photo, however many evaluate calls the run needs (trained, untrained, shipped)
    with_niqe = E.evaluate_run(cfg, 's2', metrics=['psnr', 'niqe'], progress=False, patches=False)
    hr_rows = with_niqe[with_niqe.method == Su.REFERENCE_METHOD]
    assert sorted(hr_rows.image_id) == sorted(ids) and hr_rows.psnr.isna().all()


def test_rows_no_strategy_changes_are_scored_once_per_run(reports_tmp, monkeypatch):
    "A second strategy reads bicubic, bicubic_skip_init and HR rows back (reference_rows.csv) and ends with the same table as if it had scored them."
    import shutil
    from srgan_nb.config import make_config, run_path, run_files
    from srgan_nb.data import prepare
    cfg = make_config('s2', data_source='samples', quick=True, num_workers=0, hr_size=48, reference_models='false')
    for s in ('s1', 's2'):
        (run_path(cfg)/s).mkdir(parents=True)
        _save_gen(run_path(cfg)/s/'generator_srgan.pt', 0); _save_gen(run_path(cfg)/s/'generator_srresnet.pt', 1)
    prepare(cfg)
    kw = dict(metrics=['psnr', 'vif', 'niqe'], progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        first = E.evaluate_run(cfg, 's2', **kw)
        calls = []
        real = E.evaluate
        monkeypatch.setattr(E, 'evaluate', lambda methods, *a, **k: calls.append(list(methods)) or real(methods, *a, **k))
        second = E.evaluate_run(cfg, 's1', **kw)
    assert calls == [['srresnet', 'srgan']]                      # only this strategy's generators were scored
    assert run_files(cfg).reference_rows.exists()
    pd.testing.assert_frame_equal(first.drop(columns=['strategy', 'sr_seconds']), second.drop(columns=['strategy', 'sr_seconds']))
    assert set(second.strategy) == {'s1'}
    notes = json.loads((run_path(cfg)/'s1'/'eval'/'notes.json').read_text())
    patches = second[second.level == 'patch']                    # VIF's NaN, counted over both calls: every test patch of every method
    assert patches.vif.isna().all() and f"({int(patches.n_patches.sum())} image(s) or patch(es))" in notes['vif']
    with warnings.catch_warnings():                              # other metrics: another key, scored afresh
        warnings.simplefilter('ignore')
        E.evaluate_run(cfg, 's1', metrics=['psnr'], progress=False)
    assert calls[-3:] == [['bicubic'], ['bicubic_skip_init'], ['srresnet', 'srgan']]

def test_too_small_images_give_nan_with_one_warning(hr):
    suite = Su.MetricSuite(['psnr', 'ssim', 'vif'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        rows = [suite(hr[:48, k:k + 48], hr[:48, k:k + 48]) for k in (0, 48, 96)]
    assert [str(w.message).split(':')[0] for w in caught] == ['vif']         # once per metric, not per pair
    assert all(np.isnan(r['vif']) and r['ssim'] == 1.0 for r in rows)
    with pytest.raises(ValueError, match='too small'):                        # alone, the metric still says why
        M.vif(hr[:48, :48], hr[:48, :48])
    suite.reset()
    with pytest.warns(UserWarning, match='vif: images of 48x48'):
        suite(hr[:48, :48], hr[:48, :48])


def test_evaluate_run_without_generators(reports_tmp):
    from srgan_nb.config import make_config
    cfg = make_config('s1', data_source='samples', quick=True, num_workers=0)
    with pytest.raises(FileNotFoundError, match='train first'):
        E.evaluate_run(cfg, 's1', progress=False)


def test_evaluate_command_folder(reports_tmp, tmp_path, capsys):
    from srgan_nb.config import make_config
    folder = tmp_path/'imgs'
    folder.mkdir()
    Image.fromarray(skdata.astronaut()[:120, :128]).save(folder/'astro.png')
    Image.fromarray(skdata.camera()[:128, :100]).save(folder/'camera.png')   # grayscale: loaded as RGB
    (folder/'broken.png').write_bytes(b'not an image')
    ck = tmp_path/'generator_srgan.pt'
    _save_gen(ck, 0)
    cfg = make_config('s2', data_source='samples', quick=True)
    out = tmp_path/'out'/'set.csv'
    with pytest.warns(UserWarning, match='broken.png'):
        ev = E.evaluate_command(cfg, checkpoint=ck, data_dir=folder, out=out, progress=False)
    assert capsys.readouterr().out == ''  # printing is the command line's job
    from srgan_nb.cli import print_evaluation
    print_evaluation(ev)
    text = capsys.readouterr().out
    assert 'bicubic' in text and 'srgan' in text and str(out) in text and 'Only 2 test images' in text
    assert out.exists() and (out.parent/'set_summary.csv').exists()
    back = pd.read_csv(out)
    assert len(back) == 6 and (back.method == Su.REFERENCE_METHOD).sum() == 2 and set(back.image_id) == {'astro.png', 'camera.png'}
    assert set(back.method) == {'bicubic', 'srgan', Su.REFERENCE_METHOD}
    with pytest.raises(FileNotFoundError, match='nope'):
        E.evaluate_command(cfg, checkpoint=tmp_path/'nope.pt', data_dir=folder, progress=False)


def test_evaluate_run_id_leaves_the_run_unchanged(reports_tmp):
    "`srgan-nb evaluate --run-id` writes under reports/evaluations/, and every file of the run keeps its bytes."
    import hashlib
    from srgan_nb.cli import main
    from srgan_nb.config import make_config, run_path
    cfg = make_config('s2', data_source='samples', quick=True, num_workers=0, run_id='keep')
    folder = run_path(cfg)/'s2'
    folder.mkdir(parents=True)
    _save_gen(folder/'generator_srgan.pt', 0)
    from srgan_nb.data import prepare
    prepare(cfg)
    E.evaluate_run(cfg, 's2', metrics=['psnr'], progress=False, patches=False)  # what the pipeline's evaluate stage writes
    snap = lambda: {str(p.relative_to(run_path(cfg))): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted(run_path(cfg).rglob('*')) if p.is_file()}
    before = snap()
    assert 's2/eval/per_image.csv' in before
    assert main(['evaluate', '--run-id', 'keep', '--data-source', 'samples', '--quick', '--strategy', 's2']) == 0
    assert snap() == before
    out = reports_tmp/'evaluations'/'keep-s2'
    assert (out/'per_image.csv').exists() and set(pd.read_csv(out/'per_image.csv').method) == {'bicubic', 'srgan', Su.REFERENCE_METHOD}
    assert main(['evaluate', '--run-id', 'keep', '--data-source', 'samples', '--quick', '--out', str(folder/'eval')]) == 1  # refused
    assert snap() == before


# ST-LPIPS, NIQE and colour drift (issue: the perceptual side of SRGAN)

def _noise(img, sd, seed=0):
    return np.clip(img + np.random.default_rng(seed).normal(0, sd, img.shape) + 0.5, 0, 255).astype(np.uint8)


def test_niqe_reproduces_matlab_on_the_baboon(shared):
    "Set14 img_001 (baboon): 5.7296 in MATLAB's NIQE and BasicSR's calculate_niqe (no border cropped)."
    p = shared/'Set14'/'img_001.png'
    if not p.exists(): pytest.skip(f'{p} absent')
    assert M.niqe(load_image(p)) == pytest.approx(5.7296, abs=1e-3)


def test_niqe_worse_under_blur_and_noise():
    big = skdata.astronaut()
    blur = [M.niqe(_blur(big, s)) if s else M.niqe(big) for s in (0, 0.8, 1.5, 3)]
    noise = [M.niqe(_noise(big, sd)) for sd in (0, 5, 10, 20)]
    assert all(a < b for a, b in zip(blur, blur[1:])), blur
    assert all(a < b for a, b in zip(noise, noise[1:])), noise


def test_niqe_counts_images_too_small_for_its_block(hr):
    "88x88 after the border cannot hold one 96x96 block: NaN, a note, and a count -- never silently dropped."
    suite = Su.MetricSuite(['psnr', 'niqe'])
    with pytest.warns(UserWarning, match='niqe'):
        small = [suite(hr[:96, :96], hr[:96, :96]) for _ in range(3)]
    assert all(np.isnan(r['niqe']) for r in small) and suite.n_too_small == {'niqe': 3}
    df = E.evaluate({'bicubic': 'bicubic'}, [('a', hr), ('b', hr[:96, :96].copy())], metrics=['psnr', 'niqe'], progress=False)
    assert set(df.method) == {'bicubic', Su.REFERENCE_METHOD}
    assert df.niqe.isna().sum() == 2 and '(2 image(s) or patch(es))' in df.attrs['notes']['niqe']


def test_niqe_parameters_are_the_shipped_file():
    p = M.niqe_params()
    assert p['mu_pris_param'].shape == (1, 36) and p['cov_pris_param'].shape == (36, 36)


def test_stlpips_zero_for_identical_and_worse_under_blur_and_noise(hr):
    ok, why = M.stlpips_status()
    if not ok: pytest.skip(why)
    stl = M.STLPIPS()
    assert stl(hr, hr) == 0.0
    blur = [stl(_blur(hr, s), hr) for s in (0.6, 1.2, 2.4)]
    noise = [stl(_noise(hr, sd), hr) for sd in (4, 8, 16)]
    assert blur[0] < blur[1] < blur[2] and noise[0] < noise[1] < noise[2], (blur, noise)


def test_stlpips_missing_package_is_a_clean_skip_with_a_reason(monkeypatch, hr):
    real = M.importlib.util.find_spec
    monkeypatch.setattr(M.importlib.util, 'find_spec', lambda name, *a: None if name == 'stlpips_pytorch' else real(name, *a))
    ok, why = M.stlpips_status()
    assert not ok and 'pip install stlpips-pytorch' in why
    suite = Su.MetricSuite()            # the default suite leaves ST-LPIPS out and says why
    assert 'stlpips' not in suite.metrics and 'pip install' in suite.notes['stlpips']
    with pytest.raises(RuntimeError, match='stlpips-pytorch'):
        M.STLPIPS()


def test_chroma_error_sees_a_colour_shift_that_y_psnr_does_not(hr):
    gray = np.repeat(M.rgb_to_y(hr).round().clip(0, 255).astype(np.uint8)[..., None], 3, -1)
    assert M.chroma_error(gray, gray) == 0.0
    tinted = np.clip(hr.astype(int) + [5, 0, -5], 0, 255).astype(np.uint8)
    assert M.chroma_error(tinted, hr) > 2 * M.chroma_error(_blur(hr, 1.0), hr)


def test_a_full_run_scores_the_strength_dial(reports_tmp):
    "strength_curve: the blends of the run's SRResNet and SRGAN at 0.25, 0.5, 0.75 are scored as methods a=<strength>, and the report keeps them to the dial's section."
    from srgan_nb.config import make_config, run_path
    from srgan_nb.data import prepare, load_split_images
    from srgan_nb.model import blend_generators, load_generator
    from srgan_nb.report import load_run, report_frame
    from srgan_nb.figures import dial_parts
    cfg = make_config('s2', data_source='samples', quick=True, num_workers=0, reference_models='false', strength_curve='true')
    folder = run_path(cfg)/'s2'; folder.mkdir(parents=True)
    _save_gen(folder/'generator_srgan.pt', 0); _save_gen(folder/'generator_srresnet.pt', 1)
    prepare(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        df = E.evaluate_run(cfg, 's2', metrics=['psnr', 'ssim'], progress=False, patches=False)
    assert list(dict.fromkeys(df.method)) == ['bicubic', 'srresnet', 'srgan', 'a=0.25', 'a=0.5', 'a=0.75', 'srresnet_usm', 'bicubic_skip_init']
    i0, hr0 = load_split_images(cfg, 'test')[0]
    hr0 = crop_to_scale(hr0, 4)
    half = blend_generators(load_generator(folder/'generator_srresnet.pt'), load_generator(folder/'generator_srgan.pt'), 0.5)
    row = df[(df.image_id == i0) & (df.method == 'a=0.5')].iloc[0]
    assert row.psnr == pytest.approx(M.psnr(E.as_method(half)(make_lr(hr0, 4)), hr0), abs=1e-9)
    from srgan_nb.images import unsharp_mask, SHARPENING_CONTROL   # the sharpening control: the run's SRResNet, then the stated mask
    sharp = unsharp_mask(E.as_method(load_generator(folder/'generator_srresnet.pt'))(make_lr(hr0, 4)), **SHARPENING_CONTROL)
    row = df[(df.image_id == i0) & (df.method == 'srresnet_usm')].iloc[0]
    assert row.psnr == pytest.approx(M.psnr(sharp, hr0), abs=1e-9) and SHARPENING_CONTROL == dict(radius=3.0, percent=200)
    run = load_run(run_path(cfg), ['s2'])
    assert not report_frame(run).method.str.startswith('a=').any()
    table = dial_parts(run, metrics=('psnr', 'ssim'))[0].data
    assert list(table.strength) == [0.0, 0.25, 0.5, 0.75, 1.0]
