"""Tests of hadasklearn.nn._onednn (tall, narrow products through oneDNN) and its use by _blas and the encoder."""

import pytest
import torch

from hadasklearn.nn import _blas, _onednn
from hadasklearn.nn.curvenet import CurveNetEncoder

pytestmark = pytest.mark.skipif(not _onednn.available(), reason="torch was built without oneDNN or it is disabled")


@pytest.fixture
def calls(monkeypatch):
    """Lower the row threshold to test sizes and record the products that take the oneDNN path."""
    monkeypatch.setattr(_onednn, "MIN_ROWS", 64)
    seen = []
    op = _onednn._op()

    def counting(a, weight, *args):
        seen.append((tuple(a.shape), tuple(weight.shape)))
        return op(a, weight, *args)

    monkeypatch.setitem(_onednn._state, "op", counting)
    return seen


def _operands(rows=300, inner=70, cols=90, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(rows, inner, generator=g, dtype=dtype), torch.randn(inner, cols, generator=g, dtype=dtype)


@pytest.mark.parametrize("weight_major", [False, True])
def test_products_match_torch_for_both_right_operand_layouts(calls, weight_major):
    a, b = _operands()
    if weight_major:
        b = b.T.contiguous().T  # the transposed view of a (cols, inner) weight, as in x @ W.T
    got = _onednn.mm(a, b)
    torch.testing.assert_close(got, a @ b, rtol=1e-5, atol=1e-4)
    assert got.is_contiguous() and got.shape == (300, 90)
    assert calls == [((300, 70), (90, 70))]


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN:UserWarning")  # torch's, from mkldnn.flags
def test_ineligible_products_use_torch(calls):
    a, b = _operands()
    a64, b64 = _operands(dtype=torch.float64)
    cases = [
        (a64, b64),  # oneDNN's linear is float32 here
        (a[:63], b),  # fewer rows than MIN_ROWS
        (a.T.contiguous().T, b),  # left operand not row-contiguous
        (_operands(inner=257)[0], _operands(inner=257)[1]),  # inner dimension above MAX_WIDTH
        (a, _operands(cols=257)[1]),  # output wider than MAX_WIDTH
    ]
    for x, y in cases:
        torch.testing.assert_close(_onednn.mm(x, y), x @ y, rtol=1e-5, atol=1e-4)
    # autograd records: torch's differentiable product
    w = b.clone().requires_grad_()
    out = _onednn.mm(a, w)
    assert out.grad_fn is not None
    with torch.backends.mkldnn.flags(enabled=False):
        assert not _onednn.available()
        _onednn.mm(a, b)
    with _onednn.torch_only(), _blas.torch_only():
        _onednn.mm(a, b)
        _blas.mm(a, b)
    assert calls == []
    _blas.mm(a, b)
    assert len(calls) == 1


def test_blas_mm_routes_here_only_without_out(calls):
    a, b = _operands()
    out = torch.empty(300, 90)
    assert _blas.mm(a, b, out=out) is out
    c = torch.zeros(300, 90)
    _blas.addmm_(c, a, b)
    assert calls == []
    torch.testing.assert_close(c, out)
    torch.testing.assert_close(_blas.mm(a, b), out, rtol=1e-5, atol=1e-4)
    assert len(calls) == 1


def test_linear_values_and_gradients_match_functional_linear(calls):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 40, generator=g, requires_grad=True)
    w = torch.randn(60, 40, generator=g, requires_grad=True)
    upstream = torch.randn(500, 60, generator=g)
    results = []
    for fn in (_blas.linear, torch.nn.functional.linear):
        x.grad = w.grad = None
        out = fn(x, w)
        (out * upstream).sum().backward()
        results.append([out.detach(), x.grad, w.grad])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    # the layer output and the input gradient; the weight gradient's inner dimension is the rows
    assert calls == [((500, 40), (60, 40)), ((500, 60), (40, 60))]


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("HADASKLEARN_BLAS", "torch")
    assert _onednn._probe() is None
    monkeypatch.delenv("HADASKLEARN_BLAS")
    assert _onednn._probe() is not None


def test_encoder_training_step_uses_it_with_the_same_results(calls):
    torch.manual_seed(0)
    enc = CurveNetEncoder(out_dim=64, k=6, n_points=40, n_curves=4, curve_length=3).train()
    points = torch.randn(6, 40, 3, generator=torch.Generator().manual_seed(1))
    upstream = torch.randn(6, 40, 64, generator=torch.Generator().manual_seed(2))
    results = []
    for use in (True, False):
        enc.zero_grad()
        with _onednn.torch_only() if not use else _nothing():
            out = enc(points)
            (out * upstream).sum().backward()
        results.append([out.detach()] + [p.grad.clone() for p in enc.parameters()])
    assert len(calls) > 20  # point-wise layers forward and input gradients
    # float round-off only (a different summation order), at this size without a flipped walk step
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
