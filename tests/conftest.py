"Shared pytest fixtures: the shared data folder (skips cleanly when absent) and a scratch reports folder."
import os
# one OpenMP thread in every process the tests start too (the pipeline's papermill kernels, DDP ranks): two pytest workers
# whose children each spin two threads on two cores ran the pipeline tests 2.5-4x slower (337 s against 135 s, side by side)
os.environ.setdefault('OMP_NUM_THREADS', '1')
import pytest
import torch
from srgan_nb.config import shared_data


@pytest.fixture(scope='session')
def shared():
    "The shared data folder, or a skip with the reason printed."
    p = shared_data()
    if p is None: pytest.skip('shared data absent (set SRGAN_SHARED_DATA or place ../shared/data beside the checkout)')
    return p


@pytest.fixture(scope='session')
def faces_dir(shared):
    p = shared/'faces-utk'
    if not p.exists(): pytest.skip(f'{p} absent')
    return p


@pytest.fixture
def reports_tmp(tmp_path, monkeypatch):
    "Point reports/ (runs and cache) at a temporary folder for the test."
    monkeypatch.setenv('SRGAN_REPORTS', str(tmp_path/'reports'))
    return tmp_path/'reports'


@pytest.fixture(autouse=True, scope='session')
def one_torch_thread():
    "Tests use tiny tensors: one torch thread is faster, and far faster than two on a busy 2-core machine."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
