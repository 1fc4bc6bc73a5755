"Report figures, tables and text on small made-up frames; HTML rendering hides code and embeds images."
import dataclasses
import json

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

from srgan_nb.config import RunConfig, QUICK_CAPS, save_config
from srgan_nb import report as R, figures as F, tables as T, stats
from srgan_nb.testing import fake_history, fake_per_image
from srgan_nb.train import history_frame


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close('all')


def test_loss_table_keeps_the_seed_columns_and_values():
    h = fake_history(pretrain_epochs=1, epochs=2)
    t = T.loss_table(h)
    assert list(t.columns[:5]) == ['epoch', 'phase', 'generator loss', 'discriminator loss (fake)', 'discriminator loss (real)']
    assert t['generator loss'].tolist() == pytest.approx(h['g_loss'].tolist(), abs=1e-4)
    assert t['discriminator loss (real)'].isna().tolist() == [True, False, False]   # no discriminator while pretraining


def test_plot_losses_draws_generator_per_phase_and_both_discriminator_curves():
    fig = F.plot_losses(fake_history(pretrain_epochs=2, epochs=3))
    assert len(fig.axes[0].lines) == 2                        # pretrain and gan
    assert len(fig.axes[1].lines) == 2                        # fake and real
    np.testing.assert_allclose(fig.axes[1].lines[0].get_xdata(), [3, 4, 5])
    fig.canvas.draw()
    ticks = [t for ax in fig.axes for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)   # integer epoch ticks
    fig = F.plot_losses(fake_history(pretrain_epochs=2, epochs=0))
    assert len(fig.axes[1].lines) == 0


def test_headline_means_and_abstract_use_image_level_rows():
    pi = fake_per_image(n=4, strategies=('s2',))
    patch = pi.assign(level='patch', psnr=0.0)                # patch rows must not leak into the headline
    hm = R.headline_means(pd.concat([pi, patch]))
    want = pi[pi.method == 'srgan'].psnr.mean()
    assert hm.loc['srgan', 's2'] == pytest.approx(want)
    run = R.Run(run_id='r', strategies=['s2'], cfg=RunConfig(), per_image=pi, data_summary={'source': 'folder', 'demo': False})
    ab = R.abstract_markdown(run)
    assert f"SRGAN {want:.2f}" in ab and 'On 4 held-out test images' in ab and 'demo data' not in ab


def test_interval_table_and_plot_from_stats_summarize():
    stats = pytest.importorskip('srgan_nb.stats')
    pi = fake_per_image(n=6)
    s = stats.summarize(pi, metrics=['psnr', 'ssim'], n_resamples=199)
    it = T.interval_table(s)
    row = it[(it.method == 'SRGAN') & (it.strategy == 's1') & (it.metric == 'psnr')].iloc[0]
    src = s[(s.method == 'srgan') & (s.strategy == 's1') & (s.metric == 'psnr')].iloc[0]
    assert row['mean'] == f"{src['mean']:.3f}" and row['95% CI (t)'] == f"[{src['t_low']:.3f}, {src['t_high']:.3f}]"
    fig = F.plot_intervals(s, ['psnr'])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_yticklabels()) == 6    # 3 methods x 2 strategies


def test_plot_intervals_on_a_fake_summary():
    s = stats.summarize(fake_per_image(n=5), metrics=('psnr', 'ssim'))
    fig = F.plot_intervals(s)
    ax = fig.axes[0]
    means = sorted(l.get_xdata()[0] for l in ax.lines if l.get_marker() == 'o')
    assert means == pytest.approx(sorted(s[s.metric == 'psnr']['mean']))


def test_distributions_skip_absent_metrics():
    fig = F.plot_distributions(fake_per_image(n=4), ('psnr', 'lpips', 'ssim'))
    assert len(fig.axes) == 2


def test_strategy_comparison_is_paired_and_signed():
    pi = fake_per_image(n=6)
    pi.loc[(pi.strategy == 's1') & (pi.method == 'srgan'), 'psnr'] += 1.0
    sc = R.strategy_comparison(pi, 's1', 's2', metrics=('psnr',), methods=('srgan',), n_resamples=499)
    w = pi[pi.method == 'srgan'].pivot_table(index='image_id', columns='strategy', values='psnr')
    r = sc.iloc[0]
    assert r['mean_diff'] == pytest.approx((w.s1 - w.s2).mean())
    assert r['t_low'] < r['mean_diff'] < r['t_high'] and r['bca_low'] < r['mean_diff'] < r['bca_high']
    assert {'wilcoxon_p', 'ttest_p', 'cohens_dz'} <= set(sc.columns)
    t = T.paired_table(sc)                                           # laid out like the comparison with bicubic
    assert t.loc[0, 'method'] == 'SRGAN: s1 - s2' and t.loc[0, 'difference'] == f"{r['mean_diff']:+.2f}"
    assert R.strategy_comparison(pi[pi.strategy == 's1'], 's1', 's2').empty     # nothing to pair


def test_styled_hides_index_rounds_and_dashes_nan():
    h = fake_history(pretrain_epochs=1, epochs=1)
    html = T.styled(T.loss_table(h)).to_html()
    assert 'row_heading' not in html and '\u2013' in html               # no 0,1,2 index; NaN as an en dash
    assert f"{h['g_loss'][0]:.4f}" in html and f"{h['val_psnr'][0]:.2f}</td>" in html
    assert '>nan<' not in html.lower()


def test_training_photos_come_from_the_train_summary():
    run = R.Run(run_id='r', strategies=['s2'], cfg=RunConfig(), configs={'s2': RunConfig(n_train=12)},
               train_summaries={'s2': {'n_train_images': 6}}, split=None, data_summary={'source': 'folder'})
    assert R.n_train_used(run, 's2') == 6
    assert '6 training photos' in R.abstract_markdown(run) and '12 training' not in R.abstract_markdown(run)
    assert R.data_table(run).set_index('item').loc['training photos used by s2', 'value'] == '6 (asked for 12)'


def test_model_table_names_the_bicubic_skip():
    on = R.model_table(RunConfig(n_blocks=1, channels=8, bicubic_skip=True))['architecture'][0]
    off = R.model_table(RunConfig(n_blocks=1, channels=8, bicubic_skip=False))['architecture'][0]
    assert 'SRResNet with a bicubic skip (residual learning)' in on and 'bicubic' not in off


def test_comparison_grid_and_examples():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    fig = F.comparison_grid([('a', {'LR': img[::4, ::4], 'bicubic': img, 'HR': img})] * 2)
    assert len(fig.axes) == 6 and fig.axes[2].get_title() == 'HR'
    fig = F.example_figure([('x', img)], scale=4)
    assert [a.get_title() for a in fig.axes] == ['HR 32x32', 'LR 8x8', 'LR enlarged (bicubic x4)']
    with pytest.raises(ValueError, match='no images'): F.comparison_grid([])


def test_limitations_name_backbone_quick_caps_and_coverage():
    run = R.Run(run_id='r', strategies=['s2'], cfg=RunConfig(quick=True), train_summaries={'s2': {'backbone': 'effnet_lite0'}},
               data_summary={'source': 'samples', 'demo': True})
    lm = R.limitations_markdown(run)
    assert 'effnet_lite0' in lm and 'demo data' in lm and 'test images only' not in lm   # that one holds for every run: markdown
    assert all(f'{k}={v}' in lm for k, v in QUICK_CAPS.items())
    assert 'Quick mode' not in R.limitations_markdown(dataclasses.replace(run, cfg=RunConfig()))
    assert 'Bicubic skip' in lm                                            # bicubic_skip is on by default
    assert 'Bicubic skip' not in R.limitations_markdown(dataclasses.replace(run, cfg=RunConfig(bicubic_skip=False)))


def test_the_reports_fixed_prose_is_markdown_in_the_report_notebook():
    "The sections in order, and the prose that holds for every run, are markdown cells of nbs/pipeline/report.ipynb (the code builds only sentences from numbers)."
    from pathlib import Path
    nb = nbformat.read(Path(__file__).resolve().parents[1]/'nbs'/'pipeline'/'report.ipynb', as_version=4)
    text = '\n'.join(c.source for c in nb.cells if c.cell_type == 'markdown')
    heads = [l for l in text.splitlines() if l.startswith('## ')]
    assert heads == ['## Abstract', '## Introduction', '## Data flow', '## Data', '## Training', '## Results', '## Strategy comparison',
                     '## Limitations', '## Applications and a caution', '## Conclusion', '## References', '## Provenance']
    for want in ('SRGAN (Ledig et al., 2017) adds a discriminator', 'test images only', 'clean bicubic downsample',       # introduction, limitations
                 'Surveillance', 'Medical', 'restoration', 'must never\nbe used to identify a person',                    # applications and the caution
                 'Each strategy was trained once', 'Ledig, C. et al. (2017)', 'Efron, B. (1987)', 'Kingma, D. P. and Ba, J. (2015)'):
        assert want in text, want
    code = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
    assert 'Ledig' not in code and 'Surveillance' not in code and 'def ' not in code and 'for ' not in code   # thin: no prose, no loops


def test_load_run_reads_the_stage_files(tmp_path):
    rd = tmp_path/'runs'/'r1'
    (rd/'data').mkdir(parents=True); (rd/'s2'/'eval').mkdir(parents=True)
    save_config(RunConfig(run_id='r1', quick=True), rd/'config.json')
    save_config(RunConfig(run_id='r1', quick=True, n_train=5), rd/'s2'/'config.json')
    pd.DataFrame(dict(image_id=['a', 'b', 'c'], path='p', split=['train', 'val', 'test'], order=0)).to_csv(rd/'data'/'split.csv', index=False)
    (rd/'data'/'summary.json').write_text(json.dumps({'source': 'samples', 'demo': True}))
    history_frame(fake_history().to_dict('records')).to_csv(rd/'s2'/'history.csv', index=False)   # the columns train writes
    (rd/'s2'/'train_summary.json').write_text(json.dumps({'device': 'cpu', 'precision': 'fp32', 'backbone': 'effnet_lite0', 'seconds': 12.3}))
    fake_per_image(n=3, strategies=('s2',)).drop(columns='strategy').to_csv(rd/'s2'/'eval'/'per_image.csv', index=False)
    (rd/'timings.json').write_text(json.dumps({'train_s2': {'seconds': 3.5, 'status': 'ran'}}))
    run = R.load_run(rd)
    assert run.strategies == ['s2'] and run.configs['s2'].n_train == 5
    assert set(run.per_image.strategy) == {'s2'} and len(run.per_image) == 9
    dt = R.data_table(run).set_index('item')['value']
    assert dt['test photos'] == '1' and dt['training photos used by s2'] == '1 (asked for 5)' and dt['demo data'] == 'yes'
    pv = R.provenance_table(run).set_index('item')['value']
    assert pv['s2: backbone'] == 'effnet_lite0' and pv['time: train_s2'] == '4 s' and pv['s2: training time'] == '12 s' and pv['seed'] == '42'


def test_render_html_hides_code_drops_warnings_embeds_images(tmp_path):
    import base64, io
    buf = io.BytesIO(); F.plot_losses(fake_history()).savefig(buf, format='png')
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell('# My title'),
                nbformat.v4.new_code_cell('very_secret_code()', outputs=[
                    nbformat.v4.new_output('display_data', {'image/png': base64.b64encode(buf.getvalue()).decode(), 'text/plain': 'fig'}),
                    nbformat.v4.new_output('stream', name='stderr', text='UserWarning: noisy'),
                    nbformat.v4.new_output('stream', name='stdout', text='printed value 123')])]
    nbformat.write(nb, tmp_path/'r.ipynb')
    from srgan_nb.render import render_html
    html = render_html(tmp_path/'r.ipynb', tmp_path/'out'/'report.html').read_text()
    assert 'data:image/png;base64' in html and 'My title' in html and 'printed value 123' in html
    assert 'very_secret_code' not in html and 'noisy' not in html


def test_readable_summary_names_metrics_and_methods():
    stats = pytest.importorskip('srgan_nb.stats')
    pi = fake_per_image(n=5, strategies=('s2',))
    pi = pd.concat([pi, pi[pi.method == 'bicubic'].assign(method='bicubic_skip_init', psnr=lambda d: d.psnr + .2)])
    with pytest.warns(stats.StatsWarning):                     # the reference's differences have no spread here
        t = T.readable_summary(stats.summary_table(pi, ['psnr', 'ssim'], n_resamples=199))
    assert {'PSNR (dB, Y)', 'SSIM (Y)', 'Δ PSNR vs bicubic', 'Wilcoxon p, SSIM'} <= set(t.columns)
    assert 'Untrained (bicubic skip)' in t.index.get_level_values('method')
    assert t.loc[('s2', 'Untrained (bicubic skip)'), 'Δ PSNR vs bicubic'].startswith('+0.20')


def test_data_flow_diagram_is_the_librarys(tmp_path):
    "docs/data_flow.svg (shown in the README) is exactly what the library draws now (`make diagram` rewrites it)."
    from pathlib import Path
    F.save_data_flow(tmp_path/'df.svg')
    shipped = Path(__file__).resolve().parents[1]/'docs'/'data_flow.svg'
    assert shipped.read_bytes() == (tmp_path/'df.svg').read_bytes(), 'docs/data_flow.svg is stale: run `make diagram`'
    from srgan_nb.render import external_resources
    assert external_resources((tmp_path/'df.svg').read_text()) == []  # namespace URIs only, nothing to fetch
