"""Tests of hadasklearn._threads.map_ranges: the shared, long-lived helper pool."""

import os
import threading

import numpy as np
import pytest

from hadasklearn import _threads
from hadasklearn._threads import map_ranges


def _thread_ids(n_ranges, n_threads, barrier=None):
    def fn(a, b):
        if barrier is not None:
            barrier.wait(timeout=10)
        return threading.get_ident()

    return map_ranges(fn, range(n_ranges + 1), n_threads)


def test_results_in_range_order_for_any_thread_count():
    edges = [0, 3, 3, 10, 11, 40]
    expected = [list(range(a, b)) for a, b in zip(edges[:-1], edges[1:])]
    for n_threads in (1, 2, 3, 8):
        assert map_ranges(lambda a, b: list(range(a, b)), edges, n_threads) == expected


def test_caller_takes_part_and_helpers_live_on():
    # the barrier makes both ranges run at the same time: the caller and one helper
    ids = _thread_ids(2, 2, threading.Barrier(2))
    assert threading.get_ident() in ids and len(set(ids)) == 2
    helper = next(i for i in ids if i != threading.get_ident())
    # a long-lived pool thread, not one started (and joined) for this call
    alive = {t.ident: t for t in threading.enumerate()}
    assert helper in alive and alive[helper].name.startswith("hadasklearn")


def test_nested_calls_run_inline():
    def outer(a, b):
        me = threading.get_ident()
        inner = map_ranges(lambda c, d: threading.get_ident(), [0, 1, 2, 3], 2)
        return all(i == me for i in inner)

    assert all(map_ranges(outer, [0, 1, 2], 2))


@pytest.mark.parametrize("where", [0, 1])
def test_an_exception_is_raised_after_all_calls_finish(where):
    finished = []

    def fn(a, b):
        if a == where:
            raise ValueError(f"range {a}")
        finished.append(a)
        return a

    with pytest.raises(ValueError, match=f"range {where}"):
        map_ranges(fn, [0, 1, 2], 2)
    # the pool still works afterwards
    assert map_ranges(lambda a, b: a, [0, 1, 2, 3], 2) == [0, 1, 2]


def test_pool_grows_for_more_threads():
    barrier = threading.Barrier(4)
    ids = _thread_ids(4, 4, barrier)
    assert len(set(ids)) == 4
    assert _threads._pool["workers"] >= 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_works_in_a_forked_child():
    map_ranges(lambda a, b: a, [0, 1, 2], 2)  # the parent has a pool with live threads
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = map_ranges(lambda a, b: np.arange(a, b).sum(), [0, 5, 10], 2) == [10, 35]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
