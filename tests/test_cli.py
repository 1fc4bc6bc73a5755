"The `srgan-nb` command: each subcommand reaches its stage, and bad input gives a clear error and exit code 1."
import numpy as np
import pytest
import torch
from PIL import Image

from srgan_nb.cli import main, build_parser
from srgan_nb.model import Generator
from srgan_nb.train import save_generator




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
