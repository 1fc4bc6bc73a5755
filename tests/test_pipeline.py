"The pipeline: per-strategy configs, stage skipping and rerun, failure messages, run listing, and a tiny real run through papermill."
import json, os, re
from pathlib import Path

import nbformat
import pytest

from srgan_nb.config import make_config, run_path, load_config, config_dict
from srgan_nb import pipeline as P

# ---------------------------------------------------------------- configs and plan (no kernels)

def test_each_strategy_gets_its_own_fields_unless_overridden(reports_tmp):
    cfg = make_config('s1', overrides=dict(seed=3))
    s1, s2 = P.strategy_config(cfg, 's1'), P.strategy_config(cfg, 's2')
    assert (s1.epochs, s1.batch_size, s1.n_train) == (10, 1, 600)
    assert (s2.epochs, s2.batch_size, s2.n_train) == (5, 10, 100)
    assert s1.seed == s2.seed == 3 and s1.run_id == s2.run_id
    cfg = make_config('s1', overrides=dict(batch_size=4))
    assert P.strategy_config(cfg, 's2').batch_size == 4 and P.strategy_config(cfg, 's2').epochs == 5
    # a value equal to the strategy default counts as set when the user set it: the config remembers (make_config)
    cfg = make_config('s2', overrides=dict(n_train=100))
    assert cfg.user_set == {'n_train'} and P.strategy_config(cfg, 's1').n_train == 100
    assert P.strategy_config(cfg, 's1', overrides={}).n_train == 600
    # what the user set is a field: a config read back from JSON knows it too
    import dataclasses
    from srgan_nb.config import load_config, save_config
    back = load_config(save_config(make_config('s2', overrides=dict(n_train=100)), reports_tmp/'c.json'))
    assert back.user_set == {'n_train'} and P.strategy_config(back, 's1').n_train == 100
    # a config that does not know (rebuilt with overrides by a stage): values that differ from the strategy's count as set
    assert P.strategy_config(dataclasses.replace(back, user_set=None), 's1').n_train == 600


def test_plan_hashes_follow_parameters(reports_tmp):
    cfg = make_config('s2', quick=True, data_source='samples')
    plan = {p.key: p for p in P.pipeline_plan(cfg, ('s1', 's2'))}
    assert list(plan) == ['prepare_data', 'train_s1', 'evaluate_s1', 'train_s2', 'evaluate_s2', 'report']
    again = {p.key: p.hash for p in P.pipeline_plan(make_config('s2', quick=True, data_source='samples', num_workers=0), ('s1', 's2'))}
    assert again == {k: p.hash for k, p in plan.items()}                      # num_workers does not shape results
    lr = {p.key: p.hash for p in P.pipeline_plan(make_config('s2', quick=True, data_source='samples', lr_g=3e-4, run_id=cfg.run_id), ('s1', 's2'))}
    assert lr['prepare_data'] == plan['prepare_data'].hash and lr['train_s1'] != plan['train_s1'].hash
    assert P.pipeline_plan(cfg, ('s2',), force=True)[1].params['overrides'] == {'progress': False, 'resume': False}
    with pytest.raises(ValueError, match='s9'): P.pipeline_plan(cfg, ('s9',))


def test_stage_config_reads_the_run_folder(reports_tmp):
    cfg = make_config('s2', quick=True, n_test=3)
    rd = run_path(cfg)
    (rd/'config.json').write_text(json.dumps(config_dict(cfg)))
    c = P.stage_config(str(rd), 's1', None, {'seed': 5})
    assert (c.strategy, c.n_test, c.seed, c.batch_size, c.run_id) == ('s1', 3, 5, 1, rd.name)


# ---------------------------------------------------------------- orchestration with fake stage notebooks

FAKE = {
    'prepare_data': """
rd = Path(run_dir); (rd/'data').mkdir(parents=True, exist_ok=True); (rd/'data'/'split.csv').write_text('x')""",
    'train': """
rd = Path(run_dir); out = rd/strategy; out.mkdir(parents=True, exist_ok=True)
flag = Path(os.environ.get('FAKE_FAIL', '/nonexistent'))
if flag.exists() and strategy in flag.read_text(): raise ValueError(f'boom in {strategy}')
(out/'history.csv').write_text('epoch'); (out/'generator_srgan.pt').write_text('g')""",
    'evaluate': """
rd = Path(run_dir); (rd/strategy/'eval').mkdir(parents=True, exist_ok=True); (rd/strategy/'eval'/'per_image.csv').write_text('x')""",
    'report': """
rd = Path(run_dir); print('fake report for', strategies)""",
}


@pytest.fixture
def fake_nbs(tmp_path, monkeypatch, reports_tmp):
    "Stage notebooks that only write the files a stage must leave, and log each run to run_dir/log.txt."
    d = tmp_path/'fake_pipeline'; d.mkdir()
    for stage, code in FAKE.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata['kernelspec'] = {'name': 'srgan-nb', 'display_name': 'srgan-nb', 'language': 'python'}
        params = "run_dir = None\nstrategy = None\nstrategies = None\nconfig_json = None\noverrides = {}\nn_train = None"
        log = f"\nwith open(Path(run_dir)/'log.txt', 'a') as f: f.write('{stage}' + ('_' + strategy if strategy else '') + '\\n')"
        nb.cells = [nbformat.v4.new_code_cell(params, metadata={'tags': ['parameters']}),
                    nbformat.v4.new_code_cell('import os\nfrom pathlib import Path' + log + code)]
        nbformat.write(nb, d/f'{stage}.ipynb')
    monkeypatch.setenv('SRGAN_PIPELINE_NBS', str(d))
    return d


def _log(rd): return (rd/'log.txt').read_text().split() if (rd/'log.txt').exists() else []


def test_rerun_skips_finished_stages_and_reruns_what_changed(fake_nbs, reports_tmp, capfd):
    cfg = make_config('s2', quick=True, data_source='samples', run_id='fake')
    html = P.run_pipeline(cfg, strategies=('s2',), quiet=True)
    rd = html.parent
    assert html.exists() and 'fake report for' in html.read_text()
    assert _log(rd) == ['prepare_data', 'train_s2', 'evaluate_s2', 'report']
    assert sorted(p.stem for p in (rd/'stages').glob('*.json')) == ['evaluate_s2', 'prepare_data', 'report', 'train_s2']
    assert sorted(p.stem for p in (rd/'notebooks').glob('*.ipynb')) == ['evaluate_s2', 'prepare_data', 'report', 'train_s2']
    assert load_config(rd/'s2'/'config.json').batch_size == 10 and (rd/'config.json').exists()
    t = json.loads((rd/'timings.json').read_text())
    assert all(t[k]['status'] == 'ran' and t[k]['seconds'] > 0 for k in ('prepare_data', 'train_s2', 'evaluate_s2', 'report'))
    # the same call again: nothing runs, timings remember the first run
    P.run_pipeline(cfg, strategies=('s2',), quiet=True)
    assert len(_log(rd)) == 4
    t2 = json.loads((rd/'timings.json').read_text())
    assert t2['train_s2']['status'] == 'skipped' and t2['train_s2']['seconds'] == t['train_s2']['seconds']
    # an output gone: that stage and the stages reading it run again, nothing else
    (rd/'s2'/'history.csv').unlink()
    capfd.readouterr()
    P.run_pipeline(cfg, strategies=('s2',))
    assert _log(rd)[4:] == ['train_s2', 'evaluate_s2', 'report']
    out, err = capfd.readouterr()                                     # progress and the stages' printed lines, no kernel chatter
    assert '[1/4] prepare_data: done before, skipped' in out and '[2/4] train s2: done in' in out
    assert "fake report for ['s2']" in out and f'report: {html}' in out
    assert 'Kernel is running' not in out + err
    runs = P.list_runs()
    assert runs.iloc[0].run_id == 'fake' and runs.iloc[0].status == 'complete' and runs.iloc[0].size_mb > 0


def test_failing_stage_names_stage_error_and_notebook_then_resumes(fake_nbs, reports_tmp, tmp_path, monkeypatch):
    flag = tmp_path/'fail'; flag.write_text('s2'); monkeypatch.setenv('FAKE_FAIL', str(flag))
    cfg = make_config('s2', quick=True, data_source='samples', run_id='failing')
    with pytest.raises(P.StageFailed) as ei:
        P.run_pipeline(cfg, strategies=('s2',), quiet=True)
    e, msg = ei.value, str(ei.value)
    assert e.stage == 'train_s2' and e.ename == 'ValueError' and 'boom in s2' in e.evalue
    assert 'stage train_s2 failed: ValueError: boom in s2' in msg and str(e.notebook) in msg
    nb = nbformat.read(e.notebook, as_version=4)                     # the executed notebook shows the traceback
    assert any(o.get('ename') == 'ValueError' for c in nb.cells for o in c.get('outputs', []))
    rd = run_path(cfg)
    assert P.read_marker(rd, 'prepare_data') and not P.read_marker(rd, 'train_s2')
    assert P.list_runs().set_index('run_id').loc['failing', 'status'].startswith('partial')
    flag.write_text('')                                              # fixed: the rerun resumes after prepare_data
    P.run_pipeline(cfg, strategies=('s2',), quiet=True)
    assert _log(rd) == ['prepare_data', 'train_s2', 'train_s2', 'evaluate_s2', 'report']
    P.remove_runs(['failing'])
    assert not rd.exists() and 'failing' not in set(P.list_runs().run_id)


def test_remove_runs_checks_names_first(reports_tmp):
    a = run_path(make_config('s2', run_id='keep'))
    with pytest.raises(FileNotFoundError, match='nope'): P.remove_runs(['keep', 'nope'])
    with pytest.raises(ValueError, match='not a run id'): P.remove_runs(['../keep'])
    assert a.exists()


# ---------------------------------------------------------------- a tiny real run through papermill

TINY = dict(data_source='folder', n_blocks=2, channels=16, n_train=2, n_val=1, n_test=3, patches_per_image=2, hr_size=64,
            pretrain_epochs=1, epochs=1, batch_size=2, num_workers=0, log_every=1, device='cpu', precision='fp32')


@pytest.fixture
def small_faces(tmp_path):
    "Seven small photos (96x96 crops of the packaged sample images): whole-image evaluation stays cheap."
    from PIL import Image
    from skimage import data as skd
    d = tmp_path/'small'; d.mkdir()
    ims = [skd.astronaut()[:256, 128:384], skd.chelsea(), skd.coffee(), skd.rocket(), skd.astronaut()[200:, 200:],
           skd.chelsea()[50:, 100:], skd.coffee()[100:, 200:]]
    for i, im in enumerate(ims): Image.fromarray(im).resize((96, 96), Image.BICUBIC).save(d/f'face{i}.png')
    return d


def test_tiny_pipeline_end_to_end(reports_tmp, small_faces):
    for m in ('data', 'model', 'losses', 'train', 'metrics', 'stats'):
        pytest.importorskip(f'srgan_nb.{m}')
    cfg = make_config('s2', overrides=dict(TINY, data_dir=str(small_faces)), run_id='tiny')
    html = P.run_pipeline(cfg, strategies=('s2',), quiet=True)
    rd = reports_tmp/'runs'/'tiny'
    assert html == rd/'report.html'
    for f in ('config.json', 'timings.json', 'data/split.csv', 'data/summary.json', 's2/config.json', 's2/history.csv',
              's2/generator_srresnet.pt', 's2/generator_srgan.pt', 's2/train_summary.json', 's2/eval/per_image.csv',
              's2/eval/summary.csv'):
        assert (rd/f).exists(), f
    for k in ('prepare_data', 'train_s2', 'evaluate_s2', 'report'):
        assert (rd/'notebooks'/f'{k}.ipynb').exists() and P.read_marker(rd, k)['hash']
    s2 = load_config(rd/'s2'/'config.json')
    assert (s2.n_blocks, s2.channels, s2.epochs, s2.batch_size) == (2, 16, 1, 2)
    text = html.read_text()
    for want in ('generator loss', 'discriminator loss (fake)', 'discriminator loss (real)',   # the loss table
                 'mean [95% BCa interval]', 'Student t intervals', 'vs bicubic', 'SRGAN - Bicubic', 'Wilcoxon p',  # intervals, paired
                 'fidelity', 'perceptual, independent of training', 'face identity', 'aligned with training',   # metric families
                 'HaarPSI', 'LR consistency', 'SRGAN against SRResNet', 'Discriminator health', 'Zoomed',
                 'Limitations', 'test images only', 'identify', 'Provenance', 'time: train_s2',
                 'Introduction', 'faces enlarged 4x', 'SRGAN (Ledig et al., 2017) adds a discriminator',            # prose and numbers together
                 'Applications and a caution', 'Each strategy was trained once', 'Efron, B. (1987)', 'Best mean per metric'):
        assert want in text, want
    heads = [text.index(f'>{h}<') for h in ('Abstract', 'Introduction', 'Methodology', 'Data flow', 'Training', 'Results',
                                             'Strategy comparison', 'Limitations', 'Applications and a caution', 'Conclusion', 'References', 'Provenance')]
    assert heads == sorted(heads), heads                                                # the sections in the report's order
    from srgan_nb.render import external_resources
    assert external_resources(text) == []                                              # one file: nothing from the network
    assert 'cdn.' not in text.lower() and '<script src=' not in text
    assert 'from srgan_nb' not in text                                                  # code hidden
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64', text)) >= 5                           # examples, losses, distributions, intervals, grid
    before = {k: P.read_marker(rd, k)['finished'] for k in ('prepare_data', 'train_s2', 'evaluate_s2', 'report')}
    P.run_pipeline(cfg, strategies=('s2',), quiet=True)                                 # everything done: all skipped
    assert {k: P.read_marker(rd, k)['finished'] for k in before} == before
    assert P.list_runs().set_index('run_id').loc['tiny', 'status'] == 'complete'


# ---------------------------------------------------------------- killed runs (SIGKILL) resume to the same tables

def _cmd(run_id, data_dir):
    import sys
    sets = dict(TINY, n_train=2, patches_per_image=8, batch_size=1, pretrain_epochs=1, epochs=2, deterministic=True)
    sets.pop('data_source')
    args = [str(Path(sys.executable).parent/'srgan-nb'), 'run', '--strategies', 's2', '--data-dir', str(data_dir), '--run-id', run_id]
    for k, v in sets.items(): args += ['--set', f'{k}={v}']
    return args


def _run_and_kill(args, env, when, timeout=600, delay=0.0):
    "Start the pipeline in its own process group; SIGKILL the whole group `delay` s after `when()` is true. True if it was killed."
    import signal, subprocess, time
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < timeout:
        if when():
            time.sleep(delay)
            if p.poll() is not None: return False
            os.killpg(p.pid, signal.SIGKILL); p.wait(); return True
        time.sleep(0.05)
    p.wait()
    return False


def _tables(rd):
    import pandas as pd
    return {f: pd.read_csv(rd/f) for f in ('s2/eval/per_image.csv', 's2/eval/summary.csv', 's2/history.csv')}


def test_sigkill_mid_epoch_and_during_the_report_then_the_same_tables(reports_tmp, small_faces):
    "The pipeline process group is SIGKILLed in the middle of a GAN epoch and again while the report renders; the same command then finishes with the tables of an uninterrupted run."
    import subprocess, sys
    import numpy as np, pandas as pd
    env = dict(os.environ, SRGAN_REPORTS=str(reports_tmp), SRGAN_PROGRESS='0')
    ref = reports_tmp/'runs'/'straight'
    subprocess.run(_cmd('straight', small_faces), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    rd = reports_tmp/'runs'/'killed'
    def in_gan_epoch():  # pretraining finished, the first GAN epoch has steps behind it and is not finished
        h = rd/'s2'/'history.csv'
        return h.exists() and len(h.read_text().strip().splitlines()) == 2
    assert _run_and_kill(_cmd('killed', small_faces), env, in_gan_epoch, delay=0.4), 'the run ended before it could be killed'
    assert not (rd/'s2'/'train_summary.json').exists()                                   # killed inside the GAN phase
    assert len((rd/'s2'/'history.csv').read_text().strip().splitlines()) < 4
    assert _run_and_kill(_cmd('killed', small_faces), env, lambda: (rd/'notebooks'/'report.ipynb').exists() and not (rd/'report.html').exists())
    assert not (rd/'report.html').exists()
    subprocess.run(_cmd('killed', small_faces), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    assert (rd/'report.html').exists()
    a, b = _tables(rd), _tables(ref)
    for f in a:
        x, y = a[f].drop(columns=[c for c in ('seconds', 'sr_seconds') if c in a[f]]), b[f].drop(columns=[c for c in ('seconds', 'sr_seconds') if c in b[f]])
        assert list(x.columns) == list(y.columns) and len(x) == len(y), f
        num = x.select_dtypes('number').columns
        pd.testing.assert_frame_equal(x.drop(columns=num), y.drop(columns=num), obj=f)
        np.testing.assert_allclose(x[num].to_numpy(float), y[num].to_numpy(float), rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=f)
