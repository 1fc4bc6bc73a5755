"The shipped-model machinery on a stand-in: export, sha256 check, weights_only loading, names in the CLI, the held-out list, the overlap refusal."
import json, shutil

import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import srgan_nb.pretrained as P
from srgan_nb import metrics as M
from srgan_nb import evaluate as E
from srgan_nb.config import make_config
from srgan_nb.sources import HELDOUT_N, file_sha256, list_images, make_heldout_list, order_images, read_photo_list, resolve_source
from srgan_nb.release import export_models, toy_recipe_run


@pytest.fixture(scope='module')
def standin(tmp_path_factory):
    "A tiny faces-x4 run exported as shipped models into a folder of its own; its one training photo is `photo.png`."
    tmp = tmp_path_factory.mktemp('shipped')
    run = toy_recipe_run(tmp)
    wd = tmp/'weights'
    table = export_models(run, wd, machine='test')
    return dict(wd=wd, table=table, photos=tmp/'photos', run=run)


@pytest.fixture
def shipped(standin, monkeypatch, tmp_path):
    "The stand-in as the installation's shipped models (a fresh copy per test, so a test may damage it)."
    wd = tmp_path/'weights'
    shutil.copytree(standin['wd'], wd)
    monkeypatch.setattr(P, 'weights_dir', lambda folder=None: wd if folder is None else P.Path(folder))
    return wd


def test_export_writes_fp16_weights_with_their_sha256(standin):
    wd, models = standin['wd'], json.loads((standin['wd']/P.MODELS_JSON).read_text())
    assert list(models) == ['psnr', 'gan']
    for name, e in models.items():
        f = wd/e['file']
        assert e['sha256'] == file_sha256(f) and e['bytes'] == f.stat().st_size
        d = torch.load(f, weights_only=True)          # plain tensors and data only
        floats = [v for v in d['state_dict'].values() if v.is_floating_point()]
        assert floats and all(v.dtype == torch.float16 for v in floats)
        assert d['meta']['name'] == name and 'non-commercial' in d['meta']['licence']
    assert models['gan']['train_seconds'] >= models['psnr']['train_seconds']   # gan: both phases
    assert read_photo_list(wd/P.TRAIN_LIST).name.tolist() == ['photo.png']


def test_a_damaged_or_missing_file_is_a_clear_error(shipped):
    g = P.load_pretrained('psnr')
    assert g.n_blocks == 2 and not g.training
    b = bytearray((shipped/'faces-x4-psnr.pt').read_bytes()); b[len(b) // 2] ^= 0xFF
    (shipped/'faces-x4-psnr.pt').write_bytes(bytes(b))
    with pytest.raises(P.WeightsError, match='does not match its sha256'): P.load_pretrained('psnr')
    (shipped/'faces-x4-gan.pt').unlink()
    with pytest.raises(P.WeightsError, match='missing'): P.model_path('gan')
    with pytest.raises(P.WeightsError, match='no shipped model'): P.model_path('esrgan')


def test_weights_only_refuses_pickled_code(shipped):
    "The loader takes plain tensors only: a file carrying a pickled object is refused, not executed."
    import fractions
    evil = shipped/'evil.pt'
    torch.save(dict(format='srgan_nb.generator', obj=fractions.Fraction(1, 3)), evil)  # not an allowed global
    from srgan_nb.model import load_generator
    with pytest.raises(ValueError, match='not a readable generator file'): load_generator(evil)


def test_upscale_defaults_to_the_shipped_gan_beside_the_input(shipped, tmp_path, capsys):
    from srgan_nb.cli import main
    src = tmp_path/'face.jpg'
    Image.fromarray(skdata.astronaut()[:40, 200:250]).save(src)
    assert main(['upscale', str(src), '--device', 'cpu']) == 0
    out = tmp_path/'face_x4.png'
    with Image.open(out) as im: assert im.size == (200, 160)
    assert 'shipped model gan' in capsys.readouterr().out
    assert main(['upscale', str(src), '--model', 'psnr', '-o', str(tmp_path/'p.png'), '--device', 'cpu']) == 0
    assert (tmp_path/'p.png').is_file()


def test_evaluation_refuses_the_photos_a_shipped_model_trained_on(shipped, standin, reports_tmp):
    cfg = make_config('s2', data_source='samples', quick=True)
    ev = E.evaluate_command(cfg, checkpoint=['psnr', 'gan'], data_dir=standin['photos'], metrics=['psnr', 'ssim'], progress=False)
    rows = ev.df.groupby('method').image_id.apply(sorted).to_dict()
    assert rows == {'bicubic': ['other.png', 'photo.png'], 'shipped_psnr': ['other.png'], 'shipped_gan': ['other.png']}
    assert '1 of 2 photos refused' in ev.df.attrs['notes']['shipped']
    assert ev.table().shape[0] >= 3   # the summary table takes methods scored on fewer photos


def test_reference_rows_follow_the_setting():
    assert E.wants_shipped(make_config('s2', quick=True)) and not E.wants_shipped(make_config('s2'))
    assert E.wants_shipped(make_config('s2'), demo=True)
    assert E.wants_shipped(make_config('s2', reference_models='true'))
    assert not E.wants_shipped(make_config('s2', quick=True, reference_models='false'))
    with pytest.raises(ValueError, match='reference_models'): make_config('s2', reference_models='maybe')


def test_heldout_list_is_what_it_says(faces_dir):
    "The packaged list: 500 faces-utk photos with the right sha256, none in the default split's first 700, none in faces-x4's pool."
    lst = read_photo_list('heldout')
    assert len(lst) == HELDOUT_N and lst.sha256.is_unique
    pd.testing.assert_frame_equal(make_heldout_list(faces_dir), lst)
    first = {i for i, _ in order_images(list_images(faces_dir), 42)[:700]}   # val, test, S1's training photos
    assert not first & set(lst.name)
    _, _, groups = resolve_source(make_config(P.RECIPE, data_dir=str(faces_dir)))
    pool = {i for i, _ in groups[0][0]}
    assert len(pool) == len(list_images(faces_dir)) - HELDOUT_N and not pool & set(lst.name)
