"The `srgan-nb` command: each subcommand reaches its stage, and bad input gives a clear error and exit code 1."
import numpy as np
import pytest
import torch
from PIL import Image

from srgan_nb.cli import main, build_parser
from srgan_nb.model import Generator
from srgan_nb.model import save_generator




def test_help_names_every_stage(capsys):
    with pytest.raises(SystemExit) as e: main(['--help'])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ('prepare', 'train', 'evaluate', 'run', 'runs', 'upscale'): assert cmd in out


def test_bad_override_is_a_clear_error(capsys):
    assert main(['train', '--set', 'batch_size=0']) == 1
    assert 'batch_size must be a positive integer' in capsys.readouterr().err


def test_prepare_then_runs(reports_tmp, capsys):
    assert main(['prepare', '--data-source', 'samples', '--quick', '--strategies', 's2', '--run-id', 'cli-demo']) == 0
    assert (reports_tmp/'runs'/'cli-demo'/'data'/'split.csv').exists()
    assert main(['runs']) == 0
    assert 'cli-demo' in capsys.readouterr().out
    assert main(['runs', '--remove', 'cli-demo']) == 0
    assert not (reports_tmp/'runs'/'cli-demo').exists()


def test_upscale_writes_4x_image(tmp_path):
    g = Generator(n_blocks=1, channels=8, bicubic_skip=True).eval()
    ck = tmp_path/'g.pt'; save_generator(g, ck)
    img = tmp_path/'face.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (21, 30, 3), dtype=np.uint8)).save(img)
    out = tmp_path/'out'
    assert main(['upscale', str(img), '-o', str(out), '--checkpoint', str(ck), '--device', 'cpu', '--precision', 'fp32', '--compare']) == 0
    written = sorted(p.name for p in out.iterdir())
    assert any(n.endswith('_sr.png') for n in written), written
    sr = Image.open(next(p for p in out.iterdir() if p.name.endswith('_sr.png')))
    assert sr.size == (120, 84)


def test_upscale_missing_checkpoint(tmp_path, capsys):
    img = tmp_path/'a.png'; Image.new('RGB', (8, 8)).save(img)
    assert main(['upscale', str(img), '-o', str(tmp_path/'o'), '--checkpoint', str(tmp_path/'nope.pt')]) == 1
    assert 'nope.pt' in capsys.readouterr().err


def test_evaluation_scores_exactly_what_upscale_writes(tmp_path):
    "Same LR, fp32, PNG, same tiling: the SR image the evaluation scores is byte for byte the file `srgan-nb upscale` writes."
    from skimage import data as skd
    from srgan_nb import metrics as M, evaluate as E
    from srgan_nb.images import make_lr, load_image
    torch.manual_seed(3)
    g = Generator(n_blocks=2, channels=8, bicubic_skip=True)
    with torch.no_grad(): g.tail.weight.normal_(0, 0.02)  # a generator whose output is far from bicubic
    ck = tmp_path/'generator_test.pt'; save_generator(g, ck)
    hr = skd.astronaut()[40:240, 150:350]                # 200x200: LR 50x50, tiles of 16 -> 4x4 tiles
    Image.fromarray(make_lr(hr, 4)).save(tmp_path/'lr.png')
    assert main(['upscale', str(tmp_path/'lr.png'), '-o', str(tmp_path/'up.png'), '--checkpoint', str(ck),
                 '--device', 'cpu', '--precision', 'fp32', '--tile', '16']) == 0
    df = E.evaluate({'test': ck}, [('face', hr)], metrics=['psnr'], tile=16, precision='fp32', sr_dir=tmp_path/'sr', progress=False)
    scored = tmp_path/'sr'/'test'/'face.png'
    assert np.array_equal(np.asarray(Image.open(scored)), np.asarray(Image.open(tmp_path/'up.png')))   # the same pixels (upscale's PNG also says which model)
    assert df.psnr.iloc[0] == M.psnr(load_image(tmp_path/'up.png'), hr)
    assert df.psnr.iloc[0] != M.psnr(E.bicubic_method(4)(make_lr(hr, 4)), hr)  # not trivially bicubic


# ---------------------------------------------------------------- choices: the config's declaration
def _subcommands(p):
    import argparse
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_choice_flags_offer_exactly_the_declared_values():
    "Every flag named after a multiple-choice config field offers its Literal values; --precision those of Precision, with its defaults."
    from srgan_nb.config import allowed_values, choice_fields
    p, seen = build_parser(), set()
    for cmd, sp in _subcommands(p).items():
        for a in sp._actions:
            if a.dest in choice_fields():
                assert tuple(a.choices) == allowed_values(a.dest), (cmd, a.option_strings)
                seen.add((cmd, a.dest))
    assert {(c, 'data_source') for c in ('prepare', 'train', 'evaluate', 'run')} <= seen
    assert {(c, 'precision') for c in ('evaluate', 'upscale', 'demo')} <= seen
    assert [p.parse_args(a).precision for a in (['evaluate'], ['upscale', 'a.png'], ['demo'])] == ['fp32', 'auto', 'auto']
    with pytest.raises(SystemExit): p.parse_args(['train', '--data-source', 'web'])


def test_set_reference_models_and_init_generator(capsys):
    "--set reference_models=auto|true|false gives None|True|False, --set init_generator=none None; the run ids are those pinned in test_config_choices."
    from srgan_nb.cli import config_from_args
    from srgan_nb.config import default_run_id
    p = build_parser()
    def cfg(*sets): return config_from_args(p.parse_args(['train', *[x for s in sets for x in ('--set', s)]]))
    assert [cfg(f'reference_models={w}').reference_models for w in ('auto', 'true', 'false')] == [None, True, False]
    assert cfg('init_generator=none').init_generator is None and cfg().init_generator is None
    assert [default_run_id(cfg(*s)) for s in ([], ['reference_models=true'], ['reference_models=false'],
                                              ['init_generator=psnr', 'pretrain_epochs=0'])] == \
        ['auto-09797af8', 'auto-ff689978', 'auto-293e612d', 'auto-35aa2cf9']   # as PINNED in tests/test_config_choices.py
    assert main(['train', '--set', 'reference_models=maybe']) == 1
    assert 'reference_models expects true/false/auto' in capsys.readouterr().err


def test_upscale_strength_ends_are_the_two_models_and_a_new_strength_redoes_the_output(tmp_path, capsys):
    "--strength 0 and 1 write psnr's and gan's pixels exactly; a rerun at another strength redoes what the first wrote (the PNG says which model)."
    img = tmp_path/'face.png'
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(img)
    common = ['--device', 'cpu', '--precision', 'fp32']
    px = lambda p: np.asarray(Image.open(p))
    for model, a in (('psnr', '0'), ('gan', '1')):
        assert main(['upscale', str(img), '-o', str(tmp_path/f'{model}.png'), '--model', model, *common]) == 0
        assert main(['upscale', str(img), '-o', str(tmp_path/f'a{a}.png'), '--strength', a, *common]) == 0
        assert np.array_equal(px(tmp_path/f'{model}.png'), px(tmp_path/f'a{a}.png'))
    out = tmp_path/'dial.png'
    assert main(['upscale', str(img), '-o', str(out), '--strength', '0.5', *common]) == 0
    half = px(out)
    assert not np.array_equal(half, px(tmp_path/'psnr.png')) and not np.array_equal(half, px(tmp_path/'gan.png'))
    assert 'strength 0.5' in Image.open(out).info['srgan-nb']
    capsys.readouterr()
    assert main(['upscale', str(img), '-o', str(out), '--strength', '1', *common]) == 0   # not kept: made at 0.5
    assert 'upscaled 1 of 1' in capsys.readouterr().out and np.array_equal(px(out), px(tmp_path/'gan.png'))
    assert main(['upscale', str(img), '-o', str(out), '--strength', '1.5', *common]) == 1
    assert 'from 0 (the SRResNet) to 1' in capsys.readouterr().err
