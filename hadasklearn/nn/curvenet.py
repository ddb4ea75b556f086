"""CurveNet point-cloud encoder (Xiang et al., ICCV 2021) for per-frame facial-landmark clouds, in pure torch."""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from . import _blas, _edge_kernels

__all__ = ["CurveNetEncoder"]

_SLOPE = 0.2  # LeakyReLU slope used throughout CurveNet
# Pair-level (cloud x point x neighbour x channel) tensors are built in chunks of about this many
# floats: allocations this small are reused by the allocator instead of being mmap-ed and
# page-faulted on every call, which makes the edge operations several times faster on CPU.
_CHUNK_FLOATS = 1 << 21
# BatchNorm over at most this many channels runs on the channels-first view (see _FunctionalNorm).
_NARROW = 8
# Inference runs the pointwise layers on blocks of rows whose inputs and outputs together hold
# about this many floats (half a MiB of float32: one core's L2 cache). On the whole batch, MKL's
# products of 15,296 rows (2 clips) ran at 17-23 G multiply-adds per second on one thread,
# on blocks like these at 23-30, and the shift, activation and residual of a block are then
# applied while the block is still in cache (``_eval_products``).
_TILE_FLOATS = 1 << 17


@torch.no_grad()
def _native_var(invstd, eps):
    """The biased batch variance from the ``1 / sqrt(var + eps)`` that native BatchNorm returns."""
    return (invstd.double().pow(-2) - eps).clamp_min(0).to(invstd.dtype)


class _FunctionalNorm(nn.Module):
    """BatchNorm whose batch statistics are queued instead of written into the buffers at once.

    Code recomputed by activation checkpointing runs twice; a plain ``nn.BatchNorm`` inside it
    would update its running statistics twice. The encoder clears the queue before its forward
    pass and folds it into the running statistics right after (:meth:`flush`), so statistics
    queued again by a recomputation during backward are discarded.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self._pending = []

    def forward(self, x, record=True):
        """Normalise ``x`` (channels last) with batch statistics (training) or running ones.

        ``record=False`` leaves the batch statistics out of the queue (a pass to be repeated).
        """
        flat = x.reshape(-1, x.shape[-1])
        narrow = flat.shape[1] <= _NARROW
        if narrow:
            # torch's CPU kernels are several times slower on (rows, few channels) than on the
            # transposed (1, channels, rows) view of the same data (the walk's scores: 1 channel).
            flat = flat.T.unsqueeze(0)
        if self.training:
            # The native kernel keeps one tensor for backward where the composed formula keeps
            # three, and returns the batch statistics it used (a separate column-wise var_mean
            # over (points, channels) costed a tenth of a training step on CPU).
            y, mean, invstd = torch.native_batch_norm(flat, self.weight, self.bias, None, None, True, 0.0, self.eps)
            if record:
                self.record(mean, _native_var(invstd, self.eps), flat.numel() // flat.shape[1])
        else:
            y = F.batch_norm(flat, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if narrow:
            return y.squeeze(0).T.reshape(x.shape)
        return y if x.dim() == 2 else y.view(x.shape)

    def affine(self):
        """``(scale, shift)``: normalisation with the running statistics is ``x * scale + shift``."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def record(self, mean, var, count):
        """Queue the batch mean and biased variance of ``count`` values for :meth:`flush`."""
        self._pending.append((mean.detach(), var.detach(), count))

    @torch.no_grad()
    def flush(self):
        """Fold the queued batch statistics into the running estimates (unbiased variance, as torch)."""
        for mean, var, count in self._pending:
            unbiased = var * count / max(count - 1, 1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
        self._pending = []


class _EdgeNorm(_FunctionalNorm):
    """BatchNorm over edge pre-activations ``a[j] + b[i]`` computed without building the edges.

    For the edges ``(i, j)`` of a k-NN graph, the mean and variance of ``a[j] + b[i]`` over all
    edges follow from per-point moments, the in-degrees and the neighbour sums ``sum_j a[j]``,
    so the (clouds, points, k, channels) tensor that CurveNet normalises is never materialised.
    The normalised edge value is again ``a'[j] + b'[i]``; ``(a', b')`` is returned.
    """

    def forward(self, a, b, neighbour_sum, in_degree, k):
        """Return ``(a', b')`` such that ``a'[j] + b'[i] = BN(a[j] + b[i])`` on every edge."""
        if self.training:
            n_edges = b.shape[0] * b.shape[1] * k
            w = in_degree.unsqueeze(-1)
            mean_a = (w * a).sum((0, 1)) / n_edges
            mean_b = b.mean((0, 1))
            # Centre first: E[x^2] - E[x]^2 in float32 cancels badly for raw coordinates.
            ac, bc = a - mean_a, b - mean_b
            sum_ac = neighbour_sum - k * mean_a
            second = (w * ac * ac).sum((0, 1)) + 2 * (bc * sum_ac).sum((0, 1)) + k * (bc * bc).sum((0, 1))
            var = second / n_edges
            mean = mean_a + mean_b
            self.record(mean, var, n_edges)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return a * scale, (b - mean) * scale + self.bias


class _Graph(NamedTuple):
    """The k-NN graph an encoder's edge layers share.

    ``idx``: (clouds, points, k) neighbour lists; ``in_degree``: (clouds, points) how often each
    point is a neighbour (training only, else ``None``); ``reverse``: the in-edge lists of
    :func:`._edge_kernels.reverse_graph` for the compiled layers' backward (``None``: built
    there if needed).
    """

    idx: torch.Tensor
    in_degree: torch.Tensor = None
    reverse: tuple = None


def _local_flat(idx):
    """Neighbour indices (n, P, k) made row indices into the (n * P, ...) flattened cloud batch."""
    n, p = idx.shape[:2]
    return (idx + p * torch.arange(n, device=idx.device).view(n, 1, 1)).reshape(n * p, -1)


def _gather_rows(flat, index):
    """``flat[index]`` for a 2-D ``flat`` and an integer ``index`` of any shape (one index_select)."""
    return flat.index_select(0, index.reshape(-1)).view(*index.shape, flat.shape[-1])


def _neighbours(a, idx):
    """The (n, P, k, C) features ``a[j]`` of the neighbours ``idx`` of every point."""
    n, p, c = a.shape
    return _gather_rows(a.reshape(n * p, c), _local_flat(idx)).view(n, p, -1, c)


def _edge_mean_leaky(a, b, idx):
    """``mean_j LeakyReLU(a[j] + b[i])`` over the neighbours ``j`` of every point ``i`` (one chunk)."""
    return F.leaky_relu(_neighbours(a, idx) + b.unsqueeze(2), _SLOPE).mean(2)


def _neighbour_reduce(a, idx, how):
    """Sum or max of ``a[j]`` over the neighbours ``j`` of every point (one chunk)."""
    nbr = _neighbours(a, idx)
    return nbr.sum(2) if how == "sum" else nbr.max(2).values


def _chunked(fn, tensors, idx, *args, use_checkpoint=False):
    """Apply ``fn(*tensor_chunks, idx_chunk, *args)`` over chunks of clouds and concatenate.

    The torch composition for devices without the compiled kernels of :mod:`._edge_kernels`.
    """
    n, p, k = idx.shape
    c = tensors[0].shape[-1]
    size = max(1, _CHUNK_FLOATS // (p * k * c))
    if size >= n:
        pieces = [(tensors, idx)]
    else:
        # split (not slicing) so that backward concatenates chunk gradients once
        pieces = zip(zip(*(t.split(size) for t in tensors)), idx.split(size))
    out = []
    for ts, ix in pieces:
        if use_checkpoint and torch.is_grad_enabled():
            out.append(_checkpoint(fn, *ts, ix, *args, use_reentrant=False))
        else:
            out.append(fn(*ts, ix, *args))
    return out[0] if len(out) == 1 else torch.cat(out)


def _knn(points, k):
    """Indices (N, P, k + 1) of each point itself followed by its ``k`` nearest other points."""
    if _edge_kernels.fused_available(points):
        return _edge_kernels.knn(points, k)
    dist = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    # Self first even for duplicated points (e.g. a padded all-zero frame).
    dist.diagonal(dim1=1, dim2=2).fill_(-1.0)
    return dist.topk(k + 1, dim=-1, largest=False, sorted=True).indices


class _LinearBatchNorm(torch.autograd.Function):
    """``BatchNorm(x @ W.T)`` with batch statistics (+ ``into``), without the product ever being normalised.

    The statistics of ``y = x @ W.T`` follow from those of ``x``: ``mean(y) = W mean(x)`` and
    ``var(y)_c = w_c Cov(x) w_c``, so the normalised output is one product ``xc @ (a W).T + beta``
    (``xc = x - mean(x)``, ``a = gamma / std(y)``) and the gradients are products of ``xc`` with
    small matrices (``grad.T @ xc``, ``grad @ (a W)``, ``xc @ W.T diag(t) W``). Neither direction
    keeps, recomputes or makes a separate BatchNorm pass over the (rows, c_out) tensor: for a
    layer that widens its input that saves a matrix product and two passes over its widest
    tensor per training step. The covariance comes from the centred input (two-pass, as
    BatchNorm's own variance); it is ``c_in x c_in``, so this pays off when ``c_out > c_in``.

    With ``into`` (a (rows, c_out) tensor) the output is accumulated into it in place and
    returned. Returns the output and the batch mean and biased variance of the product
    (not differentiable).
    """

    @staticmethod
    def forward(ctx, x, weight, gamma, beta, into, eps):
        mean_x = x.mean(0)
        xc = x - mean_x
        cov = (xc.T @ xc).div_(x.shape[0])
        var = ((weight @ cov) * weight).sum(1).clamp_min_(0)
        a = gamma * torch.rsqrt(var + eps)
        w_folded = weight * a.unsqueeze(1)
        if into is None:
            out = _blas.mm(xc, w_folded.T).add_(beta)
        else:
            ctx.mark_dirty(into)
            out = into.addmm_(xc, w_folded.T).add_(beta)
        mean = weight @ mean_x
        ctx.save_for_backward(xc, weight, cov, var, a)
        ctx.eps, ctx.has_into = eps, into is not None
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        # BatchNorm's backward, d(xhat) = a (g - mean(g)) - t (y - mean(y)) per channel with
        # t = a * sum(g * xhat) / (rows * std), pushed through y = x @ W.T.
        xc, weight, cov, var, a = ctx.saved_tensors
        n = xc.shape[0]
        grad_beta = grad.sum(0)
        g_x = grad.T @ xc  # (c_out, c_in): sum over rows of g (x - mean x)
        invstd = torch.rsqrt(var + ctx.eps)
        grad_gamma = invstd * (g_x * weight).sum(1)
        t = a * invstd * grad_gamma / n
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            mixed = weight.T @ (weight * t.unsqueeze(1))  # W.T diag(t) W, (c_in, c_in)
            w_folded = weight * a.unsqueeze(1)
            grad_x = _blas.mm(grad, w_folded).addmm_(xc, mixed, alpha=-1).sub_((a * grad_beta / n) @ weight)
        if ctx.needs_input_grad[1]:
            grad_w = g_x * a.unsqueeze(1) - (n * t).unsqueeze(1) * (weight @ cov)
        return grad_x, grad_w, grad_gamma, grad_beta, (grad if ctx.has_into else None), None


def _eval_products(terms, shift, act, into=None):
    """``sum_i x_i @ w_i.T + shift`` (+ ``into``, then LeakyReLU if ``act``) without autograd, by row blocks.

    ``terms``: pairs ``(x, w)`` of 2-D inputs (rows, c_i) and weights (c_out, c_i); ``shift``: a
    (c_out,) tensor or ``None``. ``into``, a (rows, c_out) tensor, is accumulated into in place
    and returned; otherwise a new tensor.
    Each block of rows is multiplied, shifted and activated while it is in cache (see
    :data:`_TILE_FLOATS`), so a layer costs one pass over its output instead of three or four.
    """
    x0 = terms[0][0]
    rows, c_out = x0.shape[0], terms[0][1].shape[0]
    out = torch.empty(rows, c_out, dtype=x0.dtype, device=x0.device) if into is None else into
    step = max(64, _TILE_FLOATS // (c_out + sum(x.shape[1] for x, _ in terms)))
    transposed = [(x, w.T) for x, w in terms]
    for first in range(0, rows, step):
        block = out[first : first + step]
        for i, (x, wt) in enumerate(transposed):
            if i == 0 and into is None:
                torch.mm(x[first : first + step], wt, out=block)
            else:
                block.addmm_(x[first : first + step], wt)
        if shift is not None:
            block.add_(shift)
        if act:
            F.leaky_relu_(block, _SLOPE)
    return out


class _ConvBN(nn.Sequential):
    """Pointwise linear layer + BatchNorm over points (+ LeakyReLU), channels last.

    A layer that widens its input (``c_out > c_in``) computes its training-mode BatchNorm from
    the input's statistics (:class:`_LinearBatchNorm`) when given 2-D input. ``into`` (2-D
    input only) is a (rows, c_out) tensor the layer's output (before the activation) is added
    to, in place; it must not be needed by autograd elsewhere.
    """

    def __init__(self, c_in, c_out, act=True):
        super().__init__(nn.Linear(c_in, c_out, bias=False), _FunctionalNorm(c_out))
        self.act = act
        self.fold_statistics = c_out > c_in

    def forward(self, x, into=None):
        linear, norm = self[0], self[1]
        if norm.training and self.fold_statistics and x.dim() == 2:
            y, mean, var = _LinearBatchNorm.apply(x, linear.weight, norm.weight, norm.bias, into, norm.eps)
            norm.record(mean, var, x.shape[0])
        elif norm.training:
            y = norm(_blas.linear(x, linear.weight))
            if into is not None:
                y = into.add_(y)
        else:
            weight, shift = self.folded()
            if not torch.is_grad_enabled() and x.dim() == 2:
                return _eval_products([(x, weight)], shift, self.act, into)
            # the shift added in place: addmm would first copy it into every output row
            y = F.linear(x, weight) if into is None else into.addmm_(x, weight.T)
            y.add_(shift)
        # In place: BatchNorm keeps its input for backward, not its output, and LeakyReLU's
        # backward works from its output (slope > 0); one (points, channels) tensor fewer.
        return F.leaky_relu_(y, _SLOPE) if self.act else y

    def folded(self):
        """``(weight, shift)`` with ``x @ weight.T + shift`` = the layer before its activation, in eval mode.

        BatchNorm with running statistics is affine, so it folds into the linear map (one pass over
        the points instead of two).
        """
        scale, shift = self[1].affine()
        return self[0].weight * scale.unsqueeze(1), shift


class _LPFA(nn.Module):
    """Local point-feature aggregation over the k-NN graph.

    Edge pre-activation ``W (f[j] - f[i]) + G [p[i], p[j], p[j] - p[i]]``, BatchNorm over edges,
    LeakyReLU, then max (the first layer, no features) or mean over the neighbours. Both linear
    maps split into a per-point part for ``j`` and one for ``i``, so only the final nonlinearity
    is evaluated per edge.
    """

    def __init__(self, n_coords, channels, initial):
        super().__init__()
        self.initial = initial
        self.geometry = nn.Linear(3 * n_coords, channels, bias=False)
        self.features = None if initial else nn.Linear(channels, channels, bias=False)
        self.norm = _EdgeNorm(channels)

    def forward(self, points, x, graph, use_checkpoint):
        idx, in_degree, reverse = graph
        c = points.shape[-1]
        g = self.geometry.weight
        # G [p_i, p_j, p_j - p_i] = (G1 - G3) p_i + (G2 + G3) p_j. Contiguous (coords, channels):
        # autograd then forms their gradient as points.T @ grad, 3x faster on CPU than the
        # (channels, points) @ (points, coords) product it picks for a transposed view.
        g_j = (g[:, c : 2 * c] + g[:, 2 * c :]).T.contiguous()
        g_i = (g[:, :c] - g[:, 2 * c :]).T.contiguous()
        if not self.norm.training and not torch.is_grad_enabled() and _edge_kernels.fused_available(points):
            # Inference: the edge BatchNorm's running statistics fold into the per-point maps,
            # which one kernel evaluates per cloud (in cache) before adding, activating and
            # reducing the edges.
            scale, shift = self.norm.affine()
            fx = None
            if x is not None:
                fx = _eval_products([(x.reshape(-1, x.shape[-1]), self.features.weight * scale.unsqueeze(1))], None, False)
                fx = fx.view(x.shape)
            return _edge_kernels.lpfa_eval(points, fx, g_j * scale, g_i * scale, shift, idx, _SLOPE, self.initial)
        flat_points = points.reshape(-1, c)
        fx = None if x is None else _blas.linear(x.reshape(-1, x.shape[-1]), self.features.weight)
        shape = (*points.shape[:2], g_j.shape[1])
        if _edge_kernels.fused_available(points):
            # a = P g_j + W x, b = P g_i - W x in one pass, a in W x's buffer; their gradients
            # in P's 3 columns (skinny products at 1-2 G multiply-adds per second in torch)
            # in one pass too
            a, b = (t.view(shape) for t in _edge_kernels.point_terms(flat_points, fx, g_j, g_i))
        elif fx is None:
            a, b = points @ g_j, points @ g_i
        else:
            # accumulated into W x's buffer: two (points, channels) tensors instead of five
            # (addmm's input is not kept for backward)
            b = torch.addmm(fx, flat_points, g_i, beta=-1).view(shape)
            a = fx.addmm_(flat_points, g_j).view(shape)
        k = idx.shape[-1]
        if _edge_kernels.fused_available(a, b):
            # Edge BatchNorm, LeakyReLU and the neighbour reduction in four passes over the edges
            # (two forward, two backward) instead of a dozen point-wise tensors and their gradients.
            norm = self.norm
            out, mean, var = _edge_kernels.edge_norm_act(
                a, b, idx, in_degree, norm.weight, norm.bias, norm.running_mean, norm.running_var,
                self.training, norm.eps, _SLOPE, self.initial, reverse,
            )
            if self.training:
                norm.record(mean, var, idx.numel())
            return out
        nsum = _chunked(_neighbour_reduce, (a,), idx, "sum") if self.training else None
        a, b = self.norm(a, b, nsum, in_degree, k)
        if self.initial:
            # LeakyReLU is increasing and b[i] is constant over j, so max commutes with it.
            return F.leaky_relu(_chunked(_neighbour_reduce, (a,), idx, "max") + b, _SLOPE)
        return _chunked(_edge_mean_leaky, (a, b), idx, use_checkpoint=use_checkpoint)


class _CurveGrouping(nn.Module):
    """Curve grouping: attention-selected start points and a learnable walk along the k-NN graph."""

    def __init__(self, channels, n_curves, curve_length):
        super().__init__()
        self.n_curves, self.curve_length = n_curves, curve_length
        self.start = nn.Linear(channels, 1, bias=False)
        self.agent = nn.Linear(2 * channels, 1, bias=False)
        self.agent_norm = _FunctionalNorm(1)
        self.momentum = nn.Linear(2 * channels, 2, bias=False)
        self.momentum_norm = _FunctionalNorm(2)

    def forward(self, x, walk_rows):
        """Curves (clouds, n_curves, curve_length, channels) of ``x``; ``walk_rows``: see :meth:`_walk`."""
        att = torch.sigmoid(self.start(x))
        x = x * att
        # Sorted by score, so the order of the curves does not depend on the order of the points.
        start = att.squeeze(-1).topk(self.n_curves, dim=1, sorted=True).indices
        return self._walk(x, walk_rows, start)

    def _walk(self, x, nbr_flat, start):
        """Walk from the points ``start`` (clouds, curves); ``nbr_flat`` (clouds * points, k) holds
        each point's walk candidates as rows of the flattened batch (:func:`_local_flat`)."""
        n, p, c = x.shape
        flat = x.reshape(n * p, c)
        offset = p * torch.arange(n, device=x.device).view(n, 1)
        start_rows = (start + offset).reshape(-1)  # one walk row per (cloud, curve)
        # The path (which neighbour every step picks) is found without autograd; with gradients
        # enabled the walk is then replayed along that path, differentiably.
        replay = torch.is_grad_enabled()
        # The candidates' part of the agent score is one number per point: score points, not
        # candidates (each walk pass gathers from these).
        point_score = (flat @ self.agent.weight[:, :c].T).squeeze(-1)
        with torch.no_grad():
            rows, cands, factors = self._path(flat.detach(), point_score.detach(), nbr_flat, start_rows, p, record=not replay)
        if not replay:
            return flat.index_select(0, rows.reshape(-1)).view(n, self.n_curves, self.curve_length, c)
        curves = self._replay(flat, point_score, start_rows, rows, cands, factors, p)
        return curves.view(n, self.n_curves, self.curve_length, c)

    def _blend(self, cur_feat, desc, record):
        """Dynamic momentum: the curve descriptor blends the newest point and the old descriptor."""
        # momentum([cur; desc]) with the weight split instead of the features concatenated
        c, w = cur_feat.shape[-1], self.momentum.weight
        logits = (cur_feat @ w[:, :c].T).add_(desc @ w[:, c:].T)
        mix = self.momentum_norm(logits, record).softmax(-1)
        return torch.lerp(desc, cur_feat, mix[..., :1])  # mix[0] * cur + (1 - mix[0]) * desc

    def _score(self, cand_score, desc, record):
        """Normalised agent scores (rows, k) of the candidates, whose own terms are ``cand_score``."""
        score = cand_score + desc @ self.agent.weight[:, desc.shape[-1] :].T
        return self.agent_norm(score.unsqueeze(-1), record).squeeze(-1)

    def _path(self, flat, point_score, nbr_flat, start_rows, points_per_cloud, record):
        """Walk without gradients; return the picked rows (rows, length), candidates and factors.

        ``flat`` holds clouds of ``points_per_cloud`` consecutive rows; the walk rows
        ``start_rows`` come cloud by cloud.
        """
        if not self.training and _edge_kernels.fused_available(flat):
            return self._fused_eval_path(flat, point_score, nbr_flat, start_rows)
        cur = start_rows
        desc = flat.index_select(0, cur)
        cur_feat = None
        rows, cands, factors = [], [], []
        for step in range(self.curve_length):
            if step > 0:
                desc = self._blend(cur_feat, desc, record)
            cand = nbr_flat.index_select(0, cur)  # (rows, k) candidate points
            score = self._score(point_score.index_select(0, cand.reshape(-1)).view(cand.shape), desc, record)
            if step > 0:
                # crossover suppression: damp candidates that turn the curve back on itself
                factor = _turn_factor(flat, cand, cur_feat, desc, points_per_cloud)
                factors.append(factor)
                score = score * factor
            choice = score.softmax(-1).argmax(-1, keepdim=True)
            cur = cand.gather(-1, choice).squeeze(-1)
            cur_feat = flat.index_select(0, cur)
            rows.append(cur)
            cands.append(cand)
        return torch.stack(rows, 1), cands, factors

    def _fused_eval_path(self, flat, point_score, nbr_flat, start_rows):
        """:meth:`_path` with running statistics, all steps of a curve in one compiled kernel."""
        c = flat.shape[1]
        rows, cands, factors = _edge_kernels.walk_path_eval(
            flat, point_score, nbr_flat, start_rows, self.curve_length, self.agent.weight[0, c:],
            self.momentum.weight, self.agent_norm.affine(), self.momentum_norm.affine(), _COS_EPS,
        )
        return rows, list(cands.unbind(0)), list(factors.unbind(0))

    def _replay(self, flat, point_score, start_rows, rows, cands, factors, points_per_cloud):
        """The walk along a known path, differentiable: straight-through hard selection."""
        n_rows, c = rows.shape[0], flat.shape[1]
        # One gather each for all steps' features and candidate scores (one gradient scatter each).
        visited = torch.cat((start_rows.unsqueeze(1), rows), 1).reshape(-1)
        feats = flat.index_select(0, visited).view(n_rows, -1, c).unbind(1)
        cand_scores = point_score.index_select(0, torch.stack(cands, 1).reshape(-1)).view(n_rows, len(cands), -1).unbind(1)
        desc = feats[0]
        detached = flat.detach()
        curves = []
        for step in range(self.curve_length):
            if step > 0:
                desc = self._blend(curves[-1], desc, True)
            score = self._score(cand_scores[step], desc, True)
            if step > 0:
                score = score * factors[step - 1]
            prob = score.softmax(-1)
            # forward: the picked point's features; backward: the softmax's straight-through path
            curves.append(feats[step + 1] + _StraightThrough.apply(prob, detached, cands[step], points_per_cloud))
        return torch.stack(curves, 1)


_COS_EPS = 1e-8


def _turn_factor(flat, cand, cur, desc, points_per_cloud=None):
    """``clamp(1 + cos(cur - desc, flat[cand] - cur), 0, 1)`` per walk row and candidate."""
    if _edge_kernels.fused_available(flat):
        return _edge_kernels.turn_factor(flat, cand, cur, desc, _COS_EPS, points_per_cloud)
    u = cur - desc
    v = _gather_rows(flat, cand) - cur.unsqueeze(1)
    dot = (v @ u.unsqueeze(-1)).squeeze(-1)
    cos = dot / (u.norm(dim=-1, keepdim=True).clamp_min(_COS_EPS) * v.norm(dim=-1).clamp_min(_COS_EPS))
    return (1.0 + cos).clamp(0.0, 1.0)


class _StraightThrough(torch.autograd.Function):
    """Zero in value; the gradient of ``sum_j prob[r, j] flat[cand[r, j]]`` for ``prob`` in backward.

    Added to the picked point's features it makes the straight-through estimator
    ``hard - prob.detach() + prob`` of the published walk without a (rows, k, channels) tensor.
    """

    @staticmethod
    def forward(ctx, prob, flat, cand, points_per_cloud=None):
        ctx.save_for_backward(flat, cand)
        ctx.points_per_cloud = points_per_cloud
        return prob.new_zeros(prob.shape[0], flat.shape[1])

    @staticmethod
    def backward(ctx, grad):
        flat, cand = ctx.saved_tensors
        if _edge_kernels.fused_available(flat):
            return _edge_kernels.pick_gradient(flat, cand, grad, ctx.points_per_cloud), None, None, None
        return (_gather_rows(flat, cand) @ grad.unsqueeze(-1)).squeeze(-1), None, None, None


class _CurveAggregation(nn.Module):
    """Curve aggregation: every point attends to curve-level and step-level curve descriptors."""

    def __init__(self, channels):
        super().__init__()
        mid = channels // 2
        self.curve_att = nn.Linear(channels, 1, bias=False)
        self.inter_key = nn.Linear(channels, mid, bias=False)
        self.intra_key = nn.Linear(channels, mid, bias=False)
        self.query = nn.Linear(channels, mid, bias=False)
        self.inter_value = nn.Linear(mid, mid, bias=False)
        self.intra_value = nn.Linear(mid, mid, bias=False)
        self.out = _ConvBN(2 * mid, channels, act=False)

    def forward(self, x, curves):
        att = self.curve_att(curves)  # (n, curves, length, 1)
        inter = (curves * att.softmax(2)).sum(2)  # one descriptor per curve
        intra = (curves * att.softmax(1)).sum(1)  # one descriptor per step
        inter, intra = self.inter_key(inter), self.intra_key(intra)
        q = _blas.linear(x.flatten(0, 1), self.query.weight).view(*x.shape[:2], -1).transpose(1, 2)
        # Scores as (clouds, descriptors, points), normalised over the descriptors: torch's
        # softmax over a last dimension of 10 or 25 was 1.5-2.5x slower than over the middle
        # dimension of this layout, whose innermost axis (the points) is long.
        a_inter, a_intra = (inter @ q).softmax(1), (intra @ q).softmax(1)
        v_inter, v_intra = self.inter_value(inter), self.intra_value(intra)
        if q.shape[1] <= 8:
            # Narrow values: the weighted sums as (clouds, values, points) products, then one
            # transposing copy (the two attention parts of a 16-channel block: 2.3-4.2 ms per
            # 32 clouds, against 3.0-5.6 ms through the transposed scores).
            y = torch.cat((v_inter.transpose(1, 2) @ a_inter, v_intra.transpose(1, 2) @ a_intra), 1).transpose(1, 2)
        else:
            y = torch.cat((a_inter.transpose(1, 2) @ v_inter, a_intra.transpose(1, 2) @ v_intra), -1)
        # 2-D (a base tensor, not a view), so the in-place ops need no copy in backward
        out = F.leaky_relu_(self.out(y.flatten(0, 1)).add_(x.flatten(0, 1)), _SLOPE)
        return out.view(x.shape)


class _CIC(nn.Module):
    """Curve intervention convolution: bottleneck, curve grouping + aggregation, LPFA, residual."""

    def __init__(self, n_coords, c_in, c_out, bottleneck, curves):
        super().__init__()
        planes = c_in // bottleneck
        self.reduce = _ConvBN(c_in, planes)
        self.grouping = _CurveGrouping(planes, *curves) if curves else None
        self.aggregation = _CurveAggregation(planes) if curves else None
        self.lpfa = _LPFA(n_coords, planes, initial=False)
        self.expand = _ConvBN(planes, c_out, act=False)
        self.shortcut = _ConvBN(c_in, c_out, act=False) if c_in != c_out else None

    def forward(self, points, x, graph, walk_rows, use_checkpoint):
        # Point-wise layers run on 2-D (points, channels) tensors: their outputs are base tensors,
        # so BatchNorm/LeakyReLU/residual can work in place without autograd copying views.
        n, p = x.shape[:2]
        flat = x.flatten(0, 1)
        fused_tail = not torch.is_grad_enabled() and not any(m is not None and m.training for m in (self.expand, self.shortcut))
        shortcut = flat if self.shortcut is None or fused_tail else self.shortcut(flat)
        x = self.reduce(flat).view(n, p, -1)
        if self.grouping is not None:
            x = self.aggregation(x, self.grouping(x, walk_rows))
        x = self.lpfa(points, x, graph, use_checkpoint).flatten(0, 1)
        if fused_tail:
            # inference: expansion, shortcut, residual and activation block by block in cache;
            # without a shortcut, into this block's own input (used only for the residual now)
            weight, shift = self.expand.folded()
            if self.shortcut is None:
                out = _eval_products([(x, weight)], shift, True, into=flat)
            else:
                weight_s, shift_s = self.shortcut.folded()
                out = _eval_products([(flat, weight_s), (x, weight)], shift + shift_s, True)
            return out.view(n, p, -1)
        if self.shortcut is not None:
            # the expansion accumulated into the shortcut's output: no new (points, c_out) tensor
            out = self.expand(x, into=shortcut)
        else:
            out = self.expand(x).add_(shortcut)
        return F.leaky_relu_(out, _SLOPE).view(n, p, -1)


class CurveNetEncoder(nn.Module):
    """CurveNet encoder producing per-point features of landmark point clouds.

    A faithful-in-spirit CurveNet [1]_ without downsampling (a face has only a few hundred
    landmarks): a k-NN graph from the coordinates, a local point-feature aggregation (LPFA) stem,
    then six curve intervention convolution (CIC) blocks in three stages of widths
    ``out_dim // 4``, ``out_dim // 2`` and ``out_dim`` (bottleneck ratios 2 then 4, as in the
    published classifier). The blocks of the first two stages group curves by a learnable walk
    (``n_curves`` curves of ``curve_length`` steps, starting points chosen by attention, dynamic
    momentum, crossover suppression, straight-through hard selection) and aggregate them into the
    point features. Every block aggregates its k-NN neighbourhood with an LPFA and adds a residual.

    Differences from the released code, chosen for memory and speed (one training step of
    256 clouds of 478 points needs about 12 GiB there):

    - The k-NN graph is computed once per cloud (coordinates do not change without
      downsampling) and shared by all blocks.
    - An LPFA uses one edge layer, ``LeakyReLU(BN(W (f_j - f_i) + G [p_i, p_j, p_j - p_i]))``
      averaged (max for the stem) over neighbours, instead of two. Its linear part is evaluated
      per point and its edge BatchNorm statistics come from per-point moments, so edge tensors
      exist only chunk by chunk, and only for the final nonlinearity.
    - On CPU (float32/float64) the k-NN graph and the whole edge layer of an LPFA (BatchNorm
      over edges, LeakyReLU, mean or max over neighbours) run as compiled kernels
      (:mod:`hadasklearn.nn._edge_kernels`: two passes over the edges forward, two backward,
      the second gathering each point's gradient over its in-edges, whose lists are built once
      per pass) instead of gather-add-normalise-activate-reduce compositions; other devices use
      the torch composition. Both give the same values up to float round-off.
    - The curve walk first finds its path (which neighbour each step picks) without autograd,
      then, when gradients are needed, replays the same steps differentiably along that path.
      The candidates' part of the agent score is computed once per point, and the
      straight-through selection's gradient and the crossover-suppression factor come from
      kernels, so no (clouds, curves, k, channels) candidate tensor is built. Values and
      gradients equal those of the published step-by-step walk (tested against it). In eval
      mode (running statistics, so the curves are independent) each curve's whole walk is one
      compiled kernel call, curve after curve, so a cloud's features stay in cache.
    - In eval mode each pointwise layer's BatchNorm is folded into its linear map. Without
      autograd (inference) the pointwise layers run on blocks of rows that stay in cache, a
      block's shortcut, expansion, residual and activation in one pass per row block, and each
      LPFA's edge BatchNorm folds into its per-point maps, which the compiled edge kernel
      evaluates per cloud.
    - Pointwise layers that widen their input keep the input, not their output, for backward
      and recompute the product there; activations, BatchNorm and residual additions work in
      place where autograd allows. Optionally (``checkpoint``) whole CIC blocks keep only their
      input and are recomputed in backward (:func:`torch.utils.checkpoint.checkpoint`,
      ``use_reentrant=False``). BatchNorm running statistics are updated once per forward pass
      regardless. Outputs and gradients are the same either way.

    Parameters
    ----------
    in_coords : {2, 3}, default=3
        Coordinates per point.
    out_dim : int, default=256
        Features per point; a positive multiple of 32.
    k : int, default=20
        Neighbours per point in the k-NN graph (the point itself counts as one in the LPFA, as
        in the released code; the walk moves among the ``k`` nearest other points).
    n_points : int, default=478
        Points per cloud (478 for MediaPipe face-mesh landmarks); inputs must have this many.
    checkpoint : {False, "last_stage", True}, default=False
        Which CIC blocks are recomputed in backward instead of keeping their activations: none
        (``False``, the fastest), the two blocks of the widest stage (``"last_stage"``) or all
        six (``True``, the least memory). On CPU one training step of 256 clouds (16 clips x
        16 frames) of the default encoder needs about 3.0 / 3.0 / 2.4 GiB of process memory
        (``benchmarks/bench_curvenet.py``).
    n_curves : int, default=25
        Curves per cloud in the curve-grouping blocks. The published default walks 50 curves of
        10 steps over 1024 points; 25 keeps that coverage for 478 landmarks at half the cost.
    curve_length : int, default=10
        Steps per curve (10 in the published default setting).

    Raises
    ------
    ValueError
        If a size is out of range (``k >= n_points``, ``n_curves > n_points``, ...).

    Notes
    -----
    With the defaults (3-D input) the encoder has 143,640 parameters, against 143,184 for the
    encoder of the published HadaSmileNet/MeshSmileNet model. Outputs are equivariant to a
    permutation of the points (up to ties among distances or walk scores).

    References
    ----------
    .. [1] T. Xiang, C. Zhang, Y. Song, J. Yu and W. Cai, "Walk in the Cloud: Learning Curves for
       Point Clouds Shape Analysis", ICCV 2021, pp. 915-924.

    Examples
    --------
    >>> import torch
    >>> from hadasklearn.nn.curvenet import CurveNetEncoder
    >>> enc = CurveNetEncoder(out_dim=32, k=5, n_points=30, n_curves=4, curve_length=3)
    >>> enc(torch.randn(2, 30, 3)).shape
    torch.Size([2, 30, 32])
    """

    def __init__(
        self,
        *,
        in_coords=3,
        out_dim=256,
        k=20,
        n_points=478,
        checkpoint=False,
        n_curves=25,
        curve_length=10,
    ):
        super().__init__()
        if in_coords not in (2, 3):
            raise ValueError(f"in_coords must be 2 or 3, got {in_coords!r}.")
        for name, value in (("out_dim", out_dim), ("k", k), ("n_points", n_points), ("n_curves", n_curves), ("curve_length", curve_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if out_dim % 32:
            raise ValueError(f"out_dim must be a multiple of 32 (stage widths are out_dim/8 .. out_dim), got {out_dim}.")
        if k >= n_points:
            raise ValueError(f"k must be smaller than n_points (each point needs k other points), got k={k} with n_points={n_points}; lower k.")
        if n_curves > n_points:
            raise ValueError(f"n_curves must be at most n_points, got n_curves={n_curves} with n_points={n_points}.")
        if not (isinstance(checkpoint, bool) or checkpoint == "last_stage"):
            raise ValueError(f"checkpoint must be True, False or 'last_stage', got {checkpoint!r}.")
        self.in_coords, self.out_dim, self.k, self.n_points = in_coords, out_dim, k, n_points
        self.checkpoint = checkpoint
        curves = (n_curves, curve_length)
        w = (out_dim // 8, out_dim // 4, out_dim // 2, out_dim)
        self.stem = _LPFA(in_coords, w[0], initial=True)
        self.blocks = nn.ModuleList(
            [
                _CIC(in_coords, w[0], w[1], 2, curves),
                _CIC(in_coords, w[1], w[1], 4, curves),
                _CIC(in_coords, w[1], w[2], 2, curves),
                _CIC(in_coords, w[2], w[2], 4, curves),
                _CIC(in_coords, w[2], w[3], 2, None),
                _CIC(in_coords, w[3], w[3], 4, None),
            ]
        )

    def _check(self, points):
        if not isinstance(points, torch.Tensor) or not points.is_floating_point():
            raise ValueError(f"points must be a floating-point torch.Tensor, got {type(points).__name__} {getattr(points, 'dtype', '')}.")
        expected = f"(n_clouds, {self.n_points}, {self.in_coords})"
        if points.dim() != 3:
            raise ValueError(f"points must have shape {expected}, got a {points.dim()}-d tensor of shape {tuple(points.shape)}; flatten batch and frames into the first axis.")
        if points.shape[1] != self.n_points or points.shape[2] != self.in_coords:
            raise ValueError(f"points must have shape {expected}, got {tuple(points.shape)}; set n_points/in_coords to match the data.")
        if points.shape[0] == 0:
            raise ValueError("points holds no clouds (first axis has length 0).")
        if not torch.isfinite(points).all():
            raise ValueError("points contains NaN or infinite coordinates; fill or drop missing frames before encoding.")

    def forward(self, points):
        """Encode point clouds.

        Parameters
        ----------
        points : torch.Tensor of shape (n_clouds, n_points, in_coords)
            Floating-point coordinates.

        Returns
        -------
        torch.Tensor of shape (n_clouds, n_points, out_dim)
            Per-point features.
        """
        self._check(points)
        grad_enabled = torch.is_grad_enabled()
        with torch.no_grad():
            knn = _knn(points.detach(), self.k)
            # the point itself and its k - 1 nearest (as released), contiguous for the kernels
            idx = knn[..., : self.k].contiguous()
            # the walk's candidates (the k nearest other points) as rows of the flattened batch
            walk_rows = _local_flat(knn[..., 1:])
            n, p = points.shape[:2]
            # every point's in-edges, shared by the compiled edge layers' backward passes
            reverse = None
            if grad_enabled and _edge_kernels.fused_available(points):
                reverse = _edge_kernels.reverse_graph(idx)
            # how often each point is a neighbour: only the edge BatchNorms' batch statistics use
            # it (the lengths of the in-edge lists when those exist)
            in_degree = None
            if self.training:
                if reverse is not None:
                    in_degree = reverse[0].diff(dim=1)
                else:
                    in_degree = torch.bincount(_local_flat(idx).reshape(-1), minlength=n * p).view(n, p)
                in_degree = in_degree.to(points.dtype)
        graph = _Graph(idx, in_degree, reverse)
        norms = [m for m in self.modules() if isinstance(m, _FunctionalNorm)]
        for m in norms:
            m._pending = []
        n_ckpt = {True: len(self.blocks), False: 0, "last_stage": 2}[self.checkpoint] if torch.is_grad_enabled() else 0
        x = self.stem(points, None, graph, False)
        for i, block in enumerate(self.blocks):
            if i >= len(self.blocks) - n_ckpt:
                # Keep only block inputs for backward; on other devices the edge chunks inside are
                # checkpointed again so that recomputing a block never holds all of them at once.
                x = _checkpoint(block, points, x, graph, walk_rows, True, use_reentrant=False)
            else:
                x = block(points, x, graph, walk_rows, False)
        for m in norms:
            m.flush()
        return x
