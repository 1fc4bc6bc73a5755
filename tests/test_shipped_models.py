"The models that ship in this checkout: small, fp16, sha256-checked, documented, better than bicubic, the default of upscale, in the wheel."
import pytest
import torch
from PIL import Image

import srgan_nb.pretrained as P
from srgan_nb import metrics as M
from srgan_nb import evaluate as E
from srgan_nb.images import load_image
from srgan_nb.sources import list_images, read_photo_list


def test_the_shipped_models_are_small_fp16_checked_and_documented():
    models = P.shipped_models()
    assert 'psnr' in models and set(models) <= set(P.MODEL_NAMES)
    for name, e in models.items():
        f = P.model_path(name)                                   # sha256 checked
        assert f.stat().st_size <= 4 * 2**20
        d = torch.load(f, weights_only=True)
        assert all(v.dtype == torch.float16 for v in d['state_dict'].values() if v.is_floating_point())
        card = (f.parent/f"{P.RECIPE}-{name}.md").read_text()
        assert e['sha256'] in card and 'non-commercial' in card
    assert len(P.training_sha256()) == models['psnr']['train_photos']
    assert not P.training_sha256() & set(read_photo_list('heldout').sha256)   # the held-out photos trained nothing


def _y_psnr_gain(images, name):
    df = E.evaluate({'bicubic': 'bicubic', name: P.model_path(name)}, images, metrics=['psnr'], progress=False)
    t = df.pivot_table(index='image_id', columns='method', values='psnr')
    return (t[name] - t['bicubic'])


def test_psnr_model_beats_bicubic_on_the_packaged_sample_faces():
    from srgan_nb.sources import sample_images
    faces = [(i, load_image(p)) for i, p in sample_images()['faces']]
    gain = _y_psnr_gain(faces, 'psnr')
    assert len(gain) == 3 and (gain > 0).all(), gain


def _set5_gain(shared, name):
    return _y_psnr_gain([(i, load_image(p)) for i, p in list_images(shared/'Set5')], name)


def test_psnr_model_beats_bicubic_on_set5(shared):
    gain = _set5_gain(shared, 'psnr')
    assert len(gain) == 5 and gain.mean() > 0, gain


def test_gan_model_continues_the_psnr_model_and_beats_bicubic_on_set5(shared):
    models = P.shipped_models()
    if 'gan' not in models: pytest.skip('only the psnr model ships in this checkout')
    e = models['gan']
    assert e['init_model'] == 'psnr' and e['init_sha256'] == models['psnr']['sha256']   # it trained on from the shipped psnr model
    assert e['train_photos'] == models['psnr']['train_photos'] and e['phase'] == 'gan'
    gain = _set5_gain(shared, 'gan')
    assert len(gain) == 5 and gain.mean() > 0, gain


def test_the_default_model_is_chosen_by_the_stated_rule():
    "bench_quality marked one shipped model the `upscale` default by pretrained.DEFAULT_RULE, with its numbers; its card says so."
    models = P.shipped_models()
    marked = [n for n, e in models.items() if e.get('default')]
    assert len(marked) == 1 and P.default_model() == marked[0]
    e = models[marked[0]]
    assert e['default_rule'] == P.DEFAULT_RULE and e['default_reason'].startswith(f"{marked[0]}:") and 'ST-LPIPS' in e['default_reason']
    assert 'yes, by the rule' in (P.weights_dir()/f"{P.RECIPE}-{marked[0]}.md").read_text()


def test_upscale_with_no_model_and_no_output_uses_the_shipped_default(tmp_path):
    from srgan_nb.cli import main
    from srgan_nb.sources import sample_images
    src = tmp_path/'face.png'
    Image.fromarray(load_image(sample_images()['faces'][0][1])[:64, :80]).save(src)
    assert main(['upscale', str(src), '--device', 'cpu']) == 0
    with Image.open(tmp_path/'face_x4.png') as im: assert im.size == (320, 256)
    assert P.resolve_generator(None) == P.model_path(P.default_model())


def test_the_wheel_carries_the_weights(tmp_path):
    "A normal (non-editable) build: the wheel holds the weights, models.json, the cards and both photo lists."
    import subprocess, sys, zipfile
    root = P.Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), str(root)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob('srgan_nb-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"srgan_nb/weights/{f}" for f in ['models.json', P.TRAIN_LIST, 'heldout_faces_utk.txt']}
    for name, e in P.shipped_models().items(): want |= {f"srgan_nb/weights/{e['file']}", f"srgan_nb/weights/{P.RECIPE}-{name}.md"}
    assert want <= names, want - names
