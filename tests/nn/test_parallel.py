"""Tests of hadasklearn.nn._parallel (eval-mode batches over single-threaded torch threads)."""

import threading
import time

import pytest
import torch

from hadasklearn.nn._parallel import map_batch


def test_rows_chunks_tuples_and_none_inputs(two_threads):
    x = torch.arange(14.0).view(7, 2)
    calls = []

    def fn(a, none, b):
        assert none is None
        time.sleep(0.02)  # keep each thread busy so that the pool cannot hand two ranges to one thread
        calls.append((a.shape[0], threading.get_ident(), torch.get_num_threads(), torch.is_grad_enabled()))
        return a * 2, (a + b).sum(1)

    with torch.no_grad():
        doubled, summed = map_batch(fn, [x, None, x], chunk=2, n_threads=3)
    torch.testing.assert_close(doubled, x * 2)
    torch.testing.assert_close(summed, (2 * x).sum(1))
    # 7 rows over 3 threads (2, 3, 2 rows) in chunks of at most 2: 1 + 2 + 1 calls
    assert sorted(c[0] for c in calls) == [1, 2, 2, 2]
    assert len({c[1] for c in calls}) == 3 and threading.get_ident() not in {c[1] for c in calls}
    assert {c[2] for c in calls} == {1} and not any(c[3] for c in calls)
    assert torch.get_num_threads() == 2


def test_thread_counts_are_restored_for_the_caller_and_later_threads(two_threads):
    with torch.inference_mode():
        map_batch(lambda t: t + 1, [torch.zeros(8, 3)], chunk=1)
    assert torch.get_num_threads() == 2
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [2]


def test_grad_mode_is_carried_into_the_threads(two_threads):
    x = torch.ones(4, 2)
    with torch.inference_mode():
        assert map_batch(lambda t: t * 3, [x], chunk=1).is_inference()
    with torch.no_grad():
        out = map_batch(lambda t: t * 3, [x], chunk=1)
    assert not out.is_inference() and not out.requires_grad


def test_refuses_autograd_and_passes_errors_on(two_threads):
    with pytest.raises(RuntimeError, match="without autograd"):
        map_batch(lambda t: t, [torch.ones(4, 2)], chunk=1)

    def fails(t):
        raise ValueError(f"bad rows {t.shape[0]}")

    with torch.no_grad(), pytest.raises(ValueError, match="bad rows"):
        map_batch(fails, [torch.ones(4, 2)], chunk=2)


def test_one_thread_runs_inline(two_threads):
    idents = []
    with torch.no_grad():
        out = map_batch(lambda t: idents.append(threading.get_ident()) or t, [torch.ones(5, 1)], chunk=2, n_threads=1)
    assert out.shape == (5, 1) and set(idents) == {threading.get_ident()} and len(idents) == 3
