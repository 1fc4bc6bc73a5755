"""Patch extraction throughput (images/s) with 1 and 2 worker processes, side by side, bypassing the cache.

Usage: .venv/bin/python benchmarks/bench_data.py [--n 400] [--repeats 2] [--face-aware]
Reads the shared face crops (../shared/data/faces-utk); falls back to the packaged sample photos when absent.
"""
import argparse, platform, statistics, time
from concurrent.futures import ProcessPoolExecutor

from srgan_nb import data as D, sources as So
from srgan_nb.config import shared_data


def images(n):
    "Up to `n` (image_id, path) pairs from faces-utk, or the sample photos."
    utk = shared_data('faces-utk')
    if utk is not None: return 'faces-utk', So.order_images(So.list_images(utk), 0)[:n]
    s = So.sample_images()
    return 'samples', (s['faces'] + s['natural'])[:n]


def run_once(items, workers, face_aware=False):
    "Seconds to extract 10 patches of 96 px (x4 LR) from every image, pool start-up included."
    jobs = [dict(path=p, image_id=i, hr_size=96, scale=4, n=10, seed=42, face_aware=face_aware) for i, p in items]
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool: res = D._run_jobs(jobs, pool)
    else: res = D._run_jobs(jobs)
    dt = time.perf_counter() - t0
    assert sum(r['ok'] for r in res) == len(jobs), 'some images failed'
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=400)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--face-aware', action='store_true')
    a = ap.parse_args()
    src, items = images(a.n)
    print(f"patch extraction: {len(items)} images from {src}, 10 patches of 96 px each, x4 LR, face_aware={a.face_aware}; "
          f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs")
    run_once(items[:8], 1, a.face_aware)                      # warm the file cache and imports
    times = {1: [], 2: []}
    for _ in range(a.repeats):
        for w in (1, 2): times[w].append(run_once(items, w, a.face_aware))
    for w, ts in times.items():
        med = statistics.median(ts)
        print(f"  workers={w}: {len(items) / med:7.1f} images/s  ({10 * len(items) / med:7.0f} patches/s; "
              f"median of {len(ts)} runs: {', '.join(f'{t:.2f}s' for t in ts)})")
    print(f"  speed-up 2 vs 1 workers: {statistics.median(times[1]) / statistics.median(times[2]):.2f}x")


if __name__ == '__main__':
    main()
