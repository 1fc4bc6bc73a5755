"The project's set-up files agree with each other."
import configparser, re, shlex, subprocess, sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r'[<>=!~\[ ;]', req.strip(), maxsplit=1)[0].lower().replace('_', '-')


def _settings():
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT/'settings.ini')
    return c['DEFAULT']


def test_environment_yml_names_every_requirement():
    s = _settings()
    reqs = shlex.split(s['requirements']) + shlex.split(s.get('dev_requirements', ''))
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    names = set()
    for dep in env['dependencies']:
        if isinstance(dep, dict): names |= {_name(d) for d in dep.get('pip', [])}
        else: names.add(_name(dep.split('=')[0]))
    missing = sorted({_name(r) for r in reqs} - names)
    assert not missing, f'environment.yml lacks {missing}'


def test_pins_known_to_work_here():
    reqs = {_name(r): r for r in shlex.split(_settings()['requirements'])}
    assert reqs['nbdev'] == 'nbdev==2.4.14'
    assert '<5' in reqs['opencv-python-headless']
    assert '<1.15' in reqs['fastcore'] and '<0.1.16' in reqs['execnb']
    assert _settings()['allowed_cell_metadata_keys'].strip() == 'tags'


def test_readme_comes_from_index(tmp_path):
    "README.md is nbs/index.ipynb converted to markdown (make readme)."
    subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', '--to', 'markdown', '--log-level', 'WARN',
                    str(ROOT/'nbs'/'index.ipynb'), '--output-dir', str(tmp_path), '--output', 'README'], check=True)
    assert (tmp_path/'README.md').read_text() == (ROOT/'README.md').read_text(), 'README.md is stale: run `make readme`'


def test_ci_runs_make_test():
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
    assert 'make test' in (ROOT/'README.md').read_text()
