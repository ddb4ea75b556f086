"""Eval-mode CPU batches split over threads, each thread running torch single-threaded.

torch parallelises every operator over its OpenMP threads. For inference on CPU it is faster
to give each thread its own clips and run every operator on one thread: no synchronisation per
operator, no OpenMP workers spinning against the compiled kernels' threads, and, taken a few
clips at a time, activations small enough to stay in cache and to be reused by the allocator
instead of being mapped and page-faulted afresh (measured in ``benchmarks/bench_nets.py``).
This is only valid when rows do not interact, i.e. in eval mode.
"""

import numpy as np
import torch

from .._threads import map_ranges

__all__ = ["map_batch"]


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

    def part(first, stop):
        # torch sets a thread's count lazily, on its first parallel operator, from the count last
        # passed to set_num_threads anywhere (which another part may restore meanwhile): trigger
        # that first, then set this thread's count.
        torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode() if inference else torch.no_grad():
                return _cat([
                    fn(*(None if t is None else t[i : min(i + chunk, stop)] for t in inputs))
                    for i in range(first, stop, chunk)
                ])
        finally:
            torch.set_num_threads(caller_threads)

    if n_threads == 1:
        with torch.inference_mode() if inference else torch.no_grad():
            return _cat([fn(*(None if t is None else t[i : i + chunk] for t in inputs)) for i in range(0, batch, chunk)])
    return _cat(map_ranges(part, np.linspace(0, batch, n_threads + 1).round().astype(int), n_threads))
