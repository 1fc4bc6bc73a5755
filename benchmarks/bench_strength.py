"""The strength dial of the shipped models (`srgan-nb upscale --strength a`) on the 500 held-out faces.

Each strength a = 0, 0.25, 0.5, 0.75, 1 blends the weights of the shipped `psnr` (a = 0) and `gan` (a = 1)
(`model.blend_generators`); each is scored by the project's own evaluation (`evaluate.evaluate`, fp32, tiled) beside
bicubic and the HR photos' own NIQE, on Y-PSNR (distortion), ST-LPIPS and NIQE (perception; neither is a training
loss of the shipped models), chroma error, RGB PSNR, dlib face identity and landmark distance. Printed: mean [95% BCa]
per strength, paired differences of each strength against a = 0, the default strength by `pretrained.DEFAULT_RULE`
(the rule that chose the default model, applied to strengths), and the perception-distortion curve as a figure
(`--figure`).

    # two one-thread parts side by side on 2 cores (about 12 minutes), then the tables and the figure from both
    for i in 1 2; do .venv/bin/python benchmarks/bench_strength.py --threads 1 --part $i/2 --out bs$i.csv & done; wait
    .venv/bin/python benchmarks/bench_strength.py --from-csv bs1.csv bs2.csv --figure docs/strength_curve.png
"""
from __future__ import annotations
import argparse, sys, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pandas as pd
import torch

from srgan_nb import stats
from srgan_nb.evaluate import evaluate
from srgan_nb.infer import CURVE_STRENGTHS as STRENGTHS, Upscaler, blend_method
from srgan_nb.pretrained import choose_default
from srgan_nb.figures import strength_curve_figure, strength_table

METRICS = ['psnr', 'stlpips', 'niqe', 'chroma_err', 'psnr_rgb', 'face_dist', 'lmd']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--limit', type=int, help='only the first N held-out photos (a quick look)')
    ap.add_argument('--part', help='score only part I of N of the photos (I/N): run N one-thread processes side by side')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--out', help='write the per-image metrics to this CSV')
    ap.add_argument('--from-csv', nargs='+', help='the per-image metrics of earlier --out runs (all parts): tables without scoring again')
    ap.add_argument('--figure', help='write the perception-distortion curve to this image file')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.from_csv: df = pd.concat([pd.read_csv(p, dtype={'image_id': str}) for p in a.from_csv], ignore_index=True)
    else:
        from bench_quality import heldout_images
        images = heldout_images(a.limit)
        if not images: raise SystemExit('../shared/data/faces-utk is absent: the held-out faces are needed')
        if a.part:
            i, n = (int(v) for v in a.part.split('/'))
            images = images[i - 1::n]
        methods = {'bicubic': 'bicubic', **{blend_method(s): Upscaler(None, precision='fp32', strength=s) for s in STRENGTHS}}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(images)} held-out photos; strengths {STRENGTHS}", flush=True)
        df = evaluate(methods, images, metrics=METRICS, precision='fp32')
        if a.out: df.to_csv(a.out, index=False)
        if a.part: return 0
    warnings.simplefilter('ignore', stats.StatsWarning)
    table = strength_table(df, METRICS, ends=())
    pd.set_option('display.width', 250); pd.set_option('display.max_columns', 30); pd.set_option('display.max_colwidth', 40)
    print(table.to_string(index=False))
    strengths = [m for m in df.method.unique() if m not in ('bicubic', 'hr')]
    means = df[df.method.isin(strengths)].groupby('method')[['psnr', 'stlpips', 'chroma_err']].mean()
    name, why = choose_default(means, df[df.method == 'bicubic'].chroma_err.mean())
    print(f"\ndefault strength: {name} ({why})")
    if a.figure:
        fig = strength_curve_figure(df, ends=())
        fig.savefig(a.figure, dpi=110, bbox_inches='tight'); print(f"wrote {a.figure}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
