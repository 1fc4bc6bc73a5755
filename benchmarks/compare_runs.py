"""Compare the SRGANs of several runs on the same test photos: the GAN-recipe comparison of nbs/04_train.

Each run's evaluate stage wrote eval/per_image.csv for its strategy; runs made with the same data, seed and split
score the same test photos, so the differences pair photo by photo. Printed per run: the mean of every metric
(SRGAN, and the run's SRResNet, bicubic and HR rows), then paired differences (mean [95% BCa]) of each run's SRGAN
against its own SRResNet and against the SRGAN of the first run named with --against, and the discriminator's
pairwise accuracy per GAN epoch (history.csv).

    SRGAN_REPORTS=/work/runs .venv/bin/python benchmarks/compare_runs.py --strategy s2 \
        --runs s2-base s2-new s2-new-noadv s2-paper --against s2-new-noadv
"""
import argparse, os, warnings
from pathlib import Path

import pandas as pd

from srgan_nb import stats
from srgan_nb.config import reports_files
from srgan_nb.suite import REGISTRY, REFERENCE_METHOD, whole_images
from srgan_nb.train import read_history

SHOWN = ('psnr', 'psnr_rgb', 'stlpips', 'niqe', 'chroma_err', 'face_dist', 'haarpsi', 'ssim')


def load(run: str, strategy: str) -> pd.DataFrame:
    p = reports_files().run(run).strategy(strategy).eval.per_image
    if not p.exists(): raise SystemExit(f"{p} is missing: run the pipeline for {run} first")
    # runs evaluated before hr_rows existed hold the HR reference rows twice (trained and untrained calls): keep one
    return whole_images(pd.read_csv(p)).drop_duplicates(['image_id', 'method']).assign(run=run)


def paired(a: pd.DataFrame, b: pd.DataFrame, metrics) -> dict:
    "mean [BCa] of a - b per metric over the photos both scored."
    m = a[['image_id', *metrics]].merge(b[['image_id', *metrics]], on='image_id', suffixes=('', '_b'))
    out = {}
    for k in metrics:
        d = (m[k] - m[k + '_b']).dropna()
        if len(d) < 3: continue
        s = stats.describe(d, what=k)
        out[k] = f"{s['mean']:+.{REGISTRY[k].digits}f} [{s['bca_low']:+.{REGISTRY[k].digits}f}, {s['bca_high']:+.{REGISTRY[k].digits}f}]"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', nargs='+', required=True)
    ap.add_argument('--strategy', default='s2')
    ap.add_argument('--against', default=None, help="a run whose SRGAN every other run's SRGAN is paired with")
    a = ap.parse_args(argv)
    warnings.simplefilter('ignore', stats.StatsWarning)
    frames = {r: load(r, a.strategy) for r in a.runs}
    metrics = [m for m in SHOWN if all(m in f for f in frames.values())]
    rows = []
    for r, f in frames.items():
        for meth in ('bicubic', 'srresnet', 'srgan', REFERENCE_METHOD):
            g = f[f.method == meth]
            if len(g): rows.append(dict(run=r, method=meth, n=len(g), **g[metrics].mean().round(4).to_dict()))
    pd.set_option('display.width', 200); pd.set_option('display.max_columns', 20)
    print(f"means over whole test photos ({a.strategy}):"); print(pd.DataFrame(rows).to_string(index=False))
    print("\nSRGAN minus its own SRResNet (mean [95% BCa], paired over photos):")
    print(pd.DataFrame({r: paired(f[f.method == 'srgan'], f[f.method == 'srresnet'], metrics) for r, f in frames.items()}).T.to_string())
    if a.against:
        ref = frames[a.against]
        print(f"\nSRGAN minus the SRGAN of {a.against}:")
        print(pd.DataFrame({r: paired(f[f.method == 'srgan'], ref[ref.method == 'srgan'], metrics)
                            for r, f in frames.items() if r != a.against}).T.to_string())
    print("\nD pairwise accuracy per GAN epoch (mode D trains in; eval mode):")
    for r in a.runs:
        h = read_history(reports_files().run(r).strategy(a.strategy).history)
        g = h[h.phase == 'gan']
        ev = '' if g.d_pair_acc_eval.isna().all() else ' | eval ' + ' '.join(f'{v:.2f}' for v in g.d_pair_acc_eval)
        print(f"  {r}: {' '.join(f'{v:.2f}' for v in g.d_pair_acc)} ({g.d_health_mode.dropna().iloc[-1] if g.d_health_mode.notna().any() else 'eval'}){ev}")


if __name__ == '__main__':
    main()
