"""The sharpening control: the shipped `psnr` followed by an unsharp mask, against `gan`, on the 500 held-out faces.

NIQE rewards plain sharpening, so a realism claim for the GAN must beat a sharpened SRResNet on ST-LPIPS and NIQE.
The mask (`images.unsharp_mask`: radius, percent) is chosen on validation faces, never the held-out ones: the grid
point with the lowest mean NIQE of psnr+USM on the first `--val` photos of the shipped models' training list
(srgan_nb/weights/faces-x4-train.txt.gz, each checked by sha256), and the fairer control, the lowest NIQE among
the masks that keep psnr+USM's Y-PSNR at least gan's there. Then bicubic, psnr, the two controls and gan are scored by
the project's evaluation (fp32, tiled) on the held-out faces: mean [95% BCa] of Y-PSNR, ST-LPIPS, NIQE and chroma
error, and the paired differences gan minus psnr+USM.

    .venv/bin/python benchmarks/bench_sharpen.py --threads 2            # about 10 minutes on 2 cores
"""
from __future__ import annotations
import argparse, itertools, sys, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from srgan_nb import stats
from srgan_nb.config import shared_data
from srgan_nb.evaluate import evaluate
from srgan_nb.images import crop_to_scale, load_image, make_lr, unsharp_mask
from srgan_nb.infer import Upscaler
from srgan_nb.metrics import niqe, psnr
from srgan_nb.pretrained import TRAIN_LIST, weights_dir
from srgan_nb.sources import file_sha256, read_photo_list

RADII, PERCENTS = (0.5, 1.0, 1.5, 2.0, 3.0), (50, 100, 150, 200, 300)
METRICS = ['psnr', 'stlpips', 'niqe', 'chroma_err']


def validation_faces(n: int) -> list[tuple[str, np.ndarray]]:
    "The first `n` photos of the shipped models' training list (checked by sha256): for choosing the mask, never for the claim."
    faces = shared_data('faces-utk')
    if faces is None: raise SystemExit('../shared/data/faces-utk is absent')
    out = []
    for r in read_photo_list(weights_dir()/TRAIN_LIST).itertuples():
        p = faces/r.name
        if p.is_file() and file_sha256(p) == r.sha256: out.append((r.name, load_image(p)))
        if len(out) == n: break
    return out


def mask_grid(up: Upscaler, sharp: Upscaler, faces) -> tuple[pd.DataFrame, float]:
    "Mean NIQE and Y-PSNR of psnr+USM on `faces` at every (radius, percent) of the grid, and `sharp`'s (gan's) mean Y-PSNR there."
    hrs = [crop_to_scale(hr, 4) for _, hr in faces]
    srs = [up(make_lr(hr, 4)) for hr in tqdm(hrs, desc='psnr on the validation faces', leave=False)]
    gan_psnr = float(np.mean([psnr(sharp(make_lr(hr, 4)), hr) for hr in hrs]))
    rows = []
    for r, p in tqdm(list(itertools.product(RADII, PERCENTS)), desc='mask grid', leave=False):
        out = [unsharp_mask(sr, r, p) for sr in srs]
        rows.append(dict(radius=r, percent=p, niqe=float(np.mean([niqe(o) for o in out])), psnr=float(np.mean([psnr(o, hr) for o, hr in zip(out, hrs)]))))
    return pd.DataFrame(rows).sort_values('niqe'), gan_psnr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--val', type=int, default=50, help='validation faces for choosing the mask')
    ap.add_argument('--limit', type=int, help='only the first N held-out photos (a quick look)')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--out', help='also write the per-image metrics to this CSV')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    warnings.simplefilter('ignore', stats.StatsWarning)
    up_psnr, gan = Upscaler('psnr', precision='fp32'), Upscaler('gan', precision='fp32')
    grid, gan_psnr = mask_grid(up_psnr, gan, validation_faces(a.val))
    best, fair = grid.iloc[0], grid[grid.psnr >= gan_psnr].iloc[0]   # sorted by NIQE: the lowest overall, and at gan's fidelity or better
    print(f"masks chosen on {a.val} validation faces: lowest mean NIQE of psnr+USM: radius {best.radius}, percent {best.percent:.0f} "
          f"(Y-PSNR {best.psnr:.2f} dB); lowest NIQE with Y-PSNR at least gan's ({gan_psnr:.2f} dB): radius {fair.radius}, percent {fair.percent:.0f}")
    print(grid.to_string(index=False))
    from bench_quality import heldout_images
    images = heldout_images(a.limit)
    methods = {'bicubic': 'bicubic', 'psnr': up_psnr, 'psnr+usm': lambda lr: unsharp_mask(up_psnr(lr), best.radius, int(best.percent)),
               'psnr+usm@gan-psnr': lambda lr: unsharp_mask(up_psnr(lr), fair.radius, int(fair.percent)), 'gan': gan}
    df = evaluate(methods, images, metrics=METRICS, precision='fp32')
    if a.out: df.to_csv(a.out, index=False)
    img = df[df.method != 'hr']
    summ = stats.summarize(img, METRICS, by=['method'])
    pd.set_option('display.width', 200)
    print(f"\n{img.image_id.nunique()} held-out faces, mean [95% BCa]:")
    for m in methods:
        s = summ[summ.method == m].set_index('metric')
        print(f"  {m:18s} " + '  '.join(f"{k} {stats.fmt_ci(s.loc[k, 'mean'], s.loc[k, 'bca_low'], s.loc[k, 'bca_high'], stats.DIGITS[k])}" for k in METRICS))
    hr = df[df.method == 'hr'].niqe
    print(f"  HR photos' own NIQE {hr.mean():.3f}")
    for a_, b_ in (('gan', 'psnr+usm'), ('gan', 'psnr+usm@gan-psnr'), ('psnr+usm@gan-psnr', 'psnr')):
        d = stats.paired_vs_baseline(img[img.method.isin([a_, b_])], b_, METRICS, by=())
        print(f"\n{a_} minus {b_} (paired):")
        for r in d.itertuples():
            if r.method == a_: print(f"  {r.metric}: {stats.fmt_ci(r.mean_diff, r.bca_low, r.bca_high, stats.DIGITS[r.metric], sign=True)}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
