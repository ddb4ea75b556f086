"""CPU batches split over threads, each thread running torch single-threaded.

torch parallelises every operator over its OpenMP threads. For inference on CPU it is faster
to give each thread its own clips and run every operator on one thread: no synchronisation per
operator, no OpenMP workers spinning against the compiled kernels' threads, and, taken a few
clips at a time, activations small enough to stay in cache and to be reused by the allocator
instead of being mapped and page-faulted afresh (measured in ``benchmarks/bench_nets.py``).
This is only valid when rows do not interact: in eval mode (:func:`map_batch`), or in
training for modules without batch statistics (:func:`row_parallel`, the transformers).
"""

import torch
from timm.layers import Attention, DropPath
from torch import nn
from torch.autograd.function import once_differentiable

from .._threads import even_edges, map_ranges
from . import _dropout

__all__ = ["can_split", "map_batch", "row_parallel", "splits_rows"]


def can_split(*tensors):
    """Whether torch's threads could take blocks of rows of ``tensors`` (``None`` entries ignored).

    True on CPU with more than one torch thread and no autocast, when the tensors share a first
    dimension of at least 2. Anything unusual (non-tensors, sizes that disagree) is False, so
    callers take their plain path and its error messages.
    """
    if torch.get_num_threads() < 2 or torch.is_autocast_enabled("cpu"):
        return False
    given = [t for t in tensors if t is not None]
    if not given or not all(isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.dim() >= 1 for t in given):
        return False
    return len({t.shape[0] for t in given}) == 1 and given[0].shape[0] >= 2


def _single_threaded(caller_threads, call):
    """``call()`` with this thread's torch thread count at 1, then back to ``caller_threads``."""
    # torch sets a thread's count lazily, on its first parallel operator, from the count last
    # passed to set_num_threads anywhere (which another thread may restore meanwhile): trigger
    # that first, then set this thread's count.
    torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return call()
    finally:
        torch.set_num_threads(caller_threads)


def _cat(outputs):
    first = outputs[0]
    if isinstance(first, tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)


def map_batch(fn, inputs, *, chunk, n_threads=None):
    """``fn(*inputs)`` computed on row blocks of ``inputs`` spread over threads, concatenated.

    Parameters
    ----------
    fn : callable
        Takes the row slices of ``inputs`` (``None`` stays ``None``) and returns a tensor or a
        tuple of tensors with one row per input row. Rows must not depend on each other.
    inputs : sequence of torch.Tensor or None
        Tensors with the same first dimension (the batch).
    chunk : int
        Rows per call of ``fn`` within a thread.
    n_threads : int or None, default=None
        Threads; ``None`` uses ``torch.get_num_threads()`` of the calling thread.

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        As ``fn(*inputs)``, up to float round-off.

    Notes
    -----
    Each thread sets its torch thread count to 1 and restores the caller's count when it is
    done (``torch.set_num_threads`` also sets the count that threads starting torch later pick
    up). Gradient mode is thread-local: the calls run under ``torch.inference_mode()`` when the
    caller is in inference mode, under ``torch.no_grad()`` otherwise; call it with gradients
    disabled only.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(10.0).view(5, 2)
    >>> with torch.no_grad():
    ...     map_batch(lambda t: t * 2, [x], chunk=2, n_threads=2).tolist()
    [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0], [12.0, 14.0], [16.0, 18.0]]
    """
    if torch.is_grad_enabled():
        raise RuntimeError("map_batch runs without autograd; call it under torch.no_grad() or torch.inference_mode().")
    batch = next(t for t in inputs if t is not None).shape[0]
    caller_threads = torch.get_num_threads()
    n_threads = caller_threads if n_threads is None else n_threads
    n_threads = max(1, min(n_threads, batch))
    inference = torch.is_inference_mode_enabled()

    def rows(first, stop):
        with torch.inference_mode() if inference else torch.no_grad():
            return _cat([
                fn(*(None if t is None else t[i : min(i + chunk, stop)] for t in inputs))
                for i in range(first, stop, chunk)
            ])

    if n_threads == 1:
        return rows(0, batch)
    return _cat(map_ranges(lambda first, stop: _single_threaded(caller_threads, lambda: rows(first, stop)),
                           even_edges(batch, n_threads), n_threads))


def splits_rows(module, x):
    """Whether :func:`row_parallel` would split ``module``'s training pass on ``x`` over threads.

    Only on CPU, with autograd on and more than one torch thread, for at least two rows, without
    autocast, and for modules whose rows cannot interact or draw from the shared random
    generator: no BatchNorm, no active stochastic depth, no dropout other than
    :class:`~hadasklearn.nn._dropout.HashDropout`, no attention dropout.
    """
    if not torch.is_grad_enabled() or not can_split(x):
        return False
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return False
        if isinstance(m, DropPath) and m.drop_prob > 0 and m.training:
            return False
        if type(m) is nn.Dropout and m.p > 0 and m.training:
            return False
        if isinstance(m, Attention) and m.attn_drop.p > 0 and m.training:
            return False
    return True


class _RowParallel(torch.autograd.Function):
    """``module(x, rows)`` evaluated on row blocks in threads, differentiable in ``x`` and ``params``."""

    @staticmethod
    def forward(ctx, module, rows, edges, seeds, x, *params):
        caller = torch.get_num_threads()

        def part(s, _):
            def run():
                xi = x[edges[s] : edges[s + 1]].detach().requires_grad_(x.requires_grad)
                with torch.enable_grad(), _dropout.seeded(seeds[s]):
                    yi = module(xi, None if rows is None else rows[edges[s] : edges[s + 1]])
                return xi, yi

            return _single_threaded(caller, run)

        ctx.parts = map_ranges(part, range(len(edges)), len(edges) - 1)
        ctx.edges, ctx.params, ctx.caller = edges, params, caller
        return torch.cat([yi.detach() for _, yi in ctx.parts])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        params = [p for p, needed in zip(ctx.params, ctx.needs_input_grad[5:]) if needed]
        edges, x_needed = ctx.edges, ctx.needs_input_grad[4]

        def part(s, _):
            xi, yi = ctx.parts[s]
            inputs = ([xi] if x_needed else []) + params
            return _single_threaded(
                ctx.caller,
                lambda: torch.autograd.grad(yi, inputs, grad[edges[s] : edges[s + 1]], allow_unused=True),
            )

        results = map_ranges(part, range(len(edges)), len(edges) - 1)
        ctx.parts = None
        grad_x = None
        if x_needed:
            grad_x = torch.cat([r[0] for r in results])
            results = [r[1:] for r in results]
        # parameter gradients summed here, in part order: deterministic for any number of threads
        summed = iter([_sum_in_order([r[i] for r in results]) for i in range(len(params))])
        grad_params = [next(summed) if needed else None for needed in ctx.needs_input_grad[5:]]
        return (None, None, None, None, grad_x, *grad_params)


def _sum_in_order(grads):
    grads = [g for g in grads if g is not None]
    if not grads:
        return None
    total = grads[0].clone()
    for g in grads[1:]:
        total += g
    return total


def row_parallel(module, x, rows=None):
    """``module(x, rows)`` for training, with its rows split over torch's threads (see :func:`splits_rows`).

    Each thread runs the forward and, later, the backward of its block of rows with torch on one
    thread: on 2 CPU cores a training step of the ``curvenet`` space-time transformer took
    2.45-2.78 s through every operator on both threads and 2.00-2.45 s split. Gradients equal the
    plain call's up to round-off (parameter gradients are summed over the blocks in a fixed
    order). Dropout masks come from per-block seeds drawn from torch's generator, so a run is
    reproducible under ``torch.manual_seed`` for a given thread count, and its masks differ from
    those of an unsplit call (equally distributed). Falls back to ``module(x, rows)`` when
    :func:`splits_rows` is False.

    Parameters
    ----------
    module : nn.Module
        Called as ``module(x_block, rows_block)``; rows must not interact.
    x : torch.Tensor
        ``(batch, ...)`` input.
    rows : torch.Tensor or None, default=None
        A second ``(batch, ...)`` input split alongside ``x`` (not differentiated), e.g. a mask.

    Returns
    -------
    torch.Tensor
        ``module(x, rows)``.
    """
    if not splits_rows(module, x):
        return module(x, rows)
    n_parts = min(torch.get_num_threads(), x.shape[0])
    edges = even_edges(x.shape[0], n_parts)
    seeds = torch.randint(0, 2**62, (n_parts,)).tolist()
    params = [p for p in module.parameters() if p.requires_grad]
    return _RowParallel.apply(module, rows, edges, seeds, x, *params)
