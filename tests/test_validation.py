"""Tests of check_landmarks: every accepted form of X, every error, and missing-frame interpolation."""

import warnings

import numpy as np
import pytest
from skorch.helper import SliceDict

from hadasklearn._validation import LandmarkData, check_landmarks, fill_missing_frames, interpolate_video
from hadasklearn.exceptions import LandmarkValidationError, MissingFramesWarning


def videos(lengths=(5, 7), n_landmarks=478, n_coords=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(t, n_landmarks, n_coords)).astype(np.float32) for t in lengths]


# --------------------------------------------------------------------------- accepted forms


def test_4d_array():
    X = np.zeros((3, 6, 478, 2))
    data = check_landmarks(X, scheme="mediapipe478")
    assert data.is_array and data.videos is X
    assert data.lengths.tolist() == [6, 6, 6] and (data.n_landmarks, data.n_coords) == (478, 2)


def test_list_of_variable_length_videos_and_nested_lists():
    X = videos()
    data = check_landmarks(X, scheme="mediapipe478")
    assert not data.is_array and data.lengths.tolist() == [5, 7]
    assert data.video(1) is X[1]
    nested = check_landmarks([v.tolist() for v in videos((3,), 11, 2)])
    assert nested.lengths.tolist() == [3] and nested.n_landmarks == 11


def test_object_array_of_videos():
    X = np.empty(2, dtype=object)
    X[0], X[1] = videos()
    assert check_landmarks(X).lengths.tolist() == [5, 7]


def test_mapping_and_slicedict_with_dmarkers_and_fps():
    X = videos((4, 6, 5))
    D = np.ones((3, 225))
    for container in (dict, SliceDict):
        data = check_landmarks(container(landmarks=np.array(X[:1] * 3), dmarkers=D, fps=np.array([25.0, 30, 50])))
        assert data.dmarkers.dtype == np.float64 and data.dmarkers.shape == (3, 225)
        assert data.fps.tolist() == [25.0, 30.0, 50.0]
    data = check_landmarks({"landmarks": X})
    assert data.dmarkers is None and data.fps is None


def test_memmap_list_stays_lazy(tmp_path):
    paths = []
    for i, v in enumerate(videos((4, 6))):
        path = tmp_path / f"v{i}.npy"
        np.save(path, v)
        paths.append(path)
    X = [np.load(p, mmap_mode="r") for p in paths]
    data = check_landmarks(X, scheme="mediapipe478")
    assert isinstance(data.video(0), np.memmap)
    got = data.gather([62, 308])
    assert got.shape == (2, 6, 2, 3) and got.dtype == np.float64
    np.testing.assert_array_equal(got[1], np.asarray(X[1])[:, [62, 308]])
    np.testing.assert_array_equal(got[0, 4:], np.repeat(got[0, 3:4], 2, axis=0))  # padding repeats


def test_take_and_gather_planes():
    X = videos((3, 5, 4))
    data = check_landmarks({"landmarks": X, "fps": [10, 20, 30]})
    sub = data.take([2, 0])
    assert sub.lengths.tolist() == [4, 3] and sub.fps.tolist() == [30, 10] and sub.video(0) is X[2]
    planes = data.gather_planes([1, 62])
    np.testing.assert_array_equal(np.moveaxis(planes, (0, 1), (2, 3)), data.gather([1, 62]))
    arr = check_landmarks(np.stack([x[:3] for x in X]))
    np.testing.assert_array_equal(np.moveaxis(arr.gather_planes([5]), (0, 1), (2, 3)), arr.gather([5]))
    assert isinstance(arr.take([1]), LandmarkData) and arr.take([1]).videos.shape[0] == 1


def test_int_coordinates_accepted():
    data = check_landmarks(np.ones((1, 3, 478, 2), dtype=np.int16))
    assert data.gather([0]).dtype == np.float64


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.zeros((5, 478, 3)), {}, "got a 3-D array of shape \\(5, 478, 3\\).*must be wrapped"),
        (np.zeros((5, 3)), {}, "got a 2-D array"),
        ("videos", {}, "got an object of type str"),
        (42, {}, "got an object of type int"),
        ([], {}, "contains no videos"),
        ({"dmarkers": 1}, {}, "must have the key 'landmarks'"),
        ({"landmarks": np.zeros((1, 3, 478, 3)), "labels": 1}, {}, "Unexpected key\\(s\\) \\['labels'\\]"),
        ([np.zeros((3, 478))], {}, "Video 0 must be a 3-D array"),
        ([np.zeros((3, 478, 3)), np.zeros((4, 468, 3))], {}, "video 0 has 478 landmarks x 3 coords but video 1 has 468 x 3"),
        ([np.zeros((3, 478, 3), dtype="U1")], {}, "numeric coordinates"),
        (np.zeros((1, 3, 478, 3), dtype=bool), {}, "must be numeric"),
        (np.zeros((1, 3, 478, 5)), {}, "2 \\(x, y\\) or 3 \\(x, y, z\\) coordinates; got 5"),
        (np.zeros((1, 3, 68, 3)), {"scheme": "mediapipe478"}, "expects 478 landmarks per frame; got 68.*ibug68"),
        (np.zeros((1, 3, 478, 3)), {"scheme": "ibug68"}, "expects 68 landmarks per frame; got 478"),
        (np.zeros((1, 3, 478, 3)), {"n_landmarks": 468}, "478 landmarks per frame, but 468 were expected"),
        (np.zeros((1, 3, 478, 3)), {"n_coords": 2}, "3 coordinates per landmark, but 2 were expected"),
        ([np.zeros((3, 478, 3)), np.zeros((2, 478, 3))], {}, "Video 1 has 2 frame\\(s\\); at least 3"),
        ({"landmarks": np.zeros((2, 3, 478, 3)), "dmarkers": np.zeros((3, 225))}, {}, "must have shape \\(n_videos=2"),
        ({"landmarks": np.zeros((1, 3, 478, 3)), "dmarkers": np.zeros((1, 10))}, {"n_dmarkers": 225}, "must have 225 columns; got 10"),
        ({"landmarks": np.zeros((1, 3, 478, 3)), "dmarkers": np.full((1, 2), np.nan)}, {}, "finite numbers"),
        ({"landmarks": np.zeros((2, 3, 478, 3)), "fps": [25.0]}, {}, "one positive finite frame rate per video \\(2\\)"),
        ({"landmarks": np.zeros((1, 3, 478, 3)), "fps": [0.0]}, {}, "positive finite frame rate"),
    ],
)
def test_errors(X, kwargs, match):
    with pytest.raises(LandmarkValidationError, match=match):
        check_landmarks(X, **kwargs)


def test_sparse_input_is_refused():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(LandmarkValidationError, match="Sparse input is not supported"):
        check_landmarks(sparse.csr_matrix(np.ones((3, 3))))


def _video_with(frames, value, t=6):
    v = np.random.default_rng(0).normal(size=(1, t, 4, 2))
    v[0][frames] = value
    return v


def test_value_errors_in_gather_and_full_scan():
    data = check_landmarks(_video_with((2, 1, 0), np.inf))
    with pytest.raises(LandmarkValidationError, match="Video 0 has infinite .*first at frame 2"):
        data.gather([1])
    with pytest.raises(LandmarkValidationError, match="infinite"):
        check_landmarks(_video_with((2, 1, 0), np.inf), check_values=True)
    with pytest.raises(LandmarkValidationError, match="Video 0, frame 3 has NaN in some but not all"):
        check_landmarks(_video_with((3, 1, 0), np.nan)).gather([0, 1])
    with pytest.raises(LandmarkValidationError, match="some but not all"):
        check_landmarks(_video_with((3, 1, 0), np.nan), check_values=True)
    with pytest.raises(LandmarkValidationError, match="no frame with a face"):
        check_landmarks(_video_with(slice(None), np.nan)).gather([0])
    with pytest.raises(LandmarkValidationError, match="no frame with a face"):
        check_landmarks(_video_with(slice(None), np.nan), check_values=True)
    with pytest.raises(LandmarkValidationError, match="1 frame\\(s\\) without a face.*first at frame 4"):
        check_landmarks(_video_with(4, np.nan)).gather([0], missing="raise")
    with pytest.raises(LandmarkValidationError, match="missing='interpolate'"):
        check_landmarks(_video_with(4, np.nan), check_values=True, missing="raise")
    with pytest.raises(ValueError, match="missing must be one of"):
        check_landmarks(_video_with(4, np.nan)).gather([0], missing="drop")
    # Landmarks that are not read are not checked by gather.
    assert np.isfinite(check_landmarks(_video_with((3, 1, 0), np.nan)).gather([2, 3])).all()


# --------------------------------------------------------------------------- interpolation


def test_interpolation_inner_leading_and_trailing_frames():
    t = np.arange(8, dtype=float)
    video = np.stack([t, 2 * t], axis=-1)[:, None, :].repeat(3, axis=1)  # (8, 3, 2), linear in time
    holed = video.copy()
    holed[[0, 1, 3, 4, 7]] = np.nan
    with pytest.warns(MissingFramesWarning, match="5 frame\\(s\\) without a face in 1 video"):
        got = check_landmarks([holed]).gather([0, 2])
    expected = video[:, [0, 2]].copy()
    expected[[0, 1]] = video[2, [0, 2]]  # leading frames take the first valid one
    expected[7] = video[6, [0, 2]]  # trailing frames take the last valid one
    np.testing.assert_allclose(got[0], expected)  # inner frames 3, 4: exact linear interpolation


def test_interpolation_of_padded_list_and_last_frame():
    a = np.arange(5.0)[:, None, None].repeat(2, axis=1).repeat(2, axis=2)
    b = np.arange(3.0)[:, None, None].repeat(2, axis=1).repeat(2, axis=2)
    b[2] = np.nan
    with pytest.warns(MissingFramesWarning):
        got = check_landmarks([a, b], min_frames=3).gather([0, 1])
    np.testing.assert_allclose(got[1, :, 0, 0], [0, 1, 1, 1, 1])  # filled last frame, then padding


def test_fill_missing_frames_in_place_and_interpolate_video():
    v = np.arange(6.0).reshape(1, 6, 1, 1)
    v[0, 2:4] = np.nan
    with pytest.warns(MissingFramesWarning):
        out = fill_missing_frames(v, np.array([6]))
    assert out is v and v.ravel().tolist() == [0, 1, 2, 3, 4, 5]
    video = np.arange(5.0)[:, None, None].repeat(2, axis=2)
    video[1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filled = interpolate_video(video)
    assert filled is not video and filled[:, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(video[1]).all()  # the input is untouched
    clean = np.ones((3, 2, 2))
    assert interpolate_video(clean) is clean
