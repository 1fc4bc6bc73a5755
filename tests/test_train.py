"Training: history, both phases, optimiser wiring, frozen backbone, generator files, exact resume, NaN guard, bf16, determinism."
import copy, json, math

import numpy as np
import pandas as pd
import pytest
import torch

import srgan_nb.train as T
from srgan_nb.config import make_config, cpu_supports_bf16
from srgan_nb.model import Generator, Discriminator

TRAIN, VAL = T.toy_patches(12, 24, 4, seed=1), T.toy_patches(4, 24, 4, seed=2)




def tiny_cfg(**kw):
    base = dict(hr_size=24, n_blocks=2, channels=8, pretrain_epochs=1, epochs=1, batch_size=4, backbone='effnet_lite0',
                precision='fp32', device='cpu', log_every=2, bicubic_skip=True, lr_pretrain=1e-3, resume=True)
    base.update(kw)
    return make_config('s2', **base)


def tiny_models(seed=0):
    torch.manual_seed(seed)
    return Generator(scale=4, n_blocks=2, channels=8, bicubic_skip=True), Discriminator(hr_size=24, base=8)


@pytest.fixture(scope='module')
def backbone():
    from srgan_nb.losses import build_backbone
    return build_backbone('effnet_lite0')


def run(cfg, out, backbone, seed=0, **kw):
    g, d = tiny_models(seed)
    return T.fit(cfg, kw.pop('train_set', TRAIN), kw.pop('val_set', VAL), out, generator=g, discriminator=d, backbone=backbone, **kw)


@pytest.fixture(scope='module')
def straight(tmp_path_factory, backbone):
    "One uninterrupted run of 1 pretraining + 2 GAN epochs, with the initial weights and the backbone's state."
    out = tmp_path_factory.mktemp('straight')
    g, d = tiny_models()
    init = dict(g=copy.deepcopy(g.state_dict()), d=copy.deepcopy(d.state_dict()))
    bb_before = copy.deepcopy(backbone.state_dict())
    hist = T.fit(tiny_cfg(epochs=2), TRAIN, VAL, out, generator=g, discriminator=d, backbone=backbone)
    return dict(out=out, hist=hist, init=init, bb_before=bb_before, g=g, d=d)


def test_history_columns_and_phases(straight):
    h = straight['hist']
    assert list(h.columns) == T.HISTORY_COLUMNS
    assert h.phase.tolist() == ['pretrain', 'gan', 'gan'] and h.epoch.tolist() == [1, 2, 3]
    gan_cols = ['d_loss_fake', 'd_loss_real', 'perceptual_loss', 'adversarial_loss', 'd_real_mean', 'd_fake_mean']
    assert h.loc[0, gan_cols].isna().all()
    assert np.isfinite(h.loc[1:, gan_cols].to_numpy(float)).all()
    assert h.loc[0, 'g_loss'] == h.loc[0, 'content_loss']  # in pretraining the objective is the content loss
    assert (h.loc[1:, 'g_loss'] > h.loc[1:, 'content_loss']).all()  # the GAN objective adds perceptual + adversarial terms
    assert ((h.loc[1:, ['d_real_mean', 'd_fake_mean']] > 0) & (h.loc[1:, ['d_real_mean', 'd_fake_mean']] < 1)).all().all()
    assert np.isfinite(h.val_psnr).all() and h.val_psnr_bicubic.nunique() == 1
    csv = pd.read_csv(straight['out']/'history.csv')
    assert list(csv.columns) == T.HISTORY_COLUMNS and len(csv) == 3
    s = json.loads((straight['out']/'train_summary.json').read_text())
    assert s['finished'] is True and s['backbone'] == 'effnet_lite0' and s['precision'] == 'fp32'
    assert s['n_patches'] == 12 and s['n_train_images'] == 3 and s['images_per_s'] > 0
    assert math.isclose(s['val_psnr_srresnet'], h.val_psnr.iloc[0]) and math.isclose(s['val_psnr_srgan'], h.val_psnr.iloc[-1])
    for f in ['checkpoints/last.pt', 'checkpoints/pretrain.pt', 'generator_srresnet.pt', 'generator_srgan.pt', 'config.json']:
        assert (straight['out']/f).exists(), f
    assert not list(straight['out'].rglob('*.tmp'))


def _same(a, b): return all(torch.equal(a[k], b[k]) for k in a)


def test_optimizers_step(straight):
    "Phase 1 moves the generator only; phase 2 moves both networks."
    pre, last = (T.load_checkpoint(straight['out']/'checkpoints'/f) for f in ('pretrain.pt', 'last.pt'))
    init = straight['init']
    assert pre['epoch'] == 1 and last['epoch'] == 3
    assert not _same(init['g'], pre['generator']) and not _same(pre['generator'], last['generator'])
    assert _same(init['d'], pre['discriminator'])
    assert not _same(pre['discriminator'], last['discriminator'])
    assert last['opt_d']['state'] and last['opt_g']['state'] and pre['opt_pretrain']['state'] and not pre['opt_g']['state']


def test_frozen_backbone_unchanged(straight, backbone):
    assert _same(straight['bb_before'], backbone.state_dict())
    assert not any(p.requires_grad for p in backbone.parameters()) and not backbone.training


def test_save_load_generator_round_trip(straight, tmp_path):
    g = T.load_generator(straight['out']/'generator_srgan.pt')
    assert not g.training and g.meta['n_blocks'] == 2 and g.meta['bicubic_skip'] is True
    assert g.meta['backbone'] == 'effnet_lite0' and g.meta['strategy'] == 's2'
    x = torch.rand(2, 3, 8, 8)
    straight['g'].eval()
    with torch.no_grad():
        assert torch.equal(g(x), straight['g'](x))
        assert torch.equal(T.load_generator(straight['out']/'checkpoints'/'last.pt')(x), g(x))  # a checkpoint also loads
        s = T.load_generator(straight['out']/'generator_srresnet.pt')
        assert not torch.equal(s(x), g(x))
    T.save_generator(g, tmp_path/'g.pt', meta=dict(strategy='s1'))
    assert T.load_generator(tmp_path/'g.pt').meta['strategy'] == 's1'
    torch.save({'x': torch.zeros(1)}, tmp_path/'other.pt')
    with pytest.raises(ValueError, match='neither'): T.load_generator(tmp_path/'other.pt')


def _drop_time(h): return h.drop(columns=['seconds']).reset_index(drop=True)


def test_deterministic(straight, tmp_path, backbone):
    "The same seed gives the identical history (CPU, fp32), with and without torch's deterministic mode."
    try:
        h2 = run(tiny_cfg(epochs=2, deterministic=True), tmp_path/'again', backbone)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    pd.testing.assert_frame_equal(_drop_time(h2), _drop_time(straight['hist']), check_exact=True)
    h3 = run(tiny_cfg(epochs=2, seed=7), tmp_path/'other_seed', backbone)
    assert not np.allclose(h3.g_loss, straight['hist'].g_loss)


class Killed(Exception): pass


def test_resume_equals_uninterrupted(straight, tmp_path, backbone, monkeypatch):
    "Killed after 2 of 3 epochs, then resumed: the same history and weights as the straight run."
    out, calls, real = tmp_path/'killed', [], T.save_checkpoint
    def save_then_die(state, path):
        real(state, path)
        if path.name == 'last.pt':
            calls.append(state['epoch'])
            if state['epoch'] == 2: raise Killed()
    monkeypatch.setattr(T, 'save_checkpoint', save_then_die)
    with pytest.raises(Killed): run(tiny_cfg(epochs=2), out, backbone)
    monkeypatch.setattr(T, 'save_checkpoint', real)
    assert not (out/'train_summary.json').exists()
    h = run(tiny_cfg(epochs=2), out, backbone, seed=123)  # fresh weights: resume must overwrite them
    assert calls == [1, 2]
    pd.testing.assert_frame_equal(_drop_time(h), _drop_time(straight['hist']), check_exact=False, rtol=0, atol=1e-6)
    a, b = T.load_checkpoint(out/'checkpoints'/'last.pt'), T.load_checkpoint(straight['out']/'checkpoints'/'last.pt')
    for net in ('generator', 'discriminator'):
        for k in a[net]: torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=1e-6)


def test_resume_false_starts_afresh(straight, tmp_path, backbone):
    out = tmp_path/'fresh'
    run(tiny_cfg(epochs=1), out, backbone)
    h = run(tiny_cfg(epochs=1, resume=False), out, backbone, seed=5)
    assert len(h) == 2 and h.epoch.tolist() == [1, 2]


def test_nan_guard_names_epoch_step_and_part(tmp_path, backbone, monkeypatch):
    import srgan_nb.losses as L
    real, n = L.content_loss, [0]
    def sometimes_nan(sr, hr):
        n[0] += 1
        v = real(sr, hr)
        return v * float('nan') if n[0] == 3 else v
    monkeypatch.setattr(L, 'content_loss', sometimes_nan)
    with pytest.raises(T.TrainingDiverged, match=r'epoch 1 \(pretrain\), step 3: content_loss is nan') as e:
        run(tiny_cfg(log_every=2), tmp_path/'nan', backbone)
    assert (e.value.epoch, e.value.step, e.value.part) == (1, 3, 'content_loss')


def test_nan_guard_gan_phase(tmp_path, backbone, monkeypatch):
    import srgan_nb.losses as L
    real = L.discriminator_loss
    def inf_real(r, f):
        loss, lr_, lf = real(r, f)
        return loss, lr_ + float('inf'), lf
    monkeypatch.setattr(L, 'discriminator_loss', inf_real)
    with pytest.raises(T.TrainingDiverged, match=r'epoch 2 \(gan\), step 1: d_loss_real is inf'):
        run(tiny_cfg(log_every=50), tmp_path/'inf', backbone)  # caught at the end of the epoch


def test_bf16_on_cpu(tmp_path, backbone):
    if not cpu_supports_bf16():
        print('skipping: this CPU has no native bf16 (avx512_bf16/amx_bf16)')
        pytest.skip('this CPU has no native bf16 (avx512_bf16/amx_bf16)')
    h = run(tiny_cfg(precision='bf16'), tmp_path/'bf16', backbone)
    assert np.isfinite(h[['g_loss', 'content_loss', 'val_psnr']].to_numpy(float)).all()
    assert json.loads((tmp_path/'bf16'/'train_summary.json').read_text())['precision'] == 'bf16'


def test_augment_channels_last_no_pretraining(tmp_path, backbone):
    h = run(tiny_cfg(pretrain_epochs=0, augment=True, channels_last=True), tmp_path/'aug', backbone)
    assert h.phase.tolist() == ['gan'] and np.isfinite(h.g_loss).all()
    assert (tmp_path/'aug'/'generator_srresnet.pt').exists() and not (tmp_path/'aug'/'checkpoints'/'pretrain.pt').exists()


def test_bad_patches_clear_error(tmp_path, backbone):
    with pytest.raises(ValueError, match='hr_size'):
        run(tiny_cfg(hr_size=32), tmp_path/'bad', backbone)
    with pytest.raises(ValueError, match='uint8'):
        run(tiny_cfg(), tmp_path/'bad', backbone, train_set=(TRAIN.lr.astype(np.float32), TRAIN.hr))


def test_train_wires_data_and_skips_finished(tmp_path, backbone, monkeypatch, capsys, reports_tmp):
    "train() loads the run's train (first n_train photos) and val patches, prints its outputs, and is not rerun once finished."
    import srgan_nb.data as D
    import srgan_nb.losses as L
    asked = []
    def fake_load(cfg, split, n_images=None):
        asked.append((split, n_images))
        return TRAIN if split == 'train' else VAL
    monkeypatch.setattr(D, 'load_patches', fake_load)
    import srgan_nb.model as M
    monkeypatch.setattr(L, 'build_backbone', lambda *a, **k: backbone)
    monkeypatch.setattr(M, 'build_models', lambda cfg: tiny_models())
    cfg = tiny_cfg(n_train=7)
    h = T.train(cfg)
    out = reports_tmp/'runs'/cfg.run_id/'s2'
    assert asked == [('train', 7), ('val', None)] and (out/'train_summary.json').exists()
    text = capsys.readouterr().out
    assert str(out) in text and 'val PSNR (Y): bicubic' in text and 'SRResNet' in text and 'SRGAN' in text
    monkeypatch.setattr(D, 'load_patches', lambda *a, **k: pytest.fail('a finished run must not reload data'))
    h2 = T.train(cfg)
    pd.testing.assert_frame_equal(h2, pd.read_csv(out/'history.csv'))
    assert 'already trained' in capsys.readouterr().out
    assert len(h2) == len(h)
