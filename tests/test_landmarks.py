"""Tests of landmark schemes, point gathering and per-frame head-pose alignment."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hadasklearn.exceptions import UnknownNameError
from hadasklearn.landmarks import (
    DMARKER_POINT_NAMES,
    LandmarkScheme,
    align_points,
    face_frame,
    gather_points,
    get_scheme,
    list_schemes,
    register_scheme,
)
from hadasklearn.landmarks import SCHEMES


def test_builtin_schemes():
    assert set(list_schemes()) >= {"mediapipe478", "ibug68"}
    mp = get_scheme("mediapipe478")
    assert mp.n_landmarks == 478
    assert [p[0] for p in mp.points] == [33, 159, 133, 362, 386, 263, 50, 280, 1, 62, 308]
    ib = get_scheme("ibug68")
    assert ib.n_landmarks == 68
    assert ib.points[1] == (37, 38) and ib.points[4] == (43, 44)
    assert ib.points[9] == (48,) and ib.points[10] == (54,) and ib.points[8] == (30,)
    assert len(ib.points[6]) > 1 and "proxies" in ib.description
    assert len(DMARKER_POINT_NAMES) == 11


def test_unknown_scheme_suggests_a_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'ibug68'"):
        get_scheme("ibug_68")
    with pytest.raises(TypeError, match="registered name"):
        get_scheme(68)


def test_custom_scheme_roundtrip_and_validation():
    scheme = LandmarkScheme("test_custom_11", 11, tuple(range(11)))
    assert scheme.points[3] == (3,) and scheme.min_landmarks == 11
    assert get_scheme(scheme) is scheme
    register_scheme(scheme)
    try:
        assert get_scheme("test_custom_11") is scheme
        with pytest.raises(ValueError, match="already registered"):
            register_scheme(scheme)
    finally:
        SCHEMES.unregister("test_custom_11")
    with pytest.raises(ValueError, match="needs 11 point definitions"):
        LandmarkScheme("bad", 11, tuple(range(10)))
    with pytest.raises(ValueError, match="declares only 5"):
        LandmarkScheme("bad", 5, tuple(range(11)))
    with pytest.raises(ValueError, match="non-negative"):
        LandmarkScheme("bad", None, (-1,) + tuple(range(10)))
    with pytest.raises(ValueError, match="at least one landmark"):
        LandmarkScheme("bad", None, ((),) + tuple((i,) for i in range(10)))
    with pytest.raises(TypeError, match="Expected a LandmarkScheme"):
        register_scheme("mediapipe478")


def test_gather_points_single_and_centroid():
    frames = np.arange(2 * 68 * 2, dtype=float).reshape(2, 68, 2)
    got = gather_points(frames, "ibug68")
    assert got.shape == (2, 11, 2)
    np.testing.assert_array_equal(got[:, 0], frames[:, 36])
    np.testing.assert_allclose(got[:, 1], (frames[:, 37] + frames[:, 38]) / 2)
    np.testing.assert_allclose(got[:, 6], frames[:, [1, 31, 41]].mean(axis=1))
    mp = np.random.default_rng(0).normal(size=(3, 4, 478, 3))
    np.testing.assert_array_equal(gather_points(mp, "mediapipe478")[..., 9, :], mp[..., 62, :])


def _face(n_coords, rng):
    pts = np.array([[-0.45, -0.2, 0], [-0.3, -0.27, 0.02], [-0.15, -0.2, 0], [0.15, -0.2, 0],
                    [0.3, -0.27, 0.02], [0.45, -0.2, 0], [-0.4, 0.15, 0.05], [0.4, 0.15, 0.05],
                    [0, 0.1, 0.3], [-0.25, 0.45, 0.05], [0.25, 0.45, 0.05]])
    return (pts + rng.normal(scale=0.02, size=pts.shape))[:, :n_coords]


@pytest.mark.parametrize("n_coords", [2, 3])
def test_face_frame_properties(n_coords):
    pts = _face(n_coords, np.random.default_rng(1))
    origin, R, scale = face_frame(pts)
    np.testing.assert_allclose(R @ R.T, np.eye(n_coords), atol=1e-12)
    c1, c2 = (pts[0] + pts[2]) / 2, (pts[3] + pts[5]) / 2
    np.testing.assert_allclose(origin, (c1 + c2) / 2)
    assert scale == pytest.approx(np.linalg.norm(c2 - c1))
    aligned = align_points(pts)
    # Eye centres land on the horizontal axis at -1/2 and +1/2; the nose tip below the eye line.
    np.testing.assert_allclose((aligned[0] + aligned[2]) / 2, np.r_[-0.5, np.zeros(n_coords - 1)], atol=1e-12)
    np.testing.assert_allclose((aligned[3] + aligned[5]) / 2, np.r_[0.5, np.zeros(n_coords - 1)], atol=1e-12)
    assert aligned[8, 1] > 0
    if n_coords == 3:
        assert aligned[8, 2] == pytest.approx(0, abs=1e-12)  # the nose lies in the frontal plane


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_coords=st.sampled_from([2, 3]),
       scale=st.floats(0.01, 100), theta=st.floats(-np.pi, np.pi))
def test_alignment_removes_similarity_transforms(seed, n_coords, scale, theta):
    rng = np.random.default_rng(seed)
    pts = np.stack([_face(n_coords, rng) for _ in range(4)])
    if n_coords == 2:
        R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    else:
        R = _random_rotation(rng)  # any 3-D rotation, out of plane included
    moved = scale * pts @ R.T + rng.normal(scale=10, size=(4, 1, n_coords))
    np.testing.assert_allclose(align_points(moved), align_points(pts), atol=1e-9)


def test_align_other_points_with_given_frame():
    rng = np.random.default_rng(2)
    pts = _face(3, rng)
    extra = rng.normal(size=(5, 3))
    together = align_points(np.vstack([pts, extra]), frame_points=pts)
    np.testing.assert_allclose(together[:11], align_points(pts), atol=1e-12)


def test_degenerate_nose_on_eye_line_falls_back_to_image_vertical():
    pts = _face(3, np.random.default_rng(3))
    pts[8] = (pts[0] + pts[2] + pts[3] + pts[5]) / 4  # nose tip at the origin
    aligned = align_points(pts)
    assert np.isfinite(aligned).all()
    origin, R, _ = face_frame(pts)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)


def test_bad_coordinate_count():
    with pytest.raises(ValueError, match="2 or 3 coordinates; got 4"):
        face_frame(np.zeros((11, 4)))
