"""Inference speed and precision of the default generator (16 blocks, 64 channels): 256x256 -> 1024x1024.

Prints, side by side and interleaved (the machine is shared, so every variant is timed in every round):
seconds per image, images/s and GFLOP/s for fp32 (as built, and with BatchNorm folded), channels_last,
bf16 autocast, a bf16-cast model, and torch.compile with --compile; the conv peak of a representative layer
in both precisions; and the quality check of the 0.05 dB rule: PSNR(bf16 output, fp32 output) and each
precision's Y-PSNR against the HR of Set5 (or sample images when the shared data is absent), on a generator
with real-ish weights (a checkpoint with --checkpoint, else a bicubic_skip generator trained ~1 minute here).

    .venv/bin/python benchmarks/bench_infer.py                 # ~3-5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_infer.py --compile --reps 5 --checkpoint reports/runs/<id>/s2/generator_srgan.pt
"""
from __future__ import annotations
import argparse, copy, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from srgan_nb.config import pick_device, pick_precision, shared_data, cpu_supports_bf16
from srgan_nb.model import Generator
from srgan_nb.infer import prepare_generator, upscale_image, receptive_radius


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def count_flops(fn, x) -> float:
    with FlopCounterMode(display=False) as fc, torch.no_grad(): fn(x)
    return float(fc.get_total_flops())


def conv_peak(dev, precision: str, channels_last: bool, reps: int = 3, size: int = 256) -> float:
    "GFLOP/s of one 64->64 3x3 conv forward on a (1, 64, size, size) input: the generator's dominant layer."
    conv = nn.Conv2d(64, 64, 3, padding=1).to(dev).eval()
    x = torch.randn(1, 64, size, size, device=dev)
    if channels_last: conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    flops = 2 * 64 * 64 * 9 * size * size
    dt = torch.bfloat16 if precision == 'bf16' else None
    best, best_cpu = float('inf'), float('inf')
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dt or torch.float32, enabled=dt is not None):
        conv(x); sync(dev)
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time(); conv(x); sync(dev)
            best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    return round(flops / best / 1e9, 1), round(flops / best_cpu / 1e9, 1)


def variants(gen: nn.Module, dev, do_compile: bool):
    "name -> (callable on a (1,3,h,w) fp32 tensor, precision, channels_last)."
    v = {}
    plain = copy.deepcopy(gen).eval().to(dev)
    v['fp32 as built (NCHW, BN)'] = (plain, 'fp32', False)
    v['fp32 BN folded'] = (prepare_generator(gen, dev, 'fp32', channels_last=False), 'fp32', False)
    v['fp32 BN folded + channels_last'] = (prepare_generator(gen, dev, 'fp32', channels_last=True), 'fp32', True)
    v['bf16 autocast, BN folded'] = (prepare_generator(gen, dev, 'bf16', channels_last=False), 'bf16', False)
    v['bf16 autocast, BN folded + channels_last'] = (prepare_generator(gen, dev, 'bf16', channels_last=True), 'bf16', True)
    cast = prepare_generator(gen, dev, 'fp32', channels_last=True).to(torch.bfloat16)
    v['bf16 model cast + channels_last'] = (lambda t, m=cast: m(t.to(torch.bfloat16)).float(), 'fp32', True)
    if do_compile:
        for prec, cl in (('fp32', True), ('bf16', False)):
            try:
                m = torch.compile(prepare_generator(gen, dev, prec, channels_last=cl))
                v[f'torch.compile {prec}{" + channels_last" if cl else ""}'] = (m, prec, cl)
            except Exception as e: print(f'torch.compile unavailable: {e}')
    return v


def run_one(fn, x, dev, precision, cl) -> float:
    dt = torch.bfloat16 if precision == 'bf16' else (torch.float16 if precision == 'fp16' else None)
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dt or torch.float32, enabled=dt is not None):
        sync(dev); t, c = time.perf_counter(), time.process_time(); y = fn(x); sync(dev)
    return time.perf_counter() - t, time.process_time() - c


def bench_speed(gen, dev, size, reps, do_compile) -> pd.DataFrame:
    x = torch.rand(1, 3, size, size, device=dev)
    flops = count_flops(gen.eval(), x[..., :64, :64]) * (size / 64) ** 2
    vs = variants(gen, dev, do_compile)
    times = {k: [] for k in vs}
    for k, (fn, prec, cl) in vs.items():  # warm-up (and compilation), not timed
        t0 = time.perf_counter()
        try: run_one(fn, x, dev, prec, cl)
        except Exception as e:
            print(f'{k}: failed ({type(e).__name__}: {str(e)[:120]})'); times.pop(k); continue
        print(f'  warm-up {k}: {time.perf_counter() - t0:.1f} s', flush=True)
    for r in range(reps):  # interleaved rounds
        for k in times:
            fn, prec, cl = vs[k]
            times[k].append(run_one(fn, x, dev, prec, cl))
        print(f'  round {r + 1}/{reps}: ' + ', '.join(f'{t[-1][0]:.2f}' for t in times.values()), flush=True)
    rows = []
    for k, ts in times.items():
        best, med, cpu = min(w for w, _ in ts), float(np.median([w for w, _ in ts])), min(c for _, c in ts)
        rows.append(dict(variant=k, best_s=round(best, 3), median_s=round(med, 3), images_per_s=round(1 / best, 3),
                         gflops_per_s=round(flops / best / 1e9, 1), cpu_s=round(cpu, 3), gflop_per_cpu_s=round(flops / cpu / 1e9, 1)))
    df = pd.DataFrame(rows)
    df['speedup_vs_fp32'] = (df.best_s.iloc[0] / df.best_s).round(2)
    return df, flops


def train_quickly(seconds: float, dev, seed: int = 0) -> nn.Module:
    "A bicubic_skip generator trained for `seconds` on 96x96 patches of Set14 (or the sample images): real-ish weights."
    from srgan_nb.images import load_image, make_lr
    torch.manual_seed(seed)
    src = shared_data('Set14')
    paths = sorted(src.glob('*.png')) if src else []
    if paths: imgs = [load_image(p) for p in paths]
    else:
        import skimage.data as sd
        imgs = [np.asarray(f()) for f in (sd.astronaut, sd.coffee, sd.chelsea, sd.rocket)]
        imgs = [np.repeat(i[..., None], 3, 2) if i.ndim == 2 else i[..., :3] for i in imgs]
    rng = np.random.default_rng(seed)
    hr, lr = [], []
    for im in imgs:
        for _ in range(8):
            y, x = rng.integers(0, im.shape[0] - 96), rng.integers(0, im.shape[1] - 96)
            p = im[y:y + 96, x:x + 96]; hr.append(p); lr.append(make_lr(p, 4))
    hr = torch.from_numpy(np.stack(hr)).permute(0, 3, 1, 2).float().div(255).to(dev)
    lr = torch.from_numpy(np.stack(lr)).permute(0, 3, 1, 2).float().div(255).to(dev)
    g = Generator(bicubic_skip=True).to(dev).train()
    opt = torch.optim.Adam(g.parameters(), lr=2e-4)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(0, len(hr), (16,))
        loss = F.mse_loss(g(lr[idx]), hr[idx])
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
    print(f'  trained a bicubic_skip generator for {time.perf_counter() - t0:.0f} s: {step} steps of 16 patches, last MSE {loss.item():.5f}')
    return g.eval()


def bench_quality(gen, dev, tile) -> pd.DataFrame:
    from srgan_nb.images import crop_to_scale, load_image, make_lr, bicubic_upscale
    from srgan_nb.metrics import psnr
    src = shared_data('Set5')
    if src: items = [(p.stem, load_image(p)) for p in sorted(src.glob('*.png'))]
    else:
        import skimage.data as sd
        items = [('astronaut', sd.astronaut()), ('coffee', sd.coffee())]
        print('  shared data absent: using skimage sample images')
    rows = []
    g32, g16 = prepare_generator(gen, dev, 'fp32'), prepare_generator(gen, dev, 'bf16')
    for name, hr in items:
        hr = crop_to_scale(hr, 4); h, w = hr.shape[:2]
        lr = make_lr(hr, 4)
        a = upscale_image(g32, lr, tile=tile, device=dev, precision='fp32')
        b = upscale_image(g16, lr, tile=tile, device=dev, precision='bf16')
        diff = np.abs(a.astype(int) - b.astype(int))
        rows.append(dict(image=name, size=f'{w}x{h}', psnr_bicubic=psnr(bicubic_upscale(lr, 4), hr), psnr_fp32=psnr(a, hr),
                         psnr_bf16=psnr(b, hr), psnr_bf16_vs_fp32=psnr(b, a, scale=0, y_channel=False),
                         max_abs_diff=int(diff.max()), frac_pixels_diff=float((diff > 0).mean())))
    df = pd.DataFrame(rows)
    df['bf16_minus_fp32_db'] = df.psnr_bf16 - df.psnr_fp32
    # stress: an untrained default-init generator without the bicubic skip (its whole output is network output)
    torch.manual_seed(0)
    raw = Generator().eval()
    lr = make_lr(items[0][1], 4)   # make_lr crops to a multiple of 4
    a = upscale_image(prepare_generator(raw, dev, 'fp32'), lr, tile=tile, device=dev, precision='fp32')
    b = upscale_image(prepare_generator(raw, dev, 'bf16'), lr, tile=tile, device=dev, precision='bf16')
    print(f'  stress, untrained default-init generator (no bicubic skip) on {items[0][0]}: PSNR(bf16, fp32) = '
          f'{psnr(b, a, scale=0, y_channel=False):.2f} dB, max |diff| {int(np.abs(a.astype(int) - b.astype(int)).max())}')
    return df


def newest_checkpoint():
    "The newest generator_srgan.pt under reports/runs, or None."
    root = Path(__file__).resolve().parents[1]/'reports'/'runs'
    found = sorted(root.glob('*/*/generator_srgan.pt'), key=lambda p: p.stat().st_mtime) if root.exists() else []
    return found[-1] if found else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help='cpu, cuda or auto')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--size', type=int, default=256, help='LR side (output is 4x)')
    p.add_argument('--reps', type=int, default=3, help='timed interleaved rounds')
    p.add_argument('--compile', action='store_true', help='also time torch.compile (slow to compile on 2 cores)')
    p.add_argument('--checkpoint', help='a trained generator (save_generator file) for the quality check')
    p.add_argument('--train-seconds', type=float, default=60, help='train a bicubic_skip generator this long when no checkpoint')
    p.add_argument('--skip-speed', action='store_true'); p.add_argument('--skip-quality', action='store_true')
    p.add_argument('--tile', type=int, default=256)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    pd.set_option('display.width', 200); pd.set_option('display.max_columns', 20)
    print(f'load average {Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"}')
    print(f'torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, cpu bf16 native: {cpu_supports_bf16()}, '
          f"pick_precision('auto') -> {pick_precision('auto', dev)}")
    gen = Generator().eval()
    if not a.skip_speed:
        print(f'\n== speed: {a.size}x{a.size} -> {4 * a.size}x{4 * a.size}, default generator (16 blocks, 64 ch), '
              f'best of {a.reps} interleaved rounds ==')
        df, flops = bench_speed(gen, dev, a.size, a.reps, a.compile)
        print(f'forward FLOPs: {flops / 1e9:.1f} GFLOP')
        print(df.to_string(index=False))
        peaks = {f'{prec}{" + channels_last" if cl else ""}': conv_peak(dev, prec, cl)
                 for prec in ('fp32', 'bf16') for cl in (False, True)}
        print('conv peak, 64->64 3x3 on 1x64x256x256, GFLOP/s (wall, per CPU-second):', peaks)
        x = (np.random.default_rng(0).random((a.size, a.size, 3)) * 255).astype(np.uint8)
        for prec in ('fp32', pick_precision('auto', dev)):
            g = prepare_generator(gen, dev, prec)
            upscale_image(g, x, tile=a.tile, device=dev, precision=prec)
            ts = []
            for _ in range(a.reps):
                t = time.perf_counter(); upscale_image(g, x, tile=a.tile, device=dev, precision=prec); ts.append(time.perf_counter() - t)
            print(f'upscale_image end to end ({prec}, tile {a.tile}, uint8 in/out): best {min(ts):.2f} s, median {np.median(ts):.2f} s')
    if not a.skip_quality:
        print('\n== quality: bf16 vs fp32 (the 0.05 dB rule) ==')
        ck = a.checkpoint or newest_checkpoint()
        if ck:
            from srgan_nb.train import load_generator
            qgen = load_generator(ck, device=dev)
            print(f'  generator: {ck} ({getattr(qgen, "meta", {})})')
        else: qgen = train_quickly(a.train_seconds, dev)
        q = bench_quality(qgen, dev, a.tile)
        print(q.round(3).to_string(index=False))
        worst = float(q.bf16_minus_fp32_db.abs().max())
        print(f'mean PSNR: bicubic {q.psnr_bicubic.mean():.3f}, fp32 {q.psnr_fp32.mean():.3f}, bf16 {q.psnr_bf16.mean():.3f} dB; '
              f'worst |bf16 - fp32| = {worst:.4f} dB -> 0.05 dB rule {"met" if worst <= 0.05 else "NOT met"}')
        print('  (rule of thumb: an independent deviation costs <= 0.05 dB while PSNR(bf16, fp32) exceeds PSNR(fp32, HR) by 19.4 dB or more)')


if __name__ == '__main__':
    main()
