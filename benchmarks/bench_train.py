"""Training-step throughput: the full SRGAN step (D step + G step) and the MSE-only SRResNet step, batch 16, 24 -> 96.

Every variant is timed in every round (interleaved; the 2-core machine is shared), and each is set against the
conv peak measured in the same run and the same precision and memory format (a 64 -> 64 3x3 conv, batch 16,
96x96, forward). FLOPs of each step come from torch.utils.flop_counter.FlopCounterMode (conv/matmul FLOPs,
forward and backward; the optimizer and pointwise ops are not counted).

Rows:
- "straightforward fp32": the plain loop popular SRGAN code writes: fp32, NCHW, the HR perceptual features
  recomputed every step;
- fp32 / channels_last / bf16 autocast / both, with cached HR features (computed once per patch set);
- "fast": bf16 autocast + channels_last where faster + cached HR features (the better of the two bf16 rows);
- srgan_nb.train's own step functions (`_gan_step`, `_pretrain_step`) with the fast settings, when exposed;
- torch.compile with --compile.

    .venv/bin/python benchmarks/bench_train.py                  # ~5 minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_train.py --reps 4 --compile --profile
    .venv/bin/python benchmarks/bench_train.py --device cuda --batch 64
"""
from __future__ import annotations
import argparse, contextlib, sys, time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from srgan_nb.config import pick_device, cpu_supports_bf16
from srgan_nb.model import Generator, Discriminator
from srgan_nb import losses as L

WEIGHTS = dict(content_weight=1.0, perceptual_weight=1.0, adversarial_weight=1e-3)


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def ctx_for(dev, precision):
    dt = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    return torch.autocast(dev.type, dtype=dt) if dt else contextlib.nullcontext()


def conv_peak(dev, precision, channels_last, batch=16, size=96, reps=3) -> float:
    "GFLOP/s of a 64->64 3x3 conv forward on (batch, 64, size, size): the representative layer."
    conv = nn.Conv2d(64, 64, 3, padding=1).to(dev)
    x = torch.randn(batch, 64, size, size, device=dev)
    if channels_last: conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    flops, best, best_cpu = 2 * 64 * 64 * 9 * batch * size * size, float('inf'), float('inf')
    with torch.no_grad(), ctx_for(dev, precision):
        conv(x); sync(dev)
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time(); conv(x); sync(dev)
            best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    return flops / best / 1e9, flops / best_cpu / 1e9


class Setup:
    "Models, optimizers, loss and data of one variant."
    def __init__(self, dev, precision, channels_last, cache_hr, backbone, batch, mse_only=False, compile=False, seed=0, adam=None):
        torch.manual_seed(seed)
        self.dev, self.precision, self.cl, self.cache_hr, self.mse_only = dev, precision, channels_last, cache_hr, mse_only
        mf = torch.channels_last if channels_last else torch.contiguous_format
        self.G = Generator().to(dev, memory_format=mf).train()
        self.D = Discriminator(96).to(dev, memory_format=mf).train()
        self.perceptual = L.PerceptualLoss(backbone).to(dev)
        if channels_last: self.perceptual.backbone.to(memory_format=mf)
        kw = {'fused': dict(fused=True), 'foreach': dict(foreach=True)}.get(adam, {})  # None: torch's default (a for-loop on the CPU)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.9, 0.999), **kw)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.9, 0.999), **kw)
        g = torch.Generator().manual_seed(seed)
        self.hr = torch.rand(batch, 3, 96, 96, generator=g).to(dev)
        self.lr = F.avg_pool2d(self.hr, 4)
        if channels_last: self.hr, self.lr = (t.contiguous(memory_format=mf) for t in (self.hr, self.lr))
        self.ctx = lambda: ctx_for(dev, precision)
        self.hr_features = None
        if cache_hr and not mse_only:
            with torch.no_grad(), self.ctx(): self.hr_features = self.perceptual.features(self.hr)
        self.Gc, self.Dc = (torch.compile(self.G), torch.compile(self.D)) if compile else (self.G, self.D)

    def step(self):
        "One training step: D step + G step (SRGAN), or the MSE step (SRResNet)."
        G, D = self.Gc, self.Dc
        if self.mse_only:
            self.opt_g.zero_grad(set_to_none=True)
            with self.ctx(): loss = F.mse_loss(G(self.lr).float(), self.hr)
            loss.backward(); self.opt_g.step()
            return loss
        with self.ctx(): sr = G(self.lr)
        self.opt_d.zero_grad(set_to_none=True)
        with self.ctx():
            d_loss = L.discriminator_loss(D(self.hr).float(), D(sr.detach()).float())[0]
        d_loss.backward(); self.opt_d.step()
        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.ctx():
            g_loss, _ = L.generator_objective(sr.float(), self.hr, D(sr).float(), self.perceptual, WEIGHTS,
                                              hr_features=self.hr_features)
        g_loss.backward(); self.opt_g.step()
        self.D.requires_grad_(True)
        return g_loss


class TrainStep(Setup):
    "srgan_nb.train's own step functions on this variant's models."
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        import srgan_nb.train as T
        self.T = T
        self.scaler_g, self.scaler_d = T.make_scaler(self.dev, self.precision), T.make_scaler(self.dev, self.precision)
        self.cfg = SimpleNamespace(**WEIGHTS)

    def step(self):
        ctx = self.T.autocast_context(self.dev, self.precision)
        if self.mse_only: return self.T._pretrain_step(self.G, self.lr, self.hr, self.opt_g, self.scaler_g, ctx, L)
        return self.T._gan_step(self.G, self.D, self.lr, self.hr, self.hr_features, self.opt_g, self.opt_d,
                                self.scaler_g, self.scaler_d, ctx, L, self.perceptual, self.cfg)


def count_flops(setup) -> float:
    with FlopCounterMode(display=False) as fc: setup.step()
    return float(fc.get_total_flops())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu, cuda or auto')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--reps', type=int, default=4, help='timed interleaved rounds (one step per variant per round)')
    p.add_argument('--backbone', default='auto', help='auto (vgg19 when its weights are present, else effnet_lite0), vgg19, effnet_lite0, or vgg19-random (VGG54 architecture, random weights: timing only)')
    p.add_argument('--compile', action='store_true', help='also time torch.compile of G and D (minutes to compile on 2 cores)')
    p.add_argument('--profile', action='store_true', help='torch.profiler tables of the straightforward and the fast step')
    p.add_argument('--only', help='comma-separated substrings: time only the variants whose names contain one')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    pd.set_option('display.width', 250); pd.set_option('display.max_columns', 20); pd.set_option('display.max_colwidth', 60)
    if a.backbone == 'vgg19-random':  # timing only: VGG54's architecture without its (absent) ImageNet weights
        from torchvision.models.vgg import make_layers, cfgs
        backbone = L.Backbone(make_layers(cfgs['E'])[:36], 'vgg19 (random weights, timing only)', 'features[:36]',
                              L.VGG19_FEATURE_SCALE, L.IMAGENET_MEAN, L.IMAGENET_STD)
    else: backbone = L.build_backbone(a.backbone)
    load0 = Path('/proc/loadavg').read_text().split()[:3] if Path('/proc/loadavg').exists() else '?'
    print(f'torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, batch {a.batch}, 24->96, '
          f'backbone {backbone.name}, cpu bf16 native {cpu_supports_bf16()}, load average {load0}')
    bf = 'bf16' if dev.type == 'cpu' else ('bf16' if torch.cuda.is_bf16_supported() else 'fp16')
    specs = {  # name -> (precision, channels_last, cache_hr, mse_only, compile, cls)
        'straightforward fp32 (NCHW, HR features each step)': ('fp32', False, False, False, False, Setup),
        'fp32, cached HR features': ('fp32', False, True, False, False, Setup),
        'fp32 + channels_last, cached': ('fp32', True, True, False, False, Setup),
        f'{bf} autocast, cached': (bf, False, True, False, False, Setup),
        f'{bf} autocast + channels_last, cached': (bf, True, True, False, False, Setup),
        f'{bf} autocast, cached, fused Adam': (bf, False, True, False, False, Setup, 'fused'),
        f'{bf} autocast + channels_last, cached, fused Adam': (bf, True, True, False, False, Setup, 'fused'),
        'fp32 + channels_last, cached, fused Adam': ('fp32', True, True, False, False, Setup, 'fused'),
        f'train._gan_step ({bf} + channels_last, cached)': (bf, True, True, False, False, TrainStep),
        'SRResNet MSE fp32 (NCHW)': ('fp32', False, False, True, False, Setup),
        'SRResNet MSE fp32 + channels_last': ('fp32', True, False, True, False, Setup),
        f'SRResNet MSE {bf} autocast': (bf, False, False, True, False, Setup),
        f'SRResNet MSE {bf} + channels_last': (bf, True, False, True, False, Setup),
        f'SRResNet MSE {bf} + channels_last, fused Adam': (bf, True, False, True, False, Setup, 'fused'),
        f'train._pretrain_step ({bf} + channels_last)': (bf, True, False, True, False, TrainStep),
    }
    if a.compile:
        specs[f'torch.compile {bf} + channels_last, cached'] = (bf, True, True, False, True, Setup)
        specs[f'SRResNet MSE torch.compile {bf} + channels_last'] = (bf, True, False, True, True, Setup)
    if a.only: specs = {k: v for k, v in specs.items() if any(s.strip() in k for s in a.only.split(','))}
    setups, flops, flop_cache = {}, {}, {}
    specs = {k: (v + (None,))[:7] for k, v in specs.items()}
    for name, (prec, cl, cache, mse, comp, cls, adam) in specs.items():
        try:
            st = cls(dev, prec, cl, cache, backbone, a.batch, mse_only=mse, compile=comp, adam=adam)
        except (ImportError, AttributeError) as e:
            print(f'  {name}: skipped ({e})'); continue
        t0 = time.perf_counter()
        try:
            if (cache, mse) not in flop_cache:  # FLOPs depend on the work done, not on precision or layout
                flop_cache[(cache, mse)] = count_flops(Setup(dev, 'fp32', False, cache, backbone, a.batch, mse_only=mse))
            flops[name] = flop_cache[(cache, mse)]
            st.step(); sync(dev)  # warm-up (and compilation)
        except Exception as e:
            print(f'  {name}: failed ({type(e).__name__}: {str(e)[:150]})'); continue
        setups[name] = st
        print(f'  set up + warm-up {name}: {time.perf_counter() - t0:.1f} s', flush=True)
    # each round: for every variant, the conv peak of its precision and layout right before its step, so a step and
    # its peak see the same load (other jobs come and go on a shared machine)
    times, cpus, peaks, peaks_cpu = ({k: [] for k in setups} for _ in range(4))
    for r in range(a.reps):
        for k, st in setups.items():
            pw, pc = conv_peak(dev, st.precision, st.cl, batch=a.batch, reps=2)
            sync(dev); t, c = time.perf_counter(), time.process_time(); st.step(); sync(dev)
            times[k].append(time.perf_counter() - t); cpus[k].append(time.process_time() - c)
            peaks[k].append(pw); peaks_cpu[k].append(pc)
        print(f'  round {r + 1}/{a.reps}: ' + ', '.join(f'{v[-1]:.2f}' for v in times.values()), flush=True)
    rows = []
    for k, st in setups.items():
        i = int(np.argmin(times[k]))
        fr = [flops[k] / t / 1e9 / p for t, p in zip(times[k], peaks[k])]
        frc = [flops[k] / c / 1e9 / p for c, p in zip(cpus[k], peaks_cpu[k])]
        rows.append(dict(variant=k, step_s=round(times[k][i], 3), median_s=round(float(np.median(times[k])), 3),
                         images_per_s=round(a.batch / times[k][i], 2), gflop_per_step=round(flops[k] / 1e9, 1),
                         gflop_per_s=round(flops[k] / times[k][i] / 1e9, 1), conv_peak=round(peaks[k][i], 1),
                         frac_of_peak=round(fr[i], 3), frac_median=round(float(np.median(fr)), 3),
                         cpu_s=round(cpus[k][i], 3), frac_of_peak_cpu=round(float(np.median(frc)), 3)))
    df = pd.DataFrame(rows)
    print('\n== training step throughput (best of the interleaved rounds) ==')
    print('conv_peak: GFLOP/s of a 64->64 3x3 conv forward (batch %d, 96x96) in the same precision and layout, measured just' % a.batch)
    print('before the step of the best round; frac_of_peak: that round\'s fraction; frac_median: median over rounds;')
    print('frac_of_peak_cpu: the same per process CPU-second (median over rounds), steadier when other jobs share the cores')
    print(df.to_string(index=False))
    ips = dict(zip(df.variant, df.images_per_s))
    base = ips.get('straightforward fp32 (NCHW, HR features each step)')
    fast_names = [k for k in ips if k.startswith(f'{bf} autocast') and 'cached' in k]
    if base and fast_names:
        fast = max(fast_names, key=ips.get)
        print(f'fast path = "{fast}": {ips[fast]:.2f} images/s vs straightforward fp32 {base:.2f} images/s -> x{ips[fast] / base:.2f}')
        d = df.set_index('variant')
        cpu_ratio = d.loc[k_base := 'straightforward fp32 (NCHW, HR features each step)', 'cpu_s'] / d.loc[fast, 'cpu_s']
        print(f'   by CPU time per step: x{cpu_ratio:.2f}')
        print(f'fast path reaches {d.loc[fast, "frac_of_peak"]:.0%} (best round, wall) / {d.loc[fast, "frac_median"]:.0%} (median) / '
              f'{d.loc[fast, "frac_of_peak_cpu"]:.0%} (CPU time) of the measured '
              f'{bf} conv peak (goal: 50% or more; 2x or more the straightforward images/s)')
    load1 = Path('/proc/loadavg').read_text().split()[:3] if Path('/proc/loadavg').exists() else '?'
    print(f'load average at the end: {load1}')
    if a.profile:
        from torch.profiler import profile, ProfilerActivity
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
        for k in [n for n in setups if n.startswith('straightforward')] + ([fast] if base and fast_names else []):
            with profile(activities=acts) as prof: setups[k].step(); sync(dev)
            print(f'\n== profile: {k} ==')
            print(prof.key_averages().table(sort_by='self_cpu_time_total' if dev.type == 'cpu' else 'self_cuda_time_total', row_limit=14))
    return df


if __name__ == '__main__':
    main()
