"""The spectral-norm discriminator divides its layers' outputs by sigma (model.SNConv2d / SNLinear) instead of its weights
(torch's parametrization alone): the same gradients in fp32 (to float rounding), as close to them in bf16 as before,
and the same few training steps at batch 1."""
import copy

import pytest
import torch
import torch.nn as nn

from srgan_nb import model as M, steps as St
from srgan_nb.config import make_config
from srgan_nb.losses import build_backbone
from srgan_nb.testing import toy_patches


weight_sn = M.weight_spectral_norm   # torch's parametrization as it is: the weight divided by sigma at every call (the project before)


def d_grads(d, old: bool, bf16: bool) -> dict:
    "Gradients of a D-like loss on two batches (D(hr, sr), as the D step calls it), in training mode (one power iteration per call)."
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)
    D = weight_sn(copy.deepcopy(d)) if old else copy.deepcopy(d)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        real, fake = D(x, x.flip(-1))
    (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean()).backward()
    return {k: p.grad.clone() for k, p in D.named_parameters()}


def rel(a, b) -> float: return float((a - b).norm() / b.norm().clamp_min(1e-30))


def test_gradients_are_those_of_torchs_parametrization():
    torch.manual_seed(0)
    d = M.Discriminator(32, base=8, norm='sn')
    new, old = d_grads(d, False, False), d_grads(d, True, False)
    assert max(rel(new[k], old[k]) for k in old) < 1e-5                     # fp32: float rounding only
    new16, old16 = d_grads(d, False, True), d_grads(d, True, True)
    flat = lambda g: torch.cat([g[k].flatten() for k in old])
    err_new, err_old = rel(flat(new16), flat(old)), rel(flat(old16), flat(old))
    assert err_new <= 1.5 * err_old + 1e-3, (err_new, err_old)   # bf16 rounds W, not W / sigma: as far from the fp32 gradient as before
    for m in d.modules():   # and the sigma the output is divided by is the one torch's parametrization divides the weight by
        if isinstance(m, (M.SNConv2d, M.SNLinear)):
            d.eval()
            torch.testing.assert_close(m.weight.detach() * M.spectral_sigma(m).detach(), m.parametrizations.weight.original.detach(), rtol=1e-5, atol=1e-7)


def test_batch_one_steps_train_as_before():
    "Four GAN steps at batch 1 with the default recipe, fp32: the losses of the two forms agree (Adam turns rounding into lr-sized steps of tiny-gradient weights, hence 5e-3)."
    cfg = make_config('s2', hr_size=32, n_blocks=1, channels=8, batch_size=1, backbone='effnet_lite0', device='cpu', precision='fp32')
    assert cfg.d_norm == 'sn'
    torch.manual_seed(0)
    g, d = M.build_models(cfg)
    backbone = build_backbone('effnet_lite0')
    data = toy_patches(4, 32, seed=5)
    lr, hr = (torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255) for a in (data.lr, data.hr))
    runs = []
    for old in (False, True):
        s = St.build_train_state(cfg, copy.deepcopy(g), weight_sn(copy.deepcopy(d)) if old else copy.deepcopy(d), backbone)
        runs.append([St.srgan_step(s, lr[i:i + 1], hr[i:i + 1]) for i in range(4)])
    for a, b in zip(*runs):
        for k in ('d_loss', 'd_loss_real', 'd_loss_fake', 'g_loss', 'adversarial_loss', 'perceptual_loss', 'anchor_loss'):
            torch.testing.assert_close(a[k], b[k], rtol=5e-3, atol=1e-6, msg=k)


def test_fused_dense_layer_gradient():
    "The dense layer's own backward (one product for W's gradient, sigma's rank-one term inside it) against finite differences."
    torch.manual_seed(0)
    x, w = torch.randn(3, 7, dtype=torch.float64, requires_grad=True), torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    u, v = torch.nn.functional.normalize(torch.randn(5, dtype=torch.float64), dim=0), torch.nn.functional.normalize(torch.randn(7, dtype=torch.float64), dim=0)
    assert torch.autograd.gradcheck(M._SNLinearFunction.apply, (x, w, u, v))
