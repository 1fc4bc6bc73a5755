"""The CUDA path without a GPU: training steps, validation, discriminator health, inference and resume on fake CUDA tensors
(tests/fakecuda.py), where a tensor left on the CPU raises as it would on a GPU. Devices, dtypes and shapes are checked,
not numbers; `benchmarks/gpu_check.py` runs the same paths on a real GPU."""
import numpy as np
import pytest
import torch
from PIL import Image

from fakecuda import fake_cuda, is_cuda
from srgan_nb import train as T
from srgan_nb import checkpoint as Ck
from srgan_nb import monitor as Mon
from srgan_nb import steps as St
from srgan_nb.config import make_config, pick_device, pick_precision, gpu_numerics
from srgan_nb.infer import Upscaler, upscale_command
from srgan_nb.losses import build_backbone
from srgan_nb.model import build_models
from srgan_nb.testing import toy_patches

pytestmark = pytest.mark.filterwarnings('ignore::UserWarning')   # fake tensors warn about data pointers


def tiny(**kw):
    "The default recipe (spectral-norm D, chroma anchor, EMA) at a size that builds in a moment."
    base = dict(hr_size=32, n_blocks=1, channels=8, pretrain_epochs=1, epochs=1, batch_size=2, backbone='effnet_lite0',
                log_every=1, resume=False, d_health_patches=4, d_health_checks=1, val_photos=2)
    return make_config('s2', **(base | kw))


def test_devices_resolve_with_their_index():
    with fake_cuda():
        assert pick_device('cuda') == pick_device('auto') == torch.device('cuda', 0)
        with pytest.raises(RuntimeError, match='has 1 GPU'): pick_device('cuda:1')
    assert pick_device('auto') == torch.device('cpu')   # no GPU here, and never Apple MPS unless asked


@pytest.mark.parametrize('capability,want', [((7, 0), 'fp16'), ((7, 5), 'fp16'), ((8, 0), 'bf16'), ((9, 0), 'bf16')])
def test_auto_precision_uses_native_bf16_only(capability, want):
    "V100/T4 (7.x) emulate bf16 slowly: fp16 with a gradient scaler there; Ampere and later run bf16."
    with fake_cuda(capability=capability):
        assert pick_precision('auto', 'cuda') == want


@pytest.mark.parametrize('precision', ['bf16', 'fp16', 'fp32'])
def test_an_epoch_of_each_phase_runs_on_cuda(precision, tmp_path):
    "Pretraining and a GAN epoch with the default recipe, with validation patches and photos and D-health checks: every path that prepares a generator."
    cfg = tiny(device='cuda', precision=precision)
    assert (cfg.d_norm, cfg.anchor_kind, cfg.ema_decay > 0) == ('sn', 'chroma', True)
    g, d = build_models(cfg)
    backbone = build_backbone('effnet_lite0')
    photos = [np.asarray(Image.fromarray(toy_patches(1, 96, seed=i).hr[0])) for i in range(2)]
    with fake_cuda():
        s = St.build_train_state(cfg, g, d, backbone)
        assert s.device == torch.device('cuda', 0) and s.precision == precision
        assert s.scaler_g.is_enabled() == (precision == 'fp16')
        data = T.training_data(cfg, toy_patches(6, 32, seed=1), toy_patches(4, 32, seed=2), s.device)
        data.photos = Mon.validation_photos(photos, cfg.scale, s.device)
        assert is_cuda(data.lr) and is_cuda(data.hr)
        prog = Ck.Progress()
        for ep in range(2):
            row = T.run_epoch(s, data, cfg, ep, prog)
            assert row['phase'] == ('pretrain', 'gan')[ep]
        assert s.ema is not None and all(is_cuda(p) for p in s.ema.parameters())
        assert all(is_cuda(v) for st in s.opt_d.state.values() for k, v in st.items() if k != 'step' or v.dim())
        assert prog.d_health and 'val_stlpips' in row or T.stlpips_status()[0] is False
        ckpt = Ck.checkpoint_state(s, cfg, prog, data.val_psnr_bicubic)
    for opt in ('opt_g', 'opt_d'):   # a GPU run's checkpoint holds CPU tensors: it loads on any machine
        assert all(v.device.type == 'cpu' for st in ckpt[opt]['state'].values() for v in st.values() if isinstance(v, torch.Tensor))
    assert ckpt['precision'] == precision


def test_a_bf16_checkpoint_resumes_in_fp16():
    "A run started where auto meant bf16 (or fp32) and resumed on a card where it means fp16: no scaler state to load, a fresh scale."
    cfg = tiny(device='cpu', precision='bf16')
    s = St.build_train_state(cfg, *build_models(cfg), build_backbone('effnet_lite0'))
    ckpt = Ck.checkpoint_state(s, cfg, Ck.Progress(epoch=1), 30.0)
    assert ckpt['scaler_g'] == {} and ckpt['precision'] == 'bf16'
    cfg16 = tiny(device='cuda', precision='fp16')
    with fake_cuda():
        s16 = St.build_train_state(cfg16, *build_models(cfg16), build_backbone('effnet_lite0'))
        prog = Ck.restore(s16, ckpt)
        assert prog.epoch == 1 and s16.scaler_g.is_enabled()
        assert all(is_cuda(p) for p in s16.generator.parameters())


def test_upscale_runs_on_cuda(tmp_path):
    "The shipped default model on 'cuda': loaded, prepared (BatchNorm folded, tail fused) and run tiled on the GPU; the image written."
    Image.fromarray(toy_patches(1, 64, seed=3).hr[0]).save(tmp_path/'face.png')
    with fake_cuda():
        up = Upscaler(None, device='cuda', precision='auto')
        assert up.device == torch.device('cuda', 0) and up.precision == 'bf16'
        assert all(is_cuda(p) for p in up.generator.parameters())
        df = upscale_command([tmp_path/'face.png'], tmp_path/'out', device='cuda', tile=8, progress=False)
    assert df.error.isna().all() and Image.open(df.output[0]).size == (256, 256)


def test_gpu_numerics_are_chosen_and_recorded():
    "fp32 on a GPU is fp32 (no TF32); mixed precision may use TF32; deterministic turns the autotuner off."
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        with fake_cuda():
            rec = gpu_numerics('cuda', 'fp32', deterministic=True)
            assert rec['tf32'] is False and not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
            assert gpu_numerics('cuda', 'bf16')['tf32'] is True and torch.backends.cudnn.benchmark
            assert rec['cublas_workspace_config'] == ':4096:8'
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.deterministic) = saved


def test_evaluate_honours_device(tmp_path, capsys):
    "`srgan-nb evaluate --device` is the device it scores on: asking for a GPU that is not there says so (it used to be ignored)."
    from srgan_nb.cli import main
    Image.fromarray(toy_patches(1, 64, seed=4).hr[0]).save(tmp_path/'face.png')
    assert main(['evaluate', '--checkpoint', 'psnr', '--data-dir', str(tmp_path), '--out', str(tmp_path/'ev.csv'), '--device', 'cuda']) == 1
    assert 'CUDA is not available' in capsys.readouterr().err
    with fake_cuda():
        from srgan_nb.suite import MetricSuite
        assert MetricSuite(['psnr'], device='auto').fns and pick_device('auto') == torch.device('cuda', 0)
