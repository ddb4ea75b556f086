"""Tests of hadasklearn.nn._blas (products through numpy's OpenBLAS in single-threaded sections)."""

import contextlib
import threading

import pytest
import torch

from hadasklearn.nn import _blas, layers

pytestmark = pytest.mark.skipif(not _blas.available(), reason="numpy's BLAS is not an OpenBLAS with per-thread counts")


@pytest.fixture(autouse=True)
def small_products(monkeypatch):
    """Test-sized products take the OpenBLAS path (the threshold is tested on its own)."""
    monkeypatch.setattr(_blas, "MIN_MACS", 1 << 20)


@pytest.fixture
def calls(monkeypatch):
    """Count the products that take the OpenBLAS path."""
    seen = []
    original = _blas._openblas_mm

    def counting(a, b, out):
        seen.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b, out)

    monkeypatch.setattr(_blas, "_openblas_mm", counting)
    return seen


def _operands(dtype, transposed):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 70, generator=g, dtype=dtype)
    b = torch.randn(70, 90, generator=g, dtype=dtype)
    if transposed:
        a, b = a.T.contiguous().T, b.T.contiguous().T  # column-major views
    return a, b


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_products_match_torch(one_thread, calls, dtype, transposed):
    a, b = _operands(dtype, transposed)
    tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(_blas.mm(a, b), a @ b, **tol)
    out = torch.full((300, 90), float("nan"), dtype=dtype)
    assert _blas.mm(a, b, out=out) is out
    torch.testing.assert_close(out, a @ b, **tol)
    c = torch.randn(300, 90, dtype=dtype)
    want = c + a @ b
    assert _blas.addmm_(c, a, b) is c
    torch.testing.assert_close(c, want, **tol)
    # a strided view that is neither row- nor column-major is copied, not misread
    wide = torch.randn(300, 140, dtype=dtype)[:, ::2]
    torch.testing.assert_close(_blas.mm(wide, b), wide @ b, **tol)
    assert len(calls) == 4


def test_torch_decides_below_the_size_threshold_per_thread_or_for_mixed_dtypes(calls, one_thread):
    a, b = _operands(torch.float32, False)
    _blas.mm(a[:10, :10], b[:10, :10])  # 1,000 multiply-adds
    with pytest.raises(RuntimeError):
        _blas.mm(a, b.double())  # torch's own error for mixed dtypes
    torch.set_num_threads(2)
    _blas.mm(a, b)  # torch on two threads: its own parallel product
    assert calls == []
    torch.set_num_threads(1)
    _blas.mm(a, b)
    assert calls == [((300, 70), (70, 90))]


def test_openblas_is_held_to_one_thread_only_during_the_product(one_thread):
    setter = _blas._setter()

    def current():
        value = setter(7)
        setter(value)
        return value

    before = current()
    seen = []
    original = _blas.np.matmul

    def spy(*args, **kwargs):
        seen.append(current())
        return original(*args, **kwargs)

    _blas.np.matmul = spy
    try:
        _blas.mm(*_operands(torch.float32, False))
    finally:
        _blas.np.matmul = original
    assert seen == [1] and current() == before


def test_linear_values_and_gradients_match_functional_linear(one_thread, calls):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 200, 40, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(60, 40, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(60, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(6, 200, 60, generator=g, dtype=torch.float64)
    results = []
    for fn in (_blas.linear, torch.nn.functional.linear):
        for t in (x, w, bias):
            t.grad = None
        out = fn(x, w, bias)
        (out * upstream).sum().backward()
        results.append([out.detach(), x.grad, w.grad, bias.grad])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)
    assert len(calls) == 3  # forward, input gradient, weight gradient
    with torch.no_grad():
        torch.testing.assert_close(_blas.linear(x, w), torch.nn.functional.linear(x, w))


def test_linear_second_derivatives_fall_back_to_differentiable_products(one_thread):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 40, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 40, generator=g, dtype=torch.float64, requires_grad=True)
    grads = []
    for fn in (_blas.linear, torch.nn.functional.linear):
        (gx,) = torch.autograd.grad(fn(x, w).pow(2).sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(gx.pow(2).sum(), w)[0])
    torch.testing.assert_close(*grads)


def test_transformer_blocks_use_it_with_the_same_outputs_and_gradients(one_thread, calls):
    torch.manual_seed(3)
    layer = layers.MaskedTransformer(64, depth=1, num_heads=2).double().eval()  # eval: no dropout masks
    assert {type(m) for m in layer.modules() if isinstance(m, torch.nn.Linear)} == {layers._Linear}
    assert all(type(m) is not torch.nn.Linear for m in layer.modules())
    x = torch.randn(8, 32, 64, dtype=torch.float64, requires_grad=True)
    results = []
    for use in (True, False):
        layer.zero_grad()
        x.grad = None
        with _blas.torch_only() if not use else contextlib.nullcontext():
            out = layer(x)
            out.pow(2).sum().backward()
        results.append([out.detach(), x.grad] + [p.grad for p in layer.parameters()])
    # forward: qkv, proj, fc1, fc2; backward: input and weight gradients of each (qkv's in thirds)
    assert len(calls) == 4 + 2 * 3 + 3 * 2
    for got, want in zip(*results):
        torch.testing.assert_close(got, want)


def test_disabled_by_environment_or_block(monkeypatch, one_thread, calls):
    monkeypatch.setenv("HADASKLEARN_BLAS", "torch")
    assert _blas._numpy_openblas() is None
    a, b = _operands(torch.float32, False)
    with _blas.torch_only():
        assert not _blas.available()
        _blas.mm(a, b)
    assert _blas.available() and calls == []


def test_concurrent_threads_get_their_own_products(one_thread):
    a, b = _operands(torch.float32, False)
    want = a @ b
    errors = []

    def work():
        torch.set_num_threads(1)
        for _ in range(20):
            if not torch.allclose(_blas.mm(a, b), want, rtol=1e-5, atol=1e-4):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
