"""Dropout whose mask is a hash of a seed and the element index, regenerated in backward.

``torch.nn.functional.dropout`` on CPU draws a Bernoulli tensor (slow: about 60 ms for the
8192 x 512 activations of one transformer MLP here) and keeps it, as large as the input, for
backward. :class:`HashDropout` draws one 62-bit seed from torch's generator per call (so
``torch.manual_seed`` makes it reproducible) and decides element ``i`` by the SplitMix64
finaliser of ``seed + i * 0x9E3779B97F4A7C15`` (Steele, Lea & Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014): the same mask is recomputed in backward, nothing
is stored, and the result does not depend on how the elements are split over threads. Other
devices and dtypes (or no numba) use ``torch.nn.functional.dropout``.
"""

import contextlib
import threading

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._edge_kernels import _split_rows, fused_available, numba

__all__ = ["HashDropout", "hash_dropout", "seeded"]

_local = threading.local()


@contextlib.contextmanager
def seeded(seed):
    """In this thread, draw :func:`hash_dropout`'s per-call seeds from a generator seeded with ``seed``.

    torch's default generator is shared by all threads: dropouts running in several threads at
    once would draw from it in whatever order the threads reach it. A thread-local generator
    keeps each thread's masks reproducible.
    """
    previous = getattr(_local, "generator", None)
    _local.generator = torch.Generator().manual_seed(int(seed))
    try:
        yield
    finally:
        _local.generator = previous

# Elements per thread below which one thread does the whole tensor: right after a torch
# operation its OpenMP workers still spin on the cores for several milliseconds, and a second
# thread then waits for a core instead of helping. A 4M-element mask right after a matrix
# product took 10.8 ms on two threads (4.6 ms when the cores were idle); in a curvenet training
# step the 54 dropout passes (2-4M elements each) took 290-365 ms on two threads, 195-200 ms on one.
_MIN_PER_THREAD = 1 << 23

if numba is not None:

    @numba.njit(nogil=True, cache=True)
    def _mask_range(x, out, seed, threshold, scale, first, stop):
        golden = np.uint64(0x9E3779B97F4A7C15)
        m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
        s30, s27, s31, s32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
        base = np.uint64(seed)
        for i in range(first, stop):
            z = base + np.uint64(i) * golden
            z = (z ^ (z >> s30)) * m1
            z = (z ^ (z >> s27)) * m2
            z = z ^ (z >> s31)
            # keep with probability 1 - threshold / 2**32
            out[i] = x[i] * scale if (z >> s32) >= threshold else x[i] * 0


def _apply_mask(x, seed, p):
    """``x`` with the elements the hash of ``seed`` drops set to 0 and the rest scaled by 1 / (1 - p)."""
    flat = x.detach().contiguous().view(-1)
    out = torch.empty_like(flat)
    xs, os_ = flat.numpy(), out.numpy()
    threshold = np.uint64(min(round(p * 2.0**32), 2**32))
    scale = xs.dtype.type(1.0 / (1.0 - p))
    _split_rows(_mask_range, flat.numel(), xs, os_, seed, threshold, scale, min_per_thread=_MIN_PER_THREAD)
    return out.view(x.shape)


class _HashDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, seed, p):
        ctx.seed, ctx.p = seed, p
        return _apply_mask(x, seed, p)

    @staticmethod
    def backward(ctx, grad):
        # d(out)/d(x) is the same mask and scale: recompute it from the seed
        return _apply_mask(grad, ctx.seed, ctx.p), None, None


def hash_dropout(x, p, training=True, generator=None):
    """Dropout of ``x`` with rate ``p`` whose mask is recomputed from a seed in backward.

    Parameters
    ----------
    x : torch.Tensor
        Input of any shape.
    p : float
        Probability of zeroing an element, in ``[0, 1)``; kept elements are scaled by
        ``1 / (1 - p)``.
    training : bool, default=True
        ``False`` returns ``x`` unchanged.
    generator : torch.Generator or None, default=None
        Source of the per-call seed (``None``: the thread's generator set by :func:`seeded`,
        else torch's default generator).

    Returns
    -------
    torch.Tensor
        A new tensor of ``x``'s shape and dtype (``x`` itself when not training or ``p == 0``).

    Raises
    ------
    ValueError
        If ``p`` is outside ``[0, 1)``.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> y = hash_dropout(torch.ones(1000), 0.25)
    >>> sorted(set(y.tolist()))
    [0.0, 1.3333333730697632]
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}.")
    if not training or p == 0.0:
        return x
    if not fused_available(x):
        return F.dropout(x, p, True)
    if generator is None:
        generator = getattr(_local, "generator", None)  # see seeded()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return _HashDropout.apply(x, seed, float(p))


class HashDropout(nn.Dropout):
    """:class:`torch.nn.Dropout` through :func:`hash_dropout`: no mask kept for backward.

    Same parameters and ``state_dict`` as :class:`torch.nn.Dropout`; ``inplace`` is not
    supported (the output is always a new tensor).

    Examples
    --------
    >>> import torch
    >>> layer = HashDropout(0.5).eval()
    >>> x = torch.randn(3, 4)
    >>> bool((layer(x) == x).all())
    True
    """

    def __init__(self, p=0.5, inplace=False):
        if inplace:
            raise ValueError("HashDropout does not support inplace=True; use torch.nn.Dropout.")
        super().__init__(p, inplace=False)

    def forward(self, x):
        """Drop elements of ``x`` (training) or return it unchanged (eval)."""
        return hash_dropout(x, self.p, self.training)
