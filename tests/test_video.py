"""Tests of hadasklearn.video on a real face photo and on videos made from it."""

import math
import os
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from hadasklearn.exceptions import MissingFramesWarning
from hadasklearn.video import (
    VideoLandmarks,
    extract_landmarks,
    extract_landmarks_from_image,
    write_landmark_npy,
)

MISSING = "MediaPipe (the optional extra hadasklearn[video]) is not installed"

# MediaPipe Face Mesh indices: nose tip, lip corners, eye corners (subject's right eye is on the image's left).
NOSE_TIP, LIP_CORNER_R, LIP_CORNER_L = 1, 62, 308
EYE_R_OUTER, EYE_L_OUTER = 33, 263
EYE_POINTS = [33, 133, 159, 145, 263, 362, 386, 374]
MOUTH_POINTS = [13, 14, 61, 291, 0, 17]

SIZE = 256  # side of the test video frames, in pixels
FACE_ORIGIN = (97, 12)  # top-left corner of the crop of the astronaut photo around her face
FPS = 25.0


@pytest.fixture(scope="module")
def cv2():
    pytest.importorskip("mediapipe", reason=MISSING)
    import cv2

    return cv2


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut

    return astronaut()


@pytest.fixture(scope="module")
def astronaut_faces(cv2, astronaut):
    return extract_landmarks_from_image(astronaut)


def _affine(angle_deg, shift, centre):
    """2x3 matrix: rotate by angle_deg (counter-clockwise on screen) about centre, then shift."""
    t = math.radians(angle_deg)
    a, b = math.cos(t), math.sin(t)
    cx, cy = centre
    return np.array(
        [[a, b, (1 - a) * cx - b * cy + shift[0]], [-b, a, b * cx + (1 - a) * cy + shift[1]]]
    )


def write_video(cv2, path, frames, fourcc="mp4v"):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (width, height))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def face_frames(cv2, image, motions):
    """Frames of SIZE x SIZE around the face, each moved by (angle, (dx, dy)) in the full photo."""
    x0, y0 = FACE_ORIGIN
    centre = (x0 + SIZE / 2, y0 + SIZE / 2)
    frames, matrices = [], []
    for angle, shift in motions:
        m = _affine(angle, shift, centre)
        warped = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR)
        frames.append(warped[y0 : y0 + SIZE, x0 : x0 + SIZE])
        matrices.append(m)
    return frames, matrices


def gradient_frames(n):
    ramp = np.linspace(0, 255, SIZE, dtype=np.float32)
    horizontal, vertical = np.meshgrid(ramp, ramp)
    frame = np.stack([horizontal, vertical, np.full_like(ramp, 128)[None].repeat(SIZE, 0)], -1)
    return [np.roll(frame, 4 * k, axis=1).astype(np.uint8) for k in range(n)]


# ---------------------------------------------------------------- still image


def test_astronaut_has_one_face_with_anatomical_layout(astronaut_faces):
    assert astronaut_faces.shape == (1, 478, 3)
    assert astronaut_faces.dtype == np.float32
    face = astronaut_faces[0]
    assert np.all(np.isfinite(face))
    assert np.all((face[:, :2] >= 0) & (face[:, :2] <= 1))
    x, y = face[:, 0], face[:, 1]
    # y points down: eyes above the mouth means smaller y.
    assert y[EYE_POINTS].max() < y[MOUTH_POINTS].min()
    assert x[LIP_CORNER_R] < x[NOSE_TIP] < x[LIP_CORNER_L]
    assert min(y[LIP_CORNER_R], y[LIP_CORNER_L]) > max(y[EYE_R_OUTER], y[EYE_L_OUTER])
    assert min(y[LIP_CORNER_R], y[LIP_CORNER_L]) > y[NOSE_TIP]
    # A frontal face: the subject's right eye appears on the image's left.
    assert x[EYE_R_OUTER] < x[EYE_L_OUTER]
    # The face of the astronaut photo lies in the upper left quarter-ish of the 512x512 image.
    centre = face[:, :2].mean(0)
    assert 0.3 < centre[0] < 0.55 and 0.15 < centre[1] < 0.35


def test_refine_false_gives_468_landmarks_matching_the_refined_ones(astronaut, astronaut_faces):
    base = extract_landmarks_from_image(astronaut, refine=False)
    assert base.shape == (1, 468, 3)
    # Same face, same image: the shared mesh points agree to within a few pixels of 512.
    assert np.abs(base[0, :, :2] - astronaut_faces[0, :468, :2]).max() < 6 / 512


def test_float_and_grayscale_images_are_accepted(astronaut, astronaut_faces):
    as_float = extract_landmarks_from_image(astronaut / 255.0)
    np.testing.assert_allclose(as_float, astronaut_faces, atol=1e-6)
    gray = extract_landmarks_from_image(astronaut.mean(-1).astype(np.uint8))
    assert gray.shape == (1, 478, 3)
    assert np.abs(gray[0, :, :2] - astronaut_faces[0, :, :2]).max() < 0.02


def test_fast_protobuf_reading_matches_attribute_reading(cv2, astronaut):
    from mediapipe.framework.formats import landmark_pb2

    from hadasklearn.video import _face_mesh, _face_to_array, _quiet_protobuf

    with _face_mesh(static=True, refine=True, max_faces=1) as mesh, _quiet_protobuf():
        face = mesh.process(astronaut).multi_face_landmarks[0]
    slow = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
    fast = _face_to_array(face)
    assert fast.shape == (478, 3) and fast.dtype == np.float32
    np.testing.assert_array_equal(fast, slow)
    # A landmark list with extra fields set must take the attribute path and still be right.
    extra = landmark_pb2.NormalizedLandmarkList()
    extra.CopyFrom(face)
    extra.landmark[5].visibility = 0.5
    extra.landmark[7].x = 0.0
    expected = slow.copy()
    expected[7, 0] = 0.0
    np.testing.assert_array_equal(_face_to_array(extra), expected)


def test_no_face_in_a_flat_image(cv2):
    faces = extract_landmarks_from_image(np.full((128, 128, 3), 127, np.uint8), max_faces=2)
    assert faces.shape == (0, 478, 3)


@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((4, 4, 2), np.uint8), ValueError, r"\(height, width, 3\).*got shape \(4, 4, 2\)"),
        (np.zeros((4,), np.uint8), ValueError, "got shape"),
        (np.full((4, 4, 3), 2.0), ValueError, r"in \[0, 1\]"),
        (np.full((4, 4, 3), np.nan), ValueError, "NaN or infinite"),
        (np.zeros((4, 4, 3), np.int64), TypeError, "dtype uint8"),
    ],
)
def test_bad_images_are_rejected_before_mediapipe_runs(image, error, match):
    with pytest.raises(error, match=match):
        extract_landmarks_from_image(image)


@pytest.mark.parametrize("kwargs", [{"max_faces": 0}, {"max_faces": 1.5}, {"refine": "yes"}])
def test_bad_options_are_rejected(kwargs):
    with pytest.raises((ValueError, TypeError), match="max_faces|refine"):
        extract_landmarks_from_image(np.zeros((8, 8, 3), np.uint8), **kwargs)


def test_missing_mediapipe_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "hadasklearn\[video\]"'):
        extract_landmarks_from_image(np.zeros((8, 8, 3), np.uint8))


# ---------------------------------------------------------------- video


@pytest.fixture(scope="module")
def moving_face_video(cv2, astronaut, tmp_path_factory):
    rng = np.random.default_rng(0)
    motions = [(0.0, (0, 0))] + [
        (float(rng.uniform(-6, 6)), tuple(int(v) for v in rng.integers(-8, 9, 2))) for _ in range(11)
    ]
    frames, matrices = face_frames(cv2, astronaut, motions)
    path = write_video(cv2, tmp_path_factory.mktemp("video") / "face.mp4", frames)
    return path, motions, matrices


@pytest.mark.parametrize("tracking", [True, False])
def test_video_round_trip_recovers_motion(moving_face_video, tracking):
    path, motions, matrices = moving_face_video
    result = extract_landmarks(path, tracking=tracking)
    assert isinstance(result, VideoLandmarks)
    landmarks, fps = result
    assert landmarks.shape == (len(motions), 478, 3) and landmarks.dtype == np.float32
    assert fps == pytest.approx(FPS)
    assert np.all(np.isfinite(landmarks))
    x0, y0 = FACE_ORIGIN
    pixels = landmarks[:, :, :2] * SIZE + [x0, y0]  # back to the full photo's pixel grid
    centroid0 = pixels[0].mean(0)
    eye0 = pixels[0, EYE_L_OUTER] - pixels[0, EYE_R_OUTER]
    for k, m in enumerate(matrices):
        # An affine warp maps the centroid of the points to the warped centroid.
        expected = m[:, :2] @ centroid0 + m[:, 2]
        assert np.abs(pixels[k].mean(0) - expected).max() < 1.5, k
        eye = pixels[k, EYE_L_OUTER] - pixels[k, EYE_R_OUTER]
        turned = math.degrees(math.atan2(eye[1], eye[0]) - math.atan2(eye0[1], eye0[0]))
        # Counter-clockwise on screen (y down) lowers the on-screen angle of the eye line.
        assert turned == pytest.approx(-motions[k][0], abs=1.5), k


def test_max_faces_above_one_adds_a_face_axis(moving_face_video):
    path, motions, _ = moving_face_video
    landmarks, _ = extract_landmarks(path, max_faces=2)
    assert landmarks.shape == (len(motions), 2, 478, 3)
    assert np.all(np.isfinite(landmarks[:, 0])) and np.all(np.isnan(landmarks[:, 1]))


def test_video_without_face_is_all_nan_and_warns(cv2, tmp_path):
    path = write_video(cv2, tmp_path / "gradient.avi", gradient_frames(8), fourcc="MJPG")
    with pytest.warns(MissingFramesWarning, match=r"8 of 8 frames .*gradient\.avi.* no face"):
        landmarks, fps = extract_landmarks(path)
    assert landmarks.shape == (8, 478, 3)
    assert np.all(np.isnan(landmarks))


def test_frames_without_face_are_nan_rows_and_counted(cv2, astronaut, tmp_path):
    faces, _ = face_frames(cv2, astronaut, [(0.0, (0, 0))] * 6)
    empty = gradient_frames(6)
    frames = faces[:3] + empty[:2] + faces[3:]
    path = write_video(cv2, tmp_path / "gap.mp4", frames)
    with pytest.warns(MissingFramesWarning, match="2 of 8 frames"):
        landmarks, _ = extract_landmarks(path)
    lost = np.isnan(landmarks).all(axis=(1, 2))
    np.testing.assert_array_equal(lost, [0, 0, 0, 1, 1, 0, 0, 0])
    assert not np.isnan(landmarks[~lost]).any()


def test_video_with_faces_everywhere_does_not_warn(moving_face_video):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract_landmarks(moving_face_video[0])


def test_progress_bar_goes_to_stderr(moving_face_video, capsys):
    extract_landmarks(moving_face_video[0], progress=True)
    assert "face.mp4" in capsys.readouterr().err


def test_unreadable_file_gives_clear_error(cv2, tmp_path):
    bogus = tmp_path / "notavideo.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(OSError, match=r"notavideo\.mp4.*(video|decode)"):
        extract_landmarks(bogus)


def test_missing_file_and_directory_are_named(cv2, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mp4"):
        extract_landmarks(tmp_path / "nothere.mp4")
    with pytest.raises(IsADirectoryError, match="directory"):
        extract_landmarks(tmp_path)


# ---------------------------------------------------------------- atomic writing


@settings(max_examples=25, deadline=None)
@given(array=hnp.arrays(dtype=hnp.floating_dtypes(), shape=hnp.array_shapes(min_dims=1, max_dims=3)))
def test_write_landmark_npy_round_trips_exactly(tmp_path_factory, array):
    folder = tmp_path_factory.mktemp("npy")
    path = write_landmark_npy(folder / "v.mp4.npy", array)
    assert path == folder / "v.mp4.npy"
    loaded = np.load(path)
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)
    assert os.listdir(folder) == ["v.mp4.npy"]  # no temporary file left, no extra suffix


def test_write_landmark_npy_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "v.mp4.npy"
    write_landmark_npy(target, np.ones((2, 478, 3), np.float32))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_landmark_npy(target, np.zeros((5, 478, 3), np.float32))
    assert np.load(target).shape == (2, 478, 3)  # the old file is intact
    assert os.listdir(tmp_path) == ["v.mp4.npy"]  # and the temporary file is gone


def test_write_landmark_npy_rejects_ragged_input(tmp_path):
    with pytest.raises((TypeError, ValueError)):
        write_landmark_npy(tmp_path / "x.npy", [np.zeros(2), np.zeros(3)])
    assert os.listdir(tmp_path) == []
