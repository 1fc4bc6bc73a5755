"""Choices as types: each multiple-choice setting's values are declared once (a Literal type on RunConfig) and read by
validation, the command line and the losses; yes/no/auto settings are booleans or None; older runs' configs load into
today's types and keep their run ids."""
import json
import re
import typing

import pytest

from srgan_nb import config as C
from srgan_nb.config import (RunConfig, allowed_values, choice_fields, config_dict, default_run_id, load_config, make_config,
                             parse_overrides, upgrade_config_dict)


DECLARED = dict(data_source=('auto', 'folder', 'kaggle', 'samples'), backbone=('auto', 'vgg19', 'effnet_lite0'),
                pixel_criterion=('mse', 'l1'), gan_loss=('bce', 'ragan'), d_norm=('bn', 'sn'),
                anchor_kind=('lowpass', 'l1', 'chroma'), precision=('auto', 'fp32', 'bf16', 'fp16'))


def test_choice_fields_read_their_literal_types():
    assert {k: allowed_values(k) for k in choice_fields()} == DECLARED
    hints = typing.get_type_hints(RunConfig, vars(C))
    for k in choice_fields(): assert typing.get_origin(hints[k]) is typing.Literal, k
    with pytest.raises(ValueError, match='not a multiple-choice setting'): allowed_values('seed')
    with pytest.raises(KeyError): allowed_values('no_such_field')


def _one_of(values): return ', '.join(values[:-1]) + ' or ' + values[-1]


@pytest.mark.parametrize('field', choice_fields())   # every multiple-choice field, a new one included
def test_a_value_outside_the_list_is_refused(field):
    for v in allowed_values(field): RunConfig(**{field: v}, **(dict(data_dir='/x') if v == 'folder' else {}))
    msg = re.escape(f"{field} must be {_one_of(allowed_values(field))}, got 'nope'")
    with pytest.raises(ValueError, match=msg): RunConfig(**{field: 'nope'})
    with pytest.raises(ValueError, match=msg): make_config('s2', overrides=parse_overrides([f'{field}=nope']))


def test_no_hand_written_list_left_in_validate():
    import inspect
    src = inspect.getsource(RunConfig.validate)
    for values in DECLARED.values(): assert repr(values) not in src and _one_of(values) not in src


@pytest.mark.parametrize('given, want', [('auto', None), ('true', True), ('false', False), (None, None), (True, True), (False, False),
                                         ('Auto', None), ('none', None), ('null', None), ('yes', True), ('0', False)])
def test_reference_models_is_a_bool_or_none(given, want):
    assert make_config('s2', reference_models=given).reference_models is want
    if isinstance(given, str): assert parse_overrides([f'reference_models={given}']) == dict(reference_models=want)


def test_reference_models_from_yaml(tmp_path):
    for text, want in (('auto', None), ('true', True), ('false', False), ('null', None), ('"true"', True)):
        (tmp_path/'c.yml').write_text(f'reference_models: {text}\n')
        assert make_config('s2', yaml_path=tmp_path/'c.yml').reference_models is want, text


def test_reference_models_refuses_other_values():
    with pytest.raises(ValueError, match='reference_models expects true/false/auto'): make_config('s2', reference_models='maybe')
    for bad in ('auto', 'true', 1):  # RunConfig takes today's type; make_config and load_config read the words
        with pytest.raises(ValueError, match='reference_models must be true, false or None'): RunConfig(reference_models=bad)
    assert C.newer_defaults()['reference_models'] is None


def test_init_generator_none_is_random_initialisation():
    assert RunConfig().init_generator is None and C.newer_defaults()['init_generator'] is None
    for given in ('', 'none', 'null', ' ', None): assert make_config('s2', init_generator=given).init_generator is None, given
    assert make_config('s2', overrides=parse_overrides(['init_generator=psnr'])).init_generator == 'psnr'
    with pytest.raises(ValueError, match='init_generator must be'): RunConfig(init_generator='')


def test_an_older_config_json_loads_into_todays_types(tmp_path):
    today = config_dict(make_config('s2', data_source='samples', quick=True))
    old = {k: v for k, v in today.items() if k != 'pixel_weight'} | dict(reference_models='true', init_generator='', content_weight=1.0)
    (tmp_path/'config.json').write_text(json.dumps(old))
    cfg = load_config(tmp_path/'config.json')
    assert (cfg.reference_models, cfg.init_generator, cfg.pixel_weight, cfg.content_weight) == (True, None, 1.0, None)
    assert upgrade_config_dict(old) == {k: v for k, v in today.items() if k != 'content_weight'} | dict(reference_models=True, pixel_weight=1.0)
    for word, value in (('auto', None), ('false', False)):
        assert upgrade_config_dict(dict(reference_models=word))['reference_models'] is value
    assert upgrade_config_dict(dict(init_generator='gan')) == dict(init_generator='gan')


# run ids recorded on commit a5f7520, before reference_models (then 'auto' | 'true' | 'false') and init_generator (then '')
# changed type: a run made before must find its folder
PINNED = [
    ('s2', [], 'auto-b7e1e247'),
    ('s1', [], 'auto-b7e1e247'),
    ('faces-x4', [], 'auto-b550f397'),
    ('s2', ['data_source=samples', 'quick=true'], 'samples-quick-4964c664'),
    ('s2', ['reference_models=true'], 'auto-2cab1271'),
    ('s2', ['reference_models=false'], 'auto-537e9c89'),
    ('s2', ['reference_models=auto'], 'auto-b7e1e247'),
    ('s2', ['init_generator=psnr', 'pretrain_epochs=0'], 'auto-bb188e92'),
    ('s2', ['init_generator=gan'], 'auto-e7ac8d0f'),
    ('s2', ['gan=paper'], 'auto-f09e1458'),
    ('s1', ['gan=paper', 'data_source=samples', 'quick=true', 'reference_models=false'], 'samples-quick-3b438c27'),
    ('s2', ['precision=bf16', 'gan_loss=ragan', 'd_norm=bn', 'anchor_kind=l1', 'pixel_criterion=l1', 'backbone=vgg19'], 'auto-a8e829d9'),
]


@pytest.mark.parametrize('strategy, overrides, run_id', PINNED)
def test_run_ids_are_unchanged(strategy, overrides, run_id):
    assert default_run_id(make_config(strategy, overrides=parse_overrides(overrides))) == run_id


# a config.json as commit a5f7520 wrote it (make_config('s2', data_source='samples', quick=True))
CONFIG_JSON_A5F7520 = '''{
  "adversarial_weight": 0.0001,
  "anchor_kind": "chroma",
  "anchor_weight": 1.0,
  "augment": false,
  "backbone": "auto",
  "batch_size": 10,
  "beta1": 0.9,
  "beta2": 0.999,
  "bicubic_skip": true,
  "channels": 64,
  "channels_last": true,
  "checkpoint_minutes": 10.0,
  "content_weight": null,
  "d_health_checks": 5,
  "d_health_patches": 100,
  "d_joint_batch": false,
  "d_norm": "sn",
  "data_dir": null,
  "data_source": "samples",
  "deterministic": false,
  "device": "auto",
  "ema_decay": 0.99,
  "epochs": 2,
  "exclude": null,
  "face_aware": false,
  "gan": null,
  "gan_loss": "bce",
  "hr_size": 96,
  "icnr": false,
  "init_generator": "",
  "keep_checkpoints": false,
  "log_every": 10,
  "lr_d": 0.0001,
  "lr_g": 0.0001,
  "lr_pretrain": null,
  "min_sharpness": 0.0,
  "n_blocks": 16,
  "n_test": 6,
  "n_train": 12,
  "n_val": 4,
  "num_workers": 2,
  "patches_per_image": 10,
  "perceptual_weight": 1.0,
  "pixel_criterion": "mse",
  "pixel_weight": 0.0,
  "precision": "auto",
  "pretrain_epochs": 2,
  "quick": true,
  "reference_models": "auto",
  "resume": true,
  "run_id": null,
  "scale": 4,
  "seed": 42,
  "strategy": "s2",
  "val_photos": 20,
  "vgg_weights": null
}'''


@pytest.mark.parametrize('changes, run_id', [({}, 'samples-quick-4964c664'),
                                             (dict(reference_models='true', init_generator='psnr', pretrain_epochs=0), 'samples-quick-b83666a0'),
                                             (dict(reference_models='false', content_weight=1.0, pixel_weight=None), 'samples-quick-9a83ad41')])
def test_a_config_json_written_before_keeps_its_run_id(tmp_path, changes, run_id):
    d = json.loads(CONFIG_JSON_A5F7520) | changes
    if d.get('pixel_weight') is None: d.pop('pixel_weight')   # a run from before pixel_weight had its name
    (tmp_path/'config.json').write_text(json.dumps(d))
    cfg = load_config(tmp_path/'config.json')
    assert default_run_id(cfg) == run_id
    assert cfg.reference_models in (None, True, False) and (cfg.init_generator is None or cfg.init_generator == 'psnr')
    assert default_run_id(load_config(C.save_config(cfg, tmp_path/'again.json'))) == run_id   # written again today, read back
