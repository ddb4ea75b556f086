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

from .._threads import map_ranges

try:
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None

__all__ = ["edge_mean_leaky", "fused_available", "knn", "neighbour_reduce"]


def fused_available(*tensors):
    """Whether the fused kernels can serve these tensors (CPU, float32/float64, numba present)."""
    return numba is not None and all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors
    )


if numba is not None:

    @numba.njit(nogil=True, cache=True)
    def _edge_forward(a, b, idx, slope, out, first, stop):
        p, k = idx.shape[1], idx.shape[2]
        c = a.shape[2]
        for cloud in range(first, stop):
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
    def _edge_backward(a, b, idx, slope, grad, grad_a, grad_b, first, stop):
        p, k = idx.shape[1], idx.shape[2]
        c = a.shape[2]
        for cloud in range(first, stop):
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
    def _reduce_forward(a, idx, use_max, out, arg, first, stop):
        p, k = idx.shape[1], idx.shape[2]
        c = a.shape[2]
        for cloud in range(first, stop):
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
    def _reduce_backward(idx, use_max, arg, grad, grad_a, first, stop):
        p, k = idx.shape[1], idx.shape[2]
        c = grad.shape[2]
        for cloud in range(first, stop):
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


    @numba.njit(nogil=True, cache=True)
    def _knn_block(points, k, out, first, stop):
        p, d = points.shape[1], points.shape[2]
        dist = np.empty(p)
        best = np.empty(k)
        order = np.empty(k, dtype=np.int64)
        for cloud in range(first, stop):
            pts = points[cloud]
            for i in range(p):
                if d == 3:  # a constant trip count lets the compiler vectorise over j
                    x, y, z = pts[i, 0], pts[i, 1], pts[i, 2]
                    for j in range(p):
                        dist[j] = (pts[j, 0] - x) ** 2 + (pts[j, 1] - y) ** 2 + (pts[j, 2] - z) ** 2
                else:
                    for j in range(p):
                        s = 0.0
                        for c in range(d):
                            s += (pts[j, c] - pts[i, c]) ** 2
                        dist[j] = s
                # The k nearest other points by insertion into a sorted list; ties keep the
                # lower index first.
                filled = 0
                for j in range(p):
                    v = dist[j]
                    if j == i or (filled == k and v >= best[k - 1]):
                        continue
                    pos = filled if filled < k else k - 1
                    while pos > 0 and best[pos - 1] > v:
                        best[pos] = best[pos - 1]
                        order[pos] = order[pos - 1]
                        pos -= 1
                    best[pos] = v
                    order[pos] = j
                    if filled < k:
                        filled += 1
                out[cloud, i, 0] = i
                for m in range(k):
                    out[cloud, i, m + 1] = order[m]


_MIN_CLOUDS_PER_THREAD = 32


def _over_clouds(kernel, n, *args):
    """Run ``kernel(*args, first, stop)`` over blocks of the ``n`` clouds on torch's thread count.

    Every cloud is written by exactly one block, so the blocks never race; the kernels release
    the GIL, so Python threads run them in parallel.
    """
    # Small batches (inference on one clip) run inline: handing a few milliseconds of work to a
    # second thread while torch's OpenMP workers still spin costs more than it saves.
    n_threads = max(1, min(torch.get_num_threads(), n // _MIN_CLOUDS_PER_THREAD))
    map_ranges(lambda first, stop: kernel(*args, first, stop), np.linspace(0, n, n_threads + 1), n_threads)


def knn(points, k):
    """Indices (clouds, points, k + 1): each point itself, then its ``k`` nearest other points.

    Squared Euclidean distances in float64, nearest first, ties broken by the lower index; the
    clouds are split over ``torch.get_num_threads()`` threads.
    """
    pts = points.detach().to(torch.float64).contiguous().numpy()
    n = pts.shape[0]
    out = np.empty((n, pts.shape[1], k + 1), dtype=np.int64)
    _over_clouds(_knn_block, n, pts, k, out)
    return torch.from_numpy(out)


class _NeighbourReduce(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, idx, use_max):
        a_ = a.detach().contiguous()
        idx_ = idx.contiguous()
        out = torch.empty_like(a_)
        arg = torch.empty(a_.shape, dtype=torch.int64) if use_max else torch.empty((1, 1, 1), dtype=torch.int64)
        _over_clouds(_reduce_forward, a_.shape[0], a_.numpy(), idx_.numpy(), use_max, out.numpy(), arg.numpy())
        ctx.save_for_backward(idx_, arg)
        ctx.use_max = use_max
        return out

    @staticmethod
    def backward(ctx, grad):
        idx, arg = ctx.saved_tensors
        grad_a = torch.empty_like(grad, memory_format=torch.contiguous_format)
        _over_clouds(_reduce_backward, idx.shape[0], idx.numpy(), ctx.use_max, arg.numpy(),
                     grad.contiguous().numpy(), grad_a.numpy())
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
        _over_clouds(_edge_forward, a_.shape[0], a_.numpy(), b_.numpy(), idx_.numpy(), slope, out.numpy())
        ctx.save_for_backward(a_, b_, idx_)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, idx = ctx.saved_tensors
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        _over_clouds(_edge_backward, a.shape[0], a.numpy(), b.numpy(), idx.numpy(), ctx.slope,
                     grad.contiguous().numpy(), grad_a.numpy(), grad_b.numpy())
        return grad_a, grad_b, None, None


def edge_mean_leaky(a, b, idx, slope):
    """``mean_j LeakyReLU(a[j] + b[i])`` over the neighbours ``idx[:, i]`` of every point ``i``.

    ``a``, ``b``: (clouds, points, channels); ``idx``: (clouds, points, k) int64 indices into the
    points of the same cloud. Differentiable in ``a`` and ``b``. CPU float tensors only (see
    :func:`fused_available`).
    """
    return _EdgeMeanLeaky.apply(a, b, idx, float(slope))
