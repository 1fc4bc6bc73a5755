"""Training-step throughput of srgan_nb.train's own step functions, as `fit` runs them, beside a straightforward fp32 step.

Every row calls the real code: `steps.build_train_state` + `steps.srgan_step` (GAN phase) or `steps.pretrain_step`
(SRResNet phase); no step is re-implemented here. The rows differ only in settings:
- "fit (default config)": the RunConfig defaults exactly as `fit` uses them (precision auto, channels_last, fused
  Adam, HR perceptual features cached once per patch set by `train.hr_feature_cache`);
- "straightforward fp32": precision fp32, NCHW, torch's default (for-loop) Adam, HR features recomputed every step,
  the discriminator called once for HR and once for SR (`SeparateCalls`; `fit` sends both through its dense head in
  one call), and glibc's default malloc (`fit` sets `train.keep_freed_memory`): what a plain SRGAN loop does; the
  speed ratio of the two is the gain of the project's settings;
- "fit, SN on the weights (before)" (GAN phase, spectral-norm D): the default config with torch's spectral-norm
  parametrization dividing D's weights by sigma at every call, as the project did before `model.SNConv2d` /
  `model.SNLinear` divide the layers' outputs instead (same values): the ratio is that change's gain.
Beside images/s it prints each step's FLOPs (torch.utils.flop_counter), their share of the conv peak, and the memory
traffic of the step's Adam updates with the time it takes at the measured copy bandwidth: how far a step is from
what the machine allows.
Each variant is timed in every round (interleaved; the 2-core machine is shared), beside the conv peak measured in
the same round (a 64 -> 64 3x3 conv forward, 96x96, in the variant's precision and layout). Patches are real faces
from ../shared/data/faces-utk when present (else scikit-image's sample photos). At the end it projects the wall time
of S1 and S2 in full (pretraining + GAN epochs, patches/s of the default rows at the strategy's batch size).

    .venv/bin/python benchmarks/bench_train.py                        # batches 1, 10, 16: a few minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_train.py --backbone vgg19-random --batches 1 16
    .venv/bin/python benchmarks/bench_train.py --device cuda --batches 16 64 --profile
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from srgan_nb import losses as L, model as M, steps as St, train as T
from srgan_nb.config import RunConfig, STRATEGIES, make_config, autocast, config_dict, cpu_supports_bf16, pick_device, pick_precision, shared_data
from srgan_nb.data import extract_patches
from srgan_nb.sources import list_images
from srgan_nb.testing import toy_patches


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def conv_peak(dev, precision, channels_last, batch=16, size=96, reps=2) -> float:
    "GFLOP/s of a 64->64 3x3 conv forward on (batch, 64, size, size): the representative layer."
    conv = nn.Conv2d(64, 64, 3, padding=1).to(dev)
    x = torch.randn(batch, 64, size, size, device=dev)
    if channels_last: conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    flops, best = 2 * 64 * 64 * 9 * batch * size * size, float('inf')
    with torch.no_grad(), autocast(dev, precision):
        conv(x); sync(dev)
        for _ in range(reps):
            t = time.perf_counter(); conv(x); sync(dev); best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def patches(n: int = 64):
    "Real face patches (the project's sampler on faces-utk) when the shared data is there, else toy patches of sample photos."
    faces = shared_data('faces-utk')
    if faces is None: return toy_patches(n, 96, 4, seed=0), 'toy patches of scikit-image sample photos (no ../shared/data)'
    lr, hr = [], []
    for iid, path in list_images(faces)[:max(1, n // 10) + 5]:
        r = extract_patches(path, iid)
        if r.get('ok'): lr.append(r['lr']); hr.append(r['hr'])
    lr, hr = np.concatenate(lr)[:n], np.concatenate(hr)[:n]
    return SimpleNamespace(lr=lr, hr=hr, image_ids=None), f'{len(hr)} patches of faces-utk photos'


class SeparateCalls(nn.Module):
    "A discriminator called once per batch, as plain SRGAN code calls it: D(hr, sr) -> (D(hr), D(sr))."
    def __init__(self, module: nn.Module):
        super().__init__(); self.module = module
    def forward(self, *xs): return tuple(self.module(x) for x in xs) if len(xs) > 1 else self.module(xs[0])


def step_flops(v) -> float:
    "FLOPs of one training step of variant `v` (torch.utils.flop_counter: convolutions and matrix products, forward and backward)."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc: v.step()
    return float(fc.get_total_flops())


def memory_bandwidth(dev, mb: int = 256) -> float:
    "GB/s of a large tensor copy (read + write), the bound of a memory-bound update."
    x = torch.empty(mb * 2**20 // 4, device=dev); y = torch.empty_like(x)
    y.copy_(x); sync(dev); best = float('inf')
    for _ in range(3):
        t = time.perf_counter(); y.copy_(x); sync(dev); best = min(best, time.perf_counter() - t)
    return 2 * x.numel() * 4 / best / 1e9


def adam_bytes(v) -> int:
    "Memory traffic of one step's Adam updates: per fp32 parameter it reads weight, gradient and two moments and writes three (28 bytes)."
    n = sum(p.numel() for p in v.s.generator.parameters())
    if v.phase == 'gan': n += sum(p.numel() for p in v.s.discriminator.parameters())
    return 28 * n


class Variant:
    "One configuration of the real training step on a fixed batch."
    def __init__(self, cfg: RunConfig, backbone, data, dev, batch: int, phase: str, straightforward: bool = False,
                 weight_sn: bool = False):
        torch.manual_seed(0)
        self.s = St.build_train_state(cfg, backbone=backbone, device=dev)
        if weight_sn or straightforward: M.weight_spectral_norm(self.s.discriminator)   # the project before SNConv2d/SNLinear
        self.phase, self.cfg, self.straightforward = phase, cfg, straightforward
        if straightforward:  # torch's default Adam (a Python loop over parameters on the CPU), as plain SRGAN code has it
            self.s.opt_g = torch.optim.Adam(self.s.generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
            self.s.opt_d = torch.optim.Adam(self.s.discriminator.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
            self.s.opt_pretrain = torch.optim.Adam(self.s.generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
            self.s.discriminator = SeparateCalls(self.s.discriminator)
        lr_u8, hr_u8 = T.patch_tensors(data)
        self.data = SimpleNamespace(lr=lr_u8, hr=hr_u8)
        self.idx = torch.arange(batch) % len(lr_u8)
        self.lr, self.hr = T._batch(self.data, self.idx, cfg, self.s.device, None)
        cache = phase == 'gan' and not straightforward and not cfg.augment
        self.feats = St.hr_feature_cache(self.s.perceptual.backbone, hr_u8[self.idx], self.s.device, self.s.precision) if cache else None

    def step(self):
        T.keep_freed_memory(not self.straightforward)  # process-wide: set for each variant as it runs
        if self.phase == 'pretrain': return St.pretrain_step(self.s, self.lr, self.hr)
        return St.srgan_step(self.s, self.lr, self.hr, self.feats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu, cuda or auto')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batches', type=int, nargs='+', default=[1, 10, 16])
    p.add_argument('--reps', type=int, default=4, help='timed interleaved rounds')
    p.add_argument('--steps', type=int, default=3, help='steps timed per round (their mean)')
    p.add_argument('--backbone', default='auto', help='auto, vgg19, effnet_lite0, or vgg19-random (VGG54 architecture, random weights: timing only)')
    p.add_argument('--profile', action='store_true', help='torch.profiler table of the default GAN step at the smallest batch')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    pd.set_option('display.width', 250); pd.set_option('display.max_columns', 20)
    if a.backbone == 'vgg19-random':
        from torchvision.models.vgg import make_layers, cfgs
        backbone = L.Backbone(make_layers(cfgs['E'])[:36], 'vgg19 (random weights, timing only)', 'features[:36]',
                              L.VGG19_FEATURE_SCALE, L.IMAGENET_MEAN, L.IMAGENET_STD)
    else: backbone = L.build_backbone(a.backbone)
    data, what = patches()
    default = RunConfig(device=str(dev))
    print(f'torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, cpu bf16 native {cpu_supports_bf16()}, '
          f'default precision {pick_precision(default.precision, dev)}, backbone {backbone.name}, data: {what}')
    variants = {}
    for b in a.batches:
        fit_cfg = RunConfig(**(config_dict(default) | dict(batch_size=b)))
        plain = RunConfig(**(config_dict(default) | dict(batch_size=b, precision='fp32', channels_last=False)))
        for phase in ('gan', 'pretrain'):
            kinds = [('fit (default config)', fit_cfg, False, False), ('straightforward fp32', plain, True, False)]
            if phase == 'gan' and fit_cfg.d_norm == 'sn': kinds.insert(1, ('fit, SN on the weights (before)', fit_cfg, False, True))
            for name, cfg, sf, wsn in kinds:
                v = Variant(cfg, backbone, data, dev, b, phase, straightforward=sf, weight_sn=wsn)
                for _ in range(3): v.step()  # warm-up: oneDNN builds its kernels in the first steps
                sync(dev)
                variants[(phase, b, name)] = v
    flops = {k: step_flops(v) for k, v in variants.items()}
    times = {k: [] for k in variants}; peaks = {k: [] for k in variants}; bws = []
    for r in range(a.reps):
        bws.append(memory_bandwidth(dev))
        for k, v in variants.items():
            peaks[k].append(conv_peak(dev, v.s.precision, v.cfg.channels_last, batch=max(k[1], 4)))
            sync(dev); t = time.perf_counter()
            for _ in range(a.steps): v.step()
            sync(dev); times[k].append((time.perf_counter() - t) / a.steps)
        print(f'  round {r + 1}/{a.reps} done', flush=True)
    rows = []
    for (phase, b, name), ts in times.items():
        i = int(np.argmin(ts))
        rows.append(dict(phase=phase, batch=b, variant=name, precision=variants[(phase, b, name)].s.precision,
                         step_s=round(ts[i], 4), median_s=round(float(np.median(ts)), 4), images_per_s=round(b / ts[i], 2),
                         conv_peak_gflops=round(peaks[(phase, b, name)][i], 1), step_gflop=round(flops[(phase, b, name)] / 1e9, 2),
                         peak_share=round(flops[(phase, b, name)] / ts[i] / 1e9 / peaks[(phase, b, name)][i], 3),
                         adam_mb=round(adam_bytes(variants[(phase, b, name)]) / 1e6, 1),
                         adam_floor_ms=round(adam_bytes(variants[(phase, b, name)]) / (max(bws) * 1e9) * 1e3, 1)))
    df = pd.DataFrame(rows)
    print(f'memory bandwidth (copy, best of the rounds): {max(bws):.1f} GB/s; peak_share: the step\'s FLOPs / its time / the conv peak '
          f'of the same round; adam_floor_ms: its Adam updates\' bytes at that bandwidth (a step cannot be faster than that part)')
    print('\n== training step throughput (best of the interleaved rounds; a generator step = one D update + one G update) ==')
    print(df.to_string(index=False))
    ips = {(r.phase, r.batch, r.variant): r.images_per_s for r in df.itertuples()}
    for phase in ('gan', 'pretrain'):
        for b in a.batches:
            f, s = ips[(phase, b, 'fit (default config)')], ips[(phase, b, 'straightforward fp32')]
            w = ips.get((phase, b, 'fit, SN on the weights (before)'))
            print(f'{phase:8s} batch {b:>3}: fit {f:6.2f} img/s vs straightforward fp32 {s:6.2f} img/s -> x{f / s:.2f}'
                  + (f'; vs SN on the weights {w:6.2f} img/s -> x{f / w:.2f}' if w else ''))
    print('\n== projected wall time in full (training only: pretraining + GAN epochs; validation and evaluation not counted) ==')
    for name in STRATEGIES:
        c = make_config(name)  # the strategy's own settings (faces-x4: 5 patches per photo, 6 pretraining epochs)
        b = min(a.batches, key=lambda x: abs(x - c.batch_size))
        n = c.n_train * c.patches_per_image
        pre, gan = ips[('pretrain', b, 'fit (default config)')], ips[('gan', b, 'fit (default config)')]
        secs = c.pretrain_epochs * n / pre + c.epochs * n / gan
        print(f'{name}: {c.pretrain_epochs} pretraining + {c.epochs} GAN epochs of {n} patches at batch {c.batch_size} '
              f'(timed at batch {b}): {secs / 3600:.2f} h')
    if a.profile:
        from torch.profiler import profile, ProfilerActivity
        k = ('gan', min(a.batches), 'fit (default config)')
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
        with profile(activities=acts) as prof:
            for _ in range(3): variants[k].step()
            sync(dev)
        print(f'\n== profile: {k} ==')
        print(prof.key_averages().table(sort_by='self_cpu_time_total' if dev.type == 'cpu' else 'self_cuda_time_total', row_limit=20))
    return df


if __name__ == '__main__':
    main()
