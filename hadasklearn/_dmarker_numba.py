"""Compiled D-Marker engine: one fused pass per video (numba), same formulas as :mod:`._dmarker`.

The numpy engine of :mod:`hadasklearn._dmarker` streams about a hundred ``(videos, frames)``
temporaries through memory; here every video is read once (only its 11 D-Marker points), aligned,
turned into its 9 amplitude signals, smoothed, split into phases and reduced to its 225 features
in one compiled loop whose working set stays in the CPU cache. The kernels release the GIL, so
blocks of videos run on several threads. Results equal the numpy engine to round-off (the tests
compare both with a loop oracle written from the formulas).
"""

import numpy as np

try:  # numba is a core dependency; the numpy engine remains for platforms without its wheels.
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

__all__ = ["NUMBA_AVAILABLE", "features_block"]

NUMBA_AVAILABLE = numba is not None

_N_FEATURES = 25


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(nogil=True, cache=True, error_model="numpy")(fn)


@_jit
def _median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@_jit
def _median_window(s, t, length, half):
    """Running median of ``s[:length]`` at frame ``t`` over ``2 * half + 1`` frames, ends repeated.

    The same selection network as the numpy engine's ``_smooth``.
    """
    if half == 0:
        return s[t]
    if half == 1:
        return _median3(s[max(t - 1, 0)], s[t], s[min(t + 1, length - 1)])
    a, b = s[max(t - 2, 0)], s[max(t - 1, 0)]
    c, d = s[t], s[min(t + 1, length - 1)]
    # median(a..e) = median(e, max(min(a, b), min(c, d)), min(max(a, b), max(c, d)))
    return _median3(s[min(t + 2, length - 1)], max(min(a, b), min(c, d)), min(max(a, b), max(c, d)))


@_jit
def _gather(X, i, length, flat, G):
    """l1..l11 (landmarks ``flat``) of video ``i`` into ``G[:length]`` (frames, 11, 3) float64.

    2-D coordinates get z = 0. A separate tight pass: its loads are independent, so the CPU keeps
    many cache misses in flight (the points of a frame lie in different cache lines of a ~6 KB
    frame), which the long per-frame arithmetic that follows would otherwise serialise. Returns
    False if a value is not finite.
    """
    # Constant coordinate counts in the loop bodies let the compiler unroll them (~3x faster).
    finite = True
    if X.shape[3] == 3:
        for t in range(length):
            for k in range(11):
                f = flat[k]
                x, y, z = X[i, t, f, 0], X[i, t, f, 1], X[i, t, f, 2]
                G[t, k, 0], G[t, k, 1], G[t, k, 2] = x, y, z
                finite &= np.isfinite(x + y + z)
    else:
        for t in range(length):
            for k in range(11):
                f = flat[k]
                x, y = X[i, t, f, 0], X[i, t, f, 1]
                G[t, k, 0], G[t, k, 1], G[t, k, 2] = x, y, 0.0
                finite &= np.isfinite(x + y)
    return finite


@_jit
def _signals(G, length, planar, A, raw):
    """Raw signals ``raw[:, :length]`` (eyelid, cheek, lip) x (combined, right, left) from ``G``.

    ``planar``: the input was 2-D (z = 0), so the face's vertical is the in-image perpendicular of
    the eye line, as in :func:`hadasklearn.landmarks.face_frame`. Returns False when a signal is
    undefined (degenerate geometry); the caller then takes the validating numpy path, which raises
    the documented error.
    """
    for t in range(length):
        P = G[t]
        # Face frame (hadasklearn.landmarks.face_frame): eye centres, origin, axes, scale.
        c1x, c1y, c1z = (P[0, 0] + P[2, 0]) * 0.5, (P[0, 1] + P[2, 1]) * 0.5, (P[0, 2] + P[2, 2]) * 0.5
        c2x, c2y, c2z = (P[3, 0] + P[5, 0]) * 0.5, (P[3, 1] + P[5, 1]) * 0.5, (P[3, 2] + P[5, 2]) * 0.5
        ox, oy, oz = (c1x + c2x) * 0.5, (c1y + c2y) * 0.5, (c1z + c2z) * 0.5
        ex, ey, ez = c2x - c1x, c2y - c1y, c2z - c1z
        scale = np.sqrt(ex * ex + ey * ey + ez * ez)
        ex, ey, ez = ex / scale, ey / scale, ez / scale
        if planar:
            yx, yy, yz = -ey, ex, 0.0
        else:
            nx, ny, nz = P[8, 0] - ox, P[8, 1] - oy, P[8, 2] - oz
            along = nx * ex + ny * ey + nz * ez
            yx, yy, yz = nx - along * ex, ny - along * ey, nz - along * ez
            v_norm = np.sqrt(yx * yx + yy * yy + yz * yz)
            if v_norm <= 1e-9 * scale:
                # Nose tip on the eye line: the vertical is the in-image perpendicular.
                f_norm = max(np.sqrt(ey * ey + ex * ex), 1e-300)
                yx, yy, yz = -ey / f_norm, ex / f_norm, 0.0
            else:
                yx, yy, yz = yx / v_norm, yy / v_norm, yz / v_norm
        zx, zy, zz = ey * yz - ez * yy, ez * yx - ex * yz, ex * yy - ey * yx
        # Eyelids: tau over the current eye width (l1-l3), negative when the lid is below the centre.
        width = np.sqrt((P[0, 0] - P[2, 0]) ** 2 + (P[0, 1] - P[2, 1]) ** 2 + (P[0, 2] - P[2, 2]) ** 2)
        for side in range(2):
            lid = 1 + 3 * side
            if side == 0:
                dx, dy, dz = P[lid, 0] - c1x, P[lid, 1] - c1y, P[lid, 2] - c1z
            else:
                dx, dy, dz = P[lid, 0] - c2x, P[lid, 1] - c2y, P[lid, 2] - c2z
            tau = np.sqrt(dx * dx + dy * dy + dz * dz)
            if yx * dx + yy * dy + yz * dz > 0:
                tau = -tau
            raw[1 + side, t] = tau / width
        raw[0, t] = (raw[1, t] + raw[2, t]) * 0.5
        # Cheeks l7, l8 and lip corners l10, l11 in the face frame.
        for m in range(4):
            k = m + 6 if m < 2 else m + 7
            dx, dy, dz = (P[k, 0] - ox) / scale, (P[k, 1] - oy) / scale, (P[k, 2] - oz) / scale
            A[t, m, 0] = ex * dx + ey * dy + ez * dz
            A[t, m, 1] = yx * dx + yy * dy + yz * dz
            A[t, m, 2] = zx * dx + zy * dy + zz * dz
    # Distances to the first-frame midpoint of each pair, over the pair's first-frame distance.
    finite = True
    for pair in range(2):
        r, l = 2 * pair, 2 * pair + 1
        mx = (A[0, r, 0] + A[0, l, 0]) * 0.5
        my = (A[0, r, 1] + A[0, l, 1]) * 0.5
        mz = (A[0, r, 2] + A[0, l, 2]) * 0.5
        base = np.sqrt((A[0, r, 0] - A[0, l, 0]) ** 2 + (A[0, r, 1] - A[0, l, 1]) ** 2
                       + (A[0, r, 2] - A[0, l, 2]) ** 2)
        row = 3 + 3 * pair
        for t in range(length):
            for side in range(2):
                m = r + side
                dist = np.sqrt((A[t, m, 0] - mx) ** 2 + (A[t, m, 1] - my) ** 2 + (A[t, m, 2] - mz) ** 2)
                raw[row + 1 + side, t] = dist / base
            raw[row, t] = (raw[row + 1, t] + raw[row + 2, t]) * 0.5
    for t in range(length):
        finite &= np.isfinite(raw[0, t] + raw[3, t] + raw[6, t])
    return finite


@_jit
def _phases(lip, length, tol, bounds):
    """``bounds`` = [onset start, apex start, offset start, offset stop] (see ``smile_phases``)."""
    best, best_end, run = 0, 0, 0
    for t in range(1, length):
        if lip[t] - lip[t - 1] > tol:
            run += 1
            if run > best:
                best, best_end = run, t
        else:
            run = 0
    onset_stop = best_end + 1 if best > 0 else 0
    bounds[0] = best_end - best + 1 if best > 0 else 0
    bounds[1] = onset_stop
    best, best_end, run = 0, 0, 0
    for t in range(max(onset_stop, 1), length):
        if lip[t] - lip[t - 1] < -tol:
            run += 1
            if run > best:
                best, best_end = run, t
        else:
            run = 0
    bounds[2] = best_end - best + 1 if best > 0 else length
    bounds[3] = best_end + 1 if best > 0 else length


@_jit
def _safe_div(num, den):
    return num / den if den != 0 else 0.0


@_jit
def _phase_features(sm, region, start, stop, omega, tol, out, offset):
    """The 25 features of one region (rows 3r..3r+2 of ``sm``) over frames ``[start, stop)``."""
    if stop <= start:
        for f in range(_N_FEATURES):
            out[offset + f] = 0.0
        return
    D = sm[3 * region]
    right = sm[3 * region + 1]
    left = sm[3 * region + 2]
    d0 = D[0]
    n_inc = n_dec = 0.0
    s_dc = s_dc2 = s_l = s_r = 0.0
    s_dinc = s_ainc = s_ddec = s_vinc = s_vdec = s_adec = 0.0
    max_d = max_vinc = max_vdec = max_adec = max_ainc = -np.inf
    for t in range(start, stop):
        d = D[t]
        delta = d - D[t - 1] if t > 0 else 0.0
        # V(t) = omega (D(t) - D(t-1)), V(0) = 0; A(t) = omega (V(t) - V(t-1)), A(0) = 0.
        v = delta * omega
        if t > 0:
            v_prev = (D[t - 1] - D[t - 2]) * omega if t > 1 else 0.0
            a = (v - v_prev) * omega
        else:
            a = 0.0
        inc = delta > tol
        dec = delta < -tol
        dc = d - d0
        s_dc += dc
        s_dc2 += dc * dc
        s_l += left[t]
        s_r += right[t]
        max_d = max(max_d, d)
        if inc:
            n_inc += 1.0
            s_dinc += d
            s_ainc += a
            s_vinc += v
            max_vinc = max(max_vinc, v)
            max_ainc = max(max_ainc, a)
        else:
            max_vinc = max(max_vinc, 0.0)
        if dec:
            n_dec += 1.0
            s_ddec += abs(d)
            s_vdec += abs(v)
            s_adec += abs(a)
            max_vdec = max(max_vdec, abs(v))
            max_adec = max(max_adec, abs(a))
        else:
            max_vdec = max(max_vdec, 0.0)
            max_adec = max(max_adec, 0.0)
    if max_ainc == -np.inf:  # no increasing frame: no A+
        max_ainc = 0.0
    eta = float(stop - start)
    mean_dc = s_dc / eta
    var = max(s_dc2 / eta - mean_dc * mean_dc, 0.0)
    net = s_dinc - s_ddec
    o = offset
    out[o + 0] = n_inc / omega
    out[o + 1] = n_dec / omega
    out[o + 2] = eta / omega
    out[o + 3] = n_inc / eta
    out[o + 4] = n_dec / eta
    out[o + 5] = max_d
    out[o + 6] = (s_dc + eta * d0) / eta
    out[o + 7] = _safe_div(s_dinc, n_inc)
    out[o + 8] = _safe_div(s_ddec, n_dec)
    out[o + 9] = np.sqrt(var)
    out[o + 10] = s_dinc
    out[o + 11] = s_ddec
    out[o + 12] = net
    out[o + 13] = _safe_div(s_dinc, s_dinc + s_ddec)
    out[o + 14] = _safe_div(s_ddec, s_dinc + s_ddec)
    out[o + 15] = max_vinc
    out[o + 16] = max_vdec
    out[o + 17] = _safe_div(s_vinc, n_inc)
    out[o + 18] = _safe_div(s_vdec, n_dec)
    out[o + 19] = max_ainc
    out[o + 20] = max_adec
    out[o + 21] = _safe_div(s_ainc, n_inc)
    out[o + 22] = _safe_div(s_adec, n_dec)
    out[o + 23] = net * omega / eta
    out[o + 24] = abs(s_l - s_r) / eta


@_jit
def _block(X, lengths, flat, omega, half, tol, out, first, stop):
    """Features of videos ``first..stop-1`` into ``out[first:stop]``; the first failing video or -1."""
    t_max = 0
    for i in range(first, stop):
        t_max = max(t_max, lengths[i])
    G = np.empty((t_max, 11, 3))
    A = np.empty((t_max, 4, 3))
    planar = X.shape[3] == 2
    raw = np.empty((9, t_max))
    sm = np.empty((9, t_max))
    bounds = np.empty(4, dtype=np.int64)
    for i in range(first, stop):
        length = lengths[i]
        if not _gather(X, i, length, flat, G) or not _signals(G, length, planar, A, raw):
            return i
        for s in range(9):
            for t in range(length):
                sm[s, t] = _median_window(raw[s], t, length, half)
        _phases(sm[6], length, tol, bounds)
        for region in range(3):
            for phase in range(3):
                _phase_features(sm, region, bounds[phase], bounds[phase + 1], omega[i], tol, out[i],
                                (3 * region + phase) * _N_FEATURES)
    return -1


def features_block(X, lengths, flat, omega, half, tol, out, first, stop):
    """Run the compiled kernel on videos ``[first, stop)`` of ``X`` (n, T, L, C).

    ``flat`` (11,) gives the landmark index of each of l1..l11 (schemes that average several
    landmarks into one point are averaged by the caller first).
    Returns the index of the first video whose D-Marker points are not finite or whose geometry is
    degenerate, or -1 when all were computed.
    """
    return int(_block(X, lengths, flat, omega, half, tol, out, first, stop))
