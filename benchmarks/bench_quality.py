"""Quality and speed of the shipped face models (srgan_nb.pretrained) against bicubic x4.

Sets: the 500 held-out faces-utk photos of the package's list (srgan_nb/weights/heldout_faces_utk.txt; no shipped
model trained on them; each file is checked against its sha256), Set5 and Set14 (../shared/data). Each set is
scored by the project's own evaluation (`srgan_nb.evaluate.evaluate`: HR cropped to a multiple of 4, LR by PIL
bicubic, SR by `infer.Upscaler` in fp32 with tiles), on the Y-PSNR and SSIM of the SR literature and the metrics
that no training loss of the project uses (HaarPSI, FSIM, MDSI, LR consistency, dlib face identity and 68-point
landmark distance; LPIPS when its weights are on disk). Every interval is a 95% BCa bootstrap interval over the
images; every difference is paired (the same images): each model against bicubic, and gan against psnr.

Same-paper peers: with the optional extra installed (pip install 'srgan-nb[peers]'), krasserm's Keras SRResNet and SRGAN
(x4, trained on DIV2K, ported by `srgan_nb.peers`) are scored beside them as the reference rows `krasserm-srresnet` and
`krasserm-srgan`, through the same `infer.Upscaler`; without it the script says why they are missing (--no-peers: leave them out).

Speed: seconds per output megapixel in fp32, tiled (256 LR px), on a 256x256 -> 1024x1024 face-like image (the
held-out photos tiled), beside the peak resident memory; and the same for a 4x larger input, to show that
tiling keeps memory bounded.

    .venv/bin/python benchmarks/bench_quality.py                  # ~5-10 minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_quality.py --sets set5 set14 --write-cards
    # the held-out set on 2 cores: two one-thread parts side by side, then tables, speed and cards from both
    for i in 1 2; do .venv/bin/python benchmarks/bench_quality.py --threads 1 --no-speed --part $i/2 --out bq$i.csv & done; wait
    .venv/bin/python benchmarks/bench_quality.py --from-csv bq1.csv bq2.csv --write-cards
"""
from __future__ import annotations
import argparse, resource, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch

from srgan_nb import stats
from srgan_nb.config import shared_data
from srgan_nb.images import load_image
from srgan_nb.sources import file_sha256, list_images, read_photo_list
from srgan_nb.infer import Upscaler
from srgan_nb.layout import StrategyFiles
from srgan_nb.suite import MetricSuite
from srgan_nb.evaluate import evaluate
from srgan_nb.peers import KRASSERM_FILES, load_krasserm, peers_status
from srgan_nb.pretrained import DEFAULT_RULE, MODEL_NAMES, PHASES, choose_default, mark_default, model_path, shipped_models
from srgan_nb.release import finished_phases, write_model_cards
from srgan_nb.suite import REFERENCE_METHOD, whole_images

METRICS = ['psnr', 'psnr_rgb', 'ssim', 'stlpips', 'niqe', 'chroma_err', 'haarpsi', 'fsim', 'mdsi', 'lr_psnr', 'face_dist', 'lmd', 'lpips']
PAIRS = (('shipped_gan', 'shipped_psnr'), ('shipped_gan', 'krasserm-srgan'), ('shipped_psnr', 'krasserm-srresnet'))


def heldout_images(limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    "The held-out photos, read from ../shared/data/faces-utk after checking each file's sha256."
    faces = shared_data('faces-utk')
    if faces is None: return []
    out = []
    for r in read_photo_list('heldout').itertuples():
        p = faces/r.name
        if not p.is_file() or file_sha256(p) != r.sha256:
            raise SystemExit(f"{p} is missing or is not the held-out photo of the list (sha256 differs)")
        out.append((r.name, load_image(p)))
    return out[:limit] if limit else out


def folder_images(name: str) -> list[tuple[str, np.ndarray]]:
    d = shared_data(name)
    return [(i, load_image(p)) for i, p in list_images(d)] if d is not None else []


def fmt(mean, lo, hi, d, sign=False) -> str:
    return stats.fmt_ci(mean, lo, hi, d, sign=sign)


def tables(df: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Per set and method: mean [BCa] of each metric and its paired difference to bicubic; and the model pairs of PAIRS."
    rows, pair_rows = [], []
    for s, g in df.groupby('set', sort=False):
        summ = stats.summarize(g, metrics, by=['method'])
        diff = stats.paired_vs_baseline(g, 'bicubic', metrics, by=())
        for meth in g.method.unique():
            row = dict(set=s, method=meth, n=int(g[g.method == meth].image_id.nunique()))
            for m in metrics:
                r = summ[(summ.method == meth) & (summ.metric == m)]
                if not len(r) or pd.isna(r['mean'].iloc[0]): continue
                r = r.iloc[0]; dg = stats.DIGITS.get(m, 3)
                row[m] = fmt(r['mean'], r['bca_low'], r['bca_high'], dg)
                dd = diff[(diff.method == meth) & (diff.metric == m)]
                if len(dd): row[f'Δ{m} vs bicubic'] = fmt(dd.mean_diff.iloc[0], dd.bca_low.iloc[0], dd.bca_high.iloc[0], dg, sign=True)
            rows.append(row)
        for a_, b_ in PAIRS:
            if not {a_, b_} <= set(g.method): continue
            gp = stats.paired_vs_baseline(g[g.method.isin([a_, b_])], b_, metrics, by=())
            for r in gp.itertuples():
                if pd.isna(r.mean_diff): continue
                dg = stats.DIGITS.get(r.metric, 3)
                pair_rows.append(dict(set=s, pair=f"{a_.replace('shipped_', '')} - {b_.replace('shipped_', '')}", metric=r.metric, n=r.n,
                                      better='lower' if r.metric in stats.LOWER_IS_BETTER else 'higher',
                                      difference=fmt(r.mean_diff, r.bca_low, r.bca_high, dg, sign=True),
                                      excludes_0=bool(r.bca_low > 0 or r.bca_high < 0)))
    out = pd.DataFrame(rows).fillna('')
    return out[~out.method.str.startswith('fp32_')], pd.DataFrame(pair_rows)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed(names, images, reps: int = 3, folder=None) -> pd.DataFrame:
    "Seconds per output megapixel, fp32, tiled, on a mosaic of held-out faces (or Set14) of 256x256 and 512x512 LR px."
    tiles = [im[:200, :200] for _, im in images if im.shape[0] >= 200 and im.shape[1] >= 200][:16] or [np.zeros((200, 200, 3), np.uint8)]
    big = np.concatenate([np.concatenate(tiles[i:i + 4] + tiles[:max(0, 4 - len(tiles[i:i + 4]))], 1)
                          for i in range(0, 16, 4)], 0)                      # 800 x 800
    rows = []
    for name in names:
        up = Upscaler(model_path(name, folder), device='cpu', precision='fp32', tile=256)
        for side in (256, 512):
            lr = np.ascontiguousarray(big[:side, :side]) if side <= 800 else big
            up(lr[:64, :64])   # warm-up
            before, best = peak_rss_mb(), float('inf')
            for _ in range(reps):
                t = time.perf_counter(); sr = up(lr); best = min(best, time.perf_counter() - t)
            mpx = sr.shape[0] * sr.shape[1] / 1e6
            rows.append(dict(model=name, lr=f"{side}x{side}", output_mpx=round(mpx, 2), seconds=round(best, 2),
                             s_per_mpx=round(best / mpx, 3), peak_rss_mb=round(peak_rss_mb(), 0),
                             rss_growth_mb=round(peak_rss_mb() - before, 0)))
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--sets', nargs='+', default=['heldout', 'set5', 'set14'], choices=['heldout', 'set5', 'set14'])
    ap.add_argument('--limit', type=int, help='only the first N held-out photos (a quick look)')
    ap.add_argument('--part', help="score only part I of N of every set's images (I/N, e.g. 1/2): run N one-thread processes side by "
                                   "side on N cores, each with its own --out, then make the tables from all of them with --from-csv")
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--no-speed', action='store_true')
    ap.add_argument('--write-cards', action='store_true', help='put the tables into the model cards beside the weights')
    ap.add_argument('--out', help='also write the per-image metrics to this CSV')
    ap.add_argument('--from-csv', nargs='+', help="the per-image metrics of earlier --out runs (all parts): tables and cards without scoring again")
    ap.add_argument('--run-dir', help='the faces-x4 run the models came from: also score its fp32 generators, for the cost of fp16')
    ap.add_argument('--weights', help='a folder of shipped models other than the package\'s (models.json and weights)')
    ap.add_argument('--no-peers', action='store_true', help="leave out krasserm's SRResNet and SRGAN (the `peers` extra)")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.part and (a.write_cards or not a.out): raise SystemExit('--part scores a share of the images: give --out, and make tables and cards from all parts with --from-csv')
    names = [n for n in MODEL_NAMES if n in shipped_models(a.weights)]
    if not names: raise SystemExit('no shipped model in this installation')
    suite = MetricSuite(METRICS)          # leaves out what cannot be built here (LPIPS without its torchvision weights), with the reason
    metrics, left_out = suite.metrics, {m: suite.notes.get(m, '') for m in METRICS if m not in suite.metrics}
    peers_ok, peers_why = (False, '--no-peers') if a.no_peers else peers_status()
    peers = {f'krasserm-{k}': load_krasserm(k) for k in KRASSERM_FILES} if peers_ok and not a.from_csv else {}
    if not peers_ok: print(f"krasserm-srresnet and krasserm-srgan left out: {peers_why}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; models: {', '.join(names)}; "
          f"metrics: {', '.join(metrics)}" + ''.join(f" (left out: {m} {w})" for m, w in left_out.items()) + (f"; peers: {', '.join(peers)}" if peers else ''))
    sets = {'heldout': lambda: heldout_images(a.limit), 'set5': lambda: folder_images('Set5'), 'set14': lambda: folder_images('Set14')}
    frames, all_images = [], {}
    from_run = [n for n in names if n in finished_phases(a.run_dir)] if a.run_dir else []  # what that run trained (a GAN-only run: gan)
    for s in ([] if a.from_csv else a.sets):
        images = sets[s]()
        if not images: print(f"{s}: not found (../shared/data), skipped"); continue
        if a.part:
            i, n = (int(v) for v in a.part.split('/'))
            if not 1 <= i <= n: raise SystemExit(f"--part {a.part}: I must be in 1..N")
            images = images[i - 1::n]
        all_images[s] = images
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            originals = {f'fp32_{n}': StrategyFiles(Path(a.run_dir)).generator(PHASES[n][0]) for n in from_run}
            df = evaluate({'bicubic': 'bicubic', **{f'shipped_{n}': model_path(n, a.weights) for n in names}, **peers, **originals},
                          images, scale=4, suite=suite, progress=True, precision='fp32')
        frames.append(df.assign(set=s))
        print(f"{s}: {len(images)} images scored in {time.perf_counter() - t0:.0f} s")
    if a.from_csv:
        df = pd.concat([pd.read_csv(f) for f in a.from_csv], ignore_index=True)
        dup = df.duplicated(['set', 'method', 'image_id'])
        if dup.any(): raise SystemExit(f"{int(dup.sum())} rows scored twice across {a.from_csv}: give each part once")
        all_images = {s: sets[s]() for s in a.sets if s in set(df['set'])} if not a.no_speed else {}
    else: df = pd.concat(frames, ignore_index=True)
    if a.out: df.to_csv(a.out, index=False); print(f"per-image metrics: {a.out}")
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', stats.StatsWarning)
        per, pair = tables(df, metrics)
    with pd.option_context('display.width', 250, 'display.max_columns', 40, 'display.max_colwidth', 40):
        print('\n== mean [95% BCa interval] per set and method; Δ: paired difference to bicubic ==')
        for s, g in per.groupby('set', sort=False): print(f"\n-- {s} --\n" + g.drop(columns='set').T.to_string(header=False))
        if len(pair): print('\n== paired differences (mean [95% BCa]) ==\n' + pair.to_string(index=False))
        if from_run:  # what storing the weights in fp16 costs: the shipped file against the fp32 generator it came from
            t = df.pivot_table(index=['set', 'image_id'], columns='method', values='psnr')
            for n in from_run:
                d = (t[f'shipped_{n}'] - t[f'fp32_{n}']).groupby(level='set')
                print(f"fp16 weights - fp32 weights, {n}, Y-PSNR (dB): " + ', '.join(f"{k} mean {v.mean():+.4f} max |d| {v.abs().max():.4f}"
                                                                                   for k, v in d))
    chosen = None
    h = whole_images(df[df['set'] == 'heldout']) if 'set' in df else df.iloc[:0]
    if len(h) and {'psnr', 'stlpips', 'chroma_err'} <= set(h.columns):   # the `upscale` default, by the stated rule
        means = h[h.method.isin([f'shipped_{n}' for n in names])].groupby('method')[['psnr', 'stlpips', 'chroma_err']].mean()
        chosen = choose_default(means.rename(index=lambda m: m.removeprefix('shipped_')), h[h.method == 'bicubic'].chroma_err.mean())
        print(f"\n== the upscale default, by the rule ({DEFAULT_RULE}) ==\n{chosen[1]}")
    sp = None
    if not a.no_speed:
        sp = speed(names, all_images.get('heldout') or all_images.get('set14') or next(iter(all_images.values())), folder=a.weights)
        print('\n== speed: fp32, tiles of 256 LR px, best of 3 ==\n' + sp.to_string(index=False))
    if a.write_cards:
        cols = ['set', 'method', 'n', 'psnr', 'Δpsnr vs bicubic', 'psnr_rgb', 'ssim', 'stlpips', 'Δstlpips vs bicubic', 'niqe',
                'Δniqe vs bicubic', 'chroma_err', 'Δchroma_err vs bicubic', 'face_dist', 'Δface_dist vs bicubic', 'lmd', 'Δlmd vs bicubic', 'haarpsi', 'lr_psnr']
        q = {}
        for n in names:
            t = per[per.method.isin(['bicubic', f'shipped_{n}', REFERENCE_METHOD])]   # HR's own NIQE: what the SR should reach
            t = t[[c for c in cols if c in t.columns]]
            if sp is not None:
                s1 = sp[(sp.model == n) & (sp.lr == '256x256')]
                if len(s1): t = pd.concat([t, pd.DataFrame([dict(set='speed', method=f'shipped_{n}',
                                                                 n=f"{s1.s_per_mpx.iloc[0]} s per output Mpx (fp32, 2 cores)")])])
            q[n] = t.fillna('')
        if chosen: print(f"wrote {mark_default(*chosen, a.weights)}: default {chosen[0]}")
        for p in write_model_cards(a.weights, quality=q, versus=pair[pair['pair'] == 'gan - psnr'].drop(columns='pair') if len(pair) else None): print(f"wrote {p}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
