"""Matrix products for torch code running single-threaded on CPU, through numpy's OpenBLAS when it is there.

The split CPU sections (:mod:`hadasklearn.nn._parallel`: the transformers' training split and
parallel inference) run torch on one thread per block of rows. There, on the development
machine's AMD EPYC (AVX2), numpy's OpenBLAS multiplied the ``curvenet`` transformer's shapes
8-39 % faster than the MKL that torch's CPU wheels call (layer outputs and input gradients;
weight gradients -4 to +30 %), one thread each, and the transformer's split training step
took 10 % less time (``benchmarks/bench_blas.py``, ``docs/nn_table.md``). :func:`mm`,
:func:`addmm_` and :func:`linear` use it when

- this thread's torch thread count is 1 (OpenBLAS is then held to one thread too, for this
  thread only, through ``openblas_set_num_threads_local``: OpenBLAS 0.3.27 or later),
- the operands are CPU float32/float64 tensors of one dtype, outside autocast and compilation,
- the product has at least :data:`MIN_MACS` multiply-adds (smaller ones were as fast or faster
  in MKL),
- autograd does not record the product (the differentiable :func:`linear` calls them inside
  its own forward and backward),

and call torch otherwise, so results agree up to float round-off either way. Products that do
not qualify and write no ``out`` tensor (:func:`mm`, :func:`linear` on 2-D input) go through
oneDNN where :func:`hadasklearn.nn._onednn.eligible`: tall products with at most 256 inner and
output channels, such as the CurveNet encoder's point-wise layers on multi-threaded torch.
:func:`addmm_` accumulates with torch (oneDNN's product followed by an addition was slower).
Set the environment variable ``HADASKLEARN_BLAS=torch`` (before the first product) to always
use torch's BLAS."""

import contextlib
import ctypes
import os
import threading

import numpy as np
import torch

from . import _onednn

__all__ = ["addmm_", "available", "linear", "mm", "torch_only"]

# Below this many multiply-adds a product stays with torch: for the ``lite`` backbone's shapes
# (up to 25 M, width 64) MKL was as fast or up to 1.6x faster, from about 100 M (the ``curvenet``
# transformers, width 256) OpenBLAS 1.3x faster (one thread each).
MIN_MACS = 1 << 26

_found = {}
_find_lock = threading.Lock()


def _numpy_openblas():
    """``openblas_set_num_threads_local`` of the OpenBLAS numpy multiplies with, or None."""
    if os.environ.get("HADASKLEARN_BLAS", "").lower() == "torch":
        return None
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        return None
    libs = [c.filepath for c in ThreadpoolController().select(internal_api="openblas").lib_controllers]
    # numpy's own copy (wheels: numpy.libs / numpy/.dylibs); otherwise the only one loaded
    root = os.path.realpath(os.path.dirname(np.__file__))
    own = [p for p in libs if os.path.realpath(p).startswith((root + os.sep, root + ".libs" + os.sep))]
    chosen = own[0] if len(own) == 1 else (libs[0] if len(libs) == 1 and not own else None)
    if chosen is None:
        return None
    try:
        setter = ctypes.CDLL(chosen).openblas_set_num_threads_local
    except (OSError, AttributeError):  # older OpenBLAS: no per-thread count
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


def _setter():
    return _onednn.found(_found, _find_lock, "setter", _numpy_openblas)


def available():
    """Whether products can go through numpy's OpenBLAS held to one thread (see the module notes)."""
    return _setter() is not None


@contextlib.contextmanager
def torch_only():
    """Within the block every product uses torch's BLAS, neither OpenBLAS nor oneDNN (for comparisons; not thread-safe).

    Examples
    --------
    >>> with torch_only():
    ...     available()
    False
    """
    with _onednn.cleared(_found, "setter", _setter), _onednn.torch_only():
        yield


def _eligible(m, k, n, *tensors):
    """Whether an (m, k) @ (k, n) product of ``tensors`` should go through OpenBLAS here."""
    dtype = tensors[0].dtype
    if dtype not in (torch.float32, torch.float64) or m * k * n < MIN_MACS:
        return False
    if any(t.dtype != dtype or t.device.type != "cpu" for t in tensors):
        return False
    if torch.get_num_threads() != 1 or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
        return False
    return available()


def _recording(*tensors):
    """Whether autograd would record an operation on ``tensors`` (OpenBLAS results are not differentiable)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _use_openblas(a, b):
    return a.dim() == 2 and b.dim() == 2 and not _recording(a, b) and _eligible(a.shape[0], a.shape[1], b.shape[1], a, b)


def _blasable(t):
    """``t`` as numpy, copied only if neither it nor its transpose is row-contiguous."""
    t = t.detach()
    if not (t.is_contiguous() or t.T.is_contiguous()):
        t = t.contiguous()
    return t.resolve_conj().resolve_neg().numpy()


def _openblas_mm(a, b, out):
    """``out = a @ b`` by OpenBLAS held to one thread for the calling thread."""
    setter = _setter()
    previous = setter(1)
    try:
        np.matmul(_blasable(a), _blasable(b), out=out.numpy())
    finally:
        setter(previous)
    return out


def mm(a, b, out=None):
    """``a @ b`` for 2-D tensors (into ``out`` if given); torch's own product whenever autograd records.

    Single-threaded sections use OpenBLAS for large products (module notes); tall, narrow
    products without ``out`` go through oneDNN where :func:`hadasklearn.nn._onednn.eligible`.

    Examples
    --------
    >>> import torch
    >>> mm(torch.ones(2, 3), torch.ones(3, 4)).tolist()[0]
    [3.0, 3.0, 3.0, 3.0]
    """
    if _use_openblas(a, b) and (out is None or out.is_contiguous()):
        if out is None:
            out = torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)
        return _openblas_mm(a, b, out)
    if out is None:
        return _onednn.mm(a, b)  # torch.mm where oneDNN is not eligible
    return torch.mm(a, b, out=out)


def addmm_(c, a, b):
    """``c += a @ b`` in place for 2-D tensors; returns ``c``."""
    if not _use_openblas(a, b) or _recording(c):
        return c.addmm_(a, b)
    return c.add_(_openblas_mm(a, b, torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)))


def _affine(x, weight, bias):
    # a base tensor (not a view), so that callers may modify it in place under autograd
    if x.dim() == 2:
        out = mm(x, weight.T)
    else:
        out = torch.empty(*x.shape[:-1], weight.shape[0], dtype=x.dtype)
        mm(x.reshape(-1, x.shape[-1]), weight.T, out=out.view(-1, weight.shape[0]))
    if bias is not None:
        out.add_(bias)
    return out


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x.reshape(-1, x.shape[-1]), weight)
        ctx.shape, ctx.has_bias = x.shape, bias is not None
        return _affine(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        flat, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        # mm takes torch's differentiable product itself when this backward is recorded (create_graph)
        grad_x = mm(g, weight).view(ctx.shape) if ctx.needs_input_grad[0] else None
        grad_w = mm(g.T, flat) if ctx.needs_input_grad[1] else None
        grad_b = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x, weight, bias=None):
    """:func:`torch.nn.functional.linear` whose products go through :func:`mm` (differentiable).

    Examples
    --------
    >>> import torch
    >>> linear(torch.ones(2, 5, 3), torch.ones(4, 3), torch.zeros(4)).shape
    torch.Size([2, 5, 4])
    """
    if x.dim() < 2 or weight.dim() != 2:
        return torch.nn.functional.linear(x, weight, bias)
    tensors = [t for t in (x, weight, bias) if t is not None]
    onednn = x.dim() == 2 and all(t.dtype == x.dtype for t in tensors) and _onednn.eligible(x.detach(), weight.detach().T)
    if not onednn and not _eligible(x.numel() // max(x.shape[-1], 1), *weight.T.shape, *tensors):
        return torch.nn.functional.linear(x, weight, bias)
    if _recording(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    return _affine(x, weight, bias)
