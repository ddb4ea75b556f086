"""Tests of hadasklearn.nn._parallel (eval-mode batches over single-threaded torch threads)."""

import threading
import time

import pytest
import torch

from hadasklearn.nn._parallel import map_batch, row_parallel, splits_rows


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
    # the caller takes a block itself, two pool threads the others
    assert len({c[1] for c in calls}) == 3 and threading.get_ident() in {c[1] for c in calls}
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


def _space_time(dropout=0.0):
    from hadasklearn.nn.layers import FactorizedSpaceTimeTransformer

    torch.manual_seed(0)
    return FactorizedSpaceTimeTransformer(8, 2, num_heads=2, dropout=dropout).double().train()


def _grads(module, x, mask, upstream, split):
    xx = x.clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    out = row_parallel(module, xx, mask) if split else module(xx, mask)
    (out * upstream).sum().backward()
    return [out.detach(), xx.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("masked", [False, True])
def test_row_parallel_training_pass_equals_the_plain_call(masked, two_threads):
    module = _space_time()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 4, 8, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.bool) if masked else None
    upstream = torch.randn(5, 3, 4, 8, generator=g, dtype=torch.float64)
    assert splits_rows(module, x)
    for got, want in zip(_grads(module, x, mask, upstream, True), _grads(module, x, mask, upstream, False)):
        torch.testing.assert_close(got, want)
    assert torch.get_num_threads() == 2


def test_row_parallel_dropout_is_reproducible_under_manual_seed(two_threads):
    module = _space_time(dropout=0.5)
    x = torch.randn(4, 3, 4, 8, dtype=torch.float64)
    upstream = torch.randn(4, 3, 4, 8, dtype=torch.float64)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(_grads(module, x, None, upstream, True))
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    torch.manual_seed(6)
    assert not torch.equal(_grads(module, x, None, upstream, True)[0], runs[0][0])  # dropout is active


def test_rows_are_split_only_where_they_cannot_interact(two_threads):
    from timm.layers import DropPath

    x = torch.randn(4, 3, 4, 8)
    module = _space_time().float()
    assert splits_rows(module, x) and not splits_rows(module, x[:1])
    with torch.no_grad():
        assert not splits_rows(module, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not splits_rows(module, x)
    for extra in (torch.nn.BatchNorm1d(8), DropPath(0.1), torch.nn.Dropout(0.1)):
        module.extra = extra
        assert not splits_rows(module, x)
    module.extra = torch.nn.Dropout(0.1).eval()  # inactive
    assert splits_rows(module, x)
    del module.extra
    module.blocks[0].attn.attn_drop.p = 0.1  # passed to scaled_dot_product_attention: shared generator
    assert not splits_rows(module, x)
    torch.set_num_threads(1)
    assert not splits_rows(_space_time().float(), x)


def test_row_parallel_refuses_double_backward(two_threads):
    module = _space_time()
    x = torch.randn(4, 3, 4, 8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(row_parallel(module, x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|twice"):
        grad.sum().backward()


def test_seeded_dropout_draws_from_a_thread_local_generator():
    from hadasklearn.nn._dropout import hash_dropout, seeded

    x = torch.ones(1000)
    with seeded(3):
        a = hash_dropout(x, 0.5)
    with seeded(3):
        b = hash_dropout(x, 0.5)
    with seeded(4):
        c = hash_dropout(x, 0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(0)
    d = hash_dropout(x, 0.5)
    torch.manual_seed(0)
    assert torch.equal(d, hash_dropout(x, 0.5))  # outside seeded(): torch's generator again
