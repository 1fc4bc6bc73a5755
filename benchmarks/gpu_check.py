"""The GPU check: the CUDA path of srgan-nb on one real GPU in a few minutes, one line per step with its time and result.

    python benchmarks/gpu_check.py                     # on a CUDA machine (make gpu-check)
    python benchmarks/gpu_check.py --device cpu        # the same steps on the CPU (fp16 and torchrun/NCCL skipped): checks the script

Steps: a tiny training (pretraining + GAN epoch, the default recipe: spectral-norm D, chroma anchor, EMA) in fp32, bf16
and fp16; a resume across precisions (a bf16 checkpoint continued in fp16, and back); evaluation on the GPU (PSNR, SSIM
and the other weight-free metrics; ST-LPIPS only where its 64 MB weights are installed); `upscale` of one photo on the
GPU and on the CPU with their agreement (max and mean absolute difference of the 8-bit outputs); the GAN step rate at
batch 1 and 16 (images/s, bf16 where native); `torchrun` with one process on NCCL, and with two where two GPUs exist.

It needs only what the lent GPU machines have: torch and torchvision, numpy, scipy, pandas, scikit-image, matplotlib,
and srgan-nb installed with `pip install --no-deps` (or run from a checkout). It uses no papermill and downloads
nothing; a step whose package or weights are absent says SKIP and why. Exit status 1 when a step failed.
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, time, traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import torch

RESULTS: list[dict] = []


def step(name: str):
    "Run the decorated function now as one step: print `name`, its seconds and its result (or SKIP / FAIL)."
    def run(fn):
        t0 = time.perf_counter()
        try:
            out = fn(); status = 'SKIP' if isinstance(out, str) and out.startswith('skip:') else 'ok'
            text = out[5:].strip() if status == 'SKIP' else out
        except Exception as e:
            status, text = 'FAIL', f"{type(e).__name__}: {e}"
            traceback.print_exc(limit=3, file=sys.stderr)
        sec = time.perf_counter() - t0
        RESULTS.append(dict(step=name, status=status, seconds=round(sec, 2), result=text))
        print(f"{status:<4} {name:<34} {sec:7.1f}s  {text}", flush=True)
        return fn
    return run


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def tiny_config(device, precision, **kw):
    from srgan_nb.config import make_config
    base = dict(hr_size=96, n_blocks=4, channels=32, pretrain_epochs=1, epochs=1, batch_size=8, backbone='effnet_lite0',
                log_every=5, d_health_patches=16, d_health_checks=2, val_photos=0, resume=True, keep_checkpoints=True,
                checkpoint_minutes=0, progress=False)
    return make_config('s2', **(base | dict(device=str(device), precision=precision) | kw))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cuda', help='cuda, cuda:N, or cpu to check the script itself')
    ap.add_argument('--steps', type=int, default=30, help='timed GAN steps per batch size')
    ap.add_argument('--out', default=None, help='also write the results as JSON here')
    args = ap.parse_args(argv)

    from srgan_nb import train as T
    from srgan_nb import steps as St
    from srgan_nb.config import pick_device, pick_precision
    from srgan_nb.testing import toy_patches
    dev = pick_device(args.device)
    gpu = dev.type == 'cuda'
    work = Path(tempfile.mkdtemp(prefix='srgan-gpu-check-'))
    train_set, val_set = toy_patches(64, 96, 4, seed=1), toy_patches(16, 96, 4, seed=2)
    head = (f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
            + (f"{torch.cuda.get_device_name(dev)} (capability {'.'.join(map(str, torch.cuda.get_device_capability(dev)))}), "
               f"{torch.cuda.device_count()} GPU(s)" if gpu else 'CPU only') + f"; auto precision: {pick_precision('auto', dev)}")
    print(f"srgan-nb GPU check on {dev}: {head}", flush=True)

    precisions = ['fp32', 'bf16', 'fp16'] if gpu else ['fp32', 'bf16']
    summaries = {}
    for prec in precisions:
        @step(f"train tiny, {prec}")
        def _():
            cfg = tiny_config(dev, prec)
            hist = T.fit(cfg, train_set, val_set, work/f'train-{prec}')
            s = T.read_train_summary(work/f'train-{prec}')
            summaries[prec] = s
            last = hist.iloc[-1]
            if not np.isfinite(last.g_loss): raise RuntimeError(f"g_loss is {last.g_loss}")
            return (f"{s['images_per_s']:.0f} patches/s, val PSNR {last.val_psnr:.2f} dB (bicubic {last.val_psnr_bicubic:.2f}), "
                    f"D pair acc {last.d_pair_acc:.2f}; numerics {json.dumps(s.get('gpu_numerics', {}))}")

    for a, b in (('bf16', 'fp16'), ('fp16', 'bf16')) if gpu else (('bf16', 'fp32'),):
        @step(f"resume {a} -> {b}")
        def _():
            if a not in summaries: return f"skip: the {a} training failed"
            src, dst = work/f'train-{a}', work/f'resume-{a}-{b}'
            shutil.copytree(src, dst)
            hist = T.fit(tiny_config(dev, b, epochs=2), train_set, val_set, dst)   # one more GAN epoch on the other precision
            return f"epoch {int(hist.epoch.iloc[-1])} trained in {b} after {a}; g_loss {hist.g_loss.iloc[-1]:.4f}"

    @step("evaluate on the device")
    def _():
        from srgan_nb.evaluate import evaluate
        from srgan_nb.model import load_generator
        from srgan_nb.metrics import stlpips_status
        gen = load_generator(work/'train-fp32'/'generator_srgan.pt', device=dev)
        photos = [(f'p{i}', toy_patches(1, 128, 4, seed=10 + i).hr[0]) for i in range(4)]
        metrics = ['psnr', 'ssim', 'psnr_rgb', 'haarpsi'] + (['stlpips'] if stlpips_status()[0] else [])
        df = evaluate({'bicubic': 'bicubic', 'srgan': gen}, photos, metrics=[m for m in metrics], device=dev, progress=False)
        m = df[df.method == 'srgan'].mean(numeric_only=True)
        note = '' if stlpips_status()[0] else ' (ST-LPIPS skipped: its weights did not travel)'
        return f"{len(photos)} photos, srgan PSNR {m.psnr:.2f} dB, SSIM {m.ssim:.4f}{note}"

    @step("upscale GPU vs CPU (fp32)")
    def _():
        from srgan_nb.infer import Upscaler
        lr = toy_patches(1, 384, 4, seed=5).lr[0]   # 96x96 LR, tiled in 48-px tiles
        outs = {d: Upscaler('psnr', device=d, precision='fp32', tile=48)(lr) for d in (dev, 'cpu')}
        diff = np.abs(outs[dev].astype(int) - outs['cpu'].astype(int))
        if diff.max() > 2: raise RuntimeError(f"outputs differ by up to {diff.max()} levels")
        return f"{outs[dev].shape[1]}x{outs[dev].shape[0]} output; max |GPU - CPU| {diff.max()} levels, mean {diff.mean():.4f}"

    for bs in (1, 16):
        @step(f"GAN step rate, batch {bs}")
        def _():
            cfg = tiny_config(dev, 'auto', n_blocks=16, channels=64, batch_size=bs)   # the real generator and D
            s = St.build_train_state(cfg)
            lr = torch.rand(bs, 3, 24, 24, device=dev).contiguous(memory_format=torch.channels_last)
            hr = torch.rand(bs, 3, 96, 96, device=dev).contiguous(memory_format=torch.channels_last)
            for _ in range(3): St.srgan_step(s, lr, hr)
            sync(dev); t0 = time.perf_counter()
            for _ in range(args.steps): St.srgan_step(s, lr, hr)
            sync(dev); sec = (time.perf_counter() - t0) / args.steps
            extra = f"; S1 in full (60,000 GAN steps) ~{60000 * sec / 60:.0f} min" if bs == 1 else ''
            return f"{bs / sec:.1f} images/s, {1000 * sec:.1f} ms/step ({s.precision}){extra}"

    for n in (1, 2):
        @step(f"torchrun, {n} process(es)")
        def _():
            if not gpu: return "skip: NCCL needs a GPU (tests/test_ddp.py runs two ranks on gloo)"
            if torch.cuda.device_count() < n: return f"skip: {torch.cuda.device_count()} GPU(s) here"
            if not torch.distributed.is_nccl_available(): return "skip: this torch has no NCCL"
            code = ("import sys; sys.path.insert(0, %r); from srgan_nb import train as T; from srgan_nb.testing import toy_patches;"
                    "from benchmarks.gpu_check import tiny_config; import torch.distributed as dist;"
                    "h = T.fit(tiny_config('cuda', 'auto'), toy_patches(64, 96, 4, seed=1), toy_patches(16, 96, 4, seed=2), %r);"
                    "T.teardown_distributed()") % (str(Path(__file__).resolve().parents[1]), str(work/f'ddp{n}'))
            script = work/f'ddp{n}.py'; script.write_text(code)
            r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}', str(script)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode: raise RuntimeError(f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
            s = T.read_train_summary(work/f'ddp{n}')
            return f"world size {s['world_size']}, {s['images_per_s']:.0f} patches/s, {s['precision']}"

    bad = [r for r in RESULTS if r['status'] == 'FAIL']
    print(f"{len(RESULTS) - len(bad)} of {len(RESULTS)} steps passed or skipped; {len(bad)} failed" + (f": {', '.join(r['step'] for r in bad)}" if bad else ''))
    if args.out: Path(args.out).write_text(json.dumps(dict(device=str(dev), header=head, steps=RESULTS), indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
