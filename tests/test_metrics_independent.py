"Metrics the generator was not trained on: piq's HaarPSI/FSIM/MDSI, LR consistency, dlib face identity and landmark distance, the metric registry."
import importlib.util
import sys
import warnings
from types import SimpleNamespace

import matplotlib.cbook as cbook
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata, filters

from srgan_nb import metrics as M, suite as Su
from srgan_nb import evaluate as E
from srgan_nb.images import make_lr, bicubic_upscale

PIQ = {'haarpsi': (M.haarpsi, 1.0, +1), 'fsim': (M.fsim, 1.0, +1), 'mdsi': (M.mdsi, 0.0, -1)}   # best, +1: higher is better


def _blur(img, sigma):
    return np.clip(filters.gaussian(img, sigma=sigma, channel_axis=-1) * 255 + 0.5, 0, 255).astype(np.uint8)


def _noise(img, sd, seed=0):
    return np.clip(img + np.random.default_rng(seed).normal(0, sd, img.shape), 0, 255).round().astype(np.uint8)


def _face_crop(img, cy, cx, side, size=200):
    h = side // 2
    return np.asarray(Image.fromarray(img[cy - h:cy + h, cx - h:cx + h]).resize((size, size), Image.BICUBIC))


@pytest.fixture(scope='module')
def hr():
    return skdata.astronaut()[100:300, 150:350].copy()


@pytest.fixture(scope='module')
def collins():
    "The astronaut's face, 200x200."
    return _face_crop(skdata.astronaut(), 126, 218, 150)


@pytest.fixture(scope='module')
def hopper():
    "Grace Hopper's face (matplotlib's sample photo), 200x200, the face at about the place of the astronaut's."
    return _face_crop(np.asarray(Image.open(cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')), 241, 262, 310)


@pytest.fixture(scope='module')
def shuttle():
    "A corner of the astronaut photo with no face (the shuttle model)."
    return skdata.astronaut()[:200, 312:512].copy()


@pytest.mark.parametrize('name', PIQ)
def test_piq_best_for_a_copy_and_monotone(hr, name):
    f, best, sign = PIQ[name]
    assert f(hr, hr) == pytest.approx(best, abs=1e-4)           # float32: HaarPSI of a copy is 1 + 6e-6
    for series in ([_blur(hr, s) for s in (0.5, 1.0, 2.0)], [_noise(hr, sd) for sd in (5, 10, 20)]):
        v = [sign * f(x, hr) for x in series]
        assert sign * best > v[0] > v[1] > v[2], (name, v)


@pytest.mark.parametrize('name', PIQ)
def test_piq_conventions(hr, name):
    "The same as piq on the shaved images scaled to [0, 1] with data_range 1, in colour (not on Y)."
    import piq
    f = PIQ[name][0]
    sr = _blur(hr, 1.0)
    t = lambda x: torch.from_numpy(x[4:-4, 4:-4].copy()).permute(2, 0, 1)[None].double() / 255
    assert f(sr, hr) == pytest.approx(float(getattr(piq, name)(t(sr), t(hr), data_range=1.0)), abs=1e-5)
    gray = lambda x: np.repeat(x.mean(-1, keepdims=True).round().astype(np.uint8), 3, -1)
    assert f(sr, hr) != pytest.approx(f(gray(sr), gray(hr)), abs=1e-4)   # chroma counts
    assert f(sr, hr, scale=0) != f(sr, hr)                                  # the border is shaved


@pytest.mark.parametrize('name,fits', [('haarpsi', 16), ('fsim', 48), ('mdsi', 3)])
def test_piq_minimum_sizes(hr, name, fits):
    f = PIQ[name][0]
    n = fits + 8                                  # a 4-pixel border at each edge
    assert np.isfinite(f(_blur(hr, 1)[:n, :n], hr[:n, :n]))
    with pytest.raises(M.ImageTooSmall, match=f'{fits}x{fits} needed'):
        f(hr[:n - 1, :n - 1], hr[:n - 1, :n - 1])
    with pytest.raises(ValueError, match='uint8'):
        f(hr / 255.0, hr)
    suite = Su.MetricSuite(['psnr', name])
    with pytest.warns(UserWarning, match=f'{name}: images of'):
        r = suite(hr[:n - 1, :n - 1], hr[:n - 1, :n - 1])
    assert np.isnan(r[name]) and r['psnr'] == float('inf')


def test_lr_psnr(hr):
    lr = make_lr(hr, 4)
    bic = bicubic_upscale(lr, 4)
    assert M.lr_psnr(hr, hr) == float('inf')
    b = M.lr_psnr(bic, hr)
    assert np.isfinite(b) and b > M.psnr(bic, hr) + 5            # near its LR, far from the HR
    assert b == pytest.approx(M.psnr(make_lr(bic, 4), lr, scale=1), abs=1e-12)
    noisy = [M.lr_psnr(_noise(bic, sd), hr) for sd in (5, 10, 20)]
    assert b > noisy[0] > noisy[1] > noisy[2]
    shifted = np.roll(hr, 4, axis=1)                              # as sharp as the HR, but one LR pixel off
    assert M.lr_psnr(shifted, hr) < b
    with pytest.raises(ValueError, match='shape'):
        M.lr_psnr(bic[:100], hr)
    with pytest.raises(M.ImageTooSmall):
        M.lr_psnr(hr[:11, :11], hr[:11, :11])


def test_lr_psnr_in_evaluate_is_against_the_lr_the_method_saw(hr):
    seen = []
    def nearest(lr):
        seen.append(lr.copy())
        return np.repeat(np.repeat(lr, 4, 0), 4, 1)
    df = E.evaluate({'nearest': nearest}, [('a', hr)], metrics=['lr_psnr'], progress=False)
    assert df.lr_psnr.iloc[0] == pytest.approx(M.psnr(make_lr(nearest(seen[0]), 4), seen[0], scale=1), abs=1e-12)


def test_face_models_found_without_importing_the_package():
    sys.modules.pop('face_recognition_models', None)
    paths = M.face_model_paths()
    assert set(paths) == {'shape', 'descriptor', 'landmarks68'} and all(p.is_file() for p in paths.values())
    assert set(M.face_model_paths('face_dist')) == {'shape', 'descriptor'} and set(M.face_model_paths('lmd')) == {'landmarks68'}
    assert paths['shape'].name == 'shape_predictor_5_face_landmarks.dat'
    assert paths['landmarks68'].name == 'shape_predictor_68_face_landmarks.dat'
    assert 'face_recognition_models' not in sys.modules          # its __init__ needs pkg_resources
    for metric in ('face_dist', 'lmd'):
        ok, why = M.face_status(metric)
        assert ok, why


def test_face_identity_distances(collins, hopper):
    fid = M.FaceIdentity()
    for face, other in ((collins, hopper), (hopper, collins)):
        assert fid.hr_face(M.shave(face, 4)) is not None
        bic = bicubic_upscale(make_lr(face, 4), 4)
        d_copy, d_bic, d_other = fid(face, face), fid(bic, face), fid(other, face)
        assert d_copy < 1e-6
        assert 0 < d_bic < 0.6 < d_other                           # dlib: same person below 0.6
        assert d_other > d_bic
        assert fid(_noise(face, 20), face) > fid(_noise(face, 5), face) > 0
    assert (fid.n_scored, fid.n_no_face) == (2, 0)


def test_face_identity_uses_the_hr_face_once(collins):
    "One detection per distinct HR (cached by its bytes), upsampled 2 times under 300 px, once above; the SR never detected."
    fid = M.FaceIdentity()
    det, shape, net = fid._load()
    calls = []
    fid._models = (lambda img, up: calls.append((img.shape, up)) or det(img, up), shape, net)
    bic = bicubic_upscale(make_lr(collins, 4), 4)
    d = [fid(sr, collins) for sr in (bic, _noise(collins, 10), bic)]
    assert calls == [((192, 192, 3), 2)] and d[0] == d[2]
    big = np.asarray(Image.fromarray(collins).resize((400, 400), Image.BICUBIC))
    assert fid(big, big) < 1e-6 and calls[-1] == ((392, 392, 3), 1)
    # the SR's descriptor is taken at the HR's landmarks: the same face moved by 20 px, near the HR's descriptor
    # at its own landmarks, is far at the HR's
    moved = np.roll(collins, 20, axis=1)
    own = np.linalg.norm(fid.hr_face(M.shave(moved, 4))[1] - fid.hr_face(M.shave(collins, 4))[1])
    assert own < 0.15 and fid(moved, collins) > max(3 * own, 0.3)


def test_face_identity_no_face_is_nan_and_counted(collins, shuttle):
    fid = M.FaceIdentity()
    assert np.isnan(fid(shuttle, shuttle)) and np.isnan(fid(collins[:, ::-1].copy(), shuttle))
    fid(collins, collins)
    assert (fid.n_scored, fid.n_no_face) == (2, 1)                # distinct HR images, not calls
    assert fid.note().startswith('no face found in 1 of 2 HR images; those are NaN')
    fid.reset()
    assert (fid.n_scored, fid.n_no_face) == (0, 0)
    with pytest.raises(M.ImageTooSmall, match='20x20 needed'):
        fid(collins[:27, :27], collins[:27, :27])


def test_suite_computes_the_new_metrics(collins, shuttle):
    suite = Su.MetricSuite(None, backbone=torch.nn.Conv2d(3, 4, 3))
    assert {'haarpsi', 'fsim', 'mdsi', 'lr_psnr', 'face_dist'} <= set(suite.metrics)
    bic = bicubic_upscale(make_lr(collins, 4), 4)
    r = suite(bic, collins)
    assert r['haarpsi'] == pytest.approx(M.haarpsi(bic, collins)) and r['mdsi'] == pytest.approx(M.mdsi(bic, collins))
    assert r['fsim'] == pytest.approx(M.fsim(bic, collins)) and r['lr_psnr'] == pytest.approx(M.lr_psnr(bic, collins))
    assert r['face_dist'] == pytest.approx(M.FaceIdentity()(bic, collins))
    assert np.isnan(suite(shuttle, shuttle)['face_dist'])
    assert suite.notes['face_dist'].startswith('no face found in 1 of 2 HR images; those are NaN')


def test_evaluate_face_dist_notes_and_patches(collins, shuttle):
    patches = SimpleNamespace(hr=np.stack([collins[:96, :96], collins[96:192, 96:192]]),
                              lr=np.stack([make_lr(collins[:96, :96], 4), make_lr(collins[96:192, 96:192], 4)]),
                              image_ids=np.array(['collins', 'collins']))
    suite = Su.MetricSuite(['psnr', 'face_dist'])
    kw = dict(suite=suite, patches=patches, progress=False)
    df = E.evaluate({'bicubic': 'bicubic', 'nearest': lambda lr: np.repeat(np.repeat(lr, 4, 0), 4, 1)},
                    [('collins', collins), ('shuttle', shuttle)], **kw)
    img, patch = df[df.level == 'image'].set_index(['image_id', 'method']), df[df.level == 'patch']
    assert np.isfinite(img.face_dist['collins']).all() and img.face_dist['shuttle'].isna().all()
    bic = bicubic_upscale(make_lr(collins, 4), 4)
    assert img.face_dist['collins', 'bicubic'] == pytest.approx(M.FaceIdentity()(bic, collins), abs=1e-12)
    assert patch.face_dist.isna().all() and patch.psnr.notna().all()   # whole images only
    note = 'no face found in 1 of 2 HR images; those are NaN'
    assert df.attrs['notes']['face_dist'].startswith(note)
    again = E.evaluate({'bicubic': 'bicubic'}, [('collins', collins), ('shuttle', shuttle)], **kw)   # reset: counted afresh
    assert again.attrs['notes']['face_dist'].startswith(note)


def test_landmark_distance_in_the_hr_box(collins):
    "LMD is 0 for a copy, grows with a shift (every point moves by the shift), and the detector runs on the HR only, once."
    lmd = M.LandmarkDistance()
    det, pred = lmd._load()
    calls = []
    lmd._models = (lambda img, up: calls.append((img.shape, up)) or det(img, up), pred)
    assert lmd(collins, collins) == 0.0
    box, pts, iod = lmd.hr_face(M.shave(collins, 4))
    assert pts.shape == (68, 2) and 40 < iod < 80                       # eyes about 58 px apart on the 200x200 face
    shifts = [lmd(np.roll(collins, k, axis=1), collins) for k in (2, 5, 10)]
    assert 0 < shifts[0] < shifts[1] < shifts[2] and shifts[2] == pytest.approx(10 / iod, abs=0.03)
    assert 0 < lmd(bicubic_upscale(make_lr(collins, 4), 4), collins) < shifts[1]
    assert lmd(_blur(collins, 4), collins) > 0
    assert calls == [((192, 192, 3), 2)]                                # one detection, on the HR, for all of them
    # an SR with no detectable face is still scored: it is read in the HR's box
    assert np.isfinite(lmd(np.full_like(collins, 128), collins))


def test_evaluate_lmd_counts_faceless_photos(collins, shuttle):
    "evaluate(metrics=['lmd']): a number on the face, NaN on the faceless photo and on patches, and a note that counts it."
    patches = SimpleNamespace(hr=np.stack([collins[:96, :96]]), lr=np.stack([make_lr(collins[:96, :96], 4)]), image_ids=np.array(['collins']))
    df = E.evaluate({'bicubic': 'bicubic'}, [('collins', collins), ('shuttle', shuttle)], metrics=['lmd'], patches=patches, progress=False)
    img = df[df.level == 'image'].set_index(['image_id', 'method']).lmd
    bic = bicubic_upscale(make_lr(collins, 4), 4)
    assert img['collins', 'bicubic'] == pytest.approx(M.LandmarkDistance()(bic, collins), abs=1e-12) and img['collins', 'bicubic'] > 0
    assert np.isnan(img['shuttle', 'bicubic']) and df[df.level == 'patch'].lmd.isna().all()
    note = df.attrs['notes']['lmd']
    assert note.startswith('no face found in 1 of 2 HR images; those are NaN') and "inter-ocular" in note
    assert Su.REGISTRY['lmd'].family == 'identity' and Su.REGISTRY['lmd'].training == 'independent' and 'lmd' in Su.WHOLE_IMAGE_METRICS

def test_face_dist_unavailable_without_dlib(monkeypatch, collins):
    monkeypatch.setitem(sys.modules, 'dlib', None)                 # import dlib raises ImportError
    ok, why = M.face_status()
    assert not ok and why.startswith('unavailable: dlib') and 'pip install dlib-bin face-recognition-models' in why
    suite = Su.MetricSuite(None, backbone=torch.nn.Conv2d(3, 4, 3))
    assert 'face_dist' not in suite.metrics and suite.notes['face_dist'].startswith('unavailable')
    assert 'lmd' not in suite.metrics and suite.notes['lmd'].startswith('unavailable: dlib')
    assert 'face_dist' not in suite(collins, collins)
    with pytest.warns(UserWarning, match='face_dist unavailable'):
        Su.MetricSuite(['psnr', 'face_dist'])
    with pytest.raises(RuntimeError, match='dlib-bin face-recognition-models'):
        M.FaceIdentity()(collins, collins)


def test_face_models_missing_is_clear(monkeypatch):
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'face_recognition_models' else find(name, *a))
    with pytest.raises(ImportError, match='pip install dlib-bin face-recognition-models'):
        M.face_model_paths()
    ok, why = M.face_status()
    assert not ok and 'face_recognition_models' in why


def test_registry_covers_every_metric():
    assert list(Su.REGISTRY) == list(Su.METRIC_NAMES)
    for m, spec in Su.REGISTRY.items():
        assert spec.key == m and spec.label and spec.measures and spec.family, m
        assert spec.better in ('higher', 'lower') and spec.training in ('independent', 'aligned'), m
    assert [m for m, s in Su.REGISTRY.items() if s.training == 'aligned'] == ['feat_dist']
    assert {m for m, s in Su.REGISTRY.items() if s.better == 'lower'} == {'feat_dist', 'lpips', 'stlpips', 'mdsi', 'niqe', 'chroma_err', 'face_dist', 'lmd'}
    assert [m for m, s in Su.REGISTRY.items() if s.needs_face] == ['face_dist', 'lmd']


def test_metric_info_direction_matches_the_metrics(collins):
    "More noise makes every metric worse in the direction the registry states (LPIPS needs downloaded weights: left out)."
    names = [m for m in Su.METRIC_NAMES if m != 'lpips']
    suite = Su.MetricSuite(names)
    mild, strong = suite(_noise(collins, 5), collins), suite(_noise(collins, 25), collins)
    for m in names:
        sign = 1 if Su.REGISTRY[m].better == 'higher' else -1
        assert sign * mild[m] > sign * strong[m], (m, mild[m], strong[m])
