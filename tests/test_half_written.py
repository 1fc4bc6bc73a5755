"""Nothing half-written: a killed write leaves the old file or the whole new one, `upscale` resumes after a kill, one
process writes into a run at a time, and faults speak plainly (a full disk, a bad YAML file, unknown keys, animations)."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srgan_nb.cli import main
from srgan_nb.layout import atomic_write, run_lock
from srgan_nb.testing import toy_patches


def test_a_write_killed_with_sigkill_leaves_no_broken_file(tmp_path):
    "SIGKILL while a large PNG is being encoded: the output is absent (or, had it finished, whole); never a truncated file."
    out = tmp_path/'big_sr.png'
    code = textwrap.dedent(f"""
        import numpy as np, sys
        from srgan_nb.infer import write_image
        img = (np.random.default_rng(0).random((3000, 3000, 3)) * 255).astype(np.uint8)   # noise: slow to compress
        print('writing', flush=True)
        write_image(img, {str(out)!r})
    """)
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'writing'
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL); p.wait()
    if out.exists():   # only if it finished before the kill: then it is whole
        with Image.open(out) as im: im.load()
    assert not out.exists() or Image.open(out).size == (3000, 3000)
    assert [f.name for f in tmp_path.iterdir() if not f.name.startswith('.')] in ([], ['big_sr.png'])


def test_upscale_keeps_finished_outputs_and_resumes(tmp_path, capsys):
    "A rerun keeps outputs that are complete and newer than their input; --overwrite redoes them; a truncated one is redone."
    album = tmp_path/'album'; album.mkdir()
    for i in range(3): Image.fromarray(toy_patches(1, 64, seed=i).hr[0][:16, :16]).save(album/f'p{i}.png')
    args = ['upscale', str(album), '-o', str(tmp_path/'out'), '--model', 'psnr', '--device', 'cpu', '--precision', 'fp32']
    assert main(args) == 0
    outs = sorted((tmp_path/'out').glob('*.png'))
    assert len(outs) == 3
    stamp = {p: p.stat().st_mtime_ns for p in outs}
    outs[1].write_bytes(outs[1].read_bytes()[:100])          # as a killed writer of the old code left it
    capsys.readouterr()
    assert main(args) == 0
    said = capsys.readouterr().out
    assert 'upscaled 1 of 3' in said and '2 kept from an earlier run' in said
    assert outs[0].stat().st_mtime_ns == stamp[outs[0]] and Image.open(outs[1]).size == (64, 64)
    assert main(args + ['--overwrite']) == 0 and 'upscaled 3 of 3' in capsys.readouterr().out


def test_a_second_run_of_one_id_refuses_and_names_the_holder(tmp_path, monkeypatch, capsys):
    "While one process writes into a run (here: this test holds its lock), `srgan-nb run` and `train` of that id refuse at once."
    monkeypatch.setenv('SRGAN_REPORTS', str(tmp_path/'reports'))
    run_dir = tmp_path/'reports'/'runs'/'busy'
    with run_lock(run_dir, 'srgan-nb run'):
        t0 = time.perf_counter()
        assert main(['run', '--strategies', 's2', '--data-source', 'samples', '--quick', '--run-id', 'busy']) == 1
        assert main(['train', '--data-source', 'samples', '--quick', '--run-id', 'busy']) == 1
        assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert err.count(f'is in use by process {os.getpid()} (srgan-nb run') == 2, err
    assert not (run_dir/'config.json').exists()   # refused before writing anything


def test_faults_speak_plainly(tmp_path, capsys):
    "A YAML syntax error names the file, line and column in one line; an unknown key is named without quotes."
    bad = tmp_path/'bad.yml'; bad.write_text('epochs: 3\nbatch_size: [1, 2\n')
    assert main(['train', '--config', str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'bad.yml, line 3, column 1' in err and 'Traceback' not in err, err
    assert main(['train', '--set', 'no_such_field=1']) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("srgan-nb train: error: Unknown config field 'no_such_field'") and not err.split('error: ')[1].startswith('"'), err


def cli(*args, env=None, timeout=600):
    "`srgan-nb ARGS` in a fresh process, as a user runs it: (exit status, stdout + stderr)."
    p = subprocess.run([sys.executable, '-c', 'import sys; from srgan_nb.cli import main; sys.exit(main(sys.argv[1:]))', *map(str, args)],
                       capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_an_animation_says_which_frame_and_warnings_are_one_line(tmp_path):
    frames = [Image.fromarray(np.full((12, 12, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path/'anim.gif', save_all=True, append_images=frames[1:])
    code, out = cli('upscale', tmp_path/'anim.gif', '-o', tmp_path/'a.png', '--model', 'psnr', '--device', 'cpu', '--precision', 'fp32')
    assert code == 0 and 'anim.gif has 2 frames: using the first' in out, out
    lines = [line for line in out.splitlines() if 'frames' in line]
    assert len(lines) == 1 and lines[0].startswith('srgan-nb upscale: warning:') and 'warnings.warn' not in out, out


def test_a_full_disk_names_the_stage_and_leaves_no_debris(tmp_path, capsys):
    "On a 1 MB filesystem the pipeline fails in its first stage with a message that says so; no temporary file stays."
    mnt = tmp_path/'small'; mnt.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a 1 MB tmpfs here (needs root in a mount namespace that allows it): {r.stderr.strip()}")
    try:
        env = dict(os.environ, SRGAN_REPORTS=str(mnt), SRGAN_PROGRESS='0')
        code, out = cli('run', '--strategies', 's2', '--data-source', 'samples', '--quick', '--run-id', 'full', env=env)
        assert code == 1 and 'disk is full' in out and 'prepare_data' in out, out[-2000:]
        debris = [str(f) for f in mnt.rglob('*') if '.tmp' in f.name]
        assert not debris, debris
    finally: subprocess.run(['umount', str(mnt)], capture_output=True)
