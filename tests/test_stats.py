"Statistics: intervals, coverage, degenerate samples, paired comparisons and the report table."
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from srgan_nb.stats import (StatsWarning, t_interval, bca_interval, describe, image_level, summarize,
                            paired_vs_baseline, numeric_table, summary_table, sample_caveat, coverage, fmt_ci)


def _frame(n=15, effect=0.5, seed=0, strategies=('s1',), patches=1):
    "Per-patch rows for bicubic and srgan on n images: srgan = bicubic + effect + noise."
    rng = np.random.default_rng(seed)
    rows = []
    for s in strategies:
        base = rng.normal(28, 1.5, size=n)
        for i in range(n):
            noise = rng.normal(0, 0.2)
            for p in range(patches):
                jitter = rng.normal(0, 0.5)
                for m, v in (('bicubic', base[i]), ('srgan', base[i] + effect + noise)):
                    rows.append(dict(image_id=f'im{i:02d}', strategy=s, method=m, level='patch' if patches > 1 else 'image',
                                     psnr=v + jitter, ssim=0.8 + 0.01 * (v - 28) + 0.001 * jitter))
    return pd.DataFrame(rows)


def test_t_interval_matches_scipy():
    x = np.random.default_rng(3).normal(5, 2, size=17)
    lo, hi = t_interval(x)
    ref = sps.t.interval(0.95, 16, loc=x.mean(), scale=sps.sem(x))
    assert lo == pytest.approx(ref[0]) and hi == pytest.approx(ref[1])


def test_bca_matches_scipy_and_is_seeded():
    x = np.random.default_rng(4).lognormal(0, 0.6, size=25)
    lo, hi = bca_interval(x, n_resamples=2999, seed=7)
    ref = sps.bootstrap((x,), np.mean, n_resamples=2999, method='BCa', rng=np.random.default_rng(7)).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert bca_interval(x, n_resamples=2999, seed=7) == (lo, hi)
    assert bca_interval(x, n_resamples=2999, seed=8) != (lo, hi)
    # skewed data: BCa is asymmetric about the mean (longer upper arm), unlike the t-interval
    assert hi - x.mean() > x.mean() - lo


def test_coverage_t_and_bca():
    # 2,000 simulated normal samples of n = 30; 999 resamples each for BCa (vectorised: ~1 s).
    # The t-interval is exact here; BCa under-covers slightly at small n (~93.5% at n = 30), and scipy's
    # vectorised bootstrap shares resampling indices across samples, which widens the spread of the
    # estimate (seen 0.914-0.942 over ten seeds): tolerance [0.90, 0.97].
    cov = coverage(n=30, n_sims=2000, n_resamples=999, seed=11)
    assert 0.93 <= cov['t'] <= 0.97, cov
    assert 0.90 <= cov['bca'] <= 0.97, cov


def test_coverage_t_many_samples_skewed():
    # t only, vectorised: 20,000 lognormal samples; with skew it under-covers a little but stays near 95%
    cov = coverage(n=30, n_sims=20000, dist='lognormal', methods=('t',), seed=2)
    assert 0.92 <= cov['t'] <= 0.96, cov


@pytest.mark.parametrize('values', [[28.0], [28.0, 29.0], [27.5, 27.5, 27.5, 27.5], [np.nan, np.nan]])
def test_degenerate_samples_warn_and_give_nan(values):
    with pytest.warns(StatsWarning):
        d = describe(values, what='degenerate')
    assert np.isnan([d['t_low'], d['t_high'], d['bca_low'], d['bca_high']]).all()
    assert d['n'] == sum(np.isfinite(values))


def test_nan_values_are_dropped_with_warning():
    with pytest.warns(StatsWarning, match='dropped 1'):
        d = describe([28.0, 29.0, np.nan, 30.0, 27.0])
    assert d['n'] == 4 and d['mean'] == pytest.approx(28.5)
    assert np.isfinite(d['t_low'])


def test_patches_are_averaged_per_image_first():
    df = _frame(n=8, patches=5)
    il = image_level(df)
    assert len(il) == 16 and set(il.n_rows) == {5}
    s = summarize(df, metrics=['psnr'])
    assert set(s.n) == {8}  # the unit is the image, not the 40 patches
    ref = df[df.method == 'bicubic'].groupby('image_id').psnr.mean()
    row = s[(s.method == 'bicubic')].iloc[0]
    assert row['mean'] == pytest.approx(ref.mean())
    assert row['sd'] == pytest.approx(ref.std(ddof=1))


def test_summarize_groups_by_strategy_and_method():
    df = _frame(n=10, strategies=('s1', 's2'))
    s = summarize(df)
    assert len(s) == 2 * 2 * 2  # strategies x methods x metrics
    assert {'n', 'mean', 'sd', 't_low', 't_high', 'bca_low', 'bca_high'} <= set(s.columns)
    assert (s.t_low < s['mean']).all() and (s['mean'] < s.t_high).all()


def test_paired_detects_effect_and_matches_scipy():
    df = _frame(n=15, effect=0.5)
    p = paired_vs_baseline(df, metrics=['psnr'])
    assert len(p) == 1
    r = p.iloc[0]
    b = df[df.method == 'bicubic'].set_index('image_id').psnr
    s = df[df.method == 'srgan'].set_index('image_id').psnr
    d = (s - b.loc[s.index]).to_numpy()
    assert r.mean_diff == pytest.approx(d.mean())
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(d).pvalue)
    assert r.ttest_p == pytest.approx(sps.ttest_rel(s.to_numpy(), b.loc[s.index].to_numpy()).pvalue)
    assert r.cohens_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.t_low > 0 and r.bca_low > 0 and r.wilcoxon_p < 0.001


def test_paired_no_effect_is_not_significant():
    df = _frame(n=20, effect=0.0, seed=5)
    r = paired_vs_baseline(df, metrics=['psnr']).iloc[0]
    assert r.t_low < 0 < r.t_high and r.wilcoxon_p > 0.05


def test_paired_pairs_only_common_images():
    df = _frame(n=10)
    df = df[~((df.method == 'srgan') & (df.image_id == 'im03'))]
    with pytest.warns(StatsWarning, match='only 9 images'):
        p = paired_vs_baseline(df, metrics=['psnr'])
    assert p.n.iloc[0] == 9


def test_paired_bad_input():
    df = _frame(n=5)
    with pytest.raises(ValueError, match='Baseline'):
        paired_vs_baseline(df, baseline='nearest')
    with pytest.raises(ValueError, match='lpips'):
        summarize(df, metrics=['lpips'])
    with pytest.raises(ValueError, match='image_id'):
        summarize(df.drop(columns='image_id'))


def test_summary_table_strings():
    df = _frame(n=12, strategies=('s1', 's2'))
    tab = summary_table(df)
    assert list(tab.index.names) == ['strategy', 'method']
    assert set(tab.index) == {('s1', 'bicubic'), ('s1', 'srgan'), ('s2', 'bicubic'), ('s2', 'srgan')}
    nt = numeric_table(df)
    r = nt[(nt.strategy == 's2') & (nt.method == 'srgan') & (nt.metric == 'psnr')].iloc[0]
    assert tab.loc[('s2', 'srgan'), 'psnr'] == fmt_ci(r['mean'], r.bca_low, r.bca_high, 2)
    assert tab.loc[('s2', 'srgan'), 'Δpsnr vs bicubic'] == fmt_ci(r.diff_mean_diff, r.diff_bca_low, r.diff_bca_high, 2, sign=True)
    assert tab.loc[('s2', 'bicubic'), 'Δpsnr vs bicubic'] == ''
    t_tab = summary_table(df, interval='t')
    assert t_tab.loc[('s2', 'srgan'), 'psnr'] == fmt_ci(r['mean'], r.t_low, r.t_high, 2)


def test_summary_table_tiny_sample_prints_na():
    df = _frame(n=2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', StatsWarning)
        tab = summary_table(df)
    assert 'n/a' in tab.loc[('s1', 'srgan'), 'psnr']


def test_sample_caveat():
    assert 'Only 5 test images' in sample_caveat(5)
    assert 'undefined' in sample_caveat(2)
    assert 'trained once' in sample_caveat(100) and 'Only' not in sample_caveat(100)
    assert sample_caveat(100, n_runs=3) == ''


def test_compare_strategies():
    from srgan_nb.stats import compare_strategies
    df = _frame(n=12, strategies=('s1',), seed=3)
    rng = np.random.default_rng(9)
    s2 = df.assign(strategy='s2')
    s2.loc[s2.method == 'srgan', 'psnr'] -= 0.4 + rng.normal(0, 0.1, (s2.method == 'srgan').sum())
    both = pd.concat([df, s2])
    cs = compare_strategies(both, 's1', 's2', metrics=['psnr'])
    assert list(cs.method) == ['srgan'] and list(cs.a) == ['s1'] and list(cs.b) == ['s2']
    r = cs.iloc[0]
    d = (df[df.method == 'srgan'].set_index('image_id').psnr - s2[s2.method == 'srgan'].set_index('image_id').psnr)
    assert r.mean_diff == pytest.approx(d.mean()) and r.n == 12
    assert r.t_low > 0 and r.wilcoxon_p < 0.001
    with pytest.raises(ValueError, match='s3'):
        compare_strategies(both, 's1', 's3')
