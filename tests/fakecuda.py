"""A CUDA device without a GPU, for tests: PyTorch's FakeTensorMode gives tensors CUDA device semantics on the CPU, so the
code under test meets the same "expected all tensors to be on the same device" error a real GPU raises when a tensor is
left on the CPU. Four gaps of fake tensors are bridged here, each the least that lets the project's own code run:

- torch.cuda.is_available(), device_count() and the device's capability are answered as for one Ampere GPU (`pick_device`,
  `pick_precision` and GradScaler ask them);
- `Module.to()` / `_apply` swaps parameters in place, which fake tensors forbid (they carry weak references): here it
  assigns the converted tensors instead, as torch's own `overwrite_module_params_on_conversion` does;
- `copy.deepcopy` of a module would copy the fake mode too, and two modes cannot meet: the mode is shared instead;
- a convolution's fake kernel asks cuDNN which backend it would use, which needs the driver: here the memory format is
  chosen as cuDNN chooses it (channels_last when the input or the weight is);
- the autograd engine asks the CUDA driver for its streams before it runs a backward pass: here `backward()` walks the
  recorded graph and gives every leaf it reaches a zero gradient on the leaf's own device (where autograd puts it), so the
  optimiser and gradient-scaler steps after it run as on a GPU;
- a value read back to the host (`float(t)`, `.item()`, `.tolist()`, `.numpy()` of a CPU tensor) is 0 of its kind: fake tensors hold no values. No numbers are checked on fake tensors; only
  devices, dtypes and shapes, and that each path gets through.
"""
from __future__ import annotations
import contextlib, copy
from unittest import mock

import torch
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensorMode, FakeTensor


def _applier(mode: FakeTensorMode):
    "nn.Module._apply without swap_tensors: converted parameters and buffers are assigned (as with overwrite_module_params_on_conversion); real ones become fake first."
    fake = lambda t: t if isinstance(t, FakeTensor) else mode.from_tensor(t)
    def _apply(self, fn, recurse=True):
        if recurse:
            for m in self.children(): m._apply(fn)
        for k, p in self._parameters.items():
            if p is None: continue
            with torch.no_grad(): q = fn(fake(p.detach()))
            self._parameters[k] = nn.Parameter(q, requires_grad=p.requires_grad)
        for k, b in self._buffers.items():
            if b is not None: self._buffers[k] = fn(fake(b))
        return self
    return _apply


def _backward(tensor, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    "A zero gradient, on its own device and in its own dtype, for every leaf that `tensor`'s graph reaches."
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen: continue
        seen.add(fn)
        v = getattr(fn, 'variable', None)   # an AccumulateGrad node: the leaf it accumulates into
        if v is not None and v.grad is None: v.grad = torch.zeros_like(v)
        todo.extend(f for f, _ in fn.next_functions)


def _channels_last(t) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _conv_memory_format(input_, weight, backend):
    "cuDNN's choice (cudnn_conv_suggest_memory_format): channels_last when the input or the weight is."
    return torch.channels_last if _channels_last(input_) or _channels_last(weight) else torch.contiguous_format


def _host_value(fake_mode, func, arg):
    "What a fake tensor's `.item()` / `float()` reads back: 0 of its kind (fake tensors hold no values)."
    return False if arg.dtype == torch.bool else (0.0 if arg.dtype.is_floating_point else 0)


def _numpy(self, *, force=False):
    "A fake CPU tensor's values as an array of zeros of its shape and dtype (a CUDA one must be copied to the CPU first, as on a GPU)."
    if self.device.type != 'cpu': raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first.")
    import numpy as np
    kinds = {torch.uint8: np.uint8, torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32, torch.int64: np.int64,
             torch.bool: np.bool_, torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
    return np.zeros(tuple(self.shape), dtype=kinds[self.dtype])


def _autograd_backward(tensors, grad_tensors=None, *a, **k):
    for t in ([tensors] if isinstance(tensors, torch.Tensor) else tensors): _backward(t)


@contextlib.contextmanager
def fake_cuda(capability=(8, 0), bf16: bool = True):
    "Inside: tensors are fake, 'cuda' is a device, and a CPU tensor that meets a CUDA one raises as on a GPU. Yields the mode."
    mode = FakeTensorMode(allow_non_fake_inputs=True)   # real CPU inputs (a loaded state dict) are converted, keeping their device
    props = mock.Mock(major=capability[0], minor=capability[1], total_memory=80 * 1024**3, multi_processor_count=132)
    props.name = f'fake sm_{capability[0]}{capability[1]}'
    with contextlib.ExitStack() as st:
        for target, value in [('torch.cuda.is_available', lambda: True), ('torch.cuda.device_count', lambda: 1),
                              ('torch.cuda.is_bf16_supported', lambda including_emulation=True: bf16 and (capability >= (8, 0) or including_emulation)),
                              ('torch.cuda.get_device_capability', lambda device=None: capability),
                              ('torch.cuda.get_device_properties', lambda device=None: props),
                              ('torch.cuda.get_device_name', lambda device=None: props.name),
                              ('torch.cuda.current_device', lambda: 0), ('torch.cuda.set_device', lambda d: None),
                              ('torch.cuda.synchronize', lambda device=None: None),
                              ('torch.cuda.is_initialized', lambda: False),
                              ('torch._C._select_conv_backend', lambda *a, **k: None),   # torch asks cuDNN, which needs the driver
                              ('torch._C._conv_determine_backend_memory_format', _conv_memory_format),
                              ('torch.nn.Module._apply', _applier(mode)), ('torch.Tensor.backward', _backward),
                              ('torch.autograd.backward', _autograd_backward)]:
            st.enter_context(mock.patch(target, value))
        from torch._subclasses import fake_impls
        aten = torch.ops.aten
        st.enter_context(mock.patch.dict(fake_impls.op_implementations_dict,
                                         {aten._local_scalar_dense.default: _host_value, aten.item.default: _host_value}))
        # fake tensors stay off the real device whatever torch.cuda.is_available() says (it decides that by asking it)
        st.enter_context(mock.patch.object(FakeTensorMode, 'avoid_device_init', property(lambda self: True)))
        st.enter_context(mock.patch.object(FakeTensorMode, '__deepcopy__', lambda self, memo: self, create=True))
        st.enter_context(mock.patch.object(FakeTensor, 'numpy', _numpy, create=True))
        with mode: yield mode


def on_cuda(module: nn.Module) -> nn.Module:
    "`module`'s parameters and buffers as fake CUDA tensors (call inside `fake_cuda`)."
    return module.to('cuda')


def is_cuda(t) -> bool:
    "A fake tensor that says it is on a CUDA device."
    return isinstance(t, FakeTensor) and t.device.type == 'cuda'
