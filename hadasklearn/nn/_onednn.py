"""Tall, narrow matrix products through oneDNN, the MKL-DNN library bundled with torch's CPU builds.

A CurveNet encoder's point-wise layers multiply (rows, c_in) by (c_in, c_out) with 16-256
channels on 10**5 rows (every point of a training batch). torch's CPU wheels send these to MKL,
which on the development machine's AMD EPYC (AVX2, two threads) ran them at 8-40 G multiply-adds
per second; oneDNN, whose kernels are generated for the instruction set found at run time,
multiplied the same operands 1.2-2.8x faster except where the output is wider than the inner
dimension and the product is accumulated into an existing tensor (``benchmarks/bench_onednn.py``,
``docs/nn_table.md``). :func:`mm` uses it when

- both operands are 2-D float32 CPU tensors, the left one row-contiguous,
- the left operand has at least :data:`MIN_ROWS` rows and the inner and output dimensions are
  at most :data:`MAX_WIDTH` (products whose inner dimension is the long one, such as weight
  gradients ``g.T @ x``, ran faster in MKL and stay there),
- autograd does not record the product, and neither autocast nor compilation is active,
- torch was built with oneDNN, it is enabled (``torch.backends.mkldnn``), and a first small
  product through it agreed with torch's (:func:`available`),

and torch's own product otherwise; results agree up to float round-off either way. The variable
``HADASKLEARN_BLAS=torch`` (set before the first product) turns it off, as it does the OpenBLAS
path of :mod:`hadasklearn.nn._blas`.
"""

import contextlib
import os
import threading

import torch

__all__ = ["MAX_WIDTH", "MIN_ROWS", "available", "eligible", "mm", "torch_only"]

# Measured on 122,368 (two threads) and 61,184 rows (one); below a few thousand rows (the
# cache-sized blocks of inference) MKL was as fast.
MIN_ROWS = 1 << 12
# The widest layer of the default encoder; wider products were not measured.
MAX_WIDTH = 256

_state = {}
_lock = threading.Lock()


def _probe():
    """The oneDNN linear operator if it exists here and reproduces a small product, else None."""
    if os.environ.get("HADASKLEARN_BLAS", "").lower() == "torch":
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None:
        return None
    g = torch.Generator().manual_seed(0)
    a, w = torch.randn(37, 11, generator=g), torch.randn(5, 11, generator=g)
    try:
        got = op(a, w, None, "none", [], "")
    except (RuntimeError, NotImplementedError):
        return None
    if got.shape != (37, 5) or not torch.allclose(got, a @ w.T, rtol=1e-4, atol=1e-5):
        return None
    return op


def found(state, lock, key, probe):
    """``state[key]``, set once by ``probe()`` under ``lock``: a backend looked up lazily, thread-safely.

    Serves this module's oneDNN operator and :mod:`hadasklearn.nn._blas`'s OpenBLAS thread setter.
    """
    if key not in state:
        with lock:
            if key not in state:
                state[key] = probe()
    return state[key]


def _op():
    return found(_state, _lock, "op", _probe)


def available():
    """Whether products can go through oneDNN here (see the module notes).

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return _op() is not None and torch._C._get_mkldnn_enabled()


@contextlib.contextmanager
def torch_only():
    """Within the block no product goes through oneDNN (for comparisons; not thread-safe).

    Examples
    --------
    >>> with torch_only():
    ...     available()
    False
    """
    with cleared(_state, "op", _op):
        yield


@contextlib.contextmanager
def cleared(state, key, load):
    """Within the block ``state[key]`` is ``None`` (after ``load()`` has filled it), then restored.

    The switch of :func:`torch_only` here and in :mod:`hadasklearn.nn._blas`, whose lazily
    found backends live in such a dictionary.
    """
    saved = load()
    state[key] = None
    try:
        yield
    finally:
        state[key] = saved


def eligible(a, b):
    """Whether ``a @ b`` should go through oneDNN (see the module notes)."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dim() != 2 or b.dim() != 2:
        return False
    if a.dtype != torch.float32 or b.dtype != torch.float32 or a.device.type != "cpu" or b.device.type != "cpu":
        return False
    if a.shape[0] < MIN_ROWS or a.shape[1] != b.shape[0] or max(b.shape) > MAX_WIDTH or min(b.shape) == 0:
        return False
    if not a.is_contiguous() or a.is_conj() or b.is_conj() or a.is_neg() or b.is_neg():
        return False
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return False
    if torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
        return False
    return available()


def mm(a, b):
    """``a @ b`` through oneDNN where :func:`eligible`, else :func:`torch.mm`; a new tensor.

    Examples
    --------
    >>> import torch
    >>> mm(torch.ones(5000, 3), torch.ones(3, 2))[0].tolist()
    [3.0, 3.0]
    """
    if not eligible(a, b):
        return torch.mm(a, b)
    # oneDNN's linear computes x @ W.T for a (c_out, c_in) weight
    weight = b.T if b.T.is_contiguous() else b.T.contiguous()
    return _op()(a, weight, None, "none", [], "")
