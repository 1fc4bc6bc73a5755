"The code's shape: no import cycle among srgan_nb modules (imports inside functions count), the notebooks and the library agree, each thing once."
import ast, re, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT/'srgan_nb'


def _imports(path: Path) -> set[str]:
    "The srgan_nb modules that `path` imports anywhere: top level, inside functions, relative or absolute."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('srgan_nb.')}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1:  # from . import x / from .x import y
                out |= {a.name for a in node.names} if not mod else {mod.split('.')[0]}
            elif mod == 'srgan_nb': out |= {a.name for a in node.names}
            elif mod.startswith('srgan_nb.'): out.add(mod.split('.')[1])
    return out


def import_graph() -> dict[str, set[str]]:
    mods = {p.stem for p in LIB.glob('*.py') if not p.stem.startswith('_')}
    return {m: (_imports(LIB/f'{m}.py') & mods) - {m} for m in mods}


def find_cycle(graph: dict) -> list[str] | None:
    "One import cycle as a list of modules, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)): return c
        state[m] = 'done'; stack.pop()
        return None
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c
    return None


def test_cycle_finder_finds_cycles():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycle_among_modules():
    g = import_graph()
    assert {'train', 'metrics', 'infer', 'model'} <= set(g)
    assert 'train' not in g['metrics'] and 'train' not in g['infer']   # the file format and inference live below training
    assert find_cycle(g) is None, f"import cycle: {' -> '.join(find_cycle(g))}"


def test_one_generator_file_format_and_one_inference_path():
    "save_generator/load_generator are defined once (model); only infer runs a generator on images."
    defs = {}
    for p in LIB.glob('*.py'):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)): defs.setdefault(node.name, []).append(p.stem)
    assert defs['save_generator'] == ['model'] and defs['load_generator'] == ['model']
    assert defs['Upscaler'] == ['infer'] and defs['upscale_image'] == ['infer'] and defs['upscale_batch'] == ['infer']
    for gone in ('predict_uint8', 'generator_method', '_upscale', 'bicubic_image', 'read_image', 'toy_patches_copy'):
        assert gone not in defs, f'{gone} is back in {defs[gone]}'
    hand_copies = [str(p.relative_to(ROOT)) for d in ('tests', 'benchmarks') for p in (ROOT/d).glob('*.py')
                   if re.search(r'discriminator_loss\(.*D\(', p.read_text())]
    assert not hand_copies, f'hand-written GAN steps: {hand_copies}'


def test_notebooks_and_library_agree(tmp_path):
    "nbdev_export on a copy of the project changes no file of srgan_nb/ (nobody hand-edited the library)."
    dst = tmp_path/'proj'
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns('.venv', '.git', 'reports', '__pycache__', '*.egg-info', '_proc', '_docs'))
    subprocess.run([str(Path(sys.executable).parent/'nbdev_export')], cwd=dst, check=True)
    changed = [p.name for p in sorted(LIB.glob('*.py')) if (dst/'srgan_nb'/p.name).read_text() != p.read_text()]
    assert not changed, f'nbdev_export changes {changed}: edit the notebooks, then `make export`'


def test_nbdev_can_process_every_notebook(tmp_path):
    "nbdev.serve.proc_nbs (the docs step before quarto) runs every notebook's export/import/show_doc cells without an error."
    import warnings
    dst = tmp_path/'proj'
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns('.venv', '.git', 'reports', '__pycache__', '*.egg-info', '_proc', '_docs'))
    code = ("import os, warnings\nos.chdir(%r)\nfrom nbdev.serve import proc_nbs\n"
            "with warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n    proc_nbs(n_workers=0, force=True)\n"
            "mixed = [str(x.message) for x in w if 'imports and other code' in str(x.message)]\n"
            "assert not mixed, mixed[:2]\nprint('ok')" % str(dst))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and r.stdout.strip().endswith('ok'), (r.stdout[-2000:], r.stderr[-3000:])
    assert len(list((dst/'_proc').rglob('*.ipynb'))) >= 13


def test_library_notebooks_keep_small_demo_outputs():
    "The library notebooks read as a book on GitHub: most keep their demo outputs (tables, small figures), under 500 KB in all."
    import json
    sizes = {}
    for p in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        nb = json.loads(p.read_text())
        sizes[p.name] = sum(len(json.dumps(c.get('outputs', []))) for c in nb['cells'] if c['cell_type'] == 'code')
    with_outputs = [n for n, s in sizes.items() if s > 1000]
    assert len(with_outputs) >= 10, sizes
    assert sum(sizes.values()) < 500_000, sizes


def test_every_notebook_opens_with_the_project_kernel():
    "Every notebook under nbs/ names the kernel `make setup` installs, and settings.ini lets nbdev_clean keep it."
    import json
    from configparser import ConfigParser
    nbs = sorted((ROOT/'nbs').rglob('*.ipynb'))
    assert len(nbs) >= 20
    wrong = {str(p.relative_to(ROOT)): json.loads(p.read_text())['metadata'].get('kernelspec') for p in nbs}
    # JupyterLab picks the kernel by name; nbdev_clean writes the display name as the name
    wrong = {p: k for p, k in wrong.items() if not k or k.get('name') != 'srgan-nb' or k.get('language') != 'python'}
    assert not wrong, f"notebooks without the srgan-nb kernelspec: {wrong}"
    cfg = ConfigParser(); cfg.read(ROOT/'settings.ini')
    assert 'kernelspec' in cfg['DEFAULT']['allowed_metadata_keys'].split(), "nbdev_clean would strip the kernelspec"
    assert '--name $(KERNEL) --display-name "Python (srgan-nb)"' in (ROOT/'Makefile').read_text() and 'KERNEL := srgan-nb' in (ROOT/'Makefile').read_text()


def test_every_config_field_says_what_it_affects_and_the_lists_derive_from_it():
    "One declaration per field (dataclasses metadata); the lists of pipeline, data and train are read off it, unchanged."
    from dataclasses import fields
    from srgan_nb import config as C, pipeline as P, data as D, checkpoint as Ck
    assert [f.name for f in fields(C.RunConfig) if not f.metadata.get('affects')] == []
    assert all(set(f.metadata['affects']) <= set(C.AFFECTS) for f in fields(C.RunConfig))
    # the lists as they were typed before (a recorded comparison): deriving them changed nothing
    assert set(P.NON_RESULT_FIELDS) == {'resume', 'num_workers', 'log_every', 'device', 'keep_checkpoints', 'checkpoint_minutes', 'reports', 'progress', 'user_set'}
    assert set(P.DATA_FIELDS) == {'data_source', 'data_dir', 'quick', 'seed', 'hr_size', 'scale', 'patches_per_image', 'n_val', 'n_test',
                                  'face_aware', 'min_sharpness', 'exclude'}
    assert set(D.SAMPLING_KEYS) == set(P.DATA_FIELDS) - {'data_source', 'data_dir', 'quick'}
    assert P.STRATEGY_FIELDS == ('n_train', 'epochs', 'batch_size')
    assert {'seed', 'n_blocks', 'adversarial_weight', 'batch_size', 'init_generator', 'anchor_weight', 'ema_decay', 'icnr'} <= set(Ck.RESUME_KEYS)
    assert not {'epochs', 'device', 'val_photos', 'd_health_patches'} & set(Ck.RESUME_KEYS)
    # run ids stay as they are (recorded when the compatibility machinery went: one schema, the ids of older runs changed once;
    # and again when adversarial_balance, adversarial_twin and d_view, then d_arch and d_warmup_steps joined the training settings, issue 28)
    old = dict(d_norm='bn', anchor_weight=0.0, ema_decay=0.0)
    assert C.default_run_id(C.make_config(**old)) == 'auto-39ac3abe'
    assert C.default_run_id(C.make_config(quick=True, **old)) == 'auto-quick-143349a2'
    assert C.default_run_id(C.make_config(gan='paper')) == 'auto-3ba8c752'
    assert C.default_run_id(C.make_config(data_dir='/x/faces-utk', **old)) == 'folder-faces-utk-64e13291'
    assert C.default_run_id(C.make_config()) != 'auto-39ac3abe'   # today's default recipe is another run
    # no module types these lists again
    for mod in ('pipeline', 'data', 'train', 'cli'):
        text = (LIB/f'{mod}.py').read_text()
        assert "('n_train', 'epochs', 'batch_size')" not in text and "'keep_checkpoints', 'checkpoint_minutes')" not in text, mod
    assert 'yaml.safe_load' not in (LIB/'cli.py').read_text()   # the config remembers what the user set; nobody re-reads the YAML


def longest_chain(graph: dict) -> list[str]:
    "The longest chain of imports (a -> b -> c ...) in an acyclic import graph."
    from functools import lru_cache
    @lru_cache(None)
    def chain(m): return (m,) + max((chain(n) for n in sorted(graph.get(m, ()))), key=len, default=())
    return list(max((chain(m) for m in sorted(graph)), key=len, default=()))


def test_longest_chain_finder():
    assert longest_chain({'a': {'b', 'c'}, 'b': {'c'}, 'c': set(), 'd': set()}) == ['a', 'b', 'c']


def test_import_layers_are_at_most_eight_deep():
    "Counting imports inside functions too: a reader climbs at most eight floors from cli to the bottom (seven before the rooms were split: cli, evaluate, stats, the metric suite, the metrics, the losses they share, config, layout)."
    c = longest_chain(import_graph())
    assert len(c) <= 8, f"{len(c)} modules deep: {' -> '.join(c)}"
    assert 'report' not in import_graph()['pipeline']   # the pipeline renders through srgan_nb.render, not the report's module


# every file and folder name of a run, a strategy, an evaluation and the patch cache: typed in srgan_nb/layout.py only
RUN_FILE_NAMES = ('config.json', 'split.csv', 'summary.json', 'examples.png', 'timings.json', 'report.html', 'history.csv',
                  'd_health.csv', 'train_summary.json', 'generator_srresnet.pt', 'generator_srgan.pt', 'last.pt', 'pretrain.pt',
                  'per_image.csv', 'summary.csv', 'table.csv', 'notes.json', 'hr.npy', 'lr.npy', 'manifest.csv', 'images.csv',
                  'skipped.csv', 'checkpoints', 'stages', 'notebooks', 'eval', 'data', 'done', 'patches', 'evaluations', 'runs', 'cache')


def _string_constants(path: Path) -> list[tuple[int, str]]:
    "(line, text) of every string constant in a module, f-strings' literal parts included, docstrings excluded."
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


OTHER_FOLDERS = {('config', 'data'): 'the shared data folder, ../shared/data', ('losses', 'checkpoints'): "torch hub's weight cache",
                 ('metrics', 'checkpoints'): "torch hub's weight cache"}   # same words, not a run's folders


def _run_names_typed(code: str, module: str = '') -> list[str]:
    "'line: name' for each run file name `code` types, and each run folder name it joins onto a path (`x/'eval'`)."
    files = {n for n in RUN_FILE_NAMES if '.' in n}
    folders = set(RUN_FILE_NAMES) - files
    found = []
    for n in ast.walk(ast.parse(code)):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in files: found.append(f"{n.lineno}: {n.value!r}")
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            parts = [n.right] + ([v for v in n.right.values] if isinstance(n.right, ast.JoinedStr) else [])
            for r in parts:
                if isinstance(r, ast.Constant) and r.value in folders and (module, r.value) not in OTHER_FOLDERS:
                    found.append(f"{n.lineno}: /{r.value!r}")
    return found


def test_run_file_names_live_in_the_layout_module_only():
    "No module but srgan_nb.layout types a run file's name, or joins a run folder's name onto a path (`x/'eval'`)."
    found = [f"{p.name}:{line}" for p in sorted(LIB.glob('*.py')) if p.stem not in ('layout', '_modidx')
             for line in _run_names_typed(p.read_text(), p.stem)]
    assert not found, "run file names outside srgan_nb/layout.py:\n" + '\n'.join(found)
    layout = (LIB/'layout.py').read_text()
    missing = [n for n in RUN_FILE_NAMES if not re.search(r"['}]" + re.escape(n) + "'", layout)]
    assert not missing, f"names the layout module does not declare: {missing}"


def test_pipeline_notebooks_name_files_through_the_layout_module():
    "The pipeline notebooks (nbs/pipeline/) reach every file they read or write through srgan_nb.layout: no file name typed, no run folder joined on."
    import json
    assert sorted(_run_names_typed("p = rd/'eval'/'notes.json'")) == ["1: 'notes.json'", "1: /'eval'"]   # the check sees both
    found = []
    for p in sorted((ROOT/'nbs'/'pipeline').glob('*.ipynb')):
        for i, c in enumerate(json.loads(p.read_text())['cells']):
            if c['cell_type'] != 'code': continue
            code = ''.join(c['source'])
            found += [f"{p.name} cell {i}, line {line}" for line in _run_names_typed(code)]
            found += [f"{p.name} cell {i}: {n.value!r}" for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant)
                      and isinstance(n.value, str) and n.value not in RUN_FILE_NAMES and re.search(r'\.(csv|json|png|html|svg|pt|md|npy|ipynb)$', n.value)]
    assert not found, "file names typed in the pipeline notebooks (name them in srgan_nb/layout.py):\n" + '\n'.join(found)


def test_no_module_writes_the_environment():
    "The reports root and the progress display are passed, not put into os.environ (which moves them for the whole process)."
    bad = []
    for p in sorted(LIB.glob('*.py')):
        for n in ast.walk(ast.parse(p.read_text())):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                if isinstance(t, ast.Subscript) and ast.unparse(t.value) == 'os.environ': bad.append(f"{p.name}:{n.lineno}")
            if isinstance(n, ast.Call) and ast.unparse(n.func) in ('os.environ.update', 'os.environ.pop', 'os.putenv', 'os.unsetenv'):
                bad.append(f"{p.name}:{n.lineno}")
    assert not bad, f"os.environ written at {bad}"


def test_metric_keys_are_defined_once_in_the_registry():
    "The metric vocabulary (names, labels, directions, digits, families) is a view of suite.REGISTRY everywhere else, never a hand-written list."
    from srgan_nb.suite import REGISTRY
    vocab = {'METRICS', 'METRIC_NAMES', 'METRIC_INFO', 'METRIC_LABELS', 'LOWER_IS_BETTER', 'HIGHER_IS_BETTER', 'DIGITS', 'METRIC_FAMILIES'}
    bad = []
    for p in sorted(LIB.glob('*.py')):
        if p.stem in ('suite', '_modidx'): continue
        for n in ast.walk(ast.parse(p.read_text())):
            if not isinstance(n, ast.Assign) or not any(isinstance(t, ast.Name) and t.id in vocab for t in n.targets): continue
            keys = {c.value for c in ast.walk(n.value) if isinstance(c, ast.Constant) and c.value in REGISTRY}
            if keys: bad.append(f"{p.name}:{n.lineno} lists {sorted(keys)}")
    assert not bad, bad
    src = (LIB/'suite.py').read_text()
    assert src.count('METRIC_NAMES =') == 1 and src.count('\nREGISTRY') == 1


def notebook_order_violations(notebooks: dict[str, str]) -> list[str]:
    """Imports of a module exported by a later notebook: `notebooks` maps each numbered notebook's name, in book order, to the
    source of its code cells. A notebook exports the module of its `#| default_exp`; any cell may import (tests and demos too)."""
    names = list(notebooks)
    home = {m.group(1): n for n, s in notebooks.items() for m in [re.search(r'#\|\s*default_exp\s+(\w+)', s)] if m}
    out = []
    for n, s in notebooks.items():
        used = set(re.findall(r'(?:from|import)\s+srgan_nb\.(\w+)', s))
        used |= {x.strip().split(' as ')[0] for grp in re.findall(r'from srgan_nb import \(?([\w ,]+)\)?', s) for x in grp.split(',')}
        out += [f"{n} imports srgan_nb.{m}, exported by the later {home[m]}" for m in sorted(used)
                if m in home and names.index(home[m]) > names.index(n)]
    return out


def test_the_order_finder_finds_a_forward_import():
    nbs = {'00_a.ipynb': '#| default_exp a\nfrom srgan_nb.b import f', '01_b.ipynb': '#| default_exp b\nimport srgan_nb.a'}
    assert notebook_order_violations(nbs) == ['00_a.ipynb imports srgan_nb.b, exported by the later 01_b.ipynb']
    assert notebook_order_violations({'00_b.ipynb': nbs['01_b.ipynb'].replace('a', 'c'), '01_a.ipynb': nbs['00_a.ipynb']}) == []


def test_notebooks_are_numbered_in_the_order_of_their_imports():
    "The book reads front to back: no notebook (its exported code, its demos or its tests) imports a module a later notebook exports."
    import json
    nbs = {p.name: '\n'.join(''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code')
           for p in sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))}
    assert len(nbs) >= 20
    assert notebook_order_violations(nbs) == []


def test_no_module_is_over_500_lines():
    "Rooms a reader takes in at once: every module of the library (the generated index aside) is at most 500 lines."
    sizes = {p.name: len(p.read_text().splitlines()) for p in LIB.glob('*.py') if p.name != '_modidx.py'}
    assert {n: s for n, s in sizes.items() if s > 500} == {}
