"""Tests of the seed-hash dropout (hadasklearn.nn._dropout)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hadasklearn.nn import _dropout
from hadasklearn.nn._dropout import HashDropout, hash_dropout
from hadasklearn.nn.layers import FactorizedSpaceTimeTransformer, MaskedTransformer


def test_drop_rate_scale_and_independence():
    torch.manual_seed(0)
    p, n = 0.1, 1_000_000
    x = torch.full((n,), 2.0)
    y = hash_dropout(x, p)
    dropped = y == 0
    kept = y[~dropped]
    # every kept value scaled by exactly 1 / (1 - p)
    assert torch.equal(kept, torch.full_like(kept, 2.0 * torch.tensor(1 / (1 - p), dtype=torch.float32)))
    # the drop rate within 5 binomial standard deviations of p
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.double().mean().item() - p) < 5 * sd
    # neighbouring elements independent: P(both dropped) = p^2
    both = (dropped[:-1] & dropped[1:]).double().mean().item()
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)
    # no stretch of the mask is constant (a broken hash repeats or saturates)
    blocks = dropped.view(1000, 1000).double().mean(1)
    assert blocks.min() > 0.03 and blocks.max() < 0.2


def test_reproducible_under_manual_seed_and_fresh_per_call():
    x = torch.randn(10_000)
    torch.manual_seed(1)
    a, b = hash_dropout(x, 0.3), hash_dropout(x, 0.3)
    torch.manual_seed(1)
    assert torch.equal(hash_dropout(x, 0.3), a)
    assert not torch.equal(a == 0, b == 0)


def test_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(2)
    x = torch.randn(300, 70, requires_grad=True)
    y = hash_dropout(x, 0.4)
    g = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, g)
    keep = y.detach() != 0
    torch.testing.assert_close(grad, torch.where(keep, g / 0.6, torch.zeros_like(g)))


def test_gradcheck_float64():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    seed = 12345
    assert torch.autograd.gradcheck(lambda t: _dropout._HashDropout.apply(t, seed, 0.5), (x,))


@pytest.mark.parametrize("threads", [1, 2])
def test_mask_does_not_depend_on_the_thread_split(monkeypatch, threads):
    x = torch.randn(50_000)
    torch.manual_seed(3)
    reference = hash_dropout(x, 0.2)
    monkeypatch.setattr(_dropout, "_MIN_PER_THREAD", 1000)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(3)
        assert torch.equal(hash_dropout(x, 0.2), reference)
    finally:
        torch.set_num_threads(old)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=3), p=st.floats(0.0, 0.95), seed=st.integers(0, 2**31))
def test_output_is_zero_or_scaled_input(shape, p, seed):
    torch.manual_seed(seed)
    x = torch.randn(*shape, dtype=torch.float64)
    y = hash_dropout(x, p)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert bool(((y == 0) | torch.isclose(y, x / (1 - p))).all())


def test_eval_zero_rate_and_bad_rate():
    x = torch.randn(4, 4)
    assert hash_dropout(x, 0.5, training=False) is x
    assert hash_dropout(x, 0.0) is x
    assert torch.equal(HashDropout(0.5).eval()(x), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        hash_dropout(x, 1.0)
    with pytest.raises(ValueError, match="inplace"):
        HashDropout(0.1, inplace=True)


def test_other_tensors_fall_back_to_torch_dropout(monkeypatch):
    monkeypatch.setattr(_dropout, "fused_available", lambda *t: False)
    x = torch.ones(10_000)
    torch.manual_seed(4)
    y = hash_dropout(x, 0.5)
    torch.manual_seed(4)
    assert torch.equal(y, torch.nn.functional.dropout(x, 0.5, True))


@pytest.mark.parametrize("layer", [MaskedTransformer(8, 2, num_heads=2), FactorizedSpaceTimeTransformer(8, 2, num_heads=2)])
def test_transformer_blocks_use_hash_dropout(layer):
    drops = [m for m in layer.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(isinstance(m, HashDropout) for m in drops)
    assert {m.p for m in drops} == {0.0, 0.1}
