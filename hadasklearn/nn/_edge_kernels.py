"""Fused CPU kernels (numba) for the k-NN edge operations of the CurveNet encoder.

Gathering the neighbours' features into a ``(clouds, points, k, channels)`` tensor, adding the
centre term, applying LeakyReLU and averaging over the neighbours are four passes over a tensor
``k`` times larger than the point features; the kernels here do it in one pass without
materialising it, forward and backward, parallel over clouds. They serve CPU float tensors; on
other devices (or without numba) the torch composition in :mod:`hadasklearn.nn.curvenet` runs,
with identical results up to float round-off.
"""

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None

__all__ = ["edge_mean_leaky", "fused_available", "neighbour_reduce"]


def fused_available(*tensors):
    """Whether the fused kernels can serve these tensors (CPU, float32/float64, numba present)."""
    return numba is not None and all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors
    )


if numba is not None:

    @numba.njit(nogil=True, cache=True)
    def _edge_forward(a, b, idx, slope, out):
        n, p, k = idx.shape
        c = a.shape[2]
        for cloud in range(n):
            acc = np.empty(c, dtype=a.dtype)
            for i in range(p):
                acc[:] = 0
                for jj in range(k):
                    j = idx[cloud, i, jj]
                    for ch in range(c):
                        v = a[cloud, j, ch] + b[cloud, i, ch]
                        acc[ch] += v if v > 0 else slope * v
                for ch in range(c):
                    out[cloud, i, ch] = acc[ch] / k

    @numba.njit(nogil=True, cache=True)
    def _edge_backward(a, b, idx, slope, grad, grad_a, grad_b):
        n, p, k = idx.shape
        c = a.shape[2]
        for cloud in range(n):
            grad_a[cloud] = 0
            for i in range(p):
                for ch in range(c):
                    grad_b[cloud, i, ch] = 0
                for jj in range(k):
                    j = idx[cloud, i, jj]
                    for ch in range(c):
                        g = grad[cloud, i, ch] / k
                        if a[cloud, j, ch] + b[cloud, i, ch] <= 0:
                            g *= slope
                        grad_a[cloud, j, ch] += g
                        grad_b[cloud, i, ch] += g


    @numba.njit(nogil=True, cache=True)
    def _reduce_forward(a, idx, use_max, out, arg):
        n, p, k = idx.shape
        c = a.shape[2]
        for cloud in range(n):
            for i in range(p):
                j = idx[cloud, i, 0]
                for ch in range(c):
                    out[cloud, i, ch] = a[cloud, j, ch]
                if use_max:
                    for ch in range(c):
                        arg[cloud, i, ch] = j
                for jj in range(1, k):
                    j = idx[cloud, i, jj]
                    for ch in range(c):
                        v = a[cloud, j, ch]
                        if not use_max:
                            out[cloud, i, ch] += v
                        elif v > out[cloud, i, ch]:  # first maximum wins, as torch.max
                            out[cloud, i, ch] = v
                            arg[cloud, i, ch] = j

    @numba.njit(nogil=True, cache=True)
    def _reduce_backward(idx, use_max, arg, grad, grad_a):
        n, p, k = idx.shape
        c = grad.shape[2]
        for cloud in range(n):
            grad_a[cloud] = 0
            for i in range(p):
                if use_max:
                    for ch in range(c):
                        grad_a[cloud, arg[cloud, i, ch], ch] += grad[cloud, i, ch]
                else:
                    for jj in range(k):
                        j = idx[cloud, i, jj]
                        for ch in range(c):
                            grad_a[cloud, j, ch] += grad[cloud, i, ch]


class _NeighbourReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, idx, use_max):
        a_ = a.detach().contiguous()
        idx_ = idx.contiguous()
        out = torch.empty_like(a_)
        arg = torch.empty(a_.shape, dtype=torch.int64) if use_max else torch.empty((1, 1, 1), dtype=torch.int64)
        _reduce_forward(a_.numpy(), idx_.numpy(), use_max, out.numpy(), arg.numpy())
        ctx.save_for_backward(idx_, arg)
        ctx.use_max = use_max
        return out

    @staticmethod
    def backward(ctx, grad):
        idx, arg = ctx.saved_tensors
        grad_a = torch.empty_like(grad, memory_format=torch.contiguous_format)
        _reduce_backward(idx.numpy(), ctx.use_max, arg.numpy(), grad.contiguous().numpy(), grad_a.numpy())
        return grad_a, None, None


def neighbour_reduce(a, idx, how):
    """Sum or max of ``a[j]`` over the neighbours ``idx[:, i]`` of every point ``i``.

    ``how`` is ``"sum"`` or ``"max"`` (gradient to the first maximal neighbour, as ``torch.max``).
    Differentiable in ``a``; CPU float tensors only (see :func:`fused_available`).
    """
    return _NeighbourReduce.apply(a, idx, how == "max")


class _EdgeMeanLeaky(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, idx, slope):
        a_, b_ = a.detach().contiguous(), b.detach().contiguous()
        idx_ = idx.contiguous()
        out = torch.empty_like(b_)
        _edge_forward(a_.numpy(), b_.numpy(), idx_.numpy(), slope, out.numpy())
        ctx.save_for_backward(a_, b_, idx_)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, idx = ctx.saved_tensors
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        _edge_backward(a.numpy(), b.numpy(), idx.numpy(), ctx.slope, grad.contiguous().numpy(),
                       grad_a.numpy(), grad_b.numpy())
        return grad_a, grad_b, None, None


def edge_mean_leaky(a, b, idx, slope):
    """``mean_j LeakyReLU(a[j] + b[i])`` over the neighbours ``idx[:, i]`` of every point ``i``.

    ``a``, ``b``: (clouds, points, channels); ``idx``: (clouds, points, k) int64 indices into the
    points of the same cloud. Differentiable in ``a`` and ``b``. CPU float tensors only (see
    :func:`fused_available`).
    """
    return _EdgeMeanLeaky.apply(a, b, idx, float(slope))
