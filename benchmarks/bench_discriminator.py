"""Can the discriminator tell a run's SR from HR? Each discriminator is trained alone, as in a warm-up (`d_warmup_steps`), on
a trained run's SRResNet output (fixed) against its HR training patches, through the training code's own
`steps.discriminator_step` (the run's precision and memory format), and measured every `--every` steps on the run's
validation patches by `monitor.d_health_record`: pairwise accuracy, mean D(hr), D(sr), and the logit gap between those
means, logit(mean D(hr)) - logit(mean D(sr)). Seconds per D step are measured side by side in the same process.

Why: a discriminator whose logits stay at chance gives the generator a push that is noise, and
`adversarial_balance=adaptive` scales that noise up to the size of the reconstruction's gradient.

    SRGAN_REPORTS=../runs .venv/bin/python benchmarks/bench_discriminator.py --run ../runs/runs/s2-ldl005 --steps 300
    # --variants srgan-bn srgan-sn unet-sn srgan-sn@4e-4 (a variant: arch-norm, @lr_d to change the learning rate)
"""
from __future__ import annotations
import argparse, json, sys, time
from dataclasses import fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
import pandas as pd
import torch

from srgan_nb import steps as St
from srgan_nb.config import RunConfig
from srgan_nb.data import load_patches, patch_tensors
from srgan_nb.infer import upscale_batch
from srgan_nb.model import build_models, load_generator
from srgan_nb.monitor import d_health_record


def variant_config(cfg, name: str):
    "The run's config with the discriminator `name` (arch-norm[@lr_d])."
    arch_norm, _, lr = name.partition('@')
    arch, norm = arch_norm.split('-')
    return replace(cfg, d_arch=arch, d_norm=norm, d_joint_batch=False, **(dict(lr_d=float(lr)) if lr else {}))


def train_alone(cfg, gen, train, val, steps: int, every: int, batch: int, seed: int, label: str) -> pd.DataFrame:
    "Train `cfg`'s discriminator alone on (SR of `gen`, HR) training batches; D's health on `val` every `every` steps."
    torch.manual_seed(seed)
    _, disc = build_models(cfg)
    s = St.build_train_state(replace(cfg, perceptual_weight=0.0), gen, disc, backbone=None)
    lr_t, hr_t = train
    sr_t = upscale_batch(s.generator, lr_t, s.device, s.precision, 50)
    prep = lambda t: (lambda x: x.contiguous(memory_format=torch.channels_last) if s.channels_last else x)(t.to(s.device).float().div_(255))
    rng, rows, spent = np.random.default_rng(seed), [], 0.0
    for step in range(1, steps + 1):
        b = torch.as_tensor(rng.choice(len(hr_t), batch, replace=False))
        hr, sr = prep(hr_t[b]), prep(sr_t[b])
        t = time.perf_counter(); out = St.discriminator_step(s, sr, hr); spent += time.perf_counter() - t
        if step % every == 0 or step == 1:
            h = d_health_record(s, *val, batch_size=50)
            rows.append(dict(variant=label, step=step, d_loss_train=float(out['d_loss']), d_pair_acc=h['d_pair_acc'],
                             d_hr=h['d_hr'], d_sr=h['d_sr'], gap=np.log(h['d_hr'] / (1 - h['d_hr'])) - np.log(h['d_sr'] / (1 - h['d_sr'])),
                             s_per_step=spent / step))
            print(' '.join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--run', required=True, help='a trained run folder (its SRResNet, patches and config)')
    ap.add_argument('--strategy', default='s2')
    ap.add_argument('--variants', nargs='+', default=['srgan-bn', 'srgan-sn', 'unet-sn'])
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--every', type=int, default=50)
    ap.add_argument('--val', type=int, default=200, help='validation patches D is measured on')
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--out', default=None, help='a CSV of every measurement')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    folder = Path(a.run) / a.strategy
    saved = json.loads((folder / 'config.json').read_text())   # fields added since the run take their defaults
    cfg = RunConfig(**{f.name: saved[f.name] for f in fields(RunConfig) if f.name in saved})
    gen = load_generator(folder / 'generator_srresnet.pt')
    train = patch_tensors(load_patches(cfg, 'train'))
    lr_v, hr_v = patch_tensors(load_patches(cfg, 'val'))
    print(f"{len(train[1])} training patches, {a.val} validation patches, batch {cfg.batch_size}, precision {cfg.precision}")
    frames = [train_alone(variant_config(cfg, v), gen, train, (lr_v[:a.val], hr_v[:a.val]), a.steps, a.every, int(cfg.batch_size), cfg.seed, v)
              for v in a.variants]
    df = pd.concat(frames, ignore_index=True)
    if a.out: df.to_csv(a.out, index=False)
    print(df[df.step == a.steps].set_index('variant').round(4).to_string())


if __name__ == '__main__':
    main()
