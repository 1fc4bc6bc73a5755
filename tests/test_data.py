"The data stage: loading odd files, patch geometry, the split, the cache, the sources and the Dataset."
import json, os, shutil, socket, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from srgan_nb import data as D, images as Im, sources as So
from srgan_nb.config import make_config, run_path


def _photo(seed, h=160, w=200):
    "A smooth random RGB photo (uint8), not blank."
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _folder(root, n, start=0, **kw):
    root = Path(root); root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n): Image.fromarray(_photo(i, **kw)).save(root/f'img_{i:03d}.png')
    return root


def _cfg(folder, **kw):
    kw = dict(dict(quick=False, data_source='folder', data_dir=str(folder), num_workers=1, n_test=2, n_val=2, n_train=4,
                   patches_per_image=3), **kw)
    return make_config('s2', **kw)


# ---------------------------------------------------------------- loading odd files
@pytest.fixture(scope='module')
def odd_files(tmp_path_factory):
    "One file of each awkward kind, plus the RGB picture they came from."
    d = tmp_path_factory.mktemp('odd')
    rgb = _photo(7, 120, 100)
    Image.fromarray(rgb).save(d/'good.png')
    Image.fromarray(rgb).convert('L').save(d/'gray.png')
    Image.fromarray(rgb).convert('P').save(d/'palette.png')
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(d/'rgba.png')
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(d/'g16.png')
    Image.fromarray(rgb).convert('CMYK').save(d/'cmyk.jpg', quality=95)
    ex = Image.Exif(); ex[0x0112] = 6
    Image.fromarray(rgb).save(d/'rotated.jpg', exif=ex, quality=95)
    (d/'notes.jpg').write_text('this is a text file, not a picture')
    (d/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(400))
    Image.fromarray(rgb).save(d/'full.jpg', quality=95)
    (d/'truncated.jpg').write_bytes((d/'full.jpg').read_bytes()[:600]); (d/'full.jpg').unlink()
    Image.fromarray(_photo(8, 40, 50)).save(d/'tiny.png')
    return d, rgb


def test_odd_modes_become_rgb8(odd_files):
    d, rgb = odd_files
    for name in ['good.png', 'gray.png', 'palette.png', 'rgba.png', 'g16.png', 'cmyk.jpg']:
        a = Im.load_image(d/name)
        assert a.shape == (120, 100, 3) and a.dtype == np.uint8, name
    assert (Im.load_image(d/'rgba.png') == rgb).all()
    assert (Im.load_image(d/'g16.png')[..., 0] == rgb[..., 1]).all()       # 16-bit scaled to 8 bits exactly
    gray = Im.load_image(d/'gray.png')
    assert (gray[..., 0] == gray[..., 2]).all()
    assert np.abs(Im.load_image(d/'cmyk.jpg').astype(int) - rgb).mean() < 12  # CMYK JPEG round trip


def test_exif_rotation(odd_files):
    d, rgb = odd_files
    a = Im.load_image(d/'rotated.jpg')
    assert a.shape == (100, 120, 3)
    assert np.abs(a.astype(int) - np.rot90(rgb, -1)).mean() < 8              # orientation 6 = rotate 90 clockwise


@pytest.mark.parametrize('name', ['notes.jpg', 'corrupt.png', 'truncated.jpg'])
def test_bad_files_raise(odd_files, name):
    with pytest.raises(Im.ImageError, match='not a readable image'): Im.load_image(odd_files[0]/name)


def test_tiny_file_raises(odd_files):
    with pytest.raises(Im.ImageError, match='too small'): Im.load_image(odd_files[0]/'tiny.png', min_size=96)


def test_prepare_skips_bad_files_once_each(odd_files, tmp_path, reports_tmp):
    folder = tmp_path/'mixed'; shutil.copytree(odd_files[0], folder)
    _folder(folder, 3, h=130, w=130)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        s = D.prepare(_cfg(folder, n_test=2, n_val=2, n_train=20))
    skipped = {Path(r['path']).name for r in s['skipped']}
    assert skipped == {'notes.jpg', 'corrupt.png', 'truncated.jpg', 'tiny.png'}
    assert s['n_skipped'] == 4
    msgs = [str(x.message) for x in w if 'skipped' in str(x.message)]
    assert len(msgs) == 4 and all(sum(n in m for m in msgs) == 1 for n in skipped)
    split = pd.read_csv(run_path(_cfg(folder, n_test=2, n_val=2, n_train=20))/'data'/'split.csv')
    used = set(split.image_id)
    assert {'gray.png', 'palette.png', 'rgba.png', 'g16.png', 'cmyk.jpg', 'rotated.jpg', 'good.png'} <= used
    assert not used & skipped
    assert sum(s['photos'].values()) == 10 and s['shortage']['train'] == [20, 6]


# ---------------------------------------------------------------- geometry and degradation
def test_inner_half_geometry():
    rng = np.random.default_rng(0)
    for h, w in [(200, 200), (300, 500), (97, 130), (96, 96)]:
        b = D.sample_boxes((h, w, 3), 96, 400, rng)
        xlo, xhi = w // 4, min(3 * w // 4, w - 96)
        ylo, yhi = h // 4, min(3 * h // 4, h - 96)
        assert b[:, 0].max() <= max(xhi, 0) and b[:, 1].max() <= max(yhi, 0)
        assert b[:, 0].min() >= min(xlo, xhi) and b[:, 1].min() >= min(ylo, yhi)
        assert (b[:, 0] + 96 <= w).all() and (b[:, 1] + 96 <= h).all()
    b = D.sample_boxes((400, 400, 3), 96, 2000, rng)
    assert b[:, 0].min() == 100 and b[:, 0].max() == 300      # the whole inner-half range is reachable


def test_lr_is_pil_bicubic_24px():
    hr = _photo(3, 96, 96)
    lr = Im.make_lr(hr, 4)
    assert lr.shape == (24, 24, 3) and lr.dtype == np.uint8
    assert (lr == np.asarray(Image.fromarray(hr).resize((24, 24), Image.BICUBIC))).all()
    assert Im.bicubic_upscale(lr, 4).shape == (96, 96, 3)
    assert Im.make_lr(_photo(3, 99, 98), 4).shape == (24, 24, 3)   # cropped to a multiple of the scale first


def test_patches_match_their_boxes(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 8)
    cfg = _cfg(folder)
    s = D.prepare(cfg)
    man = pd.read_csv(Path(s['cache_folder'])/'manifest.csv')
    hr = np.load(Path(s['cache_folder'])/'hr.npy'); lr = np.load(Path(s['cache_folder'])/'lr.npy')
    for r in man.sample(6, random_state=0).itertuples():
        img = Im.load_image(r.path)
        assert (hr[r.patch] == img[r.y0:r.y0 + 96, r.x0:r.x0 + 96]).all()
        assert (lr[r.patch] == Im.make_lr(hr[r.patch], 4)).all()
        assert 200 // 4 <= r.x0 <= 200 - 96 and 160 // 4 <= r.y0 <= 160 - 96
    assert set(man.columns) >= {'path', 'x0', 'y0', 'size', 'split', 'sha1'}


# ---------------------------------------------------------------- split
def test_split_has_no_leakage_and_nested_train(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 14)
    cfg = _cfg(folder, n_test=3, n_val=2, n_train=8)
    s = D.prepare(cfg)
    assert s['photos'] == dict(train=8, val=2, test=3) and not s['shortage']
    split = pd.read_csv(run_path(cfg)/'data'/'split.csv')
    assert list(split.columns) == ['image_id', 'path', 'split', 'order']
    assert split.image_id.is_unique
    sets = {k: set(g.image_id) for k, g in split.groupby('split')}
    assert not (sets['train'] & sets['test']) and not (sets['train'] & sets['val']) and not (sets['val'] & sets['test'])
    for sp in ('train', 'val', 'test'):
        assert set(D.load_patches(cfg, sp).image_ids) == sets[sp]
    few = D.load_patches(cfg, 'train', n_images=3)
    first3 = split[split.split == 'train'].sort_values('order').image_id[:3]
    assert set(few.image_ids) == set(first3) and len(few) == 9
    # a larger pool (S1 after S2) keeps val/test and extends train in order
    big = D.prepare(cfg, n_train=9)
    split2 = pd.read_csv(run_path(cfg)/'data'/'split.csv')
    for sp in ('val', 'test'): assert set(split2[split2.split == sp].image_id) == sets[sp]
    t1 = split[split.split == 'train'].sort_values('order').image_id.tolist()
    t2 = split2[split2.split == 'train'].sort_values('order').image_id.tolist()
    assert t2[:8] == t1 and len(t2) == 9 and big['n_train_requested'] == 9
    assert D.prepare(cfg)['n_train_requested'] == 9                      # a run never shrinks


def test_shortage_is_recorded(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 5)
    cfg = _cfg(folder, n_test=2, n_val=2, n_train=10)
    with pytest.warns(UserWarning, match='only 1 usable'):
        s = D.prepare(cfg)
    assert s['photos'] == dict(train=1, val=2, test=2)
    js = json.loads((run_path(cfg)/'data'/'summary.json').read_text())
    assert js['shortage'] == {'train': [10, 1]} and js['demo'] is False and js['source'] == 'folder'


# ---------------------------------------------------------------- determinism and cache
def test_same_seed_same_patches(tmp_path, monkeypatch):
    folder = _folder(tmp_path/'f', 8)
    out = {}
    for tag, seed in [('a', 1), ('b', 1), ('c', 2)]:
        monkeypatch.setenv('SRGAN_REPORTS', str(tmp_path/f'rep_{tag}'))
        cfg = _cfg(folder, seed=seed)
        D.prepare(cfg)
        out[tag] = D.load_patches(cfg, 'train')
    assert (out['a'].hr == out['b'].hr).all() and (out['a'].lr == out['b'].lr).all()
    assert list(out['a'].image_ids) == list(out['b'].image_ids)
    assert not (list(out['a'].image_ids) == list(out['c'].image_ids) and (out['a'].hr == out['c'].hr).all())


def test_two_workers_match_one(tmp_path, monkeypatch):
    folder = _folder(tmp_path/'f', 8)
    res = []
    for nw in (1, 2):
        monkeypatch.setenv('SRGAN_REPORTS', str(tmp_path/f'rep{nw}'))
        D.prepare(c := _cfg(folder, num_workers=nw))
        res.append(D.load_patches(c, 'train'))
    assert (res[0].hr == res[1].hr).all() and list(res[0].image_ids) == list(res[1].image_ids)


def test_cache_reuse_and_invalidation(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 8)
    cfg = _cfg(folder)
    s1 = D.prepare(cfg)
    assert not s1['cache_reused']
    s2 = D.prepare(cfg)
    assert s2['cache_reused'] and s2['cache_key'] == s1['cache_key']
    assert (reports_tmp/'cache'/'patches'/s1['cache_key']/'hr.npy').exists()
    # a changed file invalidates
    f = folder/'img_000.png'
    Image.fromarray(_photo(99)).save(f); os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    s3 = D.prepare(cfg)
    assert s3['cache_key'] != s1['cache_key'] and not s3['cache_reused']
    # so does a changed sampling parameter (a new run folder too)
    s4 = D.prepare(_cfg(folder, patches_per_image=2))
    assert s4['cache_key'] not in (s1['cache_key'], s3['cache_key']) and s4['patches']['train'] == 8
    # and a new file
    _folder(folder, 1, start=50)
    assert D.prepare(cfg)['cache_key'] != s3['cache_key']


def test_loaders_read_prepared_data_and_never_run_the_data_stage(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 8)
    cfg = _cfg(folder)
    for load in (lambda: D.load_patches(cfg, 'val'), lambda: D.load_split_images(cfg, 'test')):
        with pytest.raises(D.DataNotPrepared, match='has no prepared data: prepare it first with `srgan-nb prepare`'): load()
    assert not (reports_tmp/'cache').exists() and D.read_data_summary(cfg) is None         # nothing prepared on the way
    D.prepare(cfg)
    with pytest.raises(D.DataNotPrepared, match='prepared for 4 training photos, not 7'): D.load_patches(cfg, 'train', n_images=7)
    ps = D.load_patches(cfg, 'val')
    assert (run_path(cfg)/'data'/'summary.json').exists() and (run_path(cfg)/'data'/'examples.png').exists()
    assert ps.hr.shape == (6, 96, 96, 3) and ps.lr.shape == (6, 24, 24, 3) and ps.hr.dtype == np.uint8
    imgs = D.load_split_images(cfg, 'test')
    assert len(imgs) == 2 and all(im.shape == (160, 200, 3) for _, im in imgs)
    with pytest.raises(ValueError, match='split'): D.load_patches(cfg, 'holdout')


# ---------------------------------------------------------------- Dataset
def test_patch_dataset():
    hr = np.stack([_photo(i, 96, 96) for i in range(3)]); lr = np.stack([Im.make_lr(h) for h in hr])
    ds = D.PatchDataset(lr, hr)
    l, h = ds[1]
    assert l.shape == (3, 24, 24) and h.shape == (3, 96, 96) and h.dtype == torch.float32
    assert 0 <= float(h.min()) and float(h.max()) <= 1
    assert torch.equal((h * 255).round().byte().permute(1, 2, 0), torch.from_numpy(hr[1]))
    torch.manual_seed(0)
    aug = D.PatchDataset(lr, hr, augment=True)
    u8 = lambda t: (t * 255).round().byte().permute(1, 2, 0).numpy()
    dihedral = lambda a, k, f: np.rot90(a[:, ::-1] if f else a, k)
    seen = set()
    for _ in range(24):                                  # lr and hr always get the same flip / turn
        l, h = aug[0]
        match = [(k, f) for k in range(4) for f in (0, 1) if (dihedral(hr[0], k, f) == u8(h)).all()]
        assert match and (dihedral(lr[0], *match[0]) == u8(l)).all()
        seen.add(match[0])
    assert len(seen) > 3
    with pytest.raises(ValueError): D.PatchDataset(lr[:2], hr)


# ---------------------------------------------------------------- sources
def test_empty_folder_is_a_clear_error(tmp_path, reports_tmp):
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='empty'): D.prepare(_cfg(tmp_path/'empty'))
    with pytest.raises(FileNotFoundError, match='nowhere'): D.prepare(_cfg(tmp_path/'nowhere'))


def test_folder_of_only_bad_files_is_a_clear_error(tmp_path, reports_tmp):
    d = tmp_path/'bad'; d.mkdir(); (d/'a.jpg').write_text('x'); (d/'b.png').write_bytes(b'123')
    with pytest.warns(UserWarning, match='skipped'):
        with pytest.raises(RuntimeError, match='no usable image in .*bad'): D.prepare(_cfg(d))


def test_sample_source_has_test_faces(reports_tmp):
    cfg = make_config('s2', quick=True, data_source='samples', num_workers=1, patches_per_image=2)
    s = D.prepare(cfg)
    assert s['source'] == 'samples' and s['demo'] is True
    assert s['photos']['test'] >= 3 and s['photos']['train'] >= 3 and s['photos']['val'] >= 1
    split = pd.read_csv(run_path(cfg)/'data'/'split.csv')
    faces = {i for i, _ in So.sample_images()['faces']}
    assert set(split[split.split == 'test'].image_id) == faces
    assert {'skimage/astronaut.png', 'skimage/camera.png', 'matplotlib/grace_hopper.jpg'} == faces
    assert not set(split[split.split != 'test'].image_id) & faces
    assert json.loads((run_path(cfg)/'data'/'summary.json').read_text())['demo'] is True


def test_auto_prefers_data_dir(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 8)
    assert So.resolve_source(_cfg(folder, data_source='auto'))[0] == 'folder'


def test_auto_falls_back_to_samples_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(So, 'KAGGLE_HOST', 'kaggle.invalid')
    monkeypatch.setenv('KAGGLEHUB_CACHE', str(tmp_path/'kh'))
    with pytest.warns(UserWarning, match='sample images'):
        assert So.resolve_source(make_config('s2', quick=True, data_source='auto'))[0] == 'samples'


def test_kaggle_fails_fast_offline(monkeypatch, tmp_path, reports_tmp):
    monkeypatch.setattr(So, 'KAGGLE_HOST', 'kaggle.invalid')
    monkeypatch.setenv('KAGGLEHUB_CACHE', str(tmp_path/'kh'))
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match='needs internet'):
        D.prepare(make_config('s2', quick=True, data_source='kaggle'))
    assert time.monotonic() - t0 < 30                       # a hang would take minutes


def test_reachable_gives_up_on_a_silent_server():
    srv = socket.create_server(('127.0.0.1', 0))          # accepts, never speaks TLS
    try:
        t0 = time.monotonic()
        assert So.reachable('127.0.0.1', srv.getsockname()[1], timeout=0.5) is False
        assert time.monotonic() - t0 < 5
    finally: srv.close()


def test_kaggle_uses_a_cached_copy_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(So, 'KAGGLE_HOST', 'kaggle.invalid')
    monkeypatch.setenv('KAGGLEHUB_CACHE', str(tmp_path/'kh'))
    v = _folder(tmp_path/'kh'/'datasets'/So.KAGGLE_HANDLE/'versions'/'2', 2)
    with pytest.warns(UserWarning, match='cached copy'):
        assert So.kaggle_dataset() == v


# ---------------------------------------------------------------- real faces (shared data)
def test_real_faces_folder(faces_dir, tmp_path, reports_tmp):
    sub = tmp_path/'utk'; sub.mkdir()
    for f in sorted(faces_dir.glob('*.jpg'))[:30]: (sub/f.name).symlink_to(f)
    cfg = make_config('s2', quick=True, data_source='folder', data_dir=str(sub), num_workers=2)
    s = D.prepare(cfg)
    assert s['photos'] == dict(train=12, val=4, test=6) and s['n_skipped'] == 0
    ps = D.load_patches(cfg, 'train')
    assert ps.hr.shape == (120, 96, 96, 3) and ps.lr.shape == (120, 24, 24, 3)
    assert ps.hr.std() > 10                                  # real content, not blank


def test_face_aware_on_real_faces(faces_dir):
    files = sorted(faces_dir.glob('*.jpg'))[:20]
    found = sum(len(D.detect_faces(Im.load_image(f))) > 0 for f in files)
    assert found >= 10, f'Haar cascade found faces in only {found} of 20 face crops'
    r = D.extract_patches(files[0], files[0].name, n=5, face_aware=True)
    assert r['ok'] and r['hr'].shape == (5, 96, 96, 3)


def test_face_aware_falls_back_without_faces(tmp_path):
    ramp = np.broadcast_to(np.linspace(0, 255, 200).astype(np.uint8)[None, :, None], (200, 200, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(tmp_path/'noface.png')                  # a plain gradient
    r = D.extract_patches(tmp_path/'noface.png', 'noface.png', n=50, face_aware=True)
    assert r['ok'] and r['face_fallback']
    assert r['boxes'].min() >= 50 and r['boxes'].max() <= 104


def test_sharpness_filter(tmp_path, reports_tmp):
    folder = _folder(tmp_path/'f', 6)
    blurry = Image.fromarray(_photo(40)).resize((25, 20), Image.BICUBIC).resize((200, 160), Image.BICUBIC)
    for i in range(2): blurry.save(folder/f'blur_{i}.png')
    sh = sorted(D.sharpness(Im.load_image(p)) for p in sorted(folder.glob('*.png')))
    thr = (sh[1] + sh[2]) / 2
    assert sh[2] > 2 * sh[1]
    s = D.prepare(_cfg(folder, min_sharpness=thr, n_train=10))
    assert s['n_blurry'] == 2 and sum(s['photos'].values()) == 6
