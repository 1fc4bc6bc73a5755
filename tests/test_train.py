"Training: history, both phases, optimiser wiring, frozen backbone, generator files, exact resume, NaN guard, bf16, determinism."
import copy, json, math

import numpy as np
import pandas as pd
import pytest
import torch

import srgan_nb.train as T
from srgan_nb import checkpoint as Ck
from srgan_nb import monitor as Mon
from srgan_nb import steps as St
from srgan_nb.config import OtherVersion, make_config, cpu_supports_bf16, config_dict
from srgan_nb.model import Generator, Discriminator, load_checkpoint, load_generator, save_generator
from srgan_nb.testing import toy_patches

TRAIN, VAL = toy_patches(12, 24, 4, seed=1), toy_patches(4, 24, 4, seed=2)




def tiny_cfg(**kw):
    base = dict(hr_size=24, n_blocks=2, channels=8, pretrain_epochs=1, epochs=1, batch_size=4, backbone='effnet_lite0',
                precision='fp32', device='cpu', log_every=2, bicubic_skip=True, lr_pretrain=1e-3, resume=True,
                keep_checkpoints=True,  # the tests look into the full training state
                d_norm='bn', anchor_weight=0.0, ema_decay=0.0)  # the paper's BatchNorm D, no anchor, no average: each test turns on what it tests
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
    gan_cols = ['d_loss_fake', 'd_loss_real', 'perceptual_loss', 'adversarial_loss', 'anchor_loss', 'd_real_mean', 'd_fake_mean',
                'd_pair_acc', 'd_pair_acc_min', 'd_pair_acc_eval']
    assert h.loc[0, gan_cols].isna().all()
    assert np.isfinite(h.loc[1:, gan_cols].to_numpy(float)).all()
    assert h.loc[0, 'g_loss'] == h.loc[0, 'pixel_loss'] > 0  # in pretraining the objective is the pixel loss
    gan = h.loc[1:]
    # the GAN objective under the defaults: perceptual + 1e-4 adversarial, no pixel term (its column is 0: not computed)
    assert (gan.pixel_loss == 0).all() and (gan.perceptual_loss > 0).all() and (gan.adversarial_loss > 0).all()
    assert (gan.anchor_loss == 0).all()  # the colour anchor is off by default
    assert h.d_health_mode.isna().iloc[0] and (gan.d_health_mode == 'train-separate').all()  # the BatchNorm D, separate batches
    np.testing.assert_allclose(gan.g_loss, gan.perceptual_loss + 1e-4 * gan.adversarial_loss, rtol=1e-5)
    assert ((gan[['d_pair_acc', 'd_pair_acc_min']] >= 0) & (gan[['d_pair_acc', 'd_pair_acc_min']] <= 1)).all().all()
    assert (gan.d_pair_acc_min <= gan.d_pair_acc).all()
    assert ((h.loc[1:, ['d_real_mean', 'd_fake_mean']] > 0) & (h.loc[1:, ['d_real_mean', 'd_fake_mean']] < 1)).all().all()
    assert np.isfinite(h.val_psnr).all() and h.val_psnr_bicubic.nunique() == 1
    csv = pd.read_csv(straight['out']/'history.csv')
    assert list(csv.columns) == T.HISTORY_COLUMNS and len(csv) == 3
    s = json.loads((straight['out']/'train_summary.json').read_text())
    assert s['finished'] is True and s['backbone'] == 'effnet_lite0' and s['precision'] == 'fp32'
    assert s['n_patches'] == 12 and s['n_train_images'] == 3 and s['images_per_s'] > 0
    assert math.isclose(s['val_psnr_srresnet'], h.val_psnr.iloc[0]) and math.isclose(s['val_psnr_srgan'], h.val_psnr.iloc[-1])
    dh = pd.read_csv(straight['out']/'d_health.csv')  # 12 patches / batch 4 = 3 steps per epoch, each measured, 2 GAN epochs
    assert dh.epoch.tolist() == [2, 2, 2, 3, 3, 3] and dh.step.tolist() == [1, 2, 3] * 2
    assert list(dh.columns) == Mon.D_HEALTH_COLUMNS and (dh.d_health_mode == 'train-separate').all()
    np.testing.assert_allclose(dh.groupby('epoch').d_pair_acc_eval.mean().to_numpy(), gan.d_pair_acc_eval.to_numpy())
    np.testing.assert_allclose(dh.groupby('epoch').d_pair_acc.mean().to_numpy(), gan.d_pair_acc.to_numpy())
    for f in ['checkpoints/last.pt', 'checkpoints/pretrain.pt', 'generator_srresnet.pt', 'generator_srgan.pt', 'config.json']:
        assert (straight['out']/f).exists(), f
    assert not list(straight['out'].rglob('*.tmp'))


def _same(a, b): return all(torch.equal(a[k], b[k]) for k in a)


def test_optimizers_step(straight):
    "Phase 1 moves the generator only; phase 2 moves both networks."
    pre, last = (load_checkpoint(straight['out']/'checkpoints'/f) for f in ('pretrain.pt', 'last.pt'))
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
    g = load_generator(straight['out']/'generator_srgan.pt')
    assert not g.training and g.meta['n_blocks'] == 2 and g.meta['bicubic_skip'] is True
    assert g.meta['backbone'] == 'effnet_lite0' and g.meta['strategy'] == 's2'
    x = torch.rand(2, 3, 8, 8)
    straight['g'].eval()
    with torch.no_grad():
        assert _same(g.state_dict(), straight['g'].state_dict())  # the weights round-trip exactly
        # outputs: the trained generator is channels_last, the loaded one NCHW; their conv kernels may round differently
        torch.testing.assert_close(g(x), straight['g'](x), rtol=1e-5, atol=1e-6)
        assert torch.equal(load_generator(straight['out']/'checkpoints'/'last.pt')(x), g(x))  # a checkpoint also loads
        s = load_generator(straight['out']/'generator_srresnet.pt')
        assert not torch.equal(s(x), g(x))
    save_generator(g, tmp_path/'g.pt', meta=dict(strategy='s1'))
    assert load_generator(tmp_path/'g.pt').meta['strategy'] == 's1'
    torch.save({'x': torch.zeros(1)}, tmp_path/'other.pt')
    with pytest.raises(ValueError, match='neither'): load_generator(tmp_path/'other.pt')


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
    out, calls, real = tmp_path/'killed', [], Ck.save_checkpoint
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
    a, b = load_checkpoint(out/'checkpoints'/'last.pt'), load_checkpoint(straight['out']/'checkpoints'/'last.pt')
    for net in ('generator', 'discriminator'):
        for k in a[net]: torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=1e-6)


def test_resume_inside_an_epoch_equals_uninterrupted(straight, tmp_path, backbone, monkeypatch):
    """Checkpoints inside epochs (checkpoint_minutes ~0: after every step), killed at step 1 of the last GAN epoch, resumed:
    the same history and weights as the straight run, and the epoch's seconds add up both parts."""
    out, seen, real = tmp_path/'killed_inside', [], Ck.save_checkpoint
    def save_then_die(state, path):
        real(state, path)
        p = state.get('partial')
        if p: seen.append((p['epoch'], p['step']))
        if p and (p['epoch'], p['step']) == (3, 1): raise Killed()
    monkeypatch.setattr(T, 'save_checkpoint', save_then_die)
    cfg = tiny_cfg(epochs=2, checkpoint_minutes=1e-9)
    with pytest.raises(Killed): run(cfg, out, backbone)
    monkeypatch.setattr(T, 'save_checkpoint', real)
    ck = load_checkpoint(out/'checkpoints'/'last.pt')
    assert ck['epoch'] == 2 and ck['partial']['step'] == 1 and ck['partial']['seconds'] > 0
    assert seen[:4] == [(1, 1), (1, 2), (2, 1), (2, 2)]  # 3 steps per epoch: saved after steps 1 and 2 (step 3 ends the epoch)
    h = run(cfg, out, backbone, seed=123)
    pd.testing.assert_frame_equal(_drop_time(h), _drop_time(straight['hist']), check_exact=False, rtol=0, atol=1e-6)
    assert h.seconds.iloc[-1] >= ck['partial']['seconds']
    a, b = load_checkpoint(out/'checkpoints'/'last.pt'), load_checkpoint(straight['out']/'checkpoints'/'last.pt')
    assert a['partial'] is None
    for net in ('generator', 'discriminator'):
        for k in a[net]: torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=1e-6)


def test_resume_false_starts_afresh(straight, tmp_path, backbone):
    out = tmp_path/'fresh'
    run(tiny_cfg(epochs=1), out, backbone)
    h = run(tiny_cfg(epochs=1, resume=False), out, backbone, seed=5)
    assert len(h) == 2 and h.epoch.tolist() == [1, 2]


def test_resume_refuses_other_settings_and_old_checkpoints(straight, tmp_path, backbone):
    "A checkpoint made with other training settings, or one that lacks a field (an older version's), is not resumed."
    out = tmp_path/'refuse'
    run(tiny_cfg(epochs=1), out, backbone)
    before = (out/'checkpoints'/'last.pt').read_bytes()
    with pytest.raises(Ck.ResumeRefused, match=r'adversarial_weight: 0.0001 -> 0.005.*--run-id'):
        run(tiny_cfg(epochs=2, adversarial_weight=5e-3), out, backbone)
    old = load_checkpoint(out/'checkpoints'/'last.pt')
    old['config'] = {k: v for k, v in old['config'].items() if k not in ('pixel_weight', 'pixel_criterion')} | dict(content_weight=0.0)
    Ck.save_checkpoint(old, out/'checkpoints'/'last.pt')
    with pytest.raises(OtherVersion, match=r"last.pt was written by another version of srgan-nb \(without pixel_criterion, pixel_weight; "
                                           r"with content_weight, unknown here\): rerun it"):
        run(tiny_cfg(epochs=2), out, backbone)
    h = run(tiny_cfg(epochs=1, resume=False), out, backbone)  # the way out the message names
    assert len(h) == 2 and (out/'checkpoints'/'last.pt').read_bytes() != before


def test_nan_guard_names_epoch_step_and_part(tmp_path, backbone, monkeypatch):
    real, n = St.pixel_loss, [0]
    def sometimes_nan(sr, hr, criterion='mse'):
        n[0] += 1
        v = real(sr, hr, criterion)
        return v * float('nan') if n[0] == 3 else v
    monkeypatch.setattr(St, 'pixel_loss', sometimes_nan)
    with pytest.raises(T.TrainingDiverged, match=r'epoch 1 \(pretrain\), step 3: pixel_loss is nan') as e:
        run(tiny_cfg(log_every=2), tmp_path/'nan', backbone)
    assert (e.value.epoch, e.value.step, e.value.part) == (1, 3, 'pixel_loss')


def test_nan_guard_gan_phase(tmp_path, backbone, monkeypatch):
    real = St.discriminator_objective
    def inf_real(r, f, settings):
        loss, parts = real(r, f, settings)
        return loss, dict(parts, d_loss_real=parts['d_loss_real'] + float('inf'))
    monkeypatch.setattr(St, 'discriminator_objective', inf_real)
    with pytest.raises(T.TrainingDiverged, match=r'epoch 2 \(gan\), step 1: d_loss_real is inf'):
        run(tiny_cfg(log_every=50), tmp_path/'inf', backbone)  # caught at the end of the epoch


def test_bf16_on_cpu(tmp_path, backbone):
    if not cpu_supports_bf16():
        print('skipping: this CPU has no native bf16 (avx512_bf16/amx_bf16)')
        pytest.skip('this CPU has no native bf16 (avx512_bf16/amx_bf16)')
    h = run(tiny_cfg(precision='bf16'), tmp_path/'bf16', backbone)
    assert np.isfinite(h[['g_loss', 'pixel_loss', 'val_psnr']].to_numpy(float)).all()
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
    asked = []
    def fake_load(cfg, split, n_images=None):
        asked.append((split, n_images))
        return TRAIN if split == 'train' else VAL
    monkeypatch.setattr(T, 'load_patches', fake_load)
    monkeypatch.setattr(T, 'load_split_images', lambda cfg, split: asked.append(('photos', split)) or [])
    monkeypatch.setattr(St, 'build_backbone', lambda *a, **k: backbone)
    monkeypatch.setattr(St, 'build_models', lambda cfg: tiny_models())
    cfg = tiny_cfg(n_train=7)
    h = T.train(cfg)
    out = reports_tmp/'runs'/cfg.run_id/'s2'
    assert asked == [('train', 7), ('val', None)] + [('photos', 'val')] * bool(cfg.val_photos) and (out/'train_summary.json').exists()
    text = capsys.readouterr().out
    assert str(out) in text and 'val PSNR (Y): bicubic' in text and 'SRResNet' in text and 'SRGAN' in text
    monkeypatch.setattr(T, 'load_patches', lambda *a, **k: pytest.fail('a finished run must not reload data'))
    h2 = T.train(cfg)
    pd.testing.assert_frame_equal(h2, T.read_history(out/'history.csv'))
    assert 'already trained' in capsys.readouterr().out
    assert len(h2) == len(h)



def test_the_adversarial_free_twin_starts_from_the_same_srresnet_without_the_term(tmp_path, backbone, monkeypatch, capsys, reports_tmp):
    "adversarial_twin: after the run, the same GAN phase from its SRResNet with adversarial_weight 0 in <strategy>/twin; a finished twin is not retrained; evaluation names it 'twin'."
    from srgan_nb.model import load_generator
    from srgan_nb.evaluate import run_generators
    monkeypatch.setattr(T, 'load_patches', lambda cfg, split, n_images=None: TRAIN if split == 'train' else VAL)
    monkeypatch.setattr(T, 'load_split_images', lambda cfg, split: [])
    monkeypatch.setattr(St, 'build_backbone', lambda *a, **k: backbone)
    monkeypatch.setattr(St, 'build_models', lambda cfg: tiny_models())
    cfg = tiny_cfg(adversarial_twin=True, adversarial_weight=1e-2)
    T.train(cfg)
    out = reports_tmp/'runs'/cfg.run_id/'s2'
    twin = json.loads((out/'twin'/'train_summary.json').read_text())
    assert twin['config']['adversarial_weight'] == 0 and twin['config']['pretrain_epochs'] == 0 and twin['config']['epochs'] == cfg.epochs
    srresnet = load_generator(out/'generator_srresnet.pt').state_dict()
    assert all(torch.equal(v, srresnet[k]) for k, v in load_generator(out/'twin'/'generator_srresnet.pt').state_dict().items())  # the same start
    h = T.read_history(out/'twin'/'history.csv')
    assert list(h.phase) == ['gan'] * cfg.epochs and (h.adversarial_loss == 0).all() and (h.adv_weight == 0).all()
    assert set(run_generators(out)) == {'srresnet', 'srgan', 'twin'}
    assert 'the adversarial-free twin' in capsys.readouterr().out
    monkeypatch.setattr(T, 'load_patches', lambda *a, **k: pytest.fail('a finished run and twin must not reload data'))
    T.train(cfg)
    assert 'already trained' in capsys.readouterr().out

# ---------------------------------------------------------------- the SRGAN step itself (the code fit runs)
def _weights(m): return {k: v.detach().clone() for k, v in m.named_parameters()}


def _step_setup(backbone, **kw):
    g, d = tiny_models()
    s = St.build_train_state(tiny_cfg(**kw), g, d, backbone)
    with torch.no_grad(): s.generator.tail.weight.normal_(0, 1e-3)  # as after a first step (a zero tail passes no gradient upstream)
    lr, hr = T.patch_tensors(TRAIN)
    return s, lr[:4].float() / 255, hr[:4].float() / 255


def test_srgan_step_each_optimizer_steps_only_its_network(backbone):
    s, lr, hr = _step_setup(backbone)
    with s.autocast(): sr = s.generator(lr)
    g0, d0, bb0 = _weights(s.generator), _weights(s.discriminator), copy.deepcopy(backbone.state_dict())
    St.discriminator_step(s, sr, hr)
    assert _same(_weights(s.generator), g0) and all(p.grad is None for p in s.generator.parameters())
    assert not any(torch.equal(v, d0[k]) for k, v in _weights(s.discriminator).items())  # every D weight moved
    d1 = _weights(s.discriminator)
    s.opt_d.zero_grad(set_to_none=True)
    St.generator_step(s, sr, hr)
    assert _same(_weights(s.discriminator), d1) and all(p.grad is None for p in s.discriminator.parameters())
    assert all(p.requires_grad for p in s.discriminator.parameters())
    assert not _same(_weights(s.generator), g0)
    assert _same(bb0, backbone.state_dict()) and all(p.grad is None for p in backbone.parameters())  # frozen stays frozen
    assert s.opt_g.state and s.opt_d.state and not s.opt_pretrain.state


@pytest.mark.parametrize('term', ['pixel_weight', 'perceptual_weight', 'adversarial_weight'])
def test_srgan_step_every_loss_term_reaches_the_generator(term, backbone):
    s, lr, hr = _step_setup(backbone)
    s.weights.update({'pixel_weight': 0.0, 'perceptual_weight': 0.0, 'adversarial_weight': 0.0, term: 1.0})
    with s.autocast(): sr = s.generator(lr)
    parts = St.generator_step(s, sr, hr)
    name = term.replace('_weight', '_loss')
    assert float(parts[name]) > 0 and all(float(parts[k]) == 0 for k in ('pixel_loss', 'perceptual_loss', 'adversarial_loss') if k != name)
    grads = {n: p.grad for n, p in s.generator.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n in ('head.0.weight', 'tail.weight', 'blocks.0.body.0.weight'))


def test_srgan_step_returns_every_part_and_matches_the_objective(backbone):
    s, lr, hr = _step_setup(backbone, pixel_weight=0.5, pixel_criterion='l1')
    out = St.srgan_step(s, lr, hr)
    assert set(out) == set(T.LOSS_TERMS) | {'g_loss', 'd_loss', 'adv_weight', 'd_real_mean', 'd_fake_mean'}   # every registered term
    assert float(out['adv_weight']) == pytest.approx(1e-4)   # fixed: the weight as set
    assert {'pixel_loss', 'perceptual_loss', 'adversarial_loss', 'anchor_loss', 'artifact_loss', 'd_loss_real', 'd_loss_fake'} <= set(out)
    torch.testing.assert_close(out['g_loss'], 0.5 * out['pixel_loss'] + out['perceptual_loss'] + 1e-4 * out['adversarial_loss'])
    torch.testing.assert_close(out['d_loss'], out['d_loss_real'] + out['d_loss_fake'])


def test_an_adaptive_step_gives_the_generator_the_gradient_of_the_balanced_objective(backbone):
    """adversarial_balance='adaptive': the generator gets exactly the gradient of rec + w·λ·adv (λ the gradient-norm ratio at SR, a constant),
    as a fixed step with that weight would; λ scales with the other terms' gradient."""
    s, lr, hr = _step_setup(backbone, precision='fp32', adversarial_balance='adaptive', adversarial_weight=0.5)
    twin = copy.deepcopy(s)
    with s.autocast(): sr = s.generator(lr)
    out = St.generator_step(s, sr, hr)
    w = float(out['adv_weight'])
    assert w > 0 and w != 0.5
    twin.weights.update(adversarial_balance='fixed', adversarial_weight=w)
    ref = St.generator_step(twin, twin.generator(lr), hr)
    torch.testing.assert_close(out['g_loss'], ref['g_loss'])
    scale = max(float(p.grad.abs().max()) for p in twin.generator.parameters())
    for (n, a), (_, b) in zip(s.generator.named_parameters(), twin.generator.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5 * scale, msg=n)   # the same gradient, layer by layer (biases before BN: ~0)
    s2, lr2, hr2 = _step_setup(backbone, precision='fp32', adversarial_balance='adaptive', adversarial_weight=0.5, anchor_weight=0.0)
    s3, _, _ = _step_setup(backbone, precision='fp32', adversarial_balance='adaptive', adversarial_weight=0.5, anchor_weight=0.0, perceptual_weight=2.0)
    s3.generator.load_state_dict(s2.generator.state_dict()); s3.discriminator.load_state_dict(s2.discriminator.state_dict())
    w2 = float(St.generator_step(s2, s2.generator(lr2), hr2)['adv_weight'])
    w3 = float(St.generator_step(s3, s3.generator(lr2), hr2)['adv_weight'])
    assert w3 == pytest.approx(2 * w2, rel=1e-4)   # twice the perceptual loss, twice the adversarial weight


def test_a_haar_discriminator_trains_and_cannot_see_colour(backbone):
    "d_view='haar': an SRGAN step trains D on the luma's Haar details; two images with the same luma get the same logit."
    g, _ = tiny_models()
    torch.manual_seed(0)
    d = Discriminator(hr_size=24, base=8, view='haar')
    s = St.build_train_state(tiny_cfg(d_view='haar'), g, d, backbone)
    lr, hr = T.patch_tensors(TRAIN)
    lr, hr = lr[:4].float() / 255, hr[:4].float() / 255
    before = {k: v.detach().clone() for k, v in s.discriminator.named_parameters()}
    out = St.srgan_step(s, lr, hr)
    assert math.isfinite(float(out['d_loss'])) and any(not torch.equal(v, before[k]) for k, v in s.discriminator.named_parameters())
    s.discriminator.eval()
    shifted = hr.clone(); shifted[:, 0] += 0.05; shifted[:, 2] -= 0.05 * 0.299 / 0.114   # the same luma, another colour
    with torch.no_grad(): torch.testing.assert_close(s.discriminator(shifted), s.discriminator(hr), rtol=1e-4, atol=1e-5)

def test_d_pairwise_accuracy_sees_an_obvious_fake(backbone):
    "A discriminator that scores brightness tells HR from an all-black generator on every patch; D's mode is restored."
    class Bright(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.bn = torch.nn.BatchNorm2d(3)
        def forward(self, x): return self.bn(x).mean((1, 2, 3)) * 0 + x.mean((1, 2, 3))
    class Black(torch.nn.Module):
        scale = 4
        def __init__(self):
            super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
        def forward(self, x): return torch.zeros(x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4) * self.w
    s = St.build_train_state(tiny_cfg(), Black(), Bright(), backbone)
    lr, hr = T.patch_tensors(VAL)
    h = Mon.d_pairwise_accuracy(s, lr, hr)
    assert h['d_pair_acc'] == 1.0 and h['d_sr'] == pytest.approx(0.5) and h['d_hr'] > 0.5
    assert s.discriminator.training
    s.generator = Generator(4, 1, 8, bicubic_skip=True)  # now a generator as good as bicubic: no longer obvious
    assert Mon.d_pairwise_accuracy(s, lr, hr)['d_pair_acc'] < 1.0


@pytest.mark.parametrize('variant', [dict(d_joint_batch=True), dict(gan_loss='ragan'), dict(gan_loss='ragan', d_joint_batch=True)])
def test_srgan_step_variants_keep_the_wiring(variant, backbone):
    "Joint HR+SR discriminator batches and the relativistic loss: D's update leaves G alone, G's update leaves D alone."
    s, lr, hr = _step_setup(backbone, **variant)
    with s.autocast(): sr = s.generator(lr)
    g0 = _weights(s.generator)
    out = St.discriminator_step(s, sr, hr)
    assert _same(_weights(s.generator), g0) and torch.isfinite(out['d_loss'])
    d1 = _weights(s.discriminator)
    s.opt_d.zero_grad(set_to_none=True)
    parts = St.generator_step(s, sr, hr)
    assert _same(_weights(s.discriminator), d1) and all(p.grad is None for p in s.discriminator.parameters())
    assert float(parts['adversarial_loss']) > 0 and not _same(_weights(s.generator), g0)


def test_spectral_norm_discriminator_trains_and_resumes(tmp_path, backbone):
    "d_norm=sn builds a BatchNorm-free discriminator that trains, checkpoints and resumes (its parametrised weights included)."
    cfg = tiny_cfg(epochs=1, d_norm='sn')
    g, _ = tiny_models()
    d = Discriminator(hr_size=24, base=8, norm='sn')
    h = T.fit(cfg, TRAIN, VAL, tmp_path/'sn', generator=g, discriminator=d, backbone=backbone)
    assert np.isfinite(h.g_loss).all() and not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert (h.d_health_mode.iloc[1:] == 'eval').all()  # no batch statistics: eval mode is the mode D plays in
    h2 = T.fit(tiny_cfg(epochs=1, d_norm='sn'), TRAIN, VAL, tmp_path/'sn', generator=tiny_models()[0],
               discriminator=Discriminator(hr_size=24, base=8, norm='sn'), backbone=backbone)
    pd.testing.assert_frame_equal(h, h2)  # finished: read back, not retrained


def test_finished_runs_keep_only_what_is_needed(tmp_path, backbone):
    "Without keep_checkpoints a finished run drops the discriminator and optimiser states; it still reads back and refuses to extend."
    out = tmp_path/'slim'
    h = run(tiny_cfg(epochs=1, keep_checkpoints=False), out, backbone)
    assert sorted(p.name for p in (out/'checkpoints').iterdir()) == ['last.pt']
    ck = load_checkpoint(out/'checkpoints'/'last.pt')
    assert ck['slim'] and 'discriminator' not in ck and 'opt_g' not in ck and ck['epoch'] == 2
    full = tmp_path/'full'
    run(tiny_cfg(epochs=1, keep_checkpoints=True), full, backbone)
    assert (out/'checkpoints'/'last.pt').stat().st_size < 0.5 * (full/'checkpoints'/'last.pt').stat().st_size
    pd.testing.assert_frame_equal(run(tiny_cfg(epochs=1, keep_checkpoints=False), out, backbone), h)  # finished: read back
    with pytest.raises(Ck.ResumeRefused, match='slimmed'):
        run(tiny_cfg(epochs=2, keep_checkpoints=False), out, backbone)
    g = load_generator(out/'checkpoints'/'last.pt')  # the slim checkpoint still holds the final generator
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad(): assert torch.equal(g(x), load_generator(out/'generator_srgan.pt')(x))


# ---------------------------------------------------------------- the colour anchor in training
def test_anchor_term_in_the_gan_phase(straight, tmp_path, backbone):
    "anchor_weight adds the anchor to the GAN objective, with a history column of its own; the pretraining is untouched."
    h = run(tiny_cfg(epochs=2, anchor_weight=0.5), tmp_path/'anchor', backbone)
    gan = h[h.phase == 'gan']
    assert (gan.anchor_loss > 0).all() and (gan.pixel_loss == 0).all() and np.isnan(h.anchor_loss.iloc[0])
    np.testing.assert_allclose(gan.g_loss, gan.perceptual_loss + 1e-4 * gan.adversarial_loss + 0.5 * gan.anchor_loss, rtol=1e-5)
    pd.testing.assert_series_equal(_drop_time(h).iloc[0], _drop_time(straight['hist']).iloc[0], check_names=False)
    assert not np.allclose(gan.perceptual_loss, straight['hist'].perceptual_loss.iloc[1:])  # it changed the GAN phase


@pytest.mark.parametrize('kind', ['lowpass', 'l1'])
def test_srgan_step_anchor_reaches_the_generator(kind, backbone):
    from srgan_nb.losses import anchor_loss
    s, lr, hr = _step_setup(backbone, anchor_weight=1.0, anchor_kind=kind)
    s.weights.update(pixel_weight=0.0, perceptual_weight=0.0, adversarial_weight=0.0)
    with s.autocast(): sr = s.generator(lr)
    parts = St.generator_step(s, sr, hr)
    torch.testing.assert_close(parts['g_loss'], parts['anchor_loss'])
    torch.testing.assert_close(parts['anchor_loss'], anchor_loss(sr.detach(), hr, kind, 4))
    grads = {n: p.grad for n, p in s.generator.named_parameters()}
    assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in ('head.0.weight', 'tail.weight'))


# ---------------------------------------------------------------- D health in the mode D trains in
class BrightnessD(torch.nn.Module):
    "A toy BatchNorm discriminator: a patch's mean brightness after BatchNorm, to three decimals (equal scores tie exactly)."
    def __init__(self):
        super().__init__(); self.bn = torch.nn.BatchNorm2d(1, affine=False)
    def forward(self, x): return self.bn(x.mean(1, keepdim=True)).mean((1, 2, 3)).mul(1000).round().div(1000)


def test_d_health_shows_chance_when_training_batches_hide_the_difference(backbone):
    """HR = the generator's SR + 40 grey levels: in eval mode (running statistics) D ranks every HR first, but trained on separate
    batches each batch is normalised to itself and D outputs 0.5 for both: the record shows chance, with the eval figure beside it."""
    from srgan_nb.infer import upscale_batch
    s, _, _ = _step_setup(backbone)
    s.discriminator = BrightnessD().train()
    lr, _ = T.patch_tensors(VAL)
    lr = lr // 2 + 30
    hr = upscale_batch(s.generator, lr, 'cpu') + 40
    assert int(hr.max()) < 255  # no clipping
    rec = Mon.d_health_record(s, lr, hr, batch_size=1)
    assert (rec['d_health_mode'], rec['d_pair_acc'], rec['d_hr'], rec['d_sr']) == ('train-separate', 0.5, 0.5, 0.5)
    assert rec['d_pair_acc_eval'] == 1.0 and rec['d_hr_eval'] > rec['d_sr_eval']
    assert Mon.d_pairwise_accuracy(s, lr, hr, 2, 'train-separate')['d_pair_acc'] == 0.5
    assert Mon.d_pairwise_accuracy(s, lr, hr, 2, 'train-joint')['d_pair_acc'] == 1.0  # one batch: D sees the shift
    assert float(s.discriminator.bn.running_mean) == 0 and int(s.discriminator.bn.num_batches_tracked) == 0  # never updated
    assert s.discriminator.training
    with pytest.raises(ValueError, match='mode'): Mon.d_pairwise_accuracy(s, lr, hr, 2, 'train')


@pytest.mark.parametrize('joint', [False, True])
def test_d_health_record_matches_training_batches_and_leaves_d_unchanged(joint, backbone):
    "The record's train-mode figure is D on chunks of the training batch size, as discriminator_step sees them; D's state is untouched."
    from srgan_nb.infer import upscale_batch
    s, lr_b, hr_b = _step_setup(backbone, d_joint_batch=joint)
    with s.autocast(): sr_b = s.generator(lr_b)
    St.discriminator_step(s, sr_b, hr_b)  # running statistics that differ from the initial ones
    lr, hr = T.patch_tensors(VAL)
    before = copy.deepcopy(s.discriminator.state_dict())
    rec = Mon.d_health_record(s, lr, hr, batch_size=2)
    assert all(torch.equal(v, before[k]) for k, v in s.discriminator.state_dict().items())
    assert rec['d_health_mode'] == ('train-joint' if joint else 'train-separate') and s.discriminator.training
    sr = upscale_batch(s.generator, lr, 'cpu')
    D = copy.deepcopy(s.discriminator).train()
    real, fake = [], []
    with torch.no_grad():
        for i in range(0, len(lr), 2):
            h, f = hr[i:i + 2].float() / 255, sr[i:i + 2].float() / 255
            r, g = D(torch.cat([h, f])).chunk(2) if joint else (D(h), D(f))
            real.append(r); fake.append(g)
    real, fake = torch.cat(real), torch.cat(fake)
    assert rec['d_pair_acc'] == pytest.approx(float(((real > fake).float() + 0.5 * (real == fake).float()).mean()))
    assert rec['d_hr'] == pytest.approx(float(torch.sigmoid(real).mean()), abs=1e-6)
    assert rec['d_pair_acc_eval'] == Mon.d_pairwise_accuracy(s, lr, hr)['d_pair_acc']


def test_a_history_of_another_version_is_refused_saying_to_rerun(tmp_path):
    "One schema: a history.csv with other columns (an older version's, before d_health_mode was recorded) is refused, not converted."
    old = pd.DataFrame(dict(epoch=[1, 2], phase=['pretrain', 'gan'], g_loss=[0.01, 0.02], d_pair_acc=[np.nan, 0.7], seconds=[1.0, 2.0]))
    old.to_csv(tmp_path/'history.csv', index=False)
    with pytest.raises(OtherVersion, match=r'history.csv was written by another version of srgan-nb .*: rerun the training'):
        T.read_history(tmp_path/'history.csv')
    T.history_frame(old.to_dict('records')).to_csv(tmp_path/'today.csv', index=False)   # the same rows as this version writes them
    assert list(T.read_history(tmp_path/'today.csv').columns) == T.HISTORY_COLUMNS


# ---------------------------------------------------------------- the generator's weight average (EMA)
def test_ema_update_moves_towards_the_weights(backbone):
    s, lr, hr = _step_setup(backbone, ema_decay=0.75)
    assert s.ema_decay == 0.75 and s.ema is None  # no average before the GAN phase
    w0 = copy.deepcopy(s.generator.state_dict())
    St.srgan_step(s, lr, hr)
    w1 = s.generator.state_dict()
    for k, v in s.ema.state_dict().items():
        if v.is_floating_point(): torch.testing.assert_close(v, 0.75 * w0[k] + 0.25 * w1[k], rtol=0, atol=1e-6)
        else: assert torch.equal(v, w1[k])
    gap = {k: (v - w1[k]).abs().max() for k, v in s.ema.state_dict().items() if v.is_floating_point()}
    St.ema_update(s.ema, s.generator, 0.75)
    for k, v in s.ema.state_dict().items():
        if v.is_floating_point(): torch.testing.assert_close((v - w1[k]).abs().max(), 0.75 * gap[k], rtol=1e-5, atol=1e-7)
    St.ema_update(s.ema, s.generator, 0.0)  # decay 0: the weights themselves
    assert _same(s.ema.state_dict(), s.generator.state_dict())
    s0, _, _ = _step_setup(backbone)
    St.srgan_step(s0, lr, hr)
    assert s0.ema is None  # ema_decay=0: off


def test_ema_is_written_checkpointed_and_resumed(straight, tmp_path, backbone, monkeypatch):
    """ema_decay: the live generator trains exactly as without it; the average is written as generator_srgan.pt (meta says so),
    checkpointed, and a run killed inside the last GAN epoch and resumed ends with the same average."""
    cfg = tiny_cfg(epochs=2, ema_decay=0.5, checkpoint_minutes=1e-9)
    h = run(cfg, tmp_path/'ema', backbone)
    ck = load_checkpoint(tmp_path/'ema'/'checkpoints'/'last.pt')
    ref = load_checkpoint(straight['out']/'checkpoints'/'last.pt')
    for k in ck['generator']: torch.testing.assert_close(ck['generator'][k], ref['generator'][k], rtol=0, atol=1e-6)
    drop = lambda x: _drop_time(x).drop(columns=['val_psnr'])  # the GAN epochs' validation PSNR is the average's
    pd.testing.assert_frame_equal(drop(h), drop(straight['hist']), check_exact=False, rtol=0, atol=1e-6)
    assert not _same(ck['generator_ema'], ck['generator'])
    g = load_generator(tmp_path/'ema'/'generator_srgan.pt')
    assert g.meta['weights'] == 'ema' and g.meta['ema_decay'] == 0.5 and _same(g.state_dict(), ck['generator_ema'])
    assert load_generator(straight['out']/'generator_srgan.pt').meta['weights'] == 'last step'
    s_json = json.loads((tmp_path/'ema'/'train_summary.json').read_text())
    assert s_json['srgan_weights'] == 'ema' and s_json['d_health_mode'] == 'train-separate'
    # killed after step 1 of the last GAN epoch, resumed from fresh weights
    out, real = tmp_path/'ema_killed', Ck.save_checkpoint
    def save_then_die(state, path):
        real(state, path)
        p = state.get('partial')
        if p and (p['epoch'], p['step']) == (3, 1):
            assert 'generator_ema' in state
            raise Killed()
    monkeypatch.setattr(T, 'save_checkpoint', save_then_die)
    with pytest.raises(Killed): run(cfg, out, backbone)
    monkeypatch.setattr(T, 'save_checkpoint', real)
    h2 = run(cfg, out, backbone, seed=123)
    pd.testing.assert_frame_equal(_drop_time(h2), _drop_time(h), check_exact=False, rtol=0, atol=1e-6)
    ck2 = load_checkpoint(out/'checkpoints'/'last.pt')
    for k in ck['generator_ema']: torch.testing.assert_close(ck2['generator_ema'][k], ck['generator_ema'][k], rtol=0, atol=1e-6)
    with pytest.raises(Ck.ResumeRefused, match='ema_decay: 0.5 -> 0.9'):
        run(tiny_cfg(epochs=3, ema_decay=0.9), out, backbone)


def test_icnr_applies_when_training_from_scratch(backbone):
    "build_train_state builds an ICNR generator for icnr=True (no init_generator): its first x2 stage starts without checkerboard."
    s = St.build_train_state(tiny_cfg(icnr=True), discriminator=tiny_models()[1], backbone=backbone)
    up = s.generator.upsample[0]
    with torch.no_grad(): y = up(torch.rand(1, 8, 5, 5))
    phases = [y[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]
    assert all(torch.allclose(p, phases[0], atol=1e-6) for p in phases[1:])


def test_artifact_term_trains_with_the_ema(tmp_path, backbone):
    "artifact_weight > 0: each GAN step runs the generator's average on the LR batch and the artifact term enters the objective and the history."
    h = run(tiny_cfg(artifact_weight=1.0, ema_decay=0.9), tmp_path/'ldl', backbone)
    gan = h[h.phase == 'gan']
    assert (gan.artifact_loss > 0).all() and h[h.phase == 'pretrain'].artifact_loss.isna().all()


def test_a_unet_discriminator_trains_resumes_and_watches_pixels(tmp_path, backbone):
    "d_arch=unet: the config builds Real-ESRGAN's U-Net D (spectral norm, a logit per pixel); it trains, its health is measured, a finished run is read back."
    from srgan_nb.model import UNetDiscriminator, build_models
    cfg = tiny_cfg(epochs=1, d_arch='unet', d_norm='sn', adversarial_weight=1e-2)
    assert isinstance(build_models(cfg)[1], UNetDiscriminator)
    with pytest.raises(ValueError, match='d_norm=sn'): tiny_cfg(d_arch='unet', d_norm='bn')
    g, _ = tiny_models()
    torch.manual_seed(0)
    d = UNetDiscriminator(base=8)
    d0 = {k: v.clone() for k, v in d.state_dict().items()}
    h = T.fit(cfg, TRAIN, VAL, tmp_path/'unet', generator=g, discriminator=d, backbone=backbone)
    gan = h[h.phase == 'gan'].iloc[0]
    assert np.isfinite(h.g_loss).all() and math.isfinite(gan.d_loss_fake) and 0 <= gan.d_pair_acc <= 1 and gan.d_health_mode == 'eval'
    assert any(not torch.equal(v, d0[k]) for k, v in d.state_dict().items())   # D learnt
    h2 = T.fit(cfg, TRAIN, VAL, tmp_path/'unet', generator=tiny_models()[0], discriminator=UNetDiscriminator(base=8), backbone=backbone)
    pd.testing.assert_frame_equal(h, h2)


def test_d_warmup_steps_train_the_discriminator_alone(tmp_path, backbone):
    """d_warmup_steps: as many as the GAN epoch has leave the generator exactly the SRResNet while D learns; with 0 the generator
    moves; without the adversarial term (the twin) the generator idles as long, so both train the same steps."""
    n_steps = math.ceil(len(TRAIN.hr) / 4)
    srgan = {}
    for warm, adv in ((n_steps, 1e-2), (0, 1e-2), (n_steps, 0.0)):
        out = tmp_path/f'warm{warm}-{adv}'
        h = run(tiny_cfg(d_warmup_steps=warm, adversarial_weight=adv), out, backbone)
        srresnet = load_generator(out/'generator_srresnet.pt').state_dict()
        srgan[warm, adv] = all(torch.equal(v, srresnet[k]) for k, v in load_generator(out/'generator_srgan.pt').state_dict().items())
        gan = h[h.phase == 'gan'].iloc[0]
        assert math.isfinite(gan.perceptual_loss) and (gan.adv_weight == 0) == (warm > 0 or adv == 0)   # G's objective measured
        if adv: assert math.isfinite(gan.d_loss_fake)                                                   # D trained
    assert srgan == {(n_steps, 1e-2): True, (0, 1e-2): False, (n_steps, 0.0): True}
    with pytest.raises(ValueError, match='d_warmup_steps'): tiny_cfg(d_warmup_steps=-1)
