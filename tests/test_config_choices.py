"""Choices as types: each multiple-choice setting's values are declared once (a Literal type on RunConfig) and read by
validation, the command line and the losses; yes/no/auto settings are booleans or None; older runs' configs load into
today's types and keep their run ids."""
import json
import re
import typing

import pytest

from srgan_nb import config as C
from srgan_nb.config import (RunConfig, allowed_values, choice_fields, config_dict, default_run_id, load_config, make_config,
                             parse_overrides)


DECLARED = dict(data_source=('auto', 'folder', 'kaggle', 'samples'), backbone=('auto', 'vgg19', 'effnet_lite0'),
                pixel_criterion=('mse', 'l1'), gan_loss=('bce', 'ragan'), adversarial_balance=('fixed', 'adaptive'), d_norm=('bn', 'sn'), d_view=('rgb', 'haar'), d_arch=('srgan', 'unet'),
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


def test_init_generator_none_is_random_initialisation():
    assert RunConfig().init_generator is None
    for given in ('', 'none', 'null', ' ', None): assert make_config('s2', init_generator=given).init_generator is None, given
    assert make_config('s2', overrides=parse_overrides(['init_generator=psnr'])).init_generator == 'psnr'
    with pytest.raises(ValueError, match='init_generator must be'): RunConfig(init_generator='')


def test_a_config_json_of_another_version_is_refused_saying_to_rerun(tmp_path):
    "One schema: a config.json another version wrote (a field renamed, added or dropped since) is refused with what differs and what to do."
    today = config_dict(make_config('s2', data_source='samples', quick=True))
    (tmp_path/'config.json').write_text(json.dumps(today))
    assert load_config(tmp_path/'config.json') == make_config('s2', data_source='samples', quick=True)
    (tmp_path/'old.json').write_text(CONFIG_JSON_A5F7520)   # as commit a5f7520 wrote it
    with pytest.raises(C.OtherVersion, match=r"old.json was written by another version of srgan-nb \(without adversarial_balance, adversarial_twin, artifact_weight, d_arch, d_view, d_warmup_steps, "
                                             r"progress, reports, strength_curve, user_set; "
                                             r"with content_weight, unknown here\): rerun it with this version"):
        load_config(tmp_path/'old.json')


# run ids, recorded when the project dropped its compatibility machinery (one schema: the ids of older runs changed then, once),
# and again when adversarial_balance, adversarial_twin and d_view, then d_arch and d_warmup_steps joined the training settings (issue 28):
# a change that moves one of these renames every run folder, so it must be deliberate
PINNED = [
    ('s2', [], 'auto-09797af8'),
    ('s1', [], 'auto-09797af8'),
    ('faces-x4', [], 'auto-3e3efc89'),
    ('s2', ['data_source=samples', 'quick=true'], 'samples-quick-8937fa04'),
    ('s2', ['reference_models=true'], 'auto-ff689978'),
    ('s2', ['reference_models=false'], 'auto-293e612d'),
    ('s2', ['reference_models=auto'], 'auto-09797af8'),
    ('s2', ['init_generator=psnr', 'pretrain_epochs=0'], 'auto-35aa2cf9'),
    ('s2', ['init_generator=gan'], 'auto-6bb4f03a'),
    ('s2', ['gan=paper'], 'auto-3ba8c752'),
    ('s1', ['gan=paper', 'data_source=samples', 'quick=true', 'reference_models=false'], 'samples-quick-84a6e28f'),
    ('s2', ['precision=bf16', 'gan_loss=ragan', 'd_norm=bn', 'anchor_kind=l1', 'pixel_criterion=l1', 'backbone=vgg19'], 'auto-ae73b5d0'),
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


