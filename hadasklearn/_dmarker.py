"""Duchenne-marker (D-Marker) dynamics of Dibeklioglu et al.: amplitude signals, smile phases, the
225 features, and :class:`DMarkerTransformer` — vectorised numpy, with a compiled engine
(:mod:`._dmarker_numba`) for the features."""

import os
from dataclasses import dataclass
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from . import _dmarker_numba
from ._threads import map_ranges
from ._validation import LandmarkData, check_landmarks
from .exceptions import LandmarkValidationError
from .landmarks import LandmarkScheme, _dot, _eye_centres, _face_axes, _norm, get_scheme

__all__ = [
    "DMARKER_FEATURES",
    "DMARKER_PHASES",
    "DMARKER_REGIONS",
    "AmplitudeSignals",
    "DMarkerTransformer",
    "amplitude_signals",
    "dmarker_feature_names",
    "dmarker_features",
    "smile_phases",
]

DMARKER_REGIONS = ("eyelid", "cheek", "lip")
DMARKER_PHASES = ("onset", "apex", "offset")
DMARKER_FEATURES = (
    "duration_inc",
    "duration_dec",
    "duration",
    "duration_ratio_inc",
    "duration_ratio_dec",
    "max_amplitude",
    "mean_amplitude",
    "mean_amplitude_inc",
    "mean_amplitude_dec",
    "std_amplitude",
    "total_amplitude_inc",
    "total_amplitude_dec",
    "net_amplitude",
    "amplitude_ratio_inc",
    "amplitude_ratio_dec",
    "max_speed_inc",
    "max_speed_dec",
    "mean_speed_inc",
    "mean_speed_dec",
    "max_acceleration_inc",
    "max_acceleration_dec",
    "mean_acceleration_inc",
    "mean_acceleration_dec",
    "net_amplitude_duration_ratio",
    "left_right_amplitude_difference",
)
N_DMARKERS = len(DMARKER_REGIONS) * len(DMARKER_PHASES) * len(DMARKER_FEATURES)

#: Frame-to-frame changes of an amplitude signal smaller than this count as "steady" (neither in
#: D+ nor in D-). Amplitudes are dimensionless ratios of order 0.1-1, so float64 round-off of the
#: alignment (~1e-15) stays far below it and real motion far above it.
STEADY_TOL = 1e-9

#: Frames per block of videos in :func:`dmarker_features` (see ``_features_unchecked``).
_BLOCK_FRAMES = 8192
_N_THREADS = min(2, os.cpu_count() or 1)

_SMOOTHERS = ("median3", "median5")
_SMOOTHER_HALF_WIDTH = {None: 0, "median3": 1, "median5": 2}
_VARIANTS = ("paper", "reference")
_ENGINES = ("auto", "numba", "numpy")
#: Frames per thread task of the compiled engine: big enough to amortise the task, small enough
#: that two threads stay balanced.
_NUMBA_TASK_FRAMES = 4096
_DEFAULT_SMOOTHING = "median5"


def dmarker_feature_names():
    """The 225 D-Marker column names ``"{region}_{phase}_{feature}"``, in output order.

    Examples
    --------
    >>> names = dmarker_feature_names()
    >>> names.shape, str(names[0]), str(names[-1])
    ((225,), 'eyelid_onset_duration_inc', 'lip_offset_left_right_amplitude_difference')
    """
    return np.array(
        [f"{r}_{p}_{f}" for r in DMARKER_REGIONS for p in DMARKER_PHASES for f in DMARKER_FEATURES],
        dtype=object,
    ).astype(str)


# --------------------------------------------------------------------------- amplitude signals


@dataclass
class AmplitudeSignals:
    """Per-frame D-Marker amplitude signals of several videos, padded to the longest video.

    Every signal has shape ``(n_videos, max_frames)``; frames at or past ``lengths[i]`` repeat the
    last value of video ``i``. ``*_right``/``*_left`` are the one-sided signals (the subject's
    right/left) on the same scale as the combined signal, which is their mean before smoothing
    (each signal is smoothed on its own, so after a running median the equality is approximate).

    Attributes
    ----------
    lip, lip_right, lip_left, eyelid, eyelid_right, eyelid_left, cheek, cheek_right, cheek_left : ndarray
    lengths : ndarray of shape (n_videos,)
    """

    lip: np.ndarray
    lip_right: np.ndarray
    lip_left: np.ndarray
    eyelid: np.ndarray
    eyelid_right: np.ndarray
    eyelid_left: np.ndarray
    cheek: np.ndarray
    cheek_right: np.ndarray
    cheek_left: np.ndarray
    lengths: np.ndarray


def _aligned(p, origin, axes, scale):
    """``rotation @ (p - origin) / scale`` for points ``p`` of shape (C, n, T) or (k, C, n, T)."""
    d = p - origin
    d /= scale
    out = np.empty_like(d)
    for k, axis in enumerate(axes):
        out[..., k, :, :] = _dot(axis, d)
    return out


def _raw_signals(P, variant):
    """(9, n, T) signals, region (eyelid, cheek, lip) x [combined, right, left], from the planes
    ``P`` (11, C, n, T) of l1..l11; non-finite where the input or the geometry is degenerate."""
    if variant == "reference":
        P = P[:, :2]
    n, t_max = P.shape[2:]
    out = np.empty((9, n, t_max))
    by_region = out.reshape(3, 3, n, t_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = _eye_centres(P)
        if variant == "paper":
            origin, axes, scale = _face_axes(P, centres)
            vertical = axes[1]
            # Within-frame ratios need no alignment (rotation and scale cancel), only the vertical.
            width = _norm(P[0] - P[2])
            points = _aligned(P[[6, 7, 9, 10]], origin, axes, scale)
        else:
            vertical = np.array([0.0, 1.0])[:, None, None]
            width = _norm(P[0, :, :, :1] - P[2, :, :, :1])
            points = P[[6, 7, 9, 10]]
        # Eyelid: tau = kappa * rho(eye centre, upper-lid centre), kappa = -1 when the lid lies
        # below the eye centre (positive along the face's downward axis).
        offset = P[[1, 4]] - centres
        tau = _norm(offset)
        np.negative(tau, out=tau, where=_dot(vertical, offset) > 0)
        np.divide(tau, width, out=by_region[0, 1:])
        # Cheeks (l7, l8) and lip corners (l10, l11): distances to the first-frame midpoint of the
        # pair (reference: cheeks to the current eye centres), over the pair's first-frame distance.
        points = points.reshape(2, 2, *points.shape[1:])  # (cheek, lip) x (right, left)
        first = points[..., :1]
        midpoint = first[:, 0] + first[:, 1]
        midpoint *= 0.5
        distance = points - midpoint[:, None]
        if variant == "reference":
            np.subtract(points[0], centres, out=distance[0])
        np.divide(_norm(distance), _norm(first[:, 0] - first[:, 1])[:, None], out=by_region[1:, 1:])
    np.add(by_region[:, 1], by_region[:, 2], out=by_region[:, 0])
    by_region[:, 0] *= 0.5
    return out


def _raise_degenerate(P, signals):
    bad = ~np.isfinite(signals).all(axis=0)
    i, t = (int(v) for v in np.argwhere(bad)[0])
    frame, first = P[:, :, i, t], P[:, :, i, 0]  # (11, C)
    checks = [
        ("the eye centres coincide (zero inter-ocular distance, needed for head-pose alignment)",
         np.array_equal(frame[0] + frame[2], frame[3] + frame[5])),
        ("the right-eye corners l1 and l3 coincide (zero eye width)", np.array_equal(frame[0], frame[2])),
        ("the lip corners l10 and l11 coincide in the first frame", np.array_equal(first[9], first[10])),
        ("the cheek points l7 and l8 coincide in the first frame", np.array_equal(first[6], first[7])),
    ]
    reasons = [text for text, hit in checks if hit] or ["a normalising distance is zero"]
    raise LandmarkValidationError(
        f"Video {i}, frame {t}: D-Marker amplitudes are undefined because {'; '.join(reasons)}. "
        "Check that the landmark scheme matches the tracker and that the face was tracked."
    )


def _median3(a, b, c):
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _smooth(signals, smoothing):
    """Running median over time (last axis) with the end values repeated at both ends."""
    if smoothing is None:
        return signals
    half = {"median3": 1, "median5": 2}[smoothing]
    t_max = signals.shape[-1]
    padded = np.empty(signals.shape[:-1] + (t_max + 2 * half,))
    padded[..., :half] = signals[..., :1]
    padded[..., half : half + t_max] = signals
    padded[..., half + t_max :] = signals[..., -1:]
    # Minimum and maximum of every pair of neighbours, shared by the overlapping windows.
    pair_min = np.minimum(padded[..., :-1], padded[..., 1:])
    pair_max = np.maximum(padded[..., :-1], padded[..., 1:])
    if half == 1:
        # median(a, b, c) = max(min(a, b), min(max(a, b), c))
        return np.maximum(pair_min[..., :t_max], np.minimum(pair_max[..., :t_max], padded[..., 2:]))
    # median(a..e) = median(e, max(min(a, b), min(c, d)), min(max(a, b), max(c, d)))
    lo = np.maximum(pair_min[..., :t_max], pair_min[..., 2 : 2 + t_max])
    hi = np.minimum(pair_max[..., :t_max], pair_max[..., 2 : 2 + t_max])
    return _median3(padded[..., 4:], lo, hi)


def _check_options(smoothing, missing, variant, engine="auto"):
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}; got {engine!r}.")
    if engine == "numba" and not _dmarker_numba.NUMBA_AVAILABLE:
        raise ImportError(
            "engine='numba' needs the numba package, which is not importable here; install it "
            "(pip install numba) or pass engine='numpy' (or 'auto')."
        )
    if smoothing is not None and smoothing not in _SMOOTHERS:
        raise ValueError(f"smoothing must be one of {_SMOOTHERS} or None; got {smoothing!r}.")
    if missing not in ("interpolate", "raise"):
        raise ValueError(f"missing must be 'interpolate' or 'raise'; got {missing!r}.")
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}; got {variant!r}.")


def _as_data(X, scheme, missing):
    if isinstance(X, LandmarkData):
        if scheme is not None:
            s = get_scheme(scheme)
            if X.n_landmarks < s.min_landmarks or (s.n_landmarks is not None and X.n_landmarks != s.n_landmarks):
                raise LandmarkValidationError(
                    f"Landmark scheme {s.name!r} expects {s.n_landmarks} landmarks per frame; the "
                    f"LandmarkData has {X.n_landmarks}."
                )
        short = np.flatnonzero(X.lengths < 3)
        if short.size:
            raise LandmarkValidationError(
                f"Video {short[0]} has {X.lengths[short[0]]} frame(s); at least 3 are needed."
            )
        return X
    return check_landmarks(X, scheme=scheme, min_frames=3, missing=missing)


def _planes(data, scheme, missing, checked, videos=None):
    """l1..l11 of every video as planes (11, C, n, T) float64 (see ``LandmarkData.gather_planes``)."""
    scheme = get_scheme(scheme)
    flat = [i for p in scheme.points for i in p]
    if checked:
        P = np.ascontiguousarray(np.moveaxis(data.gather(flat, missing=missing), (2, 3), (0, 1)))
    else:
        P = data.gather_planes(flat, videos=videos)
    if len(flat) == 11:
        return P
    starts = np.cumsum([0] + [len(p) for p in scheme.points[:-1]])
    sizes = np.array([len(p) for p in scheme.points], dtype=np.float64)
    return np.add.reduceat(P, starts, axis=0) / sizes[:, None, None, None]


def _signals_from_data(data, scheme, smoothing, missing, variant):
    # Fast path: read the planes unchecked; any NaN/inf in the points used propagates to the
    # signals, so a finite result proves the input finite. Otherwise redo it through the
    # validating gather, which raises the documented errors or interpolates missing frames.
    signals = None
    if variant == "paper":
        P = _planes(data, scheme, missing, checked=False)
        signals = _raw_signals(P, variant)
        if not _usable(P, signals):
            signals = None
    if signals is None:
        signals = _checked_signals(data, scheme, missing, variant)
    return _smooth(signals, smoothing)


def _usable(P, signals):
    """Whether unchecked planes gave finite signals from finite input."""
    # In 2-D the nose tip (l9) does not enter the signals but must still be valid input.
    return bool(np.isfinite(signals).all() and (P.shape[1] == 3 or np.isfinite(P[8]).all()))


def _checked_signals(data, scheme, missing, variant):
    """Raw signals through the validating gather: raises on bad input, interpolates missing frames."""
    P = _planes(data, scheme, missing, checked=True)
    signals = _raw_signals(P, variant)
    if not np.isfinite(signals).all():
        _raise_degenerate(P[:, :2] if variant == "reference" else P, signals)
    return signals


def amplitude_signals(X, *, scheme="mediapipe478", smoothing=_DEFAULT_SMOOTHING, missing="interpolate",
                      variant="paper"):
    """Per-frame D-Marker amplitude signals (lip, eyelid, cheek and their one-sided parts).

    Parameters
    ----------
    X : array-like, sequence of array-like, mapping or LandmarkData
        Landmark videos in any form accepted by :func:`~hadasklearn._validation.check_landmarks`.
    scheme : str or LandmarkScheme, default="mediapipe478"
    smoothing : {"median5", "median3"} or None, default="median5"
        See :func:`dmarker_features`.
    missing : {"interpolate", "raise"}, default="interpolate"
    variant : {"paper", "reference"}, default="paper"

    Returns
    -------
    AmplitudeSignals
        Padded ``(n_videos, max_frames)`` arrays and the video lengths.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2, 6, 478, 3))
    >>> sig = amplitude_signals(X, smoothing=None)
    >>> sig.lip.shape, bool(np.allclose(sig.lip, 0.5 * (sig.lip_left + sig.lip_right)))
    ((2, 6), True)
    """
    _check_options(smoothing, missing, variant)
    data = _as_data(X, scheme, missing)
    s = _signals_from_data(data, scheme, smoothing, missing, variant)
    # Output order of _raw_signals is eyelid, cheek, lip (DMARKER_REGIONS).
    return AmplitudeSignals(
        lip=s[6], lip_right=s[7], lip_left=s[8],
        eyelid=s[0], eyelid_right=s[1], eyelid_left=s[2],
        cheek=s[3], cheek_right=s[4], cheek_left=s[5],
        lengths=data.lengths.copy(),
    )


# --------------------------------------------------------------------------- phases


def _longest_run(mask):
    """Per row: (end index, length) of the first longest run of True (length 0 if none)."""
    t = np.arange(mask.shape[-1])
    last_break = np.maximum.accumulate(np.where(mask, 0, t), axis=-1)
    run = t - last_break
    end = np.argmax(run, axis=-1)
    return end, np.take_along_axis(run, end[..., None], axis=-1)[..., 0]


def _phases_from_delta(delta, lengths):
    """Boundaries (n, 4) from frame-to-frame changes ``delta`` (n, T); delta[:, 0] must be 0."""
    n, t_max = delta.shape
    t = np.arange(t_max)
    inside = t[None, :] < lengths[:, None]
    end, length = _longest_run((delta > STEADY_TOL) & inside)
    onset_start = np.where(length > 0, end - length + 1, 0)
    onset_stop = np.where(length > 0, end + 1, 0)
    after = (delta < -STEADY_TOL) & inside & (t[None, :] >= onset_stop[:, None])
    end, length = _longest_run(after)
    offset_start = np.where(length > 0, end - length + 1, lengths)
    offset_stop = np.where(length > 0, end + 1, lengths)
    return np.stack([onset_start, onset_stop, offset_start, offset_stop], axis=1).astype(np.intp)


def smile_phases(d_lip, lengths=None):
    """Onset / apex / offset of every video from its lip-corner amplitude ``D_lip``.

    The phases are found on the whole video. Frame ``t`` *increases* when
    ``D(t) - D(t-1) > STEADY_TOL`` and *decreases* when it is ``< -STEADY_TOL`` (frame 0 does
    neither). The onset is the longest run of consecutive increasing frames (the earliest on ties);
    the offset is the longest run of decreasing frames that starts after the onset ends; the apex
    is every frame between them. Frames before the onset and after the offset belong to no phase.

    Edge cases: with no increasing frame the onset is empty and placed at frame 0, so the apex starts
    at the first frame; with no decrease after the onset (including a video whose only decrease
    comes *before* its onset) the offset is empty and placed at the end, so the apex runs to the last
    frame; a constant signal therefore is one long apex. A 3-frame video follows the same rules.

    Parameters
    ----------
    d_lip : array-like of shape (n_videos, max_frames) or (n_frames,)
        Lip amplitude signals, e.g. :attr:`AmplitudeSignals.lip`; padded frames are ignored.
    lengths : array-like of shape (n_videos,), optional
        Frames per video; by default every row is full length.

    Returns
    -------
    boundaries : ndarray of shape (n_videos, 4), int
        ``[onset_start, apex_start, offset_start, offset_stop]``: onset is the half-open frame range
        ``[b0, b1)``, apex ``[b1, b2)``, offset ``[b2, b3)``. A 1-D input gives shape ``(4,)``.

    Examples
    --------
    >>> d = np.r_[np.zeros(3), np.linspace(0, 1, 6)[1:], np.ones(4), np.linspace(1, 0, 4)[1:]]
    >>> smile_phases(d).tolist()   # rise on frames 3-7, hold 8-11, fall 12-14
    [3, 8, 12, 15]
    """
    d = np.asarray(d_lip, dtype=np.float64)
    single = d.ndim == 1
    d = np.atleast_2d(d)
    if d.ndim != 2:
        raise ValueError(f"d_lip must be 1-D or 2-D (n_videos, max_frames); got shape {np.shape(d_lip)}.")
    lengths = np.full(d.shape[0], d.shape[1]) if lengths is None else np.asarray(lengths, dtype=np.intp)
    if lengths.shape != (d.shape[0],) or (lengths < 1).any() or (lengths > d.shape[1]).any():
        raise ValueError(
            f"lengths must hold one length in [1, {d.shape[1]}] per row of d_lip ({d.shape[0]}); got "
            f"{lengths.tolist() if lengths.size <= 10 else lengths.shape}."
        )
    delta = np.zeros_like(d)
    np.subtract(d[:, 1:], d[:, :-1], out=delta[:, 1:])
    bounds = _phases_from_delta(delta, lengths)
    return bounds[0] if single else bounds


# --------------------------------------------------------------------------- features

# Rows of the per-frame stack reduced over every phase, per region. Rows [0, _N_SUMMED) are summed
# and rows [_FIRST_MAXED, end) maximised; the three shared rows are computed once for both.
(_INC, _DEC, _DC, _DC2, _L, _R, _DINC, _AINC, _DDEC,  # summed only
 _VINC, _VDEC, _ADEC,  # summed and maximised
 _D, _AINC_MAX) = range(14)  # maximised only
_N_SUMMED, _FIRST_MAXED = 12, _VINC


def _safe_div(num, den):
    out = np.zeros(np.broadcast_shapes(np.shape(num), np.shape(den)))
    np.divide(num, den, out=out, where=np.broadcast_to(den != 0, out.shape))
    return out


def _features(signals, lengths, omega, with_lr=True):
    """(n, 225) features from smoothed signals (9, n, T) and frame rates omega (n,)."""
    _, n, t_max = signals.shape
    combined = signals[0::3]  # (3 regions, n, T)
    delta = np.zeros_like(combined)
    np.subtract(combined[..., 1:], combined[..., :-1], out=delta[..., 1:])
    bounds = _phases_from_delta(delta[2], lengths)
    inc = delta > STEADY_TOL
    dec = delta < -STEADY_TOL

    width = t_max + 1  # one spare column so a segment may end at t_max
    rows = np.zeros((14, 3, n, width))
    q = rows[..., :t_max]
    # V(t) = omega * (D(t) - D(t-1)) with V(0) = 0: the first (neutral) frame is taken to be at rest.
    speed = np.multiply(delta, omega[:, None], out=delta)
    accel = np.zeros_like(speed)
    np.subtract(speed[..., 1:], speed[..., :-1], out=accel[..., 1:])
    accel *= omega[:, None]
    q[_INC] = inc
    q[_DEC] = dec
    np.subtract(combined, combined[..., :1], out=q[_DC])
    np.square(q[_DC], out=q[_DC2])
    if with_lr:
        q[_L] = signals[2::3]
        q[_R] = signals[1::3]
    np.multiply(combined, inc, out=q[_DINC])
    np.multiply(accel, inc, out=q[_AINC])
    np.multiply(np.abs(combined), dec, out=q[_DDEC])
    np.multiply(speed, inc, out=q[_VINC])
    np.multiply(np.abs(speed, out=speed), dec, out=q[_VDEC])
    np.multiply(np.abs(accel), dec, out=q[_ADEC])
    q[_D] = combined
    np.copyto(q[_AINC_MAX], np.where(inc, accel, -np.inf))

    # Phase boundaries of every video in the flattened (n * width) time axis: reduceat then yields
    # [onset, apex, offset, (to the next video's onset)] per video in one pass over the frames.
    idx = ((np.arange(n) * width)[:, None] + bounds).ravel()
    flat = rows.reshape(14, 3, n * width)
    seg_sum = _by_phase(np.add.reduceat(flat[:_N_SUMMED], idx, axis=-1))
    seg_max = _by_phase(np.maximum.reduceat(flat[_FIRST_MAXED:], idx, axis=-1))

    eta = np.diff(bounds, axis=1).T[:, None, :].astype(np.float64)  # (3 phases, 1, n)
    empty = np.broadcast_to(eta == 0, seg_sum.shape[1:])
    seg_sum[:, empty] = 0.0  # reduceat returns the frame at the boundary for an empty phase
    seg_max[:, empty] = 0.0
    a_max = seg_max[_AINC_MAX - _FIRST_MAXED]
    a_max[np.isneginf(a_max)] = 0.0  # a phase without increasing frames has no A+

    n_inc, n_dec = seg_sum[_INC], seg_sum[_DEC]
    tot_inc, tot_dec = seg_sum[_DINC], seg_sum[_DDEC]
    mean_dc = _safe_div(seg_sum[_DC], eta)
    var = np.maximum(_safe_div(seg_sum[_DC2], eta) - mean_dc * mean_dc, 0.0)

    # Feature-major (feature, phase, region, video) so every operation runs over contiguous
    # (3, 3, n) blocks; the output is transposed once at the end.
    feats = np.empty((len(DMARKER_FEATURES), 3, 3, n))
    np.divide(n_inc, omega, out=feats[0])
    np.divide(n_dec, omega, out=feats[1])
    np.divide(eta, omega, out=feats[2])
    feats[3:5] = _safe_div(seg_sum[_INC : _DEC + 1], eta)
    feats[5] = seg_max[_D - _FIRST_MAXED]
    feats[6] = _safe_div(seg_sum[_DC] + eta * combined[None, :, :, 0], eta)
    feats[[7, 17, 21]] = _safe_div(seg_sum[[_DINC, _VINC, _AINC]], n_inc)
    feats[[8, 18, 22]] = _safe_div(seg_sum[[_DDEC, _VDEC, _ADEC]], n_dec)
    np.sqrt(var, out=feats[9])
    feats[10] = tot_inc
    feats[11] = tot_dec
    np.subtract(tot_inc, tot_dec, out=feats[12])
    feats[13:15] = _safe_div(seg_sum[[_DINC, _DDEC]], tot_inc + tot_dec)
    feats[[15, 16, 19, 20]] = seg_max[[_VINC - _FIRST_MAXED, _VDEC - _FIRST_MAXED,
                                       _AINC_MAX - _FIRST_MAXED, _ADEC - _FIRST_MAXED]]
    feats[23] = _safe_div(feats[12] * omega, eta)
    feats[24] = _safe_div(np.abs(seg_sum[_L] - seg_sum[_R]), eta) if with_lr else 0.0
    return np.ascontiguousarray(feats.transpose(3, 2, 1, 0)).reshape(n, N_DMARKERS)


def _by_phase(segments):
    """(rows, 3, n * 4) reduceat output -> contiguous (rows, 3 phases, 3 regions, n)."""
    rows, regions, size = segments.shape
    by_video = segments.reshape(rows, regions, size // 4, 4)[..., :3]
    return np.ascontiguousarray(by_video.transpose(0, 3, 1, 2))


def _resolve_fps(fps, data, variant):
    n = len(data)
    if variant == "reference":
        return np.ones(n)
    if data.fps is not None:
        return np.asarray(data.fps, dtype=np.float64)
    if fps is None:
        raise ValueError(
            "fps=None means 'use the per-video frame rates in X[\"fps\"]', but X carries none. Pass "
            "fps=<frames per second> (a number, or an array with one rate per video), or X as a "
            "dict with key 'fps'."
        )
    arr = np.asarray(fps, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.isfinite(arr).all() or (arr <= 0).any():
        raise ValueError(
            f"fps must be a positive finite number or an array of {n} positive finite frame rates "
            f"(one per video); got {fps if arr.size <= 10 else f'an array of shape {arr.shape}'}."
        )
    return arr


def dmarker_features(X, *, scheme="mediapipe478", fps=50.0, smoothing=_DEFAULT_SMOOTHING,
                     missing="interpolate", variant="paper", engine="auto"):
    """The 225 D-Marker dynamics features of Dibeklioglu et al. for every video.

    Only the 11 D-Marker points of ``scheme`` are read. Every frame is aligned to the face frame
    (:func:`~hadasklearn.landmarks.align_points`: translation, in-plane and out-of-plane rotation
    and inter-ocular scale removed), then three amplitude signals are computed (superscript 1 is the
    first, neutral frame; rho is the Euclidean distance)::

        D_lip(t)    = [rho(m1, l10(t)) + rho(m1, l11(t))] / (2 rho(l10(1), l11(1))),  m1 = (l10(1)+l11(1))/2
        D_eyelid(t) = [tau(c_r(t), l2(t)) + tau(c_l(t), l5(t))] / (2 rho(l1(t), l3(t)))
        D_cheek(t)  = [rho(c1, l7(t)) + rho(c1, l8(t))] / (2 rho(l7(1), l8(1))),     c1 = (l7(1)+l8(1))/2

    with eye centres ``c_r = (l1+l3)/2``, ``c_l = (l4+l6)/2`` and ``tau(a, b) = -rho(a, b)`` when
    ``b`` lies below ``a`` on the aligned face, ``+rho(a, b)`` otherwise. The one-sided signals keep
    one term and the same denominator without the 2, so each combined signal is the mean of its two
    sides. Signals are smoothed, the phases are found on ``D_lip`` (:func:`smile_phases`) and the
    same frame ranges are used for all three regions.

    Per region and phase, with ``D+``/``D-`` the frames where that region's signal increases /
    decreases (change beyond ``STEADY_TOL``), ``eta`` a frame count, ``omega`` the frame rate,
    ``V(t) = omega (D(t) - D(t-1))`` (``V = 0`` at the first frame, taken to be at rest) and
    ``A(t) = omega (V(t) - V(t-1))``, the 25 features of :data:`DMARKER_FEATURES` are: durations
    ``eta(D+)/omega, eta(D-)/omega, eta(D)/omega``; duration ratios ``eta(D+)/eta(D), eta(D-)/eta(D)``;
    ``max D``; mean amplitudes ``sum D/eta(D), sum D+/eta(D+), sum|D-|/eta(D-)``; ``std D``
    (population); totals ``sum D+, sum|D-|``; net ``sum D+ - sum|D-|``; amplitude ratios
    ``sum D+/(sum D+ + sum|D-|)`` and its complement; max speeds ``max V+, max|V-|``; mean speeds;
    max accelerations ``max A+, max|A-|`` (``A+``/``A-``: acceleration on the ``D+``/``D-`` frames);
    mean accelerations; ``(sum D+ - sum|D-|) omega / eta(D)``; and ``|sum D_left - sum D_right| / eta(D)``.
    An empty set (e.g. no decreasing frame, an empty phase) gives 0, never NaN.

    Parameters
    ----------
    X : array-like, sequence of array-like, mapping or LandmarkData
        Landmark videos: a 4-D array ``(n_videos, n_frames, n_landmarks, n_coords)``, a list of
        ``(n_frames_i, n_landmarks, n_coords)`` arrays, a dict/``SliceDict`` with key
        ``"landmarks"`` (and optionally ``"fps"``), or a validated ``LandmarkData``. Coordinates may
        be 2-D or 3-D. Each video needs at least 3 frames.
    scheme : str or LandmarkScheme, default="mediapipe478"
        Which landmarks are l1..l11 (:mod:`hadasklearn.landmarks`).
    fps : float, array-like of shape (n_videos,) or None, default=50.0
        Frame rate (omega) used for durations, speeds and accelerations. Per-video rates in
        ``X["fps"]`` take precedence; ``None`` requires them.
    smoothing : {"median5", "median3"} or None, default="median5"
        Running median over 5 (or 3) frames applied to every amplitude signal, ends repeated.
        A running median removes tracker jitter and isolated glitches while leaving monotone ramps
        and plateaus — the shape of a smile — exactly in place, so phase boundaries do not move
        (a moving average or Savitzky-Golay filter rounds the corners and shifts them). It is
        defined in frames, so it works unchanged for any frame rate and for 3-frame videos;
        5 frames is 0.1-0.2 s at 25-50 fps, shorter than any smile phase. ``None`` disables it.
    missing : {"interpolate", "raise"}, default="interpolate"
        Policy for frames without a face (all-NaN): linear interpolation over time, or an error.
    variant : {"paper", "reference"}, default="paper"
        ``"paper"``: the definitions above. ``"reference"``: what the released HadaSmileNet code
        computes, for comparison with published numbers only: x, y only, no alignment,
        ``omega = 1`` (durations in frames), eyelid normalised by the first-frame eye width,
        cheek distances measured to the current eye centres, left/right difference 0.
    engine : {"auto", "numba", "numpy"}, default="auto"
        ``"numba"``: one compiled pass per video, its 11 points read once (several times faster;
        the first call in a fresh environment compiles it, a few seconds, cached on disk
        afterwards). ``"numpy"``: the vectorised numpy implementation. ``"auto"`` takes numba when
        it is importable. Both give the same features to round-off; ``variant="reference"``
        always uses numpy.

    Returns
    -------
    features : ndarray of shape (n_videos, 225), float64
        Columns as :func:`dmarker_feature_names`: region (eyelid, cheek, lip) x phase (onset, apex,
        offset) x the 25 features.

    Raises
    ------
    LandmarkValidationError
        Malformed ``X`` (see :func:`~hadasklearn._validation.check_landmarks`), a video shorter than
        3 frames, infinities, partially-NaN frames, a video without any face, missing frames under
        ``missing="raise"``, or degenerate geometry (coincident eye centres, eye corners, lip
        corners or cheek points) that makes an amplitude undefined.
    ValueError
        Invalid ``fps``, ``smoothing``, ``missing``, ``variant`` or ``engine``.
    ImportError
        ``engine="numba"`` without numba installed.

    References
    ----------
    .. [1] H. Dibeklioglu, A. A. Salah, T. Gevers, "Are you really smiling at me? Spontaneous versus
       posed enjoyment smiles", ECCV 2012.
    .. [2] H. Dibeklioglu, A. A. Salah, T. Gevers, "Recognition of genuine smiles", IEEE Trans.
       Multimedia 17(3), 2015.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(3, 20, 478, 3)).astype(np.float32)
    >>> F = dmarker_features(X, fps=25.0)
    >>> F.shape, bool(np.isfinite(F).all())
    ((3, 225), True)
    """
    _check_options(smoothing, missing, variant, engine)
    data = _as_data(X, scheme, missing)
    omega = _resolve_fps(fps, data, variant)
    if variant == "paper" and engine != "numpy" and _dmarker_numba.NUMBA_AVAILABLE:
        features = _features_compiled(data, scheme, smoothing, omega, missing)
        if features is not None:
            return features
    elif variant == "paper":
        features = _features_unchecked(data, scheme, smoothing, omega)
        if features is not None:
            return features
    signals = _smooth(_checked_signals(data, scheme, missing, variant), smoothing)
    return _features(signals, data.lengths, omega, with_lr=variant == "paper")


def _features_unchecked(data, scheme, smoothing, omega):
    """Features of finite input, in blocks of videos on two threads; None if any signal is not finite.

    Every video is computed on its own, so blocking changes no result. Blocks of ``_BLOCK_FRAMES``
    frames (a 64 KiB plane) keep the ~100 temporary (videos, frames) planes of the pipeline in
    cache instead of streaming each through memory, and numpy releases the GIL inside ufuncs, so
    two threads overlap. Non-finite input (missing frames, degenerate geometry) returns None for the caller to
    redo through the validating path, which raises or interpolates.
    """
    n = len(data)
    step = max(1, _BLOCK_FRAMES // int(data.lengths.max()))
    out = np.empty((n, N_DMARKERS))

    def run(first, stop):
        block = slice(first, stop)
        P = _planes(data, scheme, "raise", checked=False, videos=block)
        signals = _raw_signals(P, "paper")
        if not _usable(P, signals):
            return False
        out[block] = _features(_smooth(signals, smoothing), data.lengths[block], omega[block])
        return True

    return out if all(map_ranges(run, [*range(0, n, step), n], _N_THREADS)) else None


def _run_compiled(X, lengths, flat, smoothing, omega):
    """The compiled kernel over ``X`` (n, T, L, C) on up to two threads; None if a video failed."""
    n = len(lengths)
    out = np.empty((n, N_DMARKERS))
    half = _SMOOTHER_HALF_WIDTH[smoothing]
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    omega = np.ascontiguousarray(omega, dtype=np.float64)
    flat = np.ascontiguousarray(flat, dtype=np.int64)

    def run(first, stop):
        return _dmarker_numba.features_block(X, lengths, flat, omega, half, STEADY_TOL, out, first, stop)

    # Tasks of about equal frame counts; at least two per thread so that threads stay balanced.
    total = int(lengths.sum())
    n_tasks = min(n, max(1, total // _NUMBA_TASK_FRAMES))
    if n_tasks > 1:
        n_tasks = min(n, max(n_tasks, 2 * _N_THREADS))
    cuts = np.searchsorted(np.cumsum(lengths), np.linspace(0, total, n_tasks + 1)[1:-1], side="right")
    failed = map_ranges(run, np.unique(np.r_[0, cuts, n]), _N_THREADS)
    return out if all(f < 0 for f in failed) else None


def _features_compiled(data, scheme, smoothing, omega, missing):
    """Features through the compiled engine; None if the validating path must decide (degenerate)."""
    scheme = get_scheme(scheme)

    def from_planes(checked):
        # l1..l11 gathered once (numpy), then indexed in place as (videos, frames, 11, coords).
        planes = _planes(data, scheme, missing, checked=checked)
        return _run_compiled(planes.transpose(2, 3, 0, 1), data.lengths, np.arange(11), smoothing, omega)

    direct = all(len(p) == 1 for p in scheme.points)
    if data.is_array and direct and data.videos.dtype in (np.float32, np.float64):
        features = _run_compiled(data.videos, data.lengths, [p[0] for p in scheme.points], smoothing, omega)
    else:  # ragged videos, or points averaged from several landmarks
        features = from_planes(checked=False)
    # Missing or bad values: the validating gather raises the documented errors or interpolates.
    return features if features is not None else from_planes(checked=True)


# --------------------------------------------------------------------------- transformer


class DMarkerTransformer(TransformerMixin, BaseEstimator):
    """Turn landmark videos into the 225 D-Marker features (stateless).

    Parameters
    ----------
    scheme : str or LandmarkScheme, default="mediapipe478"
        Landmark scheme naming the 11 D-Marker points.
    fps : float, array-like of shape (n_videos,) or None, default=50.0
        Frame rate; per-video rates in ``X["fps"]`` take precedence, ``None`` requires them.
    smoothing : {"median5", "median3"} or None, default="median5"
        Running-median smoothing of the amplitude signals (see :func:`dmarker_features`).
    missing : {"interpolate", "raise"}, default="interpolate"
        Policy for frames without a face (all-NaN rows).
    passthrough : bool, default=False
        If True, :meth:`transform` returns ``skorch.helper.SliceDict(landmarks=..., dmarkers=...)``
        (plus ``fps`` when ``X`` carried it) so a pipeline can hand both to a classifier.
    variant : {"paper", "reference"}, default="paper"
        ``"reference"`` reproduces the released HadaSmileNet code (for comparison only).

    Attributes
    ----------
    n_landmarks_ : int
        Landmarks per frame seen in :meth:`fit`; :meth:`transform` requires the same count.
    n_coords_ : int
        Coordinates per landmark seen in :meth:`fit`.

    See Also
    --------
    dmarker_features : The function doing the work.

    Notes
    -----
    The transformer learns nothing, so it does not require fitting (``requires_fit=False``, like
    :class:`~sklearn.preprocessing.Normalizer`): :meth:`transform` works on an unfitted instance.
    When fitted, it also checks that the landmark and coordinate counts match those of ``fit``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(t, 478, 3)) for t in (12, 20)]
    >>> DMarkerTransformer(fps=30).fit_transform(X).shape
    (2, 225)
    """

    _parameter_constraints: dict = {
        "scheme": [str, LandmarkScheme],
        "fps": [Interval(Real, 0, None, closed="neither"), "array-like", None],
        "smoothing": [StrOptions(set(_SMOOTHERS)), None],
        "missing": [StrOptions({"interpolate", "raise"})],
        "passthrough": ["boolean"],
        "variant": [StrOptions(set(_VARIANTS))],
    }

    def __init__(self, scheme="mediapipe478", *, fps=50.0, smoothing=_DEFAULT_SMOOTHING,
                 missing="interpolate", passthrough=False, variant="paper"):
        self.scheme = scheme
        self.fps = fps
        self.smoothing = smoothing
        self.missing = missing
        self.passthrough = passthrough
        self.variant = variant

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate ``X`` and record its landmark and coordinate counts.

        Parameters
        ----------
        X : array-like, sequence of array-like or mapping
            Landmark videos (see :func:`dmarker_features`).
        y : None
            Ignored.

        Returns
        -------
        self : DMarkerTransformer
        """
        data = check_landmarks(X, scheme=self.scheme, min_frames=3, missing=self.missing)
        self.n_landmarks_ = data.n_landmarks
        self.n_coords_ = data.n_coords
        return self

    def transform(self, X):
        """D-Markers of every video.

        Parameters
        ----------
        X : array-like, sequence of array-like or mapping
            Landmark videos (see :func:`dmarker_features`).

        Returns
        -------
        D : ndarray of shape (n_videos, 225) or skorch.helper.SliceDict
            The features; with ``passthrough=True`` a ``SliceDict`` with keys ``"landmarks"`` (the
            videos: the 4-D array, or a 1-D object array of per-video arrays), ``"dmarkers"`` and,
            when ``X`` carried it, ``"fps"``.
        """
        self._validate_params()
        data = check_landmarks(
            X,
            scheme=self.scheme,
            n_landmarks=getattr(self, "n_landmarks_", None),
            n_coords=getattr(self, "n_coords_", None),
            min_frames=3,
            missing=self.missing,
        )
        D = dmarker_features(
            data, scheme=self.scheme, fps=self.fps, smoothing=self.smoothing, missing=self.missing,
            variant=self.variant,
        )
        if not self.passthrough:
            return D
        from skorch.helper import SliceDict

        if data.is_array:
            videos = data.videos
        else:
            videos = np.empty(len(data), dtype=object)
            for i, v in enumerate(data.videos):
                videos[i] = v
        out = {"landmarks": videos, "dmarkers": D}
        if data.fps is not None:
            out["fps"] = data.fps
        return SliceDict(**out)

    def get_feature_names_out(self, input_features=None):
        """The 225 D-Marker names ``"{region}_{phase}_{feature}"``.

        Parameters
        ----------
        input_features : None
            Ignored (the inputs are landmark videos, not named columns).

        Returns
        -------
        feature_names_out : ndarray of str
        """
        return dmarker_feature_names().astype(object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        tags.requires_fit = False
        return tags
