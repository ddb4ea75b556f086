"""One way to run GIL-releasing work (numpy ufuncs, ``nogil`` numba kernels, torch) on a few threads.

The calling thread works on the ranges itself, helped by long-lived worker threads of one shared
pool. Long-lived threads keep their malloc arenas: a torch training step split over threads
allocates and frees the same activations in the same thread every time, and with fresh threads
per call (whose arenas change hands) the ``curvenet`` transformer's split forward and backward
took 42-225 thousand page faults per step even with freed memory retained
(``hadasklearn.nn._memory``), against 1-2 thousand in threads that stay.
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

__all__ = ["even_edges", "map_ranges"]

_local = threading.local()  # .busy: this thread is running a range (nested calls run inline)
_lock = threading.Lock()
_pool = {"executor": None, "workers": 0}


def _mark_worker():
    _local.busy = True


def _start_helpers(n, fn):
    """``n`` futures of ``fn()`` on the shared pool, grown to at least ``n`` worker threads first."""
    with _lock:  # submitted under the lock: a pool is never shut down between lookup and submit
        if _pool["workers"] < n:
            old = _pool["executor"]
            _pool["executor"] = ThreadPoolExecutor(n, thread_name_prefix="hadasklearn", initializer=_mark_worker)
            _pool["workers"] = n
            if old is not None:
                old.shutdown(wait=False)  # its idle threads exit; submitted work still runs
        return [_pool["executor"].submit(fn) for _ in range(n)]


def _forget_pool():
    # A forked child has none of the parent's threads: start a new pool when one is needed.
    global _lock
    _lock = threading.Lock()
    _pool.update(executor=None, workers=0)
    _local.__dict__.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def even_edges(n, parts):
    """Boundaries (``parts + 1`` ints) of ``parts`` near-equal blocks of ``n`` rows.

    Examples
    --------
    >>> even_edges(7, 3)
    [0, 2, 5, 7]
    """
    return np.linspace(0, n, parts + 1).round().astype(int).tolist()


def map_ranges(fn, edges, n_threads):
    """``[fn(edges[i], edges[i + 1]) for i ...]``, the ranges spread over up to ``n_threads`` threads.

    The calling thread takes ranges too; up to ``n_threads - 1`` threads of a shared, long-lived
    pool help it, each taking the next range not yet taken. Each call must write only its own
    range of the output, so calls never race; results come back in range order, and the first
    exception raised by a call is raised here once every started call has finished. One range,
    one thread, or a call from inside another ``map_ranges`` call runs inline (in order, on the
    calling thread).

    Examples
    --------
    >>> map_ranges(lambda a, b: list(range(a, b)), [0, 2, 5], n_threads=2)
    [[0, 1], [2, 3, 4]]
    """
    ranges = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    if n_threads <= 1 or len(ranges) <= 1 or getattr(_local, "busy", False):
        return [fn(a, b) for a, b in ranges]
    results = [None] * len(ranges)
    claim = itertools.count()
    claim_lock = threading.Lock()
    failed = threading.Event()

    def drain():
        while not failed.is_set():
            with claim_lock:
                i = next(claim)
            if i >= len(ranges):
                return
            try:
                results[i] = fn(*ranges[i])
            except BaseException:
                failed.set()
                raise

    helpers = _start_helpers(min(n_threads, len(ranges)) - 1, drain)
    _local.busy = True
    try:
        drain()
    finally:
        _local.busy = False
        wait(helpers)
    for helper in helpers:
        helper.result()  # re-raises a helper's exception
    return results
