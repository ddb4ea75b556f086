"""Tests of the D-Marker engine and DMarkerTransformer against hand-built videos and a loop oracle."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from skorch.helper import SliceDict

from hadasklearn._dmarker import (
    DMARKER_FEATURES,
    DMARKER_PHASES,
    DMARKER_REGIONS,
    STEADY_TOL,
    DMarkerTransformer,
    _aligned,
    _face_axes,
    _smooth,
    amplitude_signals,
    dmarker_feature_names,
    dmarker_features,
    smile_phases,
)
from hadasklearn.exceptions import LandmarkValidationError, MissingFramesWarning
from hadasklearn.landmarks import align_points, get_scheme

IDX = [p[0] for p in get_scheme("mediapipe478").points]
NAMES = list(dmarker_feature_names())

# Plausible aligned positions (x right, y down, z towards the camera) of l1..l11.
FACE = np.array(
    [
        [-0.45, -0.20, 0.00],  # l1 right eye outer
        [-0.30, -0.27, 0.02],  # l2 right upper lid
        [-0.15, -0.20, 0.00],  # l3 right eye inner
        [0.15, -0.20, 0.00],  # l4
        [0.30, -0.27, 0.02],  # l5
        [0.45, -0.20, 0.00],  # l6
        [-0.40, 0.15, 0.05],  # l7 right cheek
        [0.40, 0.15, 0.05],  # l8
        [0.00, 0.10, 0.30],  # l9 nose tip
        [-0.25, 0.45, 0.05],  # l10 right lip corner
        [0.25, 0.45, 0.05],  # l11
    ]
)


def make_face(n_coords=3, seed=0):
    """478 points: random filler, with l1..l11 at FACE."""
    rng = np.random.default_rng(seed)
    face = rng.uniform(-0.5, 0.5, size=(478, 3))
    face[IDX] = FACE
    return face[:, :n_coords]


def trapezoid(rise=10, hold=20, fall=15, lead=1):
    """0 for `lead` frames, linear rise over `rise` frames to 1, hold, linear fall to 0."""
    return np.r_[
        np.zeros(lead), np.linspace(0, 1, rise + 1)[1:], np.ones(hold), np.linspace(1, 0, fall + 1)[1:]
    ]


def smile_video(profile, n_coords=3, right=0.1, left=0.1, seed=0):
    """Lip corners pulled outwards by `right`/`left` x profile (in face units)."""
    video = np.repeat(make_face(n_coords, seed)[None], len(profile), axis=0)
    video[:, 62, 0] -= right * profile
    video[:, 308, 0] += left * profile
    return video


def col(F, name):
    return F[..., NAMES.index(name)]


def rotation(theta, n_coords):
    c, s = np.cos(theta), np.sin(theta)
    if n_coords == 2:
        return np.array([[c, -s], [s, c]])
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------- loop oracle
# A direct, frame-by-frame transcription of the formulas (Dibeklioglu et al. 2012) with the
# definitions documented in dmarker_features; deliberately written without vectorisation.


def oracle_align(frame):
    c1 = (frame[0] + frame[2]) / 2
    c2 = (frame[3] + frame[5]) / 2
    origin = (c1 + c2) / 2
    ex = c2 - c1
    scale = np.linalg.norm(ex)
    ex = ex / scale
    if len(ex) == 2:
        axes = [ex, np.array([-ex[1], ex[0]])]
    else:
        w = frame[8] - origin
        v = w - np.dot(w, ex) * ex
        ey = v / np.linalg.norm(v)
        axes = [ex, ey, np.cross(ex, ey)]
    R = np.array(axes)
    return np.array([R @ (p - origin) / scale for p in frame])


def oracle_signals(points, variant="paper"):
    """points (T, 11, C) -> dict of 9 lists."""
    if variant == "reference":
        frames = [f[:, :2] for f in points]
    else:
        frames = [oracle_align(f) for f in points]
    f1 = frames[0]
    rho = lambda a, b: float(np.linalg.norm(a - b))  # noqa: E731
    m1 = (f1[9] + f1[10]) / 2
    c1 = (f1[6] + f1[7]) / 2
    sig = {k: [] for k in ("eyelid_r", "eyelid_l", "cheek_r", "cheek_l", "lip_r", "lip_l")}
    for f in frames:
        width = rho(f[0], f[2]) if variant == "paper" else rho(f1[0], f1[2])
        for side, (a, b) in (("r", (f[0], f[2])), ("l", (f[3], f[5]))):
            centre = (a + b) / 2
            lid = f[1] if side == "r" else f[4]
            kappa = -1.0 if lid[1] > centre[1] else 1.0
            sig["eyelid_" + side].append(kappa * rho(centre, lid) / width)
        sig["lip_r"].append(rho(m1, f[9]) / rho(f1[9], f1[10]))
        sig["lip_l"].append(rho(m1, f[10]) / rho(f1[9], f1[10]))
        if variant == "paper":
            sig["cheek_r"].append(rho(c1, f[6]) / rho(f1[6], f1[7]))
            sig["cheek_l"].append(rho(c1, f[7]) / rho(f1[6], f1[7]))
        else:
            sig["cheek_r"].append(rho((f[0] + f[2]) / 2, f[6]) / rho(f1[6], f1[7]))
            sig["cheek_l"].append(rho((f[3] + f[5]) / 2, f[7]) / rho(f1[6], f1[7]))
    return {k: np.array(v) for k, v in sig.items()}


def oracle_smooth(x, smoothing):
    if smoothing is None:
        return x
    half = {"median3": 1, "median5": 2}[smoothing]
    padded = np.r_[[x[0]] * half, x, [x[-1]] * half]
    return np.array([np.median(padded[t : t + 2 * half + 1]) for t in range(len(x))])


def oracle_phases(d):
    T = len(d)
    step = [0.0] + [d[t] - d[t - 1] for t in range(1, T)]

    def longest(pred, start):
        best_len, best_end, run = 0, -1, 0
        for t in range(start, T):
            run = run + 1 if pred(step[t]) else 0
            if run > best_len:
                best_len, best_end = run, t
        return best_len, best_end

    n_on, end_on = longest(lambda s: s > STEADY_TOL, 0)
    on = (end_on - n_on + 1, end_on + 1) if n_on else (0, 0)
    n_off, end_off = longest(lambda s: s < -STEADY_TOL, on[1])
    off = (end_off - n_off + 1, end_off + 1) if n_off else (T, T)
    return [on, (on[1], off[0]), off]


def oracle_block(D, L, R, seg, fps, with_lr=True):
    T = len(D)
    V = [0.0] + [fps * (D[t] - D[t - 1]) for t in range(1, T)]
    A = [0.0] + [fps * (V[t] - V[t - 1]) for t in range(1, T)]
    frames = list(range(*seg))
    inc = [t for t in frames if t > 0 and D[t] - D[t - 1] > STEADY_TOL]
    dec = [t for t in frames if t > 0 and D[t] - D[t - 1] < -STEADY_TOL]

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    def mx(xs):
        return max(xs) if xs else 0.0

    def ratio(a, b):
        return a / b if b else 0.0

    n = len(frames)
    sp, sm = sum(D[t] for t in inc), sum(abs(D[t]) for t in dec)
    return [
        len(inc) / fps, len(dec) / fps, n / fps,
        ratio(len(inc), n), ratio(len(dec), n),
        mx([D[t] for t in frames]),
        mean([D[t] for t in frames]), mean([D[t] for t in inc]), mean([abs(D[t]) for t in dec]),
        float(np.std([D[t] for t in frames])) if frames else 0.0,
        sp, sm, sp - sm, ratio(sp, sp + sm), ratio(sm, sp + sm),
        mx([V[t] for t in inc]), mx([abs(V[t]) for t in dec]),
        mean([V[t] for t in inc]), mean([abs(V[t]) for t in dec]),
        mx([A[t] for t in inc]), mx([abs(A[t]) for t in dec]),
        mean([A[t] for t in inc]), mean([abs(A[t]) for t in dec]),
        ratio((sp - sm) * fps, n),
        ratio(abs(sum(L[t] for t in frames) - sum(R[t] for t in frames)), n) if with_lr else 0.0,
    ]


def oracle_features(video, fps=50.0, smoothing="median5", variant="paper"):
    points = np.asarray(video, dtype=np.float64)[:, IDX]
    raw = oracle_signals(points, variant)
    sig = {}
    for region in DMARKER_REGIONS:
        r, l_ = raw[region + "_r"], raw[region + "_l"]
        sig[region] = (oracle_smooth((r + l_) / 2, smoothing), oracle_smooth(l_, smoothing),
                       oracle_smooth(r, smoothing))
    fps = 1.0 if variant == "reference" else fps
    phases = oracle_phases(sig["lip"][0])
    out = []
    for region in DMARKER_REGIONS:
        for seg in phases:
            out += oracle_block(*sig[region], seg, fps, with_lr=variant == "paper")
    return np.array(out)


def random_video(rng, n_frames, n_coords):
    """A random, non-degenerate face with random-walk motion of the D-Marker points."""
    face = make_face(3, int(rng.integers(1 << 30)))
    walk = np.cumsum(rng.normal(scale=0.01, size=(n_frames, 478, 3)), axis=0)
    video = face[None] + walk
    return video[..., :n_coords]


# --------------------------------------------------------------------------- names and API


def test_feature_names_order_and_count():
    names = dmarker_feature_names()
    assert names.shape == (225,) and len(set(names)) == 225
    assert len(DMARKER_FEATURES) == 25
    assert names[0] == "eyelid_onset_duration_inc"
    assert names[25] == "eyelid_apex_duration_inc"
    assert names[75] == "cheek_onset_duration_inc"
    assert names[-1] == "lip_offset_left_right_amplitude_difference"
    assert DMARKER_REGIONS == ("eyelid", "cheek", "lip") and DMARKER_PHASES == ("onset", "apex", "offset")


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("smoothing", [None, "median3", "median5"])
@pytest.mark.parametrize("n_coords", [2, 3])
def test_trapezoid_smile_known_answers(smoothing, n_coords):
    # 1 neutral frame, rise 10, hold 20, fall 15 frames at 50 fps.
    video = smile_video(trapezoid(10, 20, 15), n_coords=n_coords)
    F = dmarker_features(video[None], fps=50.0, smoothing=smoothing)[0]
    frame = 1 / 50
    assert col(F, "lip_onset_duration") == pytest.approx(0.2, abs=frame)
    assert col(F, "lip_apex_duration") == pytest.approx(0.4, abs=frame)
    assert col(F, "lip_offset_duration") == pytest.approx(0.3, abs=frame)
    # Corners 0.25 from the mouth centre move 0.1 outwards; the first-frame width is 0.5.
    assert col(F, "lip_apex_max_amplitude") == pytest.approx(0.35 / 0.5)
    assert col(F, "lip_onset_max_speed_inc") == pytest.approx(0.01 / 0.5 * 50)
    assert col(F, "lip_offset_max_speed_dec") == pytest.approx(0.1 / 15 / 0.5 * 50)
    assert col(F, "lip_onset_duration_ratio_inc") == pytest.approx(1.0)
    assert col(F, "lip_apex_duration_inc") == 0 and col(F, "lip_apex_std_amplitude") == pytest.approx(0, abs=1e-12)
    # Eyelids and cheeks do not move: no increasing or decreasing frame, no speed, constant amplitude.
    for region in ("eyelid", "cheek"):
        for phase in DMARKER_PHASES:
            for feat in ("duration_inc", "duration_dec", "total_amplitude_inc", "total_amplitude_dec",
                         "max_speed_inc", "max_speed_dec", "mean_acceleration_inc", "std_amplitude",
                         "net_amplitude", "left_right_amplitude_difference"):
                assert col(F, f"{region}_{phase}_{feat}") == pytest.approx(0, abs=1e-9), (region, phase, feat)
    assert col(F, "cheek_apex_max_amplitude") == pytest.approx(0.5)
    # Eyelid amplitude: lid 0.07 above (and 0.02 in front of) the eye centre, eye width 0.3.
    lid = np.hypot(0.07, 0.02 if n_coords == 3 else 0.0)
    assert col(F, "eyelid_apex_mean_amplitude") == pytest.approx(lid / 0.3)


def test_trapezoid_exact_phase_boundaries():
    sig = amplitude_signals(smile_video(trapezoid(10, 20, 15))[None], smoothing=None)
    assert smile_phases(sig.lip, sig.lengths).tolist() == [[1, 11, 31, 46]]


def test_lowered_lid_gives_negative_eyelid_amplitude():
    video = smile_video(trapezoid(5, 5, 5))
    video[:, 159, 1] = -0.20 + 0.05  # right lid below the right eye centre
    sig = amplitude_signals(video[None], smoothing=None)
    assert np.allclose(sig.eyelid_right, -np.hypot(0.05, 0.02) / 0.3)
    assert np.allclose(sig.eyelid_left, np.hypot(0.07, 0.02) / 0.3)
    assert np.allclose(sig.eyelid, 0.5 * (sig.eyelid_right + sig.eyelid_left))


@pytest.mark.parametrize("n_coords", [2, 3])
def test_left_right_difference(n_coords):
    prof = trapezoid(8, 10, 8)
    sym = dmarker_features(smile_video(prof, n_coords, 0.1, 0.1)[None])[0]
    asym = dmarker_features(smile_video(prof, n_coords, 0.15, 0.02)[None])[0]
    lr = [f"lip_{p}_left_right_amplitude_difference" for p in DMARKER_PHASES]
    assert np.allclose([col(sym, c) for c in lr], 0, atol=1e-12)
    assert col(asym, "lip_apex_left_right_amplitude_difference") == pytest.approx((0.40 - 0.27) / 0.5)
    assert col(asym, "lip_onset_left_right_amplitude_difference") > 0.01


# --------------------------------------------------------------------------- phases


@pytest.mark.parametrize(
    "signal, expected",
    [
        (np.zeros(10), [0, 0, 10, 10]),  # constant: one long apex
        (np.linspace(1, 0, 8), [0, 0, 1, 8]),  # no increase: onset empty at 0, offset = the fall
        (np.linspace(0, 1, 8), [1, 8, 8, 8]),  # no decrease: offset empty at the end
        (np.r_[1.0, 0.5, 0.0, 0.0, 0.5, 1.0, 1.0], [4, 6, 7, 7]),  # only decrease before onset
        (np.array([0.0, 1.0, 0.5]), [1, 2, 2, 3]),  # 3 frames
        (np.array([0.0, 0.0, 0.0]), [0, 0, 3, 3]),
        (np.r_[0, 1, 0, 1, 2, 1, 0.0], [3, 5, 5, 7]),  # longest rise wins; fall must follow it
        (np.r_[0, 1, 0, 1, 0.0], [1, 2, 2, 3]),  # ties: the earliest
        (np.r_[0, 1e-12, 2e-12, 0.0], [0, 0, 4, 4]),  # changes below STEADY_TOL are steady
    ],
)
def test_smile_phases_edge_cases(signal, expected):
    assert smile_phases(signal).tolist() == expected
    assert oracle_phases(signal) == [tuple(expected[0:2]), tuple(expected[1:3]), tuple(expected[2:4])]


def test_smile_phases_padded_rows_and_errors():
    d = np.array([[0, 1, 2, 1, 0, 0], [0, 1, 0, 0, 0, 0.0]])
    assert smile_phases(d, [5, 2]).tolist() == [[1, 3, 3, 5], [1, 2, 2, 2]]
    with pytest.raises(ValueError, match="lengths must hold one length"):
        smile_phases(d, [7, 2])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        smile_phases(np.zeros((2, 2, 2)))


def test_constant_and_three_frame_videos_give_finite_features():
    still = np.repeat(make_face()[None], 3, axis=0)
    F = dmarker_features([still, smile_video(np.r_[0.0, 1.0, 0.5])])
    assert np.isfinite(F).all()
    assert col(F[0], "lip_apex_duration") == pytest.approx(3 / 50)
    for phase in ("onset", "offset"):
        assert np.all(F[0, [NAMES.index(n) for n in NAMES if f"_{phase}_" in n]] == 0)


# --------------------------------------------------------------------------- oracle equality


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    lengths=st.lists(st.integers(3, 24), min_size=1, max_size=4),
    n_coords=st.sampled_from([2, 3]),
    smoothing=st.sampled_from([None, "median3", "median5"]),
    variant=st.sampled_from(["paper", "reference"]),
    engine=st.sampled_from(["numba", "numpy"]),
)
def test_matches_loop_oracle(seed, lengths, n_coords, smoothing, variant, engine):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, t, n_coords) for t in lengths]
    fps = rng.uniform(10, 60, size=len(videos))
    F = dmarker_features(videos, fps=fps, smoothing=smoothing, variant=variant, engine=engine)
    expected = np.stack(
        [oracle_features(v, f, smoothing, variant) for v, f in zip(videos, fps)]
    )
    np.testing.assert_allclose(F, expected, rtol=1e-7, atol=1e-8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_videos=st.integers(1, 12),
    n_frames=st.integers(3, 40),
    n_coords=st.sampled_from([2, 3]),
    smoothing=st.sampled_from([None, "median3", "median5"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_compiled_engine_equals_numpy_engine(seed, n_videos, n_frames, n_coords, smoothing, dtype):
    rng = np.random.default_rng(seed)
    X = np.stack([random_video(rng, n_frames, n_coords) for _ in range(n_videos)]).astype(dtype)
    fps = rng.uniform(10, 60, size=n_videos)
    kwargs = dict(fps=fps, smoothing=smoothing)
    np.testing.assert_allclose(
        dmarker_features(X, engine="numba", **kwargs),
        dmarker_features(X, engine="numpy", **kwargs),
        rtol=1e-9, atol=1e-11,
    )


def test_compiled_engine_thread_tasks_do_not_change_results(monkeypatch):
    import hadasklearn._dmarker as dm

    rng = np.random.default_rng(3)
    videos = [random_video(rng, t, 3) for t in rng.integers(3, 30, size=23)]
    whole = dmarker_features(videos, engine="numba")
    monkeypatch.setattr(dm, "_NUMBA_TASK_FRAMES", 16)  # many small tasks on two threads
    np.testing.assert_array_equal(dmarker_features(videos, engine="numba"), whole)


def test_compiled_engine_interpolates_and_raises_like_numpy():
    rng = np.random.default_rng(4)
    X = np.stack([random_video(rng, 20, 3) for _ in range(3)])
    X[1, 5:8] = np.nan  # a lost face, interpolated
    with pytest.warns(MissingFramesWarning):
        a = dmarker_features(X, engine="numba")
    with pytest.warns(MissingFramesWarning):
        b = dmarker_features(X, engine="numpy")
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    X[2, 0, IDX[10]] = X[2, 0, IDX[9]]  # lip corners coincide in the first frame: D_lip undefined
    for engine in ("numba", "numpy"):
        with pytest.warns(MissingFramesWarning), pytest.raises(LandmarkValidationError, match="lip corners"):
            dmarker_features(X, engine=engine)


def test_engine_option_errors(monkeypatch):
    import hadasklearn._dmarker_numba as dn

    X = np.zeros((1, 3, 478, 3))
    with pytest.raises(ValueError, match="engine must be one of"):
        dmarker_features(X, engine="cython")
    monkeypatch.setattr(dn, "NUMBA_AVAILABLE", False)
    with pytest.raises(ImportError, match="engine='numpy'"):
        dmarker_features(X, engine="numba")


def test_array_and_list_forms_agree():
    rng = np.random.default_rng(1)
    X = np.stack([random_video(rng, 12, 3) for _ in range(3)]).astype(np.float32)
    np.testing.assert_array_equal(dmarker_features(X), dmarker_features(list(X)))


def test_fast_alignment_equals_align_points():
    rng = np.random.default_rng(2)
    for n_coords in (2, 3):
        pts = FACE[None, None, :, :n_coords] + rng.normal(scale=0.05, size=(2, 5, 11, n_coords))
        P = np.ascontiguousarray(np.moveaxis(pts, (2, 3), (0, 1)))
        origin, axes, scale = _face_axes(P)
        got = np.stack([_aligned(P[k], origin, axes, scale) for k in range(11)])
        np.testing.assert_allclose(np.moveaxis(got, (0, 1), (2, 3)), align_points(pts), atol=1e-12)


@pytest.mark.parametrize("smoothing", ["median3", "median5"])
def test_smoother_is_running_median(smoothing):
    x = np.random.default_rng(3).normal(size=(2, 3, 9))
    got = _smooth(x, smoothing)
    for idx in np.ndindex(2, 3):
        np.testing.assert_array_equal(got[idx], oracle_smooth(x[idx], smoothing))


# --------------------------------------------------------------------------- invariances


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_coords=st.sampled_from([2, 3]),
    shift=st.floats(-100, 100),
    scale=st.floats(0.05, 50),
    theta=st.floats(-np.pi, np.pi),
)
def test_invariant_to_translation_scale_and_in_plane_rotation(seed, n_coords, shift, scale, theta):
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, t, n_coords) for t in (7, 15)]
    # Add a clear smile so the phases are well defined.
    videos[1] = videos[1] + smile_video(trapezoid(4, 4, 6), n_coords) - make_face(n_coords)
    ref = dmarker_features(videos)
    R = rotation(theta, n_coords)
    moved = [scale * v @ R.T + shift for v in videos]
    np.testing.assert_allclose(dmarker_features(moved), ref, rtol=1e-6, atol=1e-6)


def test_invariant_to_per_frame_head_motion():
    video = smile_video(trapezoid(6, 6, 6), 3)
    rng = np.random.default_rng(4)
    moved = np.stack([
        rng.uniform(0.5, 2) * f @ rotation(rng.uniform(-0.5, 0.5), 3).T + rng.normal(size=3) for f in video
    ])
    np.testing.assert_allclose(dmarker_features(moved[None]), dmarker_features(video[None]), atol=1e-9)


# --------------------------------------------------------------------------- inputs and errors


def test_missing_frames_are_interpolated():
    video = smile_video(trapezoid(10, 20, 15))
    holed = video.copy()
    holed[[0, 5, 6, 44, 45]] = np.nan  # leading, inner and trailing frames
    with pytest.warns(MissingFramesWarning):
        F = dmarker_features([holed])
    assert np.isfinite(F).all()
    # The leading hole takes frame 1, where the corners are already 0.01 apart more: width 0.52.
    assert col(F[0], "lip_apex_max_amplitude") == pytest.approx(0.35 / 0.52)
    assert col(F[0], "lip_onset_duration") == pytest.approx(9 / 50)  # the rise now starts at frame 2
    with pytest.raises(LandmarkValidationError, match="without a face"):
        dmarker_features([holed], missing="raise")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda v: v.__setitem__((2, 62, 0), np.nan), "some but not all"),
        (lambda v: v.__setitem__((2, 62, 0), np.inf), "infinite"),
        (lambda v: v.__setitem__((slice(None),), np.nan), "no frame with a face"),
        (lambda v: v.__setitem__((slice(None), 308), v[:, 62]), "lip corners l10 and l11 coincide"),
        (lambda v: v.__setitem__((slice(None), 280), v[:, 50]), "cheek points l7 and l8 coincide"),
        (lambda v: v.__setitem__((3, 133), v[3, 33]), "right-eye corners"),
    ],
)
@pytest.mark.parametrize("n_coords", [2, 3])
def test_bad_values_raise(mutate, match, n_coords):
    video = smile_video(trapezoid(3, 3, 3), n_coords).copy()
    mutate(video)
    with pytest.raises(LandmarkValidationError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        dmarker_features([smile_video(trapezoid(3, 3, 3), n_coords), video])


def test_nan_in_unused_nose_of_2d_video_raises():
    video = smile_video(trapezoid(3, 3, 3), 2)
    video[4, 1] = np.nan  # l9, not needed by 2-D signals, is still invalid input
    with pytest.raises(LandmarkValidationError, match="some but not all"):
        dmarker_features([video])


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros((2, 5, 68, 3)), "expects 478 landmarks per frame; got 68"),
        (np.zeros((2, 5, 478, 4)), "2 \\(x, y\\) or 3 \\(x, y, z\\) coordinates; got 4"),
        (np.zeros((2, 2, 478, 3)), "has 2 frame\\(s\\); at least 3"),
        (np.zeros((5, 478, 3)), "must be wrapped"),
        ([], "no videos"),
        ({"dmarkers": np.zeros((1, 225))}, "must have the key 'landmarks'"),
    ],
)
def test_bad_shapes_raise(X, match):
    with pytest.raises(LandmarkValidationError, match=match):
        dmarker_features(X)


def test_bad_options_raise():
    X = smile_video(trapezoid(3, 3, 3))[None]
    with pytest.raises(ValueError, match="fps must be a positive"):
        dmarker_features(X, fps=-1)
    with pytest.raises(ValueError, match="fps must be a positive"):
        dmarker_features(X, fps=[25.0, 30.0])
    with pytest.raises(ValueError, match="fps=None"):
        dmarker_features(X, fps=None)
    with pytest.raises(ValueError, match="smoothing must be one of"):
        dmarker_features(X, smoothing="gaussian")
    with pytest.raises(ValueError, match="variant must be one of"):
        dmarker_features(X, variant="x")
    with pytest.raises(ValueError, match="missing must be"):
        dmarker_features(X, missing="zero")


def test_per_video_fps_from_mapping_and_array():
    video = smile_video(trapezoid(10, 20, 15))
    X = {"landmarks": [video, video], "fps": np.array([50.0, 25.0])}
    F = dmarker_features(X, fps=None)
    assert col(F, "lip_onset_duration").tolist() == pytest.approx([0.2, 0.4])
    np.testing.assert_allclose(dmarker_features([video, video], fps=[50.0, 25.0]), F)
    assert col(F, "lip_onset_max_speed_inc")[0] == pytest.approx(2 * col(F, "lip_onset_max_speed_inc")[1])


def test_reference_variant():
    video = smile_video(trapezoid(10, 20, 15), 3)
    F = dmarker_features(video[None], variant="reference", fps=50.0)[0]
    assert col(F, "lip_onset_duration") == pytest.approx(10)  # omega = 1: frames
    assert np.all(F[[NAMES.index(n) for n in NAMES if n.endswith("left_right_amplitude_difference")]] == 0)
    np.testing.assert_allclose(F, oracle_features(video, 50.0, "median5", "reference"), rtol=1e-9, atol=1e-12)


def test_ibug68_scheme_and_custom_scheme():
    rng = np.random.default_rng(5)
    video = rng.normal(scale=0.01, size=(12, 68, 2)).cumsum(axis=0) + rng.uniform(-1, 1, size=(68, 2))
    scheme = get_scheme("ibug68")
    assert np.isfinite(dmarker_features([video], scheme="ibug68")).all()
    with pytest.raises(LandmarkValidationError, match="expects 68"):
        dmarker_features(make_face()[None, None].repeat(3, 1), scheme=scheme)


# --------------------------------------------------------------------------- transformer


def test_transformer_matches_function_and_names():
    rng = np.random.default_rng(6)
    X = [random_video(rng, t, 3) for t in (5, 9)]
    tr = DMarkerTransformer(fps=30.0, smoothing="median3")
    np.testing.assert_array_equal(tr.fit_transform(X), dmarker_features(X, fps=30.0, smoothing="median3"))
    assert tr.n_landmarks_ == 478 and tr.n_coords_ == 3
    assert list(tr.get_feature_names_out()) == NAMES
    # Stateless: an unfitted instance transforms too.
    np.testing.assert_array_equal(DMarkerTransformer(fps=30.0, smoothing="median3").transform(X), tr.transform(X))
    with pytest.raises(LandmarkValidationError, match="2 coordinates per landmark, but 3"):
        tr.transform([v[..., :2] for v in X])


def test_transformer_passthrough():
    rng = np.random.default_rng(7)
    X = [random_video(rng, t, 3) for t in (5, 9, 6)]
    out = DMarkerTransformer(passthrough=True).fit_transform({"landmarks": X, "fps": [25, 30, 50]})
    assert isinstance(out, SliceDict) and set(out) == {"landmarks", "dmarkers", "fps"}
    assert out["landmarks"].dtype == object and out["landmarks"][1] is X[1]
    np.testing.assert_array_equal(out["dmarkers"], dmarker_features(X, fps=[25, 30, 50]))
    sub = out[[0, 2]]
    assert sub["dmarkers"].shape == (2, 225)
    arr = np.stack([random_video(rng, 6, 2) for _ in range(2)])
    out = DMarkerTransformer(passthrough=True).transform(arr)
    assert out["landmarks"] is arr and set(out) == {"landmarks", "dmarkers"}


def test_transformer_param_validation_and_clone():
    with pytest.raises(ValueError, match="'smoothing' parameter"):
        DMarkerTransformer(smoothing="mean").fit([make_face()[None].repeat(3, 0)])
    tr = clone(DMarkerTransformer(fps=25, variant="reference"))
    assert tr.get_params()["variant"] == "reference"
    tags = tr.__sklearn_tags__()
    assert tags.input_tags.three_d_array and tags.input_tags.dict and tags.input_tags.allow_nan
    assert not tags.requires_fit


class _DMarkerTransformerFor2DChecks(DMarkerTransformer):
    """DMarkerTransformer claiming 2-D input, so that scikit-learn's common checks run at all.

    With its true tags (no 2-D input) ``check_estimator`` skips every check; claiming 2-D runs
    them: the API checks pass and the data checks fail for the reason listed below.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


_NEEDS_VIDEOS = (
    "the check feeds a 2-D table (n_samples, n_features); DMarkerTransformer needs landmark videos "
    "(a 4-D array, a list of 3-D arrays or a mapping) and rejects 2-D input with a clear error"
)
EXPECTED_FAILED_CHECKS = {
    name: _NEEDS_VIDEOS
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_complex_data",
        "check_dtype_object",
        "check_estimators_empty_data_messages",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_transformers_unfitted_stateless",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    )
}


@parametrize_with_checks(
    [_DMarkerTransformerFor2DChecks()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_common_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        check(estimator)


def test_sklearn_common_checks_skip_with_true_tags():
    # The real tags declare no 2-D input; scikit-learn then has no data it can feed.
    tags = DMarkerTransformer().__sklearn_tags__()
    assert not tags.input_tags.two_d_array
