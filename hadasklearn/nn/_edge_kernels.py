"""Fused CPU kernels (numba) for the k-NN edge operations and the curve walk of the CurveNet encoder.

Gathering the neighbours' features into a ``(clouds, points, k, channels)`` tensor, adding the
centre term, normalising, applying LeakyReLU and averaging over the neighbours are passes over
a tensor ``k`` times larger than the point features; the kernels here stream over the edges
without materialising them, forward and backward, parallel over clouds (or walk rows). They
serve CPU float tensors; on other devices (or without numba) the torch composition in
:mod:`hadasklearn.nn.curvenet` runs, with identical results up to float round-off.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .._threads import even_edges, map_ranges

try:
    import numba
except ImportError:  # pragma: no cover - numba is a core dependency
    numba = None

__all__ = ["edge_norm_act", "fused_available", "knn", "lpfa_eval", "pick_gradient", "reverse_graph", "turn_factor", "walk_path_eval"]


def fused_available(*tensors):
    """Whether the fused kernels can serve these tensors (CPU, float32/float64, numba present)."""
    return numba is not None and all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors
    )


if numba is not None:

    @numba.njit(nogil=True, cache=True)
    def _knn_block(points, k, out, first, stop):
        p, d = points.shape[1], points.shape[2]
        dist = np.empty(p)
        best = np.empty(k)
        order = np.empty(k, dtype=np.int64)
        cand = np.empty(p, dtype=np.int64)
        radius = np.empty(p)  # the k-th nearest distance (not squared) of the points done so far
        coords = np.empty((d, p))  # the cloud coordinate-major: contiguous rows vectorise over j
        for cloud in range(first, stop):
            pts = points[cloud]
            for j in range(p):
                for c in range(d):
                    coords[c, j] = pts[j, c]
            for i in range(p):
                dist[:] = 0.0
                for c in range(d):
                    v = pts[i, c]
                    row = coords[c]
                    for j in range(p):
                        dist[j] += (row[j] - v) ** 2
                # An upper bound of the k-th nearest distance (triangle inequality): the k nearest
                # points of m, the nearest point already done, lie within |im| + r_k(m) of i. The
                # relative slack covers rounding; a loose bound only costs time.
                bound = np.inf
                if i > 0:
                    m, dm = 0, dist[0]
                    for j in range(1, i):
                        if dist[j] < dm:
                            m, dm = j, dist[j]
                    r = np.sqrt(dm) + radius[m]
                    bound = r * r * (1.0 + 1e-9)
                # Branch-free compaction of the candidates within the bound (in two loops around
                # i itself), then the k nearest by insertion into a sorted list (candidates in
                # index order, so ties keep the lower index first). Branches per point, not per
                # candidate, made this 2x faster.
                n = 0
                for j in range(i):
                    cand[n] = j
                    n += dist[j] <= bound
                for j in range(i + 1, p):
                    cand[n] = j
                    n += dist[j] <= bound
                filled = 0
                for q in range(n):
                    j = cand[q]
                    v = dist[j]
                    if filled == k and v >= best[k - 1]:
                        continue
                    pos = filled if filled < k else k - 1
                    while pos > 0 and best[pos - 1] > v:
                        best[pos] = best[pos - 1]
                        order[pos] = order[pos - 1]
                        pos -= 1
                    best[pos] = v
                    order[pos] = j
                    if filled < k:
                        filled += 1
                radius[i] = np.sqrt(best[k - 1])
                out[cloud, i, 0] = i
                for m in range(k):
                    out[cloud, i, m + 1] = order[m]

    # Reassociation lets the channel sums vectorise (so they are not bit-equal to a torch sum);
    # no assumptions about NaN or infinity.
    _REASSOC = {"reassoc", "contract", "nsz", "arcp"}

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _curve_direction(cur, desc, u, eps):
        """``u = cur - desc`` (written into ``u``); returns ``max(|u|, eps)``."""
        uu = u.dtype.type(0)  # accumulate in the data's precision, as torch does
        for ch in range(u.shape[0]):
            u[ch] = cur[ch] - desc[ch]
            uu += u[ch] * u[ch]
        return max(np.sqrt(uu), eps)

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _turn_from_sums(dot, vv, u_norm, eps):
        """``clamp(1 + cos(u, v), 0, 1)``, the crossover-suppression factor, from ``u . v`` and ``v . v``."""
        return min(max(1.0 + dot / (u_norm * max(np.sqrt(vv), eps)), 0.0), 1.0)

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _crossover_sums4(flat, q0, q1, q2, q3, cur, u):
        """``u . v`` and ``v . v`` for the four candidates ``v = flat[q] - cur``, summed side by side.

        Four independent sums overlap their addition chains and their candidates' row loads
        (which miss the cache when a walk step visits a cloud for the first time); one
        candidate at a time waits on each in turn.
        """
        zero = flat.dtype.type(0)
        d0 = d1 = d2 = d3 = s0 = s1 = s2 = s3 = zero
        for ch in range(u.shape[0]):
            uc, cc = u[ch], cur[ch]
            x0, x1, x2, x3 = flat[q0, ch] - cc, flat[q1, ch] - cc, flat[q2, ch] - cc, flat[q3, ch] - cc
            d0 += uc * x0
            d1 += uc * x1
            d2 += uc * x2
            d3 += uc * x3
            s0 += x0 * x0
            s1 += x1 * x1
            s2 += x2 * x2
            s3 += x3 * x3
        return d0, d1, d2, d3, s0, s1, s2, s3

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _turn_factors(flat, nbr, cur, cur_feat, u, u_norm, eps, factor):
        """The crossover factors (:func:`turn_factor`) of the ``k`` candidates ``nbr[cur]``, into ``factor``."""
        k = factor.shape[0]
        for j0 in range(0, k, 4):
            d0, d1, d2, d3, s0, s1, s2, s3 = _crossover_sums4(
                flat, nbr[cur, j0], nbr[cur, min(j0 + 1, k - 1)], nbr[cur, min(j0 + 2, k - 1)], nbr[cur, min(j0 + 3, k - 1)],
                cur_feat, u)
            factor[j0] = _turn_from_sums(d0, s0, u_norm, eps)
            if j0 + 1 < k:
                factor[j0 + 1] = _turn_from_sums(d1, s1, u_norm, eps)
            if j0 + 2 < k:
                factor[j0 + 2] = _turn_from_sums(d2, s2, u_norm, eps)
            if j0 + 3 < k:
                factor[j0 + 3] = _turn_from_sums(d3, s3, u_norm, eps)

    @numba.njit(nogil=True, cache=True)
    def _touch_cloud(flat, cloud, points_per_cloud):
        """Read one value per 64-byte line of a cloud's rows of ``flat``, in order; returns their sum.

        A walk step gathers its candidates' rows in no particular order. When it reaches a
        cloud whose rows are not in cache, every gather waits on memory (the first touches are
        most of a cloud's gathers: 25 curves x 20 candidates against 478 points). Read in
        order first, the rows stream in at the hardware prefetcher's pace: the crossover
        factors of a training step's 6,400 walk rows took 2.1-2.8 ms instead of 4.9-7.3 ms.
        """
        values = flat.reshape(-1)
        step = max(1, 64 // flat.itemsize)
        acc = flat.dtype.type(0)
        for e in range(cloud * points_per_cloud * flat.shape[1], (cloud + 1) * points_per_cloud * flat.shape[1], step):
            acc += values[e]
        return acc

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _turn_factor_rows(flat, cand, cur, desc, eps, points_per_cloud, out, touched, first, stop):
        u = np.empty(flat.shape[1], dtype=flat.dtype)
        last, acc = -1, flat.dtype.type(0)
        for r in range(first, stop):
            cloud = cand[r, 0] // points_per_cloud
            if cloud != last:  # rows come cloud by cloud: each cloud is read in order once
                acc += _touch_cloud(flat, cloud, points_per_cloud)
                last = cloud
            u_norm = _curve_direction(cur[r], desc[r], u, eps)
            _turn_factors(flat, cand, r, cur[r], u, u_norm, eps, out[r])
        touched[first] = acc  # kept, so that the reads are not optimised away

    @numba.njit(nogil=True, cache=True, fastmath=True)
    def _pick_gradient_rows(flat, cand, grad, points_per_cloud, out, touched, first, stop):
        # four candidates at a time, for the reason given in _crossover_sums4; each cloud's
        # rows read in order first (_touch_cloud)
        k, c = cand.shape[1], flat.shape[1]
        zero = flat.dtype.type(0)
        last, acc = -1, zero
        for r in range(first, stop):
            cloud = cand[r, 0] // points_per_cloud
            if cloud != last:
                acc += _touch_cloud(flat, cloud, points_per_cloud)
                last = cloud
            for j0 in range(0, k, 4):
                q0, q1 = cand[r, j0], cand[r, min(j0 + 1, k - 1)]
                q2, q3 = cand[r, min(j0 + 2, k - 1)], cand[r, min(j0 + 3, k - 1)]
                s0 = s1 = s2 = s3 = zero
                for ch in range(c):
                    g = grad[r, ch]
                    s0 += g * flat[q0, ch]
                    s1 += g * flat[q1, ch]
                    s2 += g * flat[q2, ch]
                    s3 += g * flat[q3, ch]
                out[r, j0] = s0
                if j0 + 1 < k:
                    out[r, j0 + 1] = s1
                if j0 + 2 < k:
                    out[r, j0 + 2] = s2
                if j0 + 3 < k:
                    out[r, j0 + 3] = s3
        touched[first] = acc

    # ---- the curve walk's path search with running statistics (eval), all steps per row ----
    # Each walk row (one curve) runs all its steps before the next row starts; rows are ordered
    # by cloud, so a cloud's features stay in cache for its curves' whole walks (the walk's
    # candidate gathers are otherwise bound by memory latency). With batch statistics (training)
    # the rows are coupled at every step and the torch walk runs instead.

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _walk_eval_rows(flat, point_score, nbr, start, w_desc, w_mom, m_scale, m_shift, a_scale, a_shift, eps,
                        rows_out, cands_out, factors_out, first, stop):
        c, k, length = flat.shape[1], nbr.shape[1], rows_out.shape[1]
        zero = flat.dtype.type(0)
        desc = np.empty(c, dtype=flat.dtype)
        cur_feat = np.empty(c, dtype=flat.dtype)
        u = np.empty(c, dtype=flat.dtype)
        factor = np.empty(k, dtype=flat.dtype)
        for r in range(first, stop):
            cur = start[r]
            for ch in range(c):
                desc[ch] = flat[cur, ch]
                cur_feat[ch] = flat[cur, ch]
            for step in range(length):
                turn = step > 0
                if turn:
                    # dynamic momentum: softmax of the two normalised logits mixes point and descriptor
                    l0, l1 = zero, zero
                    for ch in range(c):
                        l0 += cur_feat[ch] * w_mom[0, ch] + desc[ch] * w_mom[0, c + ch]
                        l1 += cur_feat[ch] * w_mom[1, ch] + desc[ch] * w_mom[1, c + ch]
                    z0, z1 = l0 * m_scale[0] + m_shift[0], l1 * m_scale[1] + m_shift[1]
                    top = max(z0, z1)
                    e0, e1 = np.exp(z0 - top), np.exp(z1 - top)
                    w0, w1 = e0 / (e0 + e1), e1 / (e0 + e1)
                    for ch in range(c):
                        desc[ch] = w0 * cur_feat[ch] + w1 * desc[ch]
                d = zero
                for ch in range(c):
                    d += desc[ch] * w_desc[ch]
                if turn:
                    # crossover suppression from the second step on
                    u_norm = _curve_direction(cur_feat, desc, u, eps)
                    _turn_factors(flat, nbr, cur, cur_feat, u, u_norm, eps, factor)
                best, top = 0, -np.inf
                for jj in range(k):
                    q = nbr[cur, jj]
                    cands_out[step, r, jj] = q
                    zj = (point_score[q] + d) * a_scale + a_shift
                    if turn:
                        factors_out[step - 1, r, jj] = factor[jj]
                        zj = zj * factor[jj]
                    # the argmax of the scores is the softmax's (monotone), the first one on ties
                    if zj > top:
                        best, top = jj, zj
                cur = cands_out[step, r, best]
                rows_out[r, step] = cur
                for ch in range(c):
                    cur_feat[ch] = flat[cur, ch]

    # ---- BatchNorm over k-NN edges + LeakyReLU + mean/max over neighbours, in edge passes ----
    # An edge (i, j) of cloud ``cl`` carries x = a[cl, j] + b[cl, i] (per channel); its
    # normalised, activated value is leaky(scale * x + shift) with scale = gamma / sigma and
    # shift = beta - scale * mu. Per-cloud partial sums (float64) keep threads race-free.

    @numba.njit(nogil=True, cache=True)
    def _edge_sum_rows(a, b, in_degree, k, partial, first, stop):
        p, c = a.shape[1], a.shape[2]
        for cl in range(first, stop):
            for i in range(p):
                w = in_degree[cl, i]
                for ch in range(c):
                    partial[cl, ch] += w * a[cl, i, ch] + k * b[cl, i, ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_centred_squares(a, b, idx, mean, partial, keep_x, point_x, first, stop):
        # Per cloud the sum of (x - mean)**2 over the edges; per point, with ``keep_x``, its
        # edges' sum of x - mean (``point_x``, for the backward of the mean over neighbours).
        p, k, c = idx.shape[1], idx.shape[2], a.shape[2]
        acc = np.empty(c, dtype=a.dtype)  # one point's k edges, then added in float64
        sx = np.empty(c, dtype=a.dtype)
        for cl in range(first, stop):
            for i in range(p):
                acc[:] = 0
                sx[:] = 0
                for jj in range(k):
                    j = idx[cl, i, jj]
                    for ch in range(c):
                        v = a[cl, j, ch] + b[cl, i, ch] - mean[ch]
                        acc[ch] += v * v
                        sx[ch] += v
                for ch in range(c):
                    partial[cl, ch] += acc[ch]
                if keep_x:
                    for ch in range(c):
                        point_x[cl, i, ch] = sx[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_mean_act_forward(a, b, idx, scale, shift, mean, beta, slope, out, point_s, point_sx, first, stop):
        # The mean over neighbours of leaky(z), z = scale * x + shift = scale * (x - mean) + beta.
        # leaky(z) = s z with s = 1 or slope, so a point's sum is scale * sum(s (x - mean)) +
        # beta * sum(s): those two sums are kept (``point_sx``, ``point_s``), and the backward's
        # per-point sums follow from them without another pass over the edges.
        p, k, c = idx.shape[1], idx.shape[2], a.shape[2]
        one = a.dtype.type(1)
        ss = np.empty(c, dtype=a.dtype)
        sx = np.empty(c, dtype=a.dtype)
        for cl in range(first, stop):
            for i in range(p):
                ss[:] = 0
                sx[:] = 0
                for jj in range(k):
                    j = idx[cl, i, jj]
                    for ch in range(c):
                        x = a[cl, j, ch] + b[cl, i, ch]
                        # the backward's own expression, so the same edges count as active
                        w = one if scale[ch] * x + shift[ch] > 0 else slope
                        ss[ch] += w
                        sx[ch] += w * (x - mean[ch])
                for ch in range(c):
                    out[cl, i, ch] = (scale[ch] * sx[ch] + beta[ch] * ss[ch]) / k
                    point_s[cl, i, ch] = ss[ch]
                    point_sx[cl, i, ch] = sx[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_mean_grad_sums(grad, point_s, point_sx, k, invstd, point_d, partial_d, partial_dx, first, stop):
        # Per point d = dLoss/dz summed over its edges (g s summed: g point_s with g = grad / k)
        # and d (x - mean) summed (g point_sx), from the forward's sums; per cloud their totals.
        p, c = grad.shape[1], grad.shape[2]
        sd = np.empty(c)  # a cloud's sums in float64
        sdx = np.empty(c)
        for cl in range(first, stop):
            sd[:] = 0
            sdx[:] = 0
            for i in range(p):
                for ch in range(c):
                    g = grad[cl, i, ch] / k
                    d = g * point_s[cl, i, ch]
                    point_d[cl, i, ch] = d
                    sd[ch] += d
                    sdx[ch] += g * point_sx[cl, i, ch]
            for ch in range(c):
                partial_d[cl, ch] += sd[ch]
                partial_dx[cl, ch] += sdx[ch] * invstd[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_max_act_forward(a, b, idx, scale, shift, slope, out, arg, first, stop):
        # leaky(max_j z) with z = scale * x + shift, and which neighbour gave each maximum
        p, k, c = idx.shape[1], idx.shape[2], a.shape[2]
        acc = np.empty(c, dtype=a.dtype)
        first_arg = np.empty(c, dtype=np.int32)
        for cl in range(first, stop):
            for i in range(p):
                acc[:] = -np.inf
                first_arg[:] = 0
                for jj in range(k):
                    j = idx[cl, i, jj]
                    for ch in range(c):
                        z = scale[ch] * (a[cl, j, ch] + b[cl, i, ch]) + shift[ch]
                        # selects, not branches (they vectorise); strictly greater, so the
                        # first neighbour reaching the maximum gets the gradient, as torch.max
                        better = z > acc[ch]
                        first_arg[ch] = jj if better else first_arg[ch]
                        acc[ch] = z if better else acc[ch]
                for ch in range(c):
                    z = acc[ch]
                    out[cl, i, ch] = z if z > 0 else slope * z
                    arg[cl, i, ch] = first_arg[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_max_grad_sums(a, b, idx, scale, shift, slope, arg, grad, mean, invstd, partial_d, partial_dx, first, stop):
        # Per cloud: sum over edges of d = dLoss/dz and of d * x-hat (the BatchNorm backward's
        # two reductions); with the max over neighbours only each point's arg-max edge has d != 0.
        p, c = idx.shape[1], a.shape[2]
        for cl in range(first, stop):
            for i in range(p):
                for ch in range(c):
                    j = idx[cl, i, arg[cl, i, ch]]
                    x = a[cl, j, ch] + b[cl, i, ch]
                    d = grad[cl, i, ch]
                    if scale[ch] * x + shift[ch] <= 0:
                        d *= slope
                    partial_d[cl, ch] += d
                    partial_dx[cl, ch] += d * (x - mean[ch]) * invstd[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_max_backward(a, b, idx, scale, shift, slope, arg, grad, mean, invstd, c_d, c_dx, grad_a, grad_b, first, stop):
        # dLoss/dx on every edge: scale * (d - mean(d) - x-hat * mean(d x-hat)) in training, the
        # means being zero in eval mode; scattered to the neighbour j and summed for the point i.
        # Only the arg-max edge carries the activation's gradient d.
        p, k, c = idx.shape[1], idx.shape[2], a.shape[2]
        gb = np.empty(c, dtype=a.dtype)
        dx = np.empty(c, dtype=a.dtype)
        for cl in range(first, stop):
            grad_a[cl] = 0
            for i in range(p):
                gb[:] = 0
                for jj in range(k):
                    j = idx[cl, i, jj]
                    # the edge's gradient into a local row first (vectorises), then scattered
                    for ch in range(c):
                        x = a[cl, j, ch] + b[cl, i, ch]
                        g = grad[cl, i, ch]
                        d = g if scale[ch] * x + shift[ch] > 0 else g * slope
                        if arg[cl, i, ch] != jj:
                            d = g * 0
                        dx[ch] = scale[ch] * (d - c_d[ch] - (x - mean[ch]) * invstd[ch] * c_dx[ch])
                    for ch in range(c):
                        gb[ch] += dx[ch]
                    for ch in range(c):
                        grad_a[cl, j, ch] += dx[ch]
                for ch in range(c):
                    grad_b[cl, i, ch] = gb[ch]

    @numba.njit(nogil=True, cache=True)
    def _edge_mean_backward(a, b, ptr, src, k, scale, shift, slope, grad, mean, invstd, c_d, c_dx, point_d, point_x,
                            grad_a, grad_b, first, stop):
        # The mean-over-neighbours backward gathered, not scattered: each point j sums the
        # gradients of the edges that end in it (its in-edges ``src[ptr[j]:ptr[j + 1]]``, see
        # _reverse_rows). On an edge dLoss/dx = scale * (d - c_d - (x - mean) * invstd * c_dx), so
        # over j's in-edges only the sums of d and of b[i] are needed; b's gradient comes from each
        # point's own sums (_edge_mean_grad_sums). Every row is written once: no scatter, no races.
        p, c = a.shape[1], a.shape[2]
        sd = np.empty(c, dtype=a.dtype)
        sb = np.empty(c, dtype=a.dtype)
        for cl in range(first, stop):
            for j in range(p):
                sd[:] = 0
                sb[:] = 0
                for q in range(ptr[cl, j], ptr[cl, j + 1]):
                    i = src[cl, q]
                    for ch in range(c):
                        bi = b[cl, i, ch]
                        gi = grad[cl, i, ch]
                        # the forward pass's own expression, so the same edges count as active
                        sd[ch] += gi if scale[ch] * (a[cl, j, ch] + bi) + shift[ch] > 0 else gi * slope
                        sb[ch] += bi
                n_in = ptr[cl, j + 1] - ptr[cl, j]
                for ch in range(c):
                    centred = n_in * (a[cl, j, ch] - mean[ch]) + sb[ch]
                    grad_a[cl, j, ch] = scale[ch] * (sd[ch] / k - n_in * c_d[ch] - invstd[ch] * c_dx[ch] * centred)
                    grad_b[cl, j, ch] = scale[ch] * (point_d[cl, j, ch] - k * c_d[ch] - invstd[ch] * c_dx[ch] * point_x[cl, j, ch])

    # ---- an LPFA's per-point edge terms a = P g_j + W x, b = P g_i - W x and their gradients ----
    # P has 2 or 3 columns (coordinates): as torch products these are skinny products that ran
    # at 1-2 G multiply-adds per second; as one pass over the rows they run at memory speed.

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _point_terms_rows(points, fx, has_fx, g_j, g_i, a, b, first, stop):
        # g_j, g_i: (3, channels), with a zero third row for 2-D points
        c = a.shape[1]
        zero = a.dtype.type(0)
        for r in range(first, stop):
            p0, p1 = points[r, 0], points[r, 1]
            p2 = points[r, 2] if points.shape[1] > 2 else zero
            for ch in range(c):
                sj = p0 * g_j[0, ch] + p1 * g_j[1, ch] + p2 * g_j[2, ch]
                si = p0 * g_i[0, ch] + p1 * g_i[1, ch] + p2 * g_i[2, ch]
                if has_fx:
                    f = fx[r, ch]  # ``a`` may be ``fx`` itself: read before written
                    b[r, ch] = si - f
                    a[r, ch] = sj + f
                else:
                    a[r, ch] = sj
                    b[r, ch] = si

    @numba.njit(nogil=True, cache=True, fastmath=_REASSOC)
    def _point_terms_grad_blocks(points, grad_a, grad_b, has_fx, grad_fx, block, partial_j, partial_i, first, stop):
        # per block of rows, P.T grad_a and P.T grad_b (float64); grad_fx = grad_a - grad_b
        n, d, c = points.shape[0], points.shape[1], grad_a.shape[1]
        acc_j = np.empty((d, c))
        acc_i = np.empty((d, c))
        for blk in range(first, stop):
            acc_j[:] = 0
            acc_i[:] = 0
            for r in range(blk * block, min(n, (blk + 1) * block)):
                for e in range(d):
                    pe = points[r, e]
                    for ch in range(c):
                        acc_j[e, ch] += pe * grad_a[r, ch]
                        acc_i[e, ch] += pe * grad_b[r, ch]
                if has_fx:
                    for ch in range(c):
                        grad_fx[r, ch] = grad_a[r, ch] - grad_b[r, ch]
            partial_j[blk] = acc_j
            partial_i[blk] = acc_i

    @numba.njit(nogil=True, cache=True)
    def _lpfa_eval_rows(points, fx, has_fx, g_j, g_i, shift, idx, slope, use_max, out, first, stop):
        # Inference with the BatchNorm folded into the per-point maps: per cloud, first the
        # normalised edge terms a = P g_j + fx and b = P g_i - fx + shift of every point (kept
        # in cache), then each point's edges x = a[j] + b[i], with no scale or shift per edge.
        # For the max, the shared b[i] and the (increasing) LeakyReLU come after the max over a[j].
        p, k, c, d = idx.shape[1], idx.shape[2], out.shape[2], points.shape[2]
        a = np.empty((p, c), dtype=out.dtype)
        b = np.empty((p, c), dtype=out.dtype)
        acc = np.empty(c, dtype=out.dtype)
        inv_k = out.dtype.type(1.0 / k)
        for cl in range(first, stop):
            for i in range(p):
                for ch in range(c):
                    a[i, ch] = fx[cl, i, ch] if has_fx else 0
                    b[i, ch] = shift[ch] - a[i, ch]
                for e in range(d):
                    v = points[cl, i, e]
                    for ch in range(c):
                        a[i, ch] += v * g_j[e, ch]
                        b[i, ch] += v * g_i[e, ch]
            for i in range(p):
                if use_max:
                    acc[:] = -np.inf
                    for jj in range(k):
                        j = idx[cl, i, jj]
                        for ch in range(c):
                            acc[ch] = max(acc[ch], a[j, ch])
                    for ch in range(c):
                        z = acc[ch] + b[i, ch]
                        out[cl, i, ch] = z if z > 0 else slope * z
                else:
                    acc[:] = 0
                    for jj in range(k):
                        j = idx[cl, i, jj]
                        for ch in range(c):
                            z = a[j, ch] + b[i, ch]
                            acc[ch] += z if z > 0 else slope * z
                    for ch in range(c):
                        out[cl, i, ch] = acc[ch] * inv_k

    @numba.njit(nogil=True, cache=True)
    def _reverse_rows(idx, ptr, src, first, stop):
        # Per cloud, the in-edges of every point j as a CSR list: the points i (ascending, with
        # repeats if j occurs twice in i's list) in src[cl, ptr[cl, j]:ptr[cl, j + 1]].
        p, k = idx.shape[1], idx.shape[2]
        fill = np.empty(p, dtype=np.int64)
        for cl in range(first, stop):
            fill[:] = 0
            for i in range(p):
                for jj in range(k):
                    fill[idx[cl, i, jj]] += 1
            ptr[cl, 0] = 0
            for j in range(p):
                ptr[cl, j + 1] = ptr[cl, j] + fill[j]
                fill[j] = ptr[cl, j]
            for i in range(p):
                for jj in range(k):
                    j = idx[cl, i, jj]
                    src[cl, fill[j]] = i
                    fill[j] += 1


_MIN_CLOUDS_PER_THREAD = 32
# A walk step handles one row per curve (clouds x curves rows, k candidates each); split its rows
# over threads only when each thread gets this many. A step is a few milliseconds of work and
# runs right after torch operators, whose OpenMP workers keep spinning on the cores for several
# milliseconds: a second thread then waits for a core instead of helping. In a curvenet training
# step (6,400 rows per step, 40 steps) the straight-through gradients took 237-252 ms split over
# two threads and 157-175 ms on one.
_MIN_ROWS_PER_THREAD = 16384
# A whole walk (all steps) costs about 10x a step per row: split from this many rows per thread.
_MIN_WALK_ROWS_PER_THREAD = 1024


def _as_numpy(t, dtype):
    """``t`` detached, in ``dtype``, contiguous, as a numpy array (for the kernels' arguments)."""
    return t.detach().to(dtype).contiguous().numpy()


def _split_rows(kernel, n, *args, min_per_thread=None):
    """Run ``kernel(*args, first, stop)`` over blocks of ``n`` rows (clouds, walk rows, elements)
    on torch's thread count, each thread getting at least ``min_per_thread`` rows (default: clouds).

    Every row is written by exactly one block, so the blocks never race; the kernels release
    the GIL, so Python threads run them in parallel.
    """
    # Small batches (inference on one clip) run inline: handing a few milliseconds of work to a
    # second thread while torch's OpenMP workers still spin costs more than it saves.
    per_thread = _MIN_CLOUDS_PER_THREAD if min_per_thread is None else min_per_thread
    n_threads = max(1, min(torch.get_num_threads(), n // per_thread))
    map_ranges(lambda first, stop: kernel(*args, first, stop), even_edges(n, n_threads), n_threads)


def knn(points, k):
    """Indices (clouds, points, k + 1): each point itself, then its ``k`` nearest other points.

    Squared Euclidean distances in float64, nearest first, ties broken by the lower index; the
    clouds are split over ``torch.get_num_threads()`` threads.
    """
    pts = points.detach().to(torch.float64).contiguous().numpy()
    n = pts.shape[0]
    out = np.empty((n, pts.shape[1], k + 1), dtype=np.int64)
    _split_rows(_knn_block, n, pts, k, out)
    return torch.from_numpy(out)


def turn_factor(flat, cand, cur, desc, eps=1e-8, points_per_cloud=None):
    """CurveNet's crossover-suppression factor ``clamp(1 + cos(cur - desc, flat[j] - cur), 0, 1)``.

    For each walk row ``r`` (one curve) and candidate ``j = cand[r, jj]``:
    ``cos = u . v / (max(|u|, eps) max(|v|, eps))`` with ``u = cur[r] - desc[r]`` and
    ``v = flat[j] - cur[r]``, the candidate's feature direction against the curve's. ``flat``:
    (points, channels); ``cand``: (rows, k) int64 rows of ``flat``; ``cur``, ``desc``: (rows,
    channels). Returns (rows, k); not differentiable (CurveNet uses it as a constant). CPU float
    tensors only (see :func:`fused_available`).

    ``points_per_cloud``: when ``flat`` holds clouds of this many consecutive rows and every
    row's candidates lie in one cloud, with the rows ordered by cloud, each cloud's rows are
    read in order before its walk rows (faster; see ``_touch_cloud``). ``None``: the whole of
    ``flat`` counts as one cloud.
    """
    flat_, cand_ = flat.detach().contiguous(), cand.contiguous()
    cur_, desc_ = cur.detach().contiguous(), desc.detach().contiguous()
    out = torch.empty(cand_.shape, dtype=flat_.dtype)
    touched = np.zeros(max(1, cand_.shape[0]), dtype=flat_.numpy().dtype)  # see _touch_cloud
    _split_rows(_turn_factor_rows, cand_.shape[0], flat_.numpy(), cand_.numpy(), cur_.numpy(), desc_.numpy(),
                 float(eps), _cloud_rows(flat_, points_per_cloud), out.numpy(), touched,
                 min_per_thread=_MIN_ROWS_PER_THREAD)
    return out


def _cloud_rows(flat, points_per_cloud):
    """The rows per cloud for the kernels' in-order reads (all of ``flat`` when ``None``)."""
    if points_per_cloud is None:
        return max(1, flat.shape[0])
    if points_per_cloud < 1 or flat.shape[0] % points_per_cloud:
        raise ValueError(f"points_per_cloud must divide the {flat.shape[0]} rows of flat, got {points_per_cloud}.")
    return int(points_per_cloud)


def pick_gradient(flat, cand, grad, points_per_cloud=None):
    """``out[r, jj] = grad[r] . flat[cand[r, jj]]``: the gradient of a candidate weight ``r, jj``.

    The walk's straight-through selection weights each candidate's features ``flat[cand[r, jj]]``
    by a probability; this is that probability's gradient, without building the (rows, k,
    channels) candidate tensor. CPU float tensors only (see :func:`fused_available`).
    ``points_per_cloud``: as for :func:`turn_factor`.
    """
    flat_, cand_, grad_ = flat.detach().contiguous(), cand.contiguous(), grad.detach().contiguous().to(flat.dtype)
    out = torch.empty(cand_.shape, dtype=flat_.dtype)
    touched = np.zeros(max(1, cand_.shape[0]), dtype=flat_.numpy().dtype)
    _split_rows(_pick_gradient_rows, cand_.shape[0], flat_.numpy(), cand_.numpy(), grad_.numpy(),
                 _cloud_rows(flat_, points_per_cloud), out.numpy(), touched, min_per_thread=_MIN_ROWS_PER_THREAD)
    return out


def walk_path_eval(flat, point_score, nbr, start, length, w_desc, w_momentum, agent_affine, momentum_affine, eps=1e-8):
    """CurveNet's curve walk with fixed (running-statistics) BatchNorms, without gradients.

    Parameters
    ----------
    flat : (points, channels) float tensor
        Point features (of all clouds, flattened).
    point_score : (points,) tensor
        Each point's own term of the agent score (its features times the agent's first half).
    nbr : (points, k) int64 tensor
        Every point's walk candidates, as rows of ``flat``.
    start : (rows,) int64 tensor
        The first point of every curve (walk row). Keeping the rows of a cloud together (as the
        encoder does) keeps that cloud's features in cache.
    length : int
        Steps per curve.
    w_desc : (channels,) tensor
        The agent weight's descriptor half.
    w_momentum : (2, 2 * channels) tensor
        The dynamic-momentum weight (point half, descriptor half).
    agent_affine, momentum_affine : (scale, shift) pairs of tensors
        The agent (1 channel) and momentum (2 channels) BatchNorms as affine maps.
    eps : float
        Norm floor of the crossover-suppression cosine.

    Returns
    -------
    rows : (rows, length) int64 tensor
        The point picked at every step.
    cands : (length, rows, k) int64 tensor
        Every step's candidates.
    factors : (length - 1, rows, k) tensor
        The crossover-suppression factors of steps 1, 2, ...

    Equal to the step-by-step torch walk of :class:`hadasklearn.nn.curvenet._CurveGrouping` in
    eval mode up to float round-off. The pick is the argmax of the scores, which is the argmax of
    their softmax (the walk's formulation) except between scores so close that their
    exponentials round to the same value.
    CPU float tensors only (see :func:`fused_available`).
    """
    flat_ = flat.detach().contiguous()
    fl = flat_.numpy()
    dt = fl.dtype
    as_np = lambda t: _as_numpy(t, flat_.dtype)
    starts = start.contiguous().numpy()
    n_rows, k = starts.shape[0], nbr.shape[1]
    rows = np.empty((n_rows, length), dtype=np.int64)
    cands = np.empty((length, n_rows, k), dtype=np.int64)
    factors = np.empty((max(length - 1, 1), n_rows, k), dtype=dt)
    (a_scale, a_shift), (m_scale, m_shift) = agent_affine, momentum_affine
    _split_rows(_walk_eval_rows, n_rows, fl, as_np(point_score), nbr.contiguous().numpy(), starts, as_np(w_desc),
                 as_np(w_momentum), as_np(m_scale), as_np(m_shift), dt.type(a_scale.item()), dt.type(a_shift.item()),
                 dt.type(eps), rows, cands, factors, min_per_thread=_MIN_WALK_ROWS_PER_THREAD)
    return torch.from_numpy(rows), torch.from_numpy(cands), torch.from_numpy(factors[: length - 1])


class _EdgeNormAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, weight, bias, idx, in_degree, running_mean, running_var, training, eps, slope, use_max, reverse):
        a_, b_ = a.detach().contiguous(), b.detach().contiguous()
        idx_ = idx.contiguous()
        n, p, c = a_.shape
        k = idx_.shape[2]
        n_edges = n * p * k
        an, bn, ixn = a_.numpy(), b_.numpy(), idx_.numpy()
        dt = an.dtype
        if training:
            partial = np.zeros((n, c))
            _split_rows(_edge_sum_rows, n, an, bn, in_degree.to(a_.dtype).contiguous().numpy(), k, partial)
            mean = partial.sum(0) / n_edges
            partial = np.zeros((n, c))
            # centred second pass: exact variance without E[x^2] - E[x]^2 cancellation (and,
            # for the mean's backward, each point's sum of x - mean)
            point_x = np.empty((1, 1, 1), dtype=dt) if use_max else np.empty_like(an)
            _split_rows(_edge_centred_squares, n, an, bn, ixn, mean.astype(dt), partial, not use_max, point_x)
            var = partial.sum(0) / n_edges
        else:
            mean = running_mean.detach().double().numpy()
            var = running_var.detach().double().numpy()
            point_x = None  # the backward's terms in it vanish without batch statistics
        invstd = 1.0 / np.sqrt(var + eps)
        gamma, beta = weight.detach().double().numpy(), bias.detach().double().numpy()
        scale = (gamma * invstd).astype(dt)
        shift = (beta - gamma * invstd * mean).astype(dt)
        out = np.empty_like(an)
        if use_max:
            arg = np.empty(an.shape, dtype=np.int32)
            _split_rows(_edge_max_act_forward, n, an, bn, ixn, scale, shift, dt.type(slope), out, arg)
            ctx.point_sums = None
        else:
            arg = np.empty((1, 1, 1), dtype=np.int32)
            point_s, point_sx = np.empty_like(an), np.empty_like(an)
            _split_rows(_edge_mean_act_forward, n, an, bn, ixn, scale, shift, mean.astype(dt), beta.astype(dt), dt.type(slope),
                        out, point_s, point_sx)
            ctx.point_sums = (point_s, point_sx, point_x)
        ctx.save_for_backward(a_, b_, idx_, torch.from_numpy(arg))
        ctx.reverse = reverse
        ctx.stats = (mean, invstd, scale, shift)
        ctx.config = (training, slope, use_max, n_edges)
        stats = (torch.from_numpy(mean).to(a_.dtype), torch.from_numpy(var).to(a_.dtype))
        ctx.mark_non_differentiable(*stats)
        return (torch.from_numpy(out), *stats)

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var):
        a, b, idx, arg = ctx.saved_tensors
        mean, invstd, scale, shift = ctx.stats
        training, slope, use_max, n_edges = ctx.config
        n, c = a.shape[0], a.shape[2]
        k = idx.shape[2]
        an, bn, dt = a.numpy(), b.numpy(), scale.dtype
        slope, gn = dt.type(slope), grad.contiguous().to(a.dtype).numpy()
        mean_, invstd_ = mean.astype(dt), invstd.astype(dt)
        partial_d, partial_dx = np.zeros((n, c)), np.zeros((n, c))
        if use_max:
            _split_rows(_edge_max_grad_sums, n, an, bn, idx.numpy(), scale, shift, slope, arg.numpy(), gn, mean_, invstd_,
                        partial_d, partial_dx)
        else:
            # every point's sums over its own edges, from the forward's (no pass over the edges)
            point_s, point_sx, point_x = ctx.point_sums
            point_d = np.empty_like(an)
            _split_rows(_edge_mean_grad_sums, n, gn, point_s, point_sx, dt.type(k), invstd_, point_d, partial_d, partial_dx)
        d_sum, dx_sum = partial_d.sum(0), partial_dx.sum(0)
        if training:  # the batch statistics depend on every edge
            c_d, c_dx = (d_sum / n_edges).astype(dt), (dx_sum / n_edges).astype(dt)
        else:
            c_d = c_dx = np.zeros(c, dtype=dt)
        grad_a, grad_b = np.empty_like(an), np.empty_like(bn)
        if use_max:
            _split_rows(_edge_max_backward, n, an, bn, idx.numpy(), scale, shift, slope, arg.numpy(), gn, mean_, invstd_,
                        c_d, c_dx, grad_a, grad_b)
        else:
            if point_x is None:  # eval mode: multiplied by c_dx = 0
                point_x = np.zeros_like(an)
            ptr, src = ctx.reverse if ctx.reverse is not None else reverse_graph(idx)
            _split_rows(_edge_mean_backward, n, an, bn, ptr.numpy(), src.numpy(), k, scale, shift, slope, gn,
                        mean_, invstd_, c_d, c_dx, point_d, point_x, grad_a, grad_b)
        ctx.point_sums = None
        dtype = a.dtype
        grad_weight = torch.from_numpy(dx_sum).to(dtype)
        grad_bias = torch.from_numpy(d_sum).to(dtype)
        return (torch.from_numpy(grad_a), torch.from_numpy(grad_b), grad_weight, grad_bias) + (None,) * 9


# Rows per block of the point terms' weight gradients (partial sums in float64 per block).
_POINT_BLOCK = 4096


class _PointTerms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, fx, g_j, g_i):
        pts = points.detach().contiguous()
        dtype = pts.dtype
        n, c = pts.shape[0], g_j.shape[1]
        has_fx = fx is not None
        # a is accumulated into fx's buffer where it can be (a fresh product the caller does not keep)
        in_place = has_fx and fx.is_contiguous() and fx.dtype == dtype
        a = fx if in_place else torch.empty(n, c, dtype=dtype)
        b = torch.empty(n, c, dtype=dtype)
        fx_ = _as_numpy(fx, dtype) if has_fx else np.empty((1, 1), dtype=pts.numpy().dtype)
        pad = (0, 0, 0, 3 - pts.shape[1])  # a zero third row for 2-D points
        _split_rows(_point_terms_rows, n, pts.numpy(), fx_, has_fx, _as_numpy(F.pad(g_j.detach(), pad), dtype),
                    _as_numpy(F.pad(g_i.detach(), pad), dtype), a.detach().numpy(), b.numpy(), min_per_thread=_MIN_ROWS_PER_THREAD)
        if in_place:
            ctx.mark_dirty(fx)
        ctx.save_for_backward(pts)
        ctx.has_fx = has_fx
        return a, b

    @staticmethod
    def backward(ctx, grad_a, grad_b):
        (pts,) = ctx.saved_tensors
        n, d, dtype = pts.shape[0], pts.shape[1], pts.dtype
        ga, gb = grad_a.contiguous().to(dtype), grad_b.contiguous().to(dtype)
        c = ga.shape[1]
        n_blocks = max(1, -(-n // _POINT_BLOCK))
        partial_j, partial_i = np.empty((n_blocks, d, c)), np.empty((n_blocks, d, c))
        grad_fx = torch.empty(n, c, dtype=dtype) if ctx.has_fx else None
        gfx = grad_fx.numpy() if ctx.has_fx else np.empty((1, 1), dtype=pts.numpy().dtype)
        _split_rows(_point_terms_grad_blocks, n_blocks, pts.numpy(), ga.numpy(), gb.numpy(), ctx.has_fx, gfx, _POINT_BLOCK,
                    partial_j, partial_i, min_per_thread=1)
        grad_j = torch.from_numpy(partial_j.sum(0)).to(dtype)
        grad_i = torch.from_numpy(partial_i.sum(0)).to(dtype)
        return None, grad_fx, grad_j, grad_i


def point_terms(points, fx, g_j, g_i):
    """An LPFA's per-point edge terms ``a = points @ g_j + fx`` and ``b = points @ g_i - fx``.

    ``points``: (rows, coords) coordinates (not differentiated); ``fx``: (rows, channels) or
    ``None`` (then ``a = points @ g_j``, ``b = points @ g_i``); when contiguous and of
    ``points``' dtype it is overwritten with ``a`` and returned as it (so it must be a tensor
    nothing else needs, e.g. a fresh layer output);
    ``g_j``, ``g_i``: (coords, channels). Differentiable in ``fx``, ``g_j`` and ``g_i``; the
    weight gradients ``points.T @ grad`` are summed in float64 per block of rows. CPU float
    tensors only (see :func:`fused_available`).

    Returns ``(a, b)``, each (rows, channels).
    """
    return _PointTerms.apply(points, fx, g_j, g_i)


def reverse_graph(idx):
    """The in-edges of every point of the k-NN lists ``idx`` (clouds, points, k), per cloud.

    Returns ``(ptr, src)``, int32 tensors of shapes (clouds, points + 1) and (clouds, points * k):
    the points ``i`` whose lists hold ``j`` are ``src[cl, ptr[cl, j]:ptr[cl, j + 1]]``, ascending
    (repeated as often as ``j`` occurs in a list). :func:`edge_norm_act`'s backward gathers
    with it; an encoder that runs several edge layers on one graph builds it once.
    """
    idx_ = idx.contiguous()
    n, p, k = idx_.shape
    ptr = np.empty((n, p + 1), dtype=np.int32)
    src = np.empty((n, p * k), dtype=np.int32)
    _split_rows(_reverse_rows, n, idx_.numpy(), ptr, src)
    return torch.from_numpy(ptr), torch.from_numpy(src)


def edge_norm_act(a, b, idx, in_degree, weight, bias, running_mean, running_var, training, eps, slope, use_max, reverse=None):
    """BatchNorm over the k-NN edges' values ``a[j] + b[i]``, LeakyReLU, then mean or max over ``j``.

    For every point ``i`` of every cloud, with ``x = a[j] + b[i]`` over its neighbours ``j`` in
    ``idx[:, i]``: ``mean_j leaky(gamma (x - mu) / sigma + beta)`` (``use_max=False``) or
    ``leaky(max_j (gamma (x - mu) / sigma + beta))``. With ``training=True`` ``mu`` and
    ``sigma**2`` are the mean and biased variance over all edges (exact, two passes), otherwise
    the running statistics. ``in_degree``: (clouds, points) how often each point is a neighbour
    (read in training only; may be ``None`` otherwise).
    No (clouds, points, k, channels) tensor is built, forward or backward. ``reverse``:
    :func:`reverse_graph` of ``idx`` for the backward of the mean (built there when ``None``).

    Returns ``(out, mean, var)``; ``out`` is differentiable in ``a``, ``b``, ``weight`` and
    ``bias``, ``mean`` and ``var`` (the statistics used) are not. CPU float tensors only (see
    :func:`fused_available`).
    """
    return _EdgeNormAct.apply(a, b, weight, bias, idx, in_degree, running_mean, running_var, bool(training),
                              float(eps), float(slope), bool(use_max), reverse)


def lpfa_eval(points, fx, g_j, g_i, shift, idx, slope, use_max):
    """An LPFA edge layer in inference, BatchNorm folded: ``reduce_j leaky(a[j] + b[i])`` (no autograd).

    With the edge BatchNorm's running statistics folded into the per-point maps, the
    normalised edge value of the edge ``(i, j)`` is ``a[j] + b[i]`` with ``a = P g_j + fx`` and
    ``b = P g_i - fx + shift`` (``P`` the coordinates). Returns, for every point ``i`` of every
    cloud, over its neighbours ``j`` in ``idx[:, i]`` (clouds, points, k):
    ``mean_j leaky(a[j] + b[i])`` (``use_max=False``) or ``leaky(max_j a[j] + b[i])``, which is
    ``max_j leaky(a[j] + b[i])`` since LeakyReLU increases. ``a`` and ``b`` exist only per
    cloud, in the kernel.

    Parameters
    ----------
    points : (clouds, points, coords) tensor
    fx : (clouds, points, channels) tensor or None
        The feature term (``None``: zero, the stem).
    g_j, g_i : (coords, channels) tensors
    shift : (channels,) tensor
    idx : (clouds, points, k) int64 tensor
    slope : float
    use_max : bool

    Returns
    -------
    (clouds, points, channels) tensor, of ``points``' dtype. CPU float tensors only (see
    :func:`fused_available`).
    """
    dtype = points.dtype
    pts = _as_numpy(points, dtype)
    out = torch.empty(*pts.shape[:2], shift.shape[0], dtype=dtype)
    fx_ = _as_numpy(fx, dtype) if fx is not None else np.empty((1, 1, 1), dtype=pts.dtype)
    _split_rows(_lpfa_eval_rows, pts.shape[0], pts, fx_, fx is not None, _as_numpy(g_j, dtype), _as_numpy(g_i, dtype),
                _as_numpy(shift, dtype), idx.contiguous().numpy(), pts.dtype.type(slope), bool(use_max), out.numpy())
    return out
