"""DistributedDataParallel on CPU: two gloo processes train together and end with identical weights, with either
discriminator. (fp16 and its gradient scaler need a GPU: benchmarks/gpu_check.py runs torchrun there.)"""
import os, socket

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, norm: str):
    "One rank: env vars as torchrun sets them, different initial weights per rank, then fit."
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), SRGAN_PROGRESS='0')
    torch.set_num_threads(1)
    import srgan_nb.train as T
    from srgan_nb.testing import toy_patches
    from srgan_nb.config import make_config
    from srgan_nb.losses import build_backbone
    from srgan_nb.model import Generator, Discriminator
    cfg = make_config('s2', hr_size=24, n_blocks=1, channels=8, pretrain_epochs=1, epochs=1, batch_size=2,
                      backbone='effnet_lite0', precision='fp32', device='cpu', log_every=1, resume=False, d_norm=norm)
    torch.manual_seed(100 + rank)  # DDP must broadcast rank 0's weights
    g, d = Generator(4, 1, 8, bicubic_skip=True), Discriminator(24, base=8, norm=norm)
    init = {k: v.clone() for k, v in g.state_dict().items()}
    hist = T.fit(cfg, toy_patches(10, 24, 4, seed=1), toy_patches(2, 24, 4, seed=2), os.path.join(out, 'run'),
                 generator=g, discriminator=d, backbone=build_backbone('effnet_lite0'))
    torch.save(dict(g=g.state_dict(), d=d.state_dict(), init=init, world=dist.get_world_size()), os.path.join(out, f'rank{rank}.pt'))
    hist.to_csv(os.path.join(out, f'hist{rank}.csv'), index=False)
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed is not available in this build')
@pytest.mark.parametrize('norm', ['bn', 'sn'])   # the paper's BatchNorm D and today's default, the spectral-norm D
def test_two_ranks_hold_identical_weights(tmp_path, norm):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), norm), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path/f'rank{r}.pt', weights_only=True) for r in (0, 1))
    assert r0['world'] == r1['world'] == 2
    assert any(not torch.equal(r0['init'][k], r1['init'][k]) for k in r0['init'])  # they started apart
    for net in ('g', 'd'):
        for k in r0[net]:
            if 'running' in k or 'num_batches' in k: continue  # batch-norm statistics stay per rank
            assert torch.equal(r0[net][k], r1[net][k]), f'{net}.{k} differs between ranks'
    assert any(not torch.equal(r0['init'][k], r0['g'][k]) for k in r0['init'])  # and they trained
    h0, h1 = pd.read_csv(tmp_path/'hist0.csv'), pd.read_csv(tmp_path/'hist1.csv')
    loss_cols = ['g_loss', 'pixel_loss', 'd_loss_real', 'd_loss_fake']
    pd.testing.assert_frame_equal(h0[loss_cols], h1[loss_cols])  # losses are averaged over both ranks
    assert h0.val_psnr.notna().all() and h1.val_psnr.isna().all()  # rank 0 validates
    assert sorted(p.name for p in (tmp_path/'run'/'checkpoints').iterdir()) == ['last.pt']  # slimmed once finished (keep_checkpoints off)
