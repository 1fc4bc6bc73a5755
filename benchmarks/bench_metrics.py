"""Metric throughput: images/s of each metric and of the full set on bicubic x4 SR/HR pairs.

Datasets: 200x200 faces from ../shared/data/faces-utk (the first --n-faces files) and Set14 (14 images,
up to 512x768; img_003 is grayscale, loaded as RGB). Without the shared data, the offline sample faces
(skimage astronaut/camera, matplotlib grace_hopper) stand in, cropped to 200x200, and the run says so.
Each metric is timed over all pairs (best of --reps rounds, rounds interleaved over the metrics because
the machine is shared); 'full set' is `MetricSuite` as `evaluate` calls it, and 'evaluate()' adds the
bicubic SR itself and the bookkeeping. LPIPS is timed only when its backbone weights are on disk.

    .venv/bin/python benchmarks/bench_metrics.py                # ~1-2 minutes on 2 shared cores
    .venv/bin/python benchmarks/bench_metrics.py --n-faces 200 --threads 2 --reps 3
"""
from __future__ import annotations
import argparse, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch

from srgan_nb.config import shared_data
from srgan_nb.images import crop_to_scale, load_image, make_lr, bicubic_upscale
from srgan_nb.sources import list_images, sample_images
from srgan_nb import metrics as M, suite as Su, evaluate as E


def pairs_of(images, scale: int = 4):
    "(sr, hr) bicubic pairs of whole images cropped to a multiple of `scale`."
    out = []
    for _, img in images:
        hr = crop_to_scale(img, scale)
        out.append((bicubic_upscale(make_lr(hr, scale), scale), hr))
    return out


def datasets(n_faces: int):
    "name -> list of (image_id, uint8 image)."
    sets = {}
    faces = shared_data('faces-utk')
    if faces is not None:
        files = sorted(p for p in faces.glob('*.jpg'))[:n_faces]
        sets[f'faces-utk 200x200 (n={len(files)})'] = [(p.name, load_image(p)) for p in files]
    else:
        imgs = [(i, load_image(p)[:200, :200]) for i, p in sample_images()['faces']]
        sets[f'sample faces 200x200 (n={len(imgs)}, shared data absent)'] = imgs
    set14 = shared_data('Set14')
    if set14 is not None:
        sets['Set14 (n=14)'] = [(i, load_image(p)) for i, p in list_images(set14)]
    else:
        print('Set14 absent: skipped')
    return sets


def bench(images, suite: Su.MetricSuite, reps: int, scale: int = 4) -> pd.DataFrame:
    pairs = pairs_of(images, scale)
    fns = {
        'psnr (Y)': lambda s, h: M.psnr(s, h, scale),
        'ssim (Y)': lambda s, h: M.ssim(s, h, scale),
        'psnr_rgb': lambda s, h: M.psnr(s, h, scale, y_channel=False),
        'ssim_rgb': lambda s, h: M.ssim(s, h, scale, y_channel=False),
        'vif (Y)': lambda s, h: M.vif(s, h, scale),
    }
    feat = suite.fns.get('feat_dist')
    if feat is not None: fns[f'feat_dist ({feat.name})'] = lambda s, h: feat(s, h, scale)
    if suite.lpips is not None: fns[f'lpips ({suite.lpips.net})'] = lambda s, h: suite.lpips(s, h, scale)
    fns['full set (MetricSuite)'] = lambda s, h: suite(s, h, scale)
    best = {k: float('inf') for k in fns}
    for name, f in fns.items(): f(*pairs[0])  # warm-up (lazy imports, first conv)
    for _ in range(reps):
        for name, f in fns.items():
            t = time.perf_counter()
            for s, h in pairs: f(s, h)
            best[name] = min(best[name], time.perf_counter() - t)
        t = time.perf_counter()
        E.evaluate({'bicubic': 'bicubic'}, images, scale=scale, suite=suite, progress=False)
        best['evaluate() incl. bicubic SR'] = min(best.get('evaluate() incl. bicubic SR', float('inf')), time.perf_counter() - t)
    n = len(pairs)
    return pd.DataFrame([dict(metric=k, seconds=v, images_per_s=n / v, ms_per_image=1000 * v / n) for k, v in best.items()])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n-faces', type=int, default=50)
    ap.add_argument('--reps', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1 is fastest on a shared 2-core machine)')
    ap.add_argument('--lpips-net', default='alex')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        suite = Su.MetricSuite(lpips_net=a.lpips_net)
    print(f"torch {torch.__version__}, {a.threads} thread(s); metrics: {', '.join(suite.metrics)}")
    for k, v in suite.notes.items(): print(f"  {k}: {v}")
    for name, images in datasets(a.n_faces).items():
        shapes = {im.shape[:2] for _, im in images}
        print(f"\n{name}: {len(images)} images, sizes {sorted(shapes)[:3]}{' ...' if len(shapes) > 3 else ''}")
        df = bench(images, suite, a.reps)
        with pd.option_context('display.float_format', '{:.3f}'.format):
            print(df.to_string(index=False))


if __name__ == '__main__':
    main()
