"Losses: values, the backbones (real EfficientNet-Lite0 weights, offline VGG19 path), and the wiring of the generator objective (the training step itself: tests/test_train.py)."
import math
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srgan_nb import losses as L
from srgan_nb.config import RunConfig, make_config
from srgan_nb.model import Generator, Discriminator



@pytest.fixture(scope='module')
def effnet():
    return L.build_backbone('effnet_lite0')


@pytest.fixture(scope='module')
def effnet_net():
    return L.load_effnet_lite0()


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    "A real torchvision VGG19 state dict (random weights: ImageNet ones are never downloaded) saved to a file."
    import torchvision
    torch.manual_seed(0)
    with torch.device('meta'): m = torchvision.models.vgg19(weights=None)  # skip the costly random init of the 120M-parameter classifier
    m = m.to_empty(device='cpu')
    for c in m.features:                                                 # random conv layers, torchvision's init
        if isinstance(c, nn.Conv2d): nn.init.kaiming_normal_(c.weight, mode='fan_out', nonlinearity='relu'); nn.init.zeros_(c.bias)
    for p in m.classifier.parameters(): p.data.zero_()
    path = tmp_path_factory.mktemp('vgg')/'vgg19-dcbb9e9d.pth'
    torch.save(m.state_dict(), path)                                     # every key and shape of torchvision's file
    return path, m.features[:36].eval()


def small_models(seed=0):
    torch.manual_seed(seed)
    return Generator(scale=4, n_blocks=2, channels=16), Discriminator(hr_size=32, base=8)


# ---------------------------------------------------------------- plain losses
def test_pixel_and_adversarial_values():
    hr = torch.rand(2, 3, 8, 8)
    assert float(L.pixel_loss(hr, hr)) == 0
    assert math.isclose(float(L.pixel_loss(hr + 0.2, hr)), 0.04, rel_tol=1e-4)
    assert math.isclose(float(L.pixel_loss(hr + 0.2, hr, 'l1')), 0.2, rel_tol=1e-4)
    with pytest.raises(ValueError, match='shapes differ'): L.pixel_loss(hr, hr[..., :4])
    with pytest.raises(ValueError, match='mse or l1'): L.pixel_loss(hr, hr, 'huber')
    z = torch.zeros(3)
    assert math.isclose(float(L.adversarial_loss(z, True)), math.log(2), rel_tol=1e-6)
    big = torch.full((3,), 10.)
    assert float(L.adversarial_loss(big, True)) < 1e-4 and float(L.adversarial_loss(big, False)) > 9.9
    loss, real, fake = L.discriminator_loss(big, -big)
    assert float(loss) < 1e-3 and math.isclose(float(loss), float(real + fake), rel_tol=1e-6)
    loss, real, fake = L.discriminator_loss(-big, big)  # D completely wrong
    assert float(real) > 9.9 and float(fake) > 9.9


def test_loss_weights():
    # the default: perceptual + 1e-4 adversarial (the paper's 1e-3 is the gan=paper preset), no pixel term in the GAN phase
    assert L.loss_weights(RunConfig()) == dict(pixel_loss=0.0, perceptual_loss=1.0, adversarial_loss=1e-4, anchor_loss=1.0, artifact_loss=0.0)
    from srgan_nb.config import make_config
    assert L.loss_weights(make_config('s2', gan='paper'))['adversarial_loss'] == 1e-3
    assert L.loss_weights(RunConfig(pixel_weight=1.0))['pixel_loss'] == 1.0
    assert L.loss_weights(dict(pixel=2, perceptual=0, adversarial=1))['pixel_loss'] == 2.0
    assert L.loss_weights(dict(pixel_weight=0, perceptual_weight=1, adversarial_weight=0))['perceptual_loss'] == 1.0
    with pytest.raises(KeyError, match='adversarial_weight'): L.loss_weights(dict(pixel=1, perceptual=1))
    assert L.read_setting(RunConfig(pixel_criterion='l1'), 'pixel_criterion') == 'l1' and L.read_setting(dict(), 'pixel_criterion') == 'mse'  # RunConfig's default


# ---------------------------------------------------------------- EfficientNet-Lite0
def test_effnet_module_matches_shipped_state_dict():
    sd = torch.load(L.effnet_lite0_weights_path(), map_location='cpu', weights_only=True)
    net = L.EfficientNetLite0()
    assert set(net.state_dict()) == set(sd)
    net.load_state_dict(sd, strict=True)
    sd.pop('_fc.bias')
    with pytest.raises(RuntimeError, match='_fc.bias'): L.EfficientNetLite0().load_state_dict(sd, strict=True)


def test_effnet_weights_are_real(effnet_net):
    "The shipped ImageNet weights recognise a cat and an espresso (full classifier head, TF conventions)."
    import skimage.data
    net = effnet_net
    cat = L.effnet_classify(net, skimage.data.chelsea())
    coffee = L.effnet_classify(net, skimage.data.coffee())
    assert int(cat.argmax()) in range(281, 286), int(cat.argmax())
    assert int(coffee.argmax()) == 967, int(coffee.argmax())
    assert float(coffee.max()) > 0.5 and float(cat[281:286].sum()) > 0.5


def test_tf_same_padding_is_asymmetric():
    c = L.Conv2dSame(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(c.weight)
    out = c(torch.ones(1, 1, 4, 4)).detach()[0, 0]
    # TF pads only bottom/right here: top-left sees 9 real pixels, bottom-right 4
    assert out.tolist() == [[9., 6.], [6., 4.]]
    assert L.Conv2dSame(1, 1, 5, stride=2)(torch.rand(1, 1, 7, 9)).shape == (1, 1, 4, 5)


def test_effnet_backbone_features(effnet):
    assert effnet.name == 'effnet_lite0' and 'stage 5' in effnet.layer
    assert effnet(torch.rand(2, 3, 96, 96)).shape == (2, 112, 6, 6)
    assert effnet(torch.rand(1, 3, 128, 100)).shape == (1, 112, 8, 7)
    with pytest.raises(ValueError, match='B, 3, H, W'): effnet(torch.rand(3, 96, 96))


def test_effnet_folded_bn_is_exact(effnet, effnet_net):
    net = effnet_net
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = net.forward_features(L.effnet_preprocess(x), 11) * effnet.feature_scale
        got = effnet(x)
    torch.testing.assert_close(got, ref, atol=1e-4 * float(ref.abs().max()), rtol=1e-3)


def test_preprocessing_matters(effnet, vgg_file):
    x = torch.rand(2, 3, 64, 64)
    imagenet = lambda t: (t - torch.tensor(L.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(L.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        # effnet expects (255x - 127) / 128
        torch.testing.assert_close(effnet.preprocess(x), (x * 255 - 127) / 128)
        right, wrong = effnet(x), effnet.net(imagenet(x)) * effnet.feature_scale
        assert float((right - wrong).norm() / right.norm()) > 0.1
        # vgg19 expects ImageNet mean/std
        vgg = L.build_backbone('vgg19', vgg_weights=vgg_file[0])
        torch.testing.assert_close(vgg.preprocess(x), imagenet(x))
        right, wrong = vgg(x), vgg.net(x) * vgg.feature_scale
        assert float((right - wrong).norm() / right.norm()) > 0.1


# ---------------------------------------------------------------- VGG19 offline
def test_vgg19_from_user_path(vgg_file):
    path, ref = vgg_file
    vgg = L.build_backbone('vgg19', vgg_weights=path)
    assert vgg.name == 'vgg19' and 'conv5_4' in vgg.layer
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        f = vgg(x)
        assert f.shape == (1, 512, 6, 6)
        torch.testing.assert_close(f, ref(vgg.preprocess(x)) * L.VGG19_FEATURE_SCALE)
    assert isinstance(vgg.net[-1], nn.ReLU) and isinstance(vgg.net[-2], nn.Conv2d)  # conv5_4 + ReLU, before the pool


def test_vgg19_legacy_format_file(tmp_path):
    "Older torchvision weight files use torch's pre-zip format, which cannot be memory-mapped: they load all the same."
    from torchvision.models.vgg import make_layers, cfgs
    f = make_layers(cfgs['E'])
    p = tmp_path/'legacy.pth'
    torch.save({f'features.{k}': v for k, v in f.state_dict().items()}, p, _use_new_zipfile_serialization=False)
    vgg = L.build_backbone('vgg19', vgg_weights=p)
    assert torch.equal(vgg.net[34].weight, f[34].weight)


def test_vgg19_missing_file_message(tmp_path, monkeypatch):
    missing = tmp_path/'nope.pth'
    with pytest.raises(FileNotFoundError) as e: L.build_backbone('vgg19', vgg_weights=missing)
    msg = str(e.value)
    assert str(missing) in msg and "vgg19(weights='IMAGENET1K_V1')" in msg and 'vgg19-dcbb9e9d.pth' in msg
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'hub'))
    with pytest.raises(FileNotFoundError, match='hub'): L.build_backbone('vgg19')


def test_vgg19_rejects_other_state_dicts(tmp_path):
    p = tmp_path/'x.pth'
    torch.save(nn.Linear(2, 2).state_dict(), p)
    with pytest.raises(ValueError, match='not a torchvision VGG19'): L.build_backbone('vgg19', vgg_weights=p)


def test_auto_backbone_choice(tmp_path, monkeypatch, vgg_file, effnet):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'hub'))
    monkeypatch.setattr(L, 'build_effnet_lite0', lambda: effnet)  # built once by the fixture
    assert L.build_backbone('auto').name == 'effnet_lite0'          # no VGG weights: fall back, no download
    with pytest.warns(UserWarning, match='falls back'):
        assert L.build_backbone('auto', vgg_weights=tmp_path/'missing.pth').name == 'effnet_lite0'
    (tmp_path/'hub'/'checkpoints').mkdir(parents=True)
    (tmp_path/'hub'/'checkpoints'/'vgg19-dcbb9e9d.pth').symlink_to(vgg_file[0])
    assert L.build_backbone('auto').name == 'vgg19'                  # weights in torchvision's cache
    with pytest.raises(ValueError, match='Unknown backbone'): L.build_backbone('resnet50')


# ---------------------------------------------------------------- wiring
def test_backbone_frozen(effnet):
    G, _ = small_models()
    perceptual = L.PerceptualLoss(effnet)
    parent = nn.ModuleDict(dict(G=G, perceptual=perceptual)).train()
    assert G.training and not effnet.training and not any(m.training for m in effnet.modules())
    assert not any(p.requires_grad for p in effnet.parameters())
    before = {k: v.clone() for k, v in effnet.state_dict().items()}
    opt = torch.optim.Adam([p for p in parent.parameters()], lr=1e-2)  # even an optimiser given the backbone
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    total, _ = L.generator_objective(G(lr), hr, None, perceptual, dict(pixel=0, perceptual=1, adversarial=0))
    total.backward(); opt.step()
    assert all(torch.equal(v, before[k]) for k, v in effnet.state_dict().items())
    assert all(p.grad is None for p in effnet.parameters())


def test_perceptual_not_detached(effnet):
    perceptual = L.PerceptualLoss(effnet)
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.05 * torch.randn_like(hr)).requires_grad_(True)
    loss = perceptual(sr, hr)
    assert loss.requires_grad and float(loss.detach()) > 0
    (g,) = torch.autograd.grad(loss, sr)
    assert g.abs().sum() > 0
    # cached HR features give the same loss
    torch.testing.assert_close(perceptual(sr, hr_features=perceptual.features(hr)), loss)
    with pytest.raises(ValueError, match='hr or hr_features'): perceptual(sr)


@pytest.mark.parametrize('term', ['pixel', 'perceptual', 'adversarial'])
def test_each_term_reaches_generator(term, effnet):
    G, D = small_models()
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    weights = {**dict(pixel=0, perceptual=0, adversarial=0), term: 1}
    sr = G(lr)
    total, parts = L.generator_objective(sr, hr, D(sr), L.PerceptualLoss(effnet), weights)
    assert float(parts[f'{term}_loss']) > 0
    assert all(float(v) == 0 for k, v in parts.items() if k != f'{term}_loss')  # the others are skipped
    total.backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert G.tail.weight.grad.abs().sum() > 0 and G.head[0].weight.grad.abs().sum() > 0


def test_zero_weight_term_is_not_computed():
    class Boom(nn.Module):
        def forward(self, *a, **k): raise AssertionError('perceptual computed with weight 0')
    sr, hr = torch.rand(2, 3, 16, 16, requires_grad=True), torch.rand(2, 3, 16, 16)
    total, parts = L.generator_objective(sr, hr, None, Boom(), dict(pixel=1, perceptual=0, adversarial=1e-3))
    torch.testing.assert_close(total, L.pixel_loss(sr, hr))


def test_autocast_bf16(effnet):
    G, D = small_models()
    perceptual = L.PerceptualLoss(effnet)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sr = G(lr)
        total, parts = L.generator_objective(sr.float(), hr, D(sr).float(), perceptual, RunConfig())
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    assert G.head[0].weight.grad is not None and torch.isfinite(G.head[0].weight.grad).all()
    with torch.no_grad():
        ref = perceptual(sr.detach().float(), hr)
    assert math.isclose(float(parts['perceptual_loss']), float(ref), rel_tol=0.1)


def test_generator_objective_under_the_paper_preset(effnet):
    "gan=paper: perceptual (feature MSE) + 1e-3 BCE(D(sr), real), no pixel term, computed by hand on a fixed tiny batch."
    from srgan_nb.config import make_config
    cfg = make_config('s2', gan='paper', pixel_weight=0.0)
    assert (cfg.gan, cfg.adversarial_weight, cfg.perceptual_weight, cfg.pixel_weight, cfg.gan_loss) == ('paper', 1e-3, 1.0, 0.0, 'bce')
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    sr = (hr + 0.05 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    logits = torch.tensor([0.3, -1.2])
    perceptual = L.PerceptualLoss(effnet)
    total, parts = L.generator_objective(sr, hr, logits, perceptual, cfg)
    feat = F.mse_loss(effnet(sr), effnet(hr))
    adv = -torch.log(torch.sigmoid(logits)).mean()
    torch.testing.assert_close(parts['perceptual_loss'], feat)
    torch.testing.assert_close(parts['adversarial_loss'], adv)
    torch.testing.assert_close(total, feat + 1e-3 * adv)
    assert float(parts['pixel_loss']) == 0
    default_total, _ = L.generator_objective(sr, hr, logits, perceptual, make_config('s2'))
    # the project's default: the adversarial weight, and the chroma anchor (04_train's recipe comparison)
    torch.testing.assert_close(default_total, feat + 1e-4 * adv + 1.0 * L.anchor_loss(sr, hr, 'chroma'))


# ---------------------------------------------------------------- the colour anchor
def test_anchor_loss_values():
    "Zero on equal images; lowpass ignores a zero-mean pattern finer than its cell (L1 charges it); both see a colour cast."
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 24, 24, generator=g) * 0.8 + 0.1
    checker = 0.05 * (-1.0) ** (torch.arange(24)[:, None] + torch.arange(24)[None, :])
    cast = torch.tensor([0.0, 0.0, 0.06]).view(1, 3, 1, 1)
    for kind in L.ANCHOR_KINDS: assert float(L.anchor_loss(hr, hr, kind)) == 0
    assert float(L.anchor_loss(hr + checker, hr, 'lowpass')) < 1e-7
    assert math.isclose(float(L.anchor_loss(hr + checker, hr, 'l1')), 0.05, rel_tol=1e-5)
    for kind in ('lowpass', 'l1'): assert math.isclose(float(L.anchor_loss(hr + cast, hr, kind)), 0.02, rel_tol=1e-5)
    # chroma: a blue cast of 0.06 moves Cb by 0.06 * 112/255 and Cr by -0.06 * 18.214/255 (BT.601); a gray pattern moves neither
    assert math.isclose(float(L.anchor_loss(hr + cast, hr, 'chroma')), 0.06 * (112 + 18.214) / 255 / 2, rel_tol=1e-5)
    assert float(L.anchor_loss(hr + checker, hr, 'chroma')) < 1e-7
    # a blur keeps the cell means nearly (lowpass barely moves) but loses the detail (L1 sees it)
    blur = F.avg_pool2d(F.pad(hr, (1, 1, 1, 1), mode='replicate'), 3, stride=1)
    assert float(L.anchor_loss(blur, hr, 'lowpass')) < 0.25 * float(L.anchor_loss(blur, hr, 'l1'))
    torch.testing.assert_close(L.lowpass(hr, 4), hr.view(2, 3, 6, 4, 6, 4).mean((3, 5)))
    assert L.anchor_loss(hr.bfloat16(), hr).dtype == torch.float32
    with pytest.raises(ValueError, match='anchor kind'): L.anchor_loss(hr, hr, 'l2')
    with pytest.raises(ValueError, match='shapes differ'): L.anchor_loss(hr, hr[..., :8])


def test_anchor_in_the_generator_objective():
    "anchor_weight adds the anchor (cell size = the run's scale), independent of the pixel term's weight and criterion."
    G, _ = small_models()
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    sr = G(lr)
    cfg = RunConfig(perceptual_weight=0.0, adversarial_weight=0.0, anchor_weight=0.3, anchor_kind='lowpass', pixel_criterion='mse', scale=2, hr_size=32)
    total, parts = L.generator_objective(sr, hr, None, None, cfg)
    torch.testing.assert_close(total, 0.3 * L.anchor_loss(sr, hr, 'lowpass', 2))
    assert float(parts['pixel_loss']) == 0 and float(parts['anchor_loss']) > 0
    total.backward()
    assert G.head[0].weight.grad.abs().sum() > 0 and G.tail.weight.grad.abs().sum() > 0
    both, p2 = L.generator_objective(sr, hr, None, None, dict(pixel=1, perceptual=0, adversarial=0, anchor_weight=0.5, anchor_kind='l1'))
    torch.testing.assert_close(both, L.pixel_loss(sr, hr) + 0.5 * L.pixel_loss(sr, hr, 'l1'))
    _, p3 = L.generator_objective(sr, hr, None, None, RunConfig(pixel_weight=1.0, anchor_weight=0.0))  # weight 0: off
    _, p4 = L.generator_objective(sr, hr, None, None, dict(pixel=1, perceptual=0, adversarial=0))      # weight dicts without it (older runs): off
    assert float(p3['anchor_loss']) == 0 == float(p4['anchor_loss'])
    assert {k: L.objective_settings(RunConfig(scale=8, hr_size=96))[k] for k in ('anchor_weight', 'anchor_kind', 'scale')} == dict(anchor_weight=1.0, anchor_kind='chroma', scale=8)   # today's default: the chroma anchor


# ---------------------------------------------------------------- kinds: the config's declaration
def test_kinds_are_the_configs_declaration():
    "GAN_LOSSES and ANCHOR_KINDS are RunConfig's Literal values, and every declared pixel criterion, GAN loss and anchor kind is implemented."
    from srgan_nb.config import allowed_values
    assert L.GAN_LOSSES == allowed_values('gan_loss') and L.ANCHOR_KINDS == allowed_values('anchor_kind')
    x, logits = torch.rand(1, 3, 8, 8), torch.zeros(4)
    for c in allowed_values('pixel_criterion'): assert float(L.pixel_loss(x, x, c)) == 0
    for k in allowed_values('gan_loss'):
        L.discriminator_loss(logits, logits, k); L.generator_adversarial_loss(logits, logits, k)
    for k in allowed_values('anchor_kind'): assert float(L.anchor_loss(x, x, k)) == 0
    with pytest.raises(ValueError, match='choose one of auto, vgg19, effnet_lite0'): L.build_backbone('resnet50')


def test_config_does_not_import_losses():
    "losses reads the config's declarations; the config must not need losses (no import cycle)."
    import subprocess, sys
    code = "import sys, srgan_nb.config; assert 'srgan_nb.losses' not in sys.modules; import srgan_nb.losses"
    subprocess.run([sys.executable, '-c', code], check=True)


# ---------------------------------------------------------------- the loss-term registry
def test_the_registry_drives_objective_history_log_and_report():
    "Each term is declared once (LOSS_TERMS): the objectives sum it, the history has its column, the epoch line its label, the report its formula and weight."
    from srgan_nb import train as T
    from srgan_nb.report import methodology_markdown
    g_cols, d_cols = [t.column for t in L.loss_terms('generator')], [t.column for t in L.loss_terms('discriminator')]
    assert g_cols == ['pixel_loss', 'perceptual_loss', 'adversarial_loss', 'anchor_loss', 'artifact_loss'] and d_cols == ['d_loss_fake', 'd_loss_real']
    assert T.HISTORY_COLUMNS[:3 + len(d_cols) + len(g_cols)] == ['epoch', 'phase', 'g_loss'] + d_cols + g_cols   # the seed's g_loss, D on fake, D on real first
    assert T._GAN_PARTS[:len(L.LOSS_TERMS)] == list(L.LOSS_TERMS)
    for cfg in (make_config('s2'), make_config('s2', gan='paper'), make_config('s2', gan_loss='ragan', pixel_weight=0.01, pixel_criterion='l1', anchor_kind='lowpass', artifact_weight=0.5)):
        m = methodology_markdown(cfg, 'effnet_lite0')
        for t in L.loss_terms('generator'):   # every active term with its weight, no inactive one
            w = L.term_weight(t, cfg)
            assert (f"{w:g} · {t.formula(cfg)}" in m) == (w != 0), (t.column, cfg.gan)
        assert 'L_D = ' + ' + '.join(t.formula(cfg) for t in L.loss_terms('discriminator')) in m
        assert (f'EMA, decay {cfg.ema_decay:g}' in m) == bool(cfg.ema_decay)
        assert ('spectral normalisation' if cfg.d_norm == 'sn' else "batch norm (the paper's)") in m
    default, paper = methodology_markdown(make_config('s2')), methodology_markdown(make_config('s2', gan='paper'))
    assert 'L_G = 1 · MSE(φ(SR), φ(HR)) + 0.0001 · BCE(D(SR), real) + 1 · L1(CbCr(SR), CbCr(HR))' in default
    assert 'L_G = 1 · MSE(φ(SR), φ(HR)) + 0.001 · BCE(D(SR), real)\n' in paper and 'EMA' not in paper
    adaptive = methodology_markdown(make_config('s2', adversarial_balance='adaptive', adversarial_weight=0.5))
    assert '+ 0.5 · λ · BCE(D(SR), real) +' in adaptive and 'λ rescales the adversarial term at every step' in adaptive and 'λ' not in default
    row = dict(epoch=3, phase='gan', g_loss=0.5, pixel_loss=0.0, perceptual_loss=0.25, adversarial_loss=0.7, anchor_loss=0.01, artifact_loss=0.0,
               d_loss_fake=0.69, d_loss_real=0.7, d_real_mean=0.5, d_fake_mean=0.5, d_pair_acc=float('nan'), val_psnr=float('nan'), seconds=1.0)
    line = T._fmt(row, make_config('s2'))
    assert 'perceptual 0.2500 adversarial 0.7000 anchor 0.0100 d_fake 0.690 d_real 0.700' in line and 'pixel' not in line   # weight 0: not trained on, not shown
    assert '(weight 3.20e-03)' in T._fmt(row | dict(adv_weight=0.0032), make_config('s2', adversarial_balance='adaptive')) and 'weight' not in line


def test_a_registered_term_joins_the_objective():
    "A new term is one register_loss call: the generator's objective sums it with its weight and reports it as a part."
    term = L.LossTerm('tv_test', 'generator', None, 'tv', lambda c: 'TV(SR)',
                      lambda x, c: (x.sr[..., 1:, :] - x.sr[..., :-1, :]).abs().mean())
    L.register_loss(term)
    try:
        sr, hr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
        total, parts = L.generator_objective(sr, hr, None, None, dict(pixel=1, perceptual=0, adversarial=0))
        torch.testing.assert_close(total, L.pixel_loss(sr, hr) + parts['tv_test'])
        with pytest.raises(ValueError, match='already registered'): L.register_loss(term)
    finally: L.LOSS_TERMS.pop('tv_test')


def test_the_artifact_term_is_one_registration():
    "The LDL artifact term (added with the registry): its config field, one register_loss call; it needs the EMA and is off by default."
    t = L.LOSS_TERMS['artifact_loss']
    assert (t.weight, t.objective) == ('artifact_weight', 'generator') and RunConfig().artifact_weight == 0
    with pytest.raises(ValueError, match='needs the generator.s average'): RunConfig(artifact_weight=1.0, ema_decay=0.0)
    hr = torch.rand(1, 3, 16, 16); sr = (hr + 0.2 * torch.randn_like(hr)).requires_grad_(True)
    total, parts = L.generator_objective(sr, hr, None, None, dict(pixel=0, perceptual=0, adversarial=0, artifact_weight=2.0), sr_ema=hr + 0.01)
    torch.testing.assert_close(total, 2.0 * L.artifact_loss(sr, hr, hr + 0.01)); assert float(parts['artifact_loss']) > 0
    _, off = L.generator_objective(sr, hr, None, None, dict(pixel=1, perceptual=0, adversarial=0), sr_ema=hr)
    assert float(off['artifact_loss']) == 0
