import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hadasklearn.nn import _edge_kernels, curvenet
from hadasklearn.nn.curvenet import CurveNetEncoder

P, K, N = 30, 5, 3
SMALL = {"out_dim": 32, "k": K, "n_points": P, "n_curves": 4, "curve_length": 3}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Thousands of tiny ops: thread hand-offs cost more than they save on a shared 2-core box.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _encoder(seed=0, **kw):
    torch.manual_seed(seed)
    return CurveNetEncoder(**{**SMALL, **kw}).double()


def _points(seed=0, n=N, c=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, P, c, generator=g, dtype=torch.float64)


def _assert_same_outputs_and_gradients(runs, x):
    """Forward and backward of each ``(model, setup)`` run: outputs and parameter gradients agree."""
    outs, grads = [], []
    for model, setup in runs:
        if setup is not None:
            setup()
        out = model(x)
        out.pow(3).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad for p in model.parameters()])
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("coords", [2, 3])
def test_shape_finite_and_every_parameter_gets_a_gradient(coords):
    enc = _encoder(in_coords=coords)
    out = enc(_points(c=coords))
    assert out.shape == (N, P, 32)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [name for name, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_default_parameter_count_is_close_to_published():
    n = sum(p.numel() for p in CurveNetEncoder().parameters())
    assert n == 143_640
    assert abs(n - 143_184) / 143_184 < 0.3


@pytest.mark.parametrize("checkpoint", [True, "last_stage"])
@pytest.mark.parametrize("train", [True, False])
def test_checkpoint_does_not_change_outputs_or_gradients(train, checkpoint):
    enc = _encoder(checkpoint=checkpoint)
    ref = copy.deepcopy(enc)
    ref.checkpoint = False
    enc.train(train), ref.train(train)
    _assert_same_outputs_and_gradients([(enc, None), (ref, None)], _points())
    for a, b in zip(enc.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b)  # running statistics updated once, not per recomputation


def test_chunked_edge_path_matches_unchunked(monkeypatch):
    monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: False)  # the torch path
    enc = _encoder()
    x = _points(n=4)
    whole = enc(x)
    monkeypatch.setattr(curvenet, "_CHUNK_FLOATS", P * K * 2)  # force one cloud per chunk
    torch.testing.assert_close(copy.deepcopy(enc)(x), whole)


def test_fused_kernels_split_over_threads_give_identical_results(monkeypatch):
    monkeypatch.setattr(_edge_kernels, "_MIN_CLOUDS_PER_THREAD", 1)
    monkeypatch.setattr(_edge_kernels, "_MIN_ROWS_PER_THREAD", 1)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(5, 11, 4, generator=g, requires_grad=True)
    b = torch.randn(5, 11, 4, generator=g, requires_grad=True)
    w, bias = torch.ones(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    idx = torch.randint(0, 11, (5, 11, 3), generator=g)
    deg = torch.bincount(curvenet._local_flat(idx).reshape(-1), minlength=55).view(5, 11).float()
    flat, rows = a.detach().reshape(55, 4), torch.randint(0, 55, (9, 3), generator=g)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        a.grad = b.grad = w.grad = bias.grad = None
        out = sum(_edge_kernels.edge_norm_act(a, b, idx, deg, w, bias, w, w, True, 1e-5, 0.2, m)[0] for m in (False, True))
        out.pow(2).sum().backward()
        results.append((out.detach(), a.grad.clone(), b.grad.clone(), w.grad.clone(), bias.grad.clone(),
                        _edge_kernels.knn(a.detach(), 4), _edge_kernels.turn_factor(flat, rows, flat[:9], flat[9:18]),
                        _edge_kernels.pick_gradient(flat, rows, flat[18:27])))
    torch.set_num_threads(1)
    for one, two in zip(*results):
        assert torch.equal(one, two)


@pytest.mark.parametrize("train", [True, False])
def test_fused_and_torch_edge_paths_give_the_same_encoder(monkeypatch, train):
    enc = _encoder().train(train)
    ref = copy.deepcopy(enc)
    runs = [
        (m, lambda f=fused: monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: f))
        for m, fused in ((enc, True), (ref, False))
    ]
    _assert_same_outputs_and_gradients(runs, _points())


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), train=st.booleans())
def test_permutation_equivariance(seed, train):
    enc = _encoder(seed % 7).train(train)
    x = _points(seed)
    perm = torch.randperm(P, generator=torch.Generator().manual_seed(seed))
    out = copy.deepcopy(enc)(x)
    out_perm = copy.deepcopy(enc)(x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm])


def test_output_depends_on_neighbourhood_geometry():
    enc = _encoder().eval()
    x = _points()
    y = x.clone()
    y[0, 0] += 0.5  # move one point: its neighbours' features must change too
    diff = (enc(x) - enc(y)).abs().sum(-1)
    assert diff[0].gt(1e-9).sum() > 1
    torch.testing.assert_close(diff[1:], torch.zeros_like(diff[1:]))  # eval: clouds independent


def test_edge_norm_matches_batchnorm_on_materialised_edges():
    torch.manual_seed(0)
    n, p, k, c = 2, 9, 4, 3
    a, b = torch.randn(n, p, c, dtype=torch.float64) * 5 + 3, torch.randn(n, p, c, dtype=torch.float64)
    idx = torch.randint(0, p, (n, p, k))
    edges = a[torch.arange(n).view(n, 1, 1), idx] + b.unsqueeze(2)
    bn = torch.nn.BatchNorm1d(c).double()
    expected = bn(edges.reshape(-1, c)).view(n, p, k, c)
    norm = curvenet._EdgeNorm(c).double()
    nsum = curvenet._neighbour_reduce(a, idx, "sum")
    deg = torch.bincount(curvenet._local_flat(idx).reshape(-1), minlength=n * p).view(n, p).double()
    a2, b2 = norm(a, b, nsum, deg, k)
    norm.flush()
    got = a2[torch.arange(n).view(n, 1, 1), idx] + b2.unsqueeze(2)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(norm.running_mean, bn.running_mean)
    torch.testing.assert_close(norm.running_var, bn.running_var)


@pytest.mark.parametrize("fused", [True, False])
def test_knn_puts_self_first_even_for_duplicates(monkeypatch, fused):
    monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: fused)
    pts = torch.zeros(1, 6, 3)
    idx = curvenet._knn(pts, 3)
    assert torch.equal(idx[0, :, 0], torch.arange(6))
    assert all(len(set(row.tolist())) == 4 for row in idx[0])  # k distinct other points


def _reference_knn(pts, k):
    """Brute force: the k nearest others of every point by (squared distance, index)."""
    pts = pts.double().numpy()
    out = []
    for cloud in pts:
        d = ((cloud[None, :, :] - cloud[:, None, :]) ** 2).sum(-1)
        rows = []
        for i, row in enumerate(d):
            others = [j for j in np.lexsort((np.arange(len(row)), row)) if j != i]
            rows.append([i] + others[:k])
        out.append(rows)
    return torch.tensor(out)


@pytest.mark.parametrize("kind", ["normal", "grid", "duplicates", "frames", "plane2d"])
def test_compiled_knn_is_the_exact_k_nearest_with_lower_index_ties(kind):
    """The bound-pruned selection returns exactly the brute-force neighbours, ties included."""
    g = torch.Generator().manual_seed(11)
    if kind == "normal":
        pts = torch.randn(4, 60, 3, generator=g, dtype=torch.float64)
    elif kind == "grid":  # many exactly equal distances
        pts = torch.randint(0, 3, (4, 60, 3), generator=g).double()
    elif kind == "duplicates":  # repeated points and an all-zero (padded) cloud
        pts = torch.randn(4, 60, 3, generator=g, dtype=torch.float64)
        pts[:, 30:] = pts[:, :30]
        pts[1] = 0
    elif kind == "frames":  # consecutive frames of one face: nearly the same cloud
        pts = torch.randn(1, 60, 3, generator=g, dtype=torch.float64) + 1e-3 * torch.randn(4, 60, 3, generator=g, dtype=torch.float64)
    else:
        pts = torch.randn(4, 60, 2, generator=g, dtype=torch.float64)
    for k in (1, 7, 59):
        assert torch.equal(_edge_kernels.knn(pts, k), _reference_knn(pts, k)), k


@pytest.mark.parametrize("coords", [2, 3])
def test_compiled_knn_equals_torch_knn(monkeypatch, coords):
    pts = torch.randn(3, 40, coords, generator=torch.Generator().manual_seed(coords))
    compiled = _edge_kernels.knn(pts, 7)
    monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: False)
    assert torch.equal(compiled, curvenet._knn(pts, 7))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.randn(P, 3), "3-d tensor|shape"),
        (torch.randn(2, 3, P, 3), "shape"),
        (torch.randn(2, P, 4), "shape"),
        (torch.randn(2, P + 1, 3), "shape"),
        (torch.ones(2, P, 3, dtype=torch.long), "floating-point"),
        (torch.full((2, P, 3), float("nan")), "NaN"),
    ],
)
def test_bad_inputs_raise(x, match):
    with pytest.raises(ValueError, match=match):
        CurveNetEncoder(**SMALL)(x)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"k": P}, "k must be smaller"),
        ({"k": P + 3}, "k must be smaller"),
        ({"in_coords": 4}, "in_coords"),
        ({"out_dim": 48}, "multiple of 32"),
        ({"n_curves": P + 1}, "n_curves"),
        ({"k": 0}, "positive int"),
        ({"checkpoint": "all"}, "checkpoint must be"),
        ({"checkpoint": 1}, "checkpoint must be"),
    ],
)
def test_bad_parameters_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        CurveNetEncoder(**{**SMALL, **kw})


def _reference_walk(grouping, x, neighbours, start):
    """The walk as published, step by step on gathered (clouds, curves, k, channels) candidates."""
    n, p, c = x.shape
    flat = x.reshape(n * p, c)
    offset = p * torch.arange(n).view(n, 1)
    nbr_flat = (neighbours + offset.unsqueeze(-1)).reshape(n * p, -1)
    cur = start + offset
    w_cand, w_desc = grouping.agent.weight[:, :c], grouping.agent.weight[:, c:]
    desc, cur_feat, curves = flat[cur], None, []
    for step in range(grouping.curve_length):
        if step > 0:
            mix = grouping.momentum_norm(grouping.momentum(torch.cat((cur_feat, desc), -1))).softmax(-1)
            desc = mix[..., :1] * cur_feat + mix[..., 1:] * desc
        cand_idx = nbr_flat[cur]
        cand = flat[cand_idx]
        score = (cand @ w_cand.T).squeeze(-1) + desc @ w_desc.T
        score = grouping.agent_norm(score.unsqueeze(-1)).squeeze(-1)
        if step > 0:
            with torch.no_grad():
                cos = torch.nn.functional.cosine_similarity(
                    (cur_feat - desc).unsqueeze(2), cand - cur_feat.unsqueeze(2), dim=-1, eps=1e-8)
            score = score * (1.0 + cos).clamp(0.0, 1.0)
        prob = score.softmax(-1)
        choice = prob.argmax(-1, keepdim=True)
        hard = torch.zeros_like(prob).scatter_(-1, choice, 1.0)
        pick = hard - prob.detach() + prob
        cur_feat = (pick.unsqueeze(-1) * cand).sum(2)
        cur = cand_idx.gather(-1, choice).squeeze(-1)
        curves.append(cur_feat)
    return torch.stack(curves, 2)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_walk_matches_the_published_step_by_step_walk(monkeypatch, fused, train):
    """Path search + replay == the published walk: curves, input and parameter gradients, BN statistics."""
    monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: fused)
    torch.manual_seed(3)
    group = curvenet._CurveGrouping(6, n_curves=5, curve_length=4).double().train(train)
    ref_group = copy.deepcopy(group)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, P, 6, generator=g, dtype=torch.float64)
    neighbours = curvenet._knn(torch.randn(3, P, 3, generator=g, dtype=torch.float64), K)[..., 1:]
    start = torch.stack([torch.randperm(P, generator=g)[:5] for _ in range(3)])
    results = []
    for module, walk in ((group, group._walk), (ref_group, lambda *a: _reference_walk(ref_group, *a))):
        xx = x.clone().requires_grad_()
        out = walk(xx, curvenet._local_flat(neighbours) if module is group else neighbours, start)
        out.pow(3).sum().backward()
        stats = [(m._pending[i][0], m._pending[i][1]) for m in (module.agent_norm, module.momentum_norm) for i in range(len(m._pending))]
        results.append((out.detach(), xx.grad, [q.grad for q in module.parameters()], stats))
    (out, gx, gp, stats), (r_out, r_gx, r_gp, r_stats) = results
    torch.testing.assert_close(out, r_out)
    torch.testing.assert_close(gx, r_gx)
    for a, b in zip(gp, r_gp):
        torch.testing.assert_close(a, b)
    assert len(stats) == len(r_stats) == (2 * 4 - 1 if train else 0)
    for a, b in zip(stats, r_stats):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the gradient-free path alone gives the same curves
        torch.testing.assert_close(group._walk(x, curvenet._local_flat(neighbours), start), r_out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_eval_walk_matches_the_torch_walk(monkeypatch, dtype):
    """Eval mode: the one-kernel walk finds the same path, candidates and factors as the torch steps."""
    torch.manual_seed(6)
    group = curvenet._CurveGrouping(16, n_curves=12, curve_length=6).to(dtype).eval()
    with torch.no_grad():  # non-trivial running statistics
        for norm in (group.agent_norm, group.momentum_norm):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(7)
    n, p = 40, 60
    flat = torch.randn(n * p, 16, generator=g, dtype=dtype)
    nbr = curvenet._local_flat(curvenet._knn(torch.randn(n, p, 3, generator=g, dtype=torch.float64), 8)[..., 1:])
    start = (torch.randint(0, p, (n, 12), generator=g) + p * torch.arange(n).view(n, 1)).reshape(-1)
    point_score = flat @ group.agent.weight[0, :16]
    with torch.no_grad():
        rows, cands, factors = group._path(flat, point_score, nbr, start, p, False)
        monkeypatch.setattr(_edge_kernels, "fused_available", lambda *t: False)
        r_rows, r_cands, r_factors = group._path(flat, point_score, nbr, start, p, False)
    assert len(cands) == 6 and len(factors) == 5
    assert torch.equal(rows, r_rows)
    for a, b in zip(cands, r_cands):
        assert torch.equal(a, b)
    for a, b in zip(factors, r_factors):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("k", [4, 5, 7])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_turn_factor_and_pick_gradient_kernels_match_torch(k, dtype):
    """Four candidates at a time (k with and without a remainder), with and without in-order cloud reads."""
    g = torch.Generator().manual_seed(5)
    n_clouds, p, c, rows = 5, 8, 7, 9
    flat = torch.randn(n_clouds * p, c, generator=g, dtype=dtype)
    # each walk row's candidates in one cloud; rows ordered by cloud, one cloud visited twice apart
    cloud = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 1])
    cand = torch.randint(0, p, (rows, k), generator=g) + p * cloud.view(rows, 1)
    cur, desc = flat[cand[:, 0]].clone(), torch.randn(rows, c, generator=g, dtype=dtype)
    desc[0] = cur[0]  # a zero direction: the eps guard, no NaN
    cand[1, 2] = cand[1, 0]  # a candidate equal to the current point
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    ref = (1 + torch.nn.functional.cosine_similarity((cur - desc).unsqueeze(1), flat[cand] - cur.unsqueeze(1), dim=-1, eps=1e-8)).clamp(0, 1)
    grad = torch.randn(rows, c, generator=g, dtype=dtype)
    ref_pick = torch.einsum("rkc,rc->rk", flat[cand], grad)
    for per_cloud in (None, p):
        got = _edge_kernels.turn_factor(flat, cand, cur, desc, 1e-8, per_cloud)
        torch.testing.assert_close(got, ref, **tol)
        assert torch.equal(got[0], torch.ones(k, dtype=dtype))
        torch.testing.assert_close(_edge_kernels.pick_gradient(flat, cand, grad, per_cloud), ref_pick, **tol)
    with pytest.raises(ValueError, match="must divide"):
        _edge_kernels.turn_factor(flat, cand, cur, desc, 1e-8, 6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("use_max", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_edge_norm_act_matches_batchnorm_on_materialised_edges(use_max, training, dtype):
    g = torch.Generator().manual_seed(6)
    n, p, c, k = 3, 9, 4, 4
    a = torch.randn(n, p, c, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(n, p, c, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(c, generator=g, dtype=dtype, requires_grad=True)  # negative scales too
    bias = torch.randn(c, generator=g, dtype=dtype, requires_grad=True)
    idx = torch.stack([torch.stack([torch.randperm(p, generator=g)[:k] for _ in range(p)]) for _ in range(n)])
    in_degree = torch.bincount(curvenet._local_flat(idx).reshape(-1), minlength=n * p).view(n, p).to(dtype)
    running_mean = torch.randn(c, generator=g, dtype=dtype)
    running_var = torch.rand(c, generator=g, dtype=dtype) + 0.5
    upstream = torch.randn(n, p, c, generator=g, dtype=dtype)
    results = []
    for fused in (True, False):
        for t in (a, b, weight, bias):
            t.grad = None
        if fused:
            out, mean, var = _edge_kernels.edge_norm_act(a, b, idx, in_degree, weight, bias, running_mean, running_var, training, 1e-5, 0.2, use_max)
        else:
            x = a[torch.arange(n).view(n, 1, 1), idx] + b.unsqueeze(2)  # (n, p, k, c) edges
            mean, var = (x.mean((0, 1, 2)), x.var((0, 1, 2), unbiased=False)) if training else (running_mean, running_var)
            z = (x - mean) / torch.sqrt(var + 1e-5) * weight + bias
            act = torch.nn.functional.leaky_relu
            out = act(z.max(2).values, 0.2) if use_max else act(z, 0.2).mean(2)
        (out * upstream).sum().backward()
        results.append([out.detach(), mean.detach(), var.detach(), a.grad, b.grad, weight.grad, bias.grad])
    for got, want in zip(*results):
        assert got.dtype == want.dtype == dtype
        torch.testing.assert_close(got, want, atol=1e-4 if dtype == torch.float32 else None, rtol=1e-4 if dtype == torch.float32 else None)
    assert not torch.isnan(results[0][3]).any()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("use_max", [False, True])
@pytest.mark.parametrize("c", [3, 16, 37])
@pytest.mark.parametrize("with_features", [False, True])
def test_eval_lpfa_kernel_matches_materialised_edges(use_max, dtype, c, with_features):
    g = torch.Generator().manual_seed(11)
    n, p, k, d = 2, 11, 5, 3
    points = torch.randn(n, p, d, generator=g, dtype=dtype)
    fx = torch.randn(n, p, c, generator=g, dtype=dtype) if with_features else None
    g_j, g_i, shift = (torch.randn(*shape, generator=g, dtype=dtype) for shape in ((d, c), (d, c), (c,)))
    idx = torch.randint(0, p, (n, p, k), generator=g)  # repeated neighbours too
    f = 0 if fx is None else fx
    a, b = points @ g_j + f, points @ g_i - f + shift
    x = a[torch.arange(n).view(n, 1, 1), idx] + b.unsqueeze(2)  # (n, p, k, c) edges
    act = F.leaky_relu(x, 0.2)
    want = act.max(2).values if use_max else act.mean(2)
    got = _edge_kernels.lpfa_eval(points, fx, g_j, g_i, shift, idx, 0.2, use_max)
    assert got.dtype == dtype and got.shape == (n, p, c)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("initial", [True, False])
def test_inference_lpfa_with_folded_batch_norm_matches_the_autograd_path(initial):
    """Without autograd an eval LPFA folds its edge BatchNorm into the per-point maps."""
    torch.manual_seed(12)
    c = 6
    layer = curvenet._LPFA(3, c, initial).double()
    layer.norm.running_mean.uniform_(-0.5, 0.5)
    layer.norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        layer.norm.weight.normal_()  # negative scales too: the max must be taken after scaling
        layer.norm.bias.normal_()
    layer.eval()
    points = _points(1)
    idx = curvenet._knn(points, K)[..., :K].contiguous()
    x = None if initial else torch.randn(N, P, c, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.enable_grad():  # the edge_norm_act path (running statistics, differentiable)
        want = layer(points.clone().requires_grad_(), x, curvenet._Graph(idx), False)
    with torch.inference_mode():
        got = layer(points, x, curvenet._Graph(idx), False)
    assert want.requires_grad and not got.requires_grad
    torch.testing.assert_close(got, want.detach())


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), p=st.integers(1, 12), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_reverse_graph_lists_every_in_edge_in_order(n, p, k, seed):
    """Neighbour lists with repeats: each point's in-edges, ascending, as often as it occurs."""
    idx = torch.randint(0, p, (n, p, k), generator=torch.Generator().manual_seed(seed))
    ptr, src = _edge_kernels.reverse_graph(idx)
    assert ptr.shape == (n, p + 1) and src.shape == (n, p * k)
    for cl in range(n):
        assert ptr[cl, 0] == 0 and ptr[cl, -1] == p * k
        for j in range(p):
            want = [i for i in range(p) for _ in range(int((idx[cl, i] == j).sum()))]
            assert src[cl, ptr[cl, j] : ptr[cl, j + 1]].tolist() == want


@pytest.mark.parametrize("c", [3, 16, 37])
@pytest.mark.parametrize("training", [True, False])
def test_gathered_mean_backward_matches_materialised_edges_with_repeated_neighbours(c, training):
    """The mean's backward (gathered over in-edges) against autograd on the (n, p, k, c) edges.

    Repeated neighbours, points that are nobody's neighbour, and channel counts below, at and
    off the kernels' vector width; the in-edge lists built inside or passed in give the same.
    """
    g = torch.Generator().manual_seed(c)
    n, p, k = 2, 13, 6
    a = torch.randn(n, p, c, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, p, c, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(c, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(c, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, p - 2, (n, p, k), generator=g)  # the last two points have no in-edges
    idx[:, :, 1] = idx[:, :, 0]  # every list repeats a neighbour
    in_degree = torch.bincount(curvenet._local_flat(idx).reshape(-1), minlength=n * p).view(n, p).double()
    running = (torch.randn(c, generator=g, dtype=torch.float64), torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
    upstream = torch.randn(n, p, c, generator=g, dtype=torch.float64)
    results = []
    for how in ("inside", "passed", "reference"):
        for t in (a, b, weight, bias):
            t.grad = None
        if how == "reference":
            x = a[torch.arange(n).view(n, 1, 1), idx] + b.unsqueeze(2)
            mean, var = (x.mean((0, 1, 2)), x.var((0, 1, 2), unbiased=False)) if training else running
            out = F.leaky_relu((x - mean) / torch.sqrt(var + 1e-5) * weight + bias, 0.2).mean(2)
        else:
            reverse = _edge_kernels.reverse_graph(idx) if how == "passed" else None
            out = _edge_kernels.edge_norm_act(a, b, idx, in_degree, weight, bias, *running, training, 1e-5, 0.2, False, reverse)[0]
        (out * upstream).sum().backward()
        results.append([a.grad, b.grad, weight.grad, bias.grad])
    assert torch.equal(results[0][0][:, -2:], torch.zeros(n, 2, c, dtype=torch.float64))  # a[j] only enters j's in-edges
    assert results[0][1][:, -2:].abs().min() > 0  # while b[i] enters i's own edges
    for got in results[:2]:
        for x, want in zip(got, results[2]):
            torch.testing.assert_close(x, want)


@pytest.mark.parametrize("act", [True, False])
def test_eval_conv_bn_folds_running_statistics_into_the_linear_map(act):
    torch.manual_seed(7)
    layer = curvenet._ConvBN(5, 6, act=act).double()
    norm = layer[1]
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    layer.eval()
    x = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.batch_norm(layer[0](x), norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
    if act:
        ref = torch.nn.functional.leaky_relu(ref, 0.2)
    torch.testing.assert_close(layer(x), ref)
    torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize("tile_floats", [None, 1, 700])
@pytest.mark.parametrize("c_in, c_out", [(8, 8), (8, 16)])
def test_inference_block_accumulates_in_place_with_the_same_values(c_in, c_out, tile_floats, monkeypatch):
    """Without autograd an eval CIC block adds its expansion into the shortcut (or its input),
    row block by row block (one block, blocks of 64 rows, and of 700 // (c_out + c_in ...) -> 64)."""
    if tile_floats is not None:
        monkeypatch.setattr(curvenet, "_TILE_FLOATS", tile_floats)
    torch.manual_seed(9)
    block = curvenet._CIC(3, c_in, c_out, 2, (4, 3)).double()
    for m in block.modules():
        if isinstance(m, curvenet._FunctionalNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    block.eval()
    g = torch.Generator().manual_seed(10)
    points = torch.randn(3, P, 3, generator=g, dtype=torch.float64)
    knn = curvenet._knn(points, K)
    idx = knn[..., :K].contiguous()
    in_degree = torch.bincount(curvenet._local_flat(idx).reshape(-1), minlength=3 * P).view(3, P).double()
    walk_rows = curvenet._local_flat(knn[..., 1:])
    x = torch.randn(3, P, c_in, generator=g, dtype=torch.float64)
    expected = block(points, x.clone().requires_grad_(), curvenet._Graph(idx, in_degree), walk_rows, False)  # the autograd path
    with torch.inference_mode():
        got = block(points, x.clone(), curvenet._Graph(idx, in_degree), walk_rows, False)
    torch.testing.assert_close(got, expected.detach())


@pytest.mark.parametrize("act", [True, False])
@pytest.mark.parametrize("into", [False, True])
def test_eval_products_by_row_blocks_match_one_product(act, into, monkeypatch):
    g = torch.Generator().manual_seed(13)
    rows = 1000  # 64-row blocks and a last block of 40
    monkeypatch.setattr(curvenet, "_TILE_FLOATS", 1)
    x1, w1 = torch.randn(rows, 5, generator=g), torch.randn(7, 5, generator=g)
    x2, w2 = torch.randn(rows, 3, generator=g), torch.randn(7, 3, generator=g)
    shift, base = torch.randn(7, generator=g), torch.randn(rows, 7, generator=g)
    want = x1 @ w1.T + x2 @ w2.T + shift + (base if into else 0)
    want = F.leaky_relu(want, 0.2) if act else want
    target = base.clone() if into else None
    with torch.no_grad():
        got = curvenet._eval_products([(x1, w1), (x2, w2)], shift, act, into=target)
    torch.testing.assert_close(got, want)
    if into:
        assert got is target


@pytest.mark.parametrize("channels", [8, 32])  # query widths 4 and 16: both layouts of the weighted sums
def test_curve_aggregation_matches_the_published_attention(channels):
    torch.manual_seed(14)
    agg = curvenet._CurveAggregation(channels).double()
    agg.out[1].running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(15)
    x = torch.randn(2, P, channels, generator=g, dtype=torch.float64, requires_grad=True)
    curves = torch.randn(2, 4, 3, channels, generator=g, dtype=torch.float64, requires_grad=True)
    for mode in ("train", "eval"):
        agg.train(mode == "train")
        att = agg.curve_att(curves)
        inter = agg.inter_key((curves * att.softmax(2)).sum(2))
        intra = agg.intra_key((curves * att.softmax(1)).sum(1))
        q = agg.query(x)
        y = torch.cat(((q @ inter.transpose(1, 2)).softmax(-1) @ agg.inter_value(inter),
                       (q @ intra.transpose(1, 2)).softmax(-1) @ agg.intra_value(intra)), -1)
        conv, norm = agg.out[0], agg.out[1]
        z = F.batch_norm(conv(y.flatten(0, 1)), norm.running_mean.clone(), norm.running_var.clone(), norm.weight, norm.bias,
                         mode == "train", 0.0, norm.eps)
        want = F.leaky_relu(z + x.flatten(0, 1), 0.2).view(x.shape)
        got = agg(x, curves)
        torch.testing.assert_close(got, want)
        upstream = torch.randn(x.shape, generator=g, dtype=torch.float64)
        grads = [torch.autograd.grad((t * upstream).sum(), (x, curves)) for t in (got, want)]
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("into", [False, True])
@pytest.mark.parametrize("act", [True, False])
def test_widening_layer_folds_batch_statistics_with_the_same_values_and_gradients(act, into):
    torch.manual_seed(8)
    layer = curvenet._ConvBN(4, 9, act=act).double()
    assert layer.fold_statistics and not curvenet._ConvBN(9, 4).fold_statistics
    ref = copy.deepcopy(layer)
    ref.fold_statistics = False  # Linear then the BatchNorm's own training pass
    x = torch.randn(13, 4, dtype=torch.float64) * 2 + 1
    base = torch.randn(13, 9, dtype=torch.float64)
    upstream = torch.randn(13, 9, dtype=torch.float64)
    results = []
    for module in (layer, ref):
        xx, bb = x.clone().requires_grad_(), base.clone().requires_grad_()
        out = module(xx, into=bb * 1.0 if into else None)
        (out * upstream).sum().backward()
        (mean, var, count), = module[1]._pending
        results.append([out.detach(), xx.grad, bb.grad, mean, var, torch.tensor(count)] + [p.grad for p in module.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    args = (x.requires_grad_(), *(t.detach().clone().requires_grad_() for t in (layer[0].weight, layer[1].weight, layer[1].bias)))
    torch.autograd.gradcheck(lambda u, w, g, b: curvenet._LinearBatchNorm.apply(u, w, g, b, None, 1e-5)[0], args)
    torch.autograd.gradcheck(
        lambda u, w, g, b, acc: curvenet._LinearBatchNorm.apply(u, w, g, b, acc * 1.0, 1e-5)[0],
        (*args, base.requires_grad_()),
    )


def test_folded_batch_norm_is_accurate_in_float32_for_inputs_far_from_zero():
    # The covariance comes from the centred input: with inputs at mean 30, std 1 (E[x^2] = 900
    # var) an uncentred x.T @ x loses about 3 digits in float32 (relative errors ~5e-4 measured).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 16, generator=g, dtype=torch.float64) + 30
    w = torch.randn(64, 16, generator=g, dtype=torch.float64) * 0.1
    gamma, beta = torch.rand(64, generator=g, dtype=torch.float64) + 0.5, torch.randn(64, generator=g, dtype=torch.float64)
    upstream = torch.randn(20000, 64, generator=g, dtype=torch.float64)

    def run(fn, dtype):
        ts = [t.to(dtype).requires_grad_() for t in (x, w, gamma, beta)]
        out = fn(*ts)
        return [out, *torch.autograd.grad((out * upstream.to(dtype)).sum(), ts)]

    expected = run(lambda *t: F.batch_norm(t[0] @ t[1].T, None, None, t[2], t[3], True, 0.0, 1e-5), torch.float64)
    got = run(lambda *t: curvenet._LinearBatchNorm.apply(*t, None, 1e-5)[0], torch.float32)
    for a, b in zip(got, expected):
        assert (a.double() - b).abs().max() <= 2e-5 * b.abs().max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("coords", [2, 3])
@pytest.mark.parametrize("fx_kind", [None, "fresh", "strided"])
def test_point_terms_match_torch_products(monkeypatch, dtype, coords, fx_kind):
    """a = P g_j + fx and b = P g_i - fx in one pass, with their gradients (several row blocks)."""
    monkeypatch.setattr(_edge_kernels, "_POINT_BLOCK", 7)
    g = torch.Generator().manual_seed(11)
    rows, c = 53, 5
    points = torch.randn(rows, coords, generator=g, dtype=dtype) * 30  # raw coordinates
    g_j = torch.randn(coords, c, generator=g, dtype=dtype, requires_grad=True)
    g_i = torch.randn(coords, c, generator=g, dtype=dtype, requires_grad=True)
    x = torch.randn(rows, c, generator=g, dtype=dtype, requires_grad=True)
    up_a, up_b = torch.randn(rows, c, generator=g, dtype=dtype), torch.randn(rows, c, generator=g, dtype=dtype)
    results = []
    for fused in (True, False):
        for t in (g_j, g_i, x):
            t.grad = None
        fx = None
        if fx_kind == "fresh":
            fx = x * 2
        elif fx_kind == "strided":
            fx = (x * 2).T.contiguous().T  # not row-contiguous: a new tensor for a
        if fused:
            a, b = _edge_kernels.point_terms(points, fx, g_j, g_i)
            if fx_kind == "fresh":
                assert a is fx  # accumulated in place
        else:
            a, b = points @ g_j, points @ g_i
            if fx is not None:
                a, b = a + fx, b - fx
        ((a * up_a).sum() + (b * up_b).sum()).backward()
        results.append([a.detach(), b.detach(), g_j.grad, g_i.grad, x.grad])
    tol = {} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-4}
    for got, want in zip(*results):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, **tol)
