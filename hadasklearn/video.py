"""Videos and images to MediaPipe Face Mesh landmarks (optional extra ``hadasklearn[video]``).

Everything runs offline: the Face Mesh model ships inside the ``mediapipe`` wheel.
"""

import contextlib
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .exceptions import MissingFramesWarning

__all__ = [
    "VideoLandmarks",
    "extract_landmarks",
    "extract_landmarks_from_image",
    "write_landmark_npy",
]

#: Number of Face Mesh landmarks with and without the refined iris points.
N_LANDMARKS_REFINED = 478
N_LANDMARKS_BASE = 468

_INSTALL_HINT = (
    "The video front end needs MediaPipe, which is an optional dependency of hadasklearn. "
    'Install it with: pip install "hadasklearn[video]"'
)


class VideoLandmarks(NamedTuple):
    """Landmarks of one video and its frame rate, as returned by :func:`extract_landmarks`.

    Attributes
    ----------
    landmarks : ndarray of shape (n_frames, n_landmarks, 3), dtype float32
        MediaPipe-normalised coordinates per frame: ``x`` and ``y`` as fractions of the
        image width and height (origin top left, ``y`` pointing down), ``z`` the relative
        depth MediaPipe returns (same scale as ``x``, smaller is closer to the camera).
        Frames without a face are rows of NaN. With ``max_faces > 1`` the shape is
        ``(n_frames, max_faces, n_landmarks, 3)``.
    fps : float or None
        Frame rate stored in the container, or None when the container does not give one.
    """

    landmarks: np.ndarray
    fps: Optional[float]


def _import_mediapipe():
    try:
        with _quiet_protobuf():
            import mediapipe
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return mediapipe


def _import_cv2():
    # mediapipe brings opencv-contrib's cv2; it is the only video reader we rely on.
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return cv2


@contextlib.contextmanager
def _quiet_protobuf():
    # protobuf>=4.25 deprecates an API that mediapipe 0.10.14 calls on every frame; the warning
    # is not actionable for our users and breaks test runs under -W error.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning
        )
        yield


def _check_options(refine, max_faces):
    if not isinstance(refine, (bool, np.bool_)):
        raise TypeError(f"refine must be True or False, got {refine!r} ({type(refine).__name__}).")
    if isinstance(max_faces, bool) or not isinstance(max_faces, (int, np.integer)) or max_faces < 1:
        raise ValueError(f"max_faces must be an integer >= 1, got {max_faces!r}.")
    return N_LANDMARKS_REFINED if refine else N_LANDMARKS_BASE


def _face_mesh(*, static, refine, max_faces):
    mp = _import_mediapipe()
    with _quiet_protobuf():
        return mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=int(max_faces),
            refine_landmarks=bool(refine),
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )


def _process(mesh, rgb, n_landmarks, max_faces):
    """Run ``mesh`` on one RGB uint8 image; return (max_faces, n_landmarks, 3) NaN-padded and the count."""
    out = np.full((max_faces, n_landmarks, 3), np.nan, dtype=np.float32)
    with _quiet_protobuf():
        result = mesh.process(rgb)
    faces = result.multi_face_landmarks or []
    for i, face in enumerate(faces[:max_faces]):
        out[i] = _face_to_array(face)
    return out, min(len(faces), max_faces)


# A NormalizedLandmark holding exactly x, y and z serialises to 17 bytes: the message tag (0x0A),
# its length (15), then three fixed32 fields tagged 0x0D, 0x15 and 0x1D, little-endian floats.
_WIRE_TAG_BYTES = [0, 1, 2, 7, 12]
_WIRE_TAGS = np.array([0x0A, 15, 0x0D, 0x15, 0x1D], dtype=np.uint8)
_WIRE_FLOAT_BYTES = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def _face_to_array(face):
    """(n_landmarks, 3) float32 from a NormalizedLandmarkList.

    Reading 478 x 3 protobuf attributes in Python costs ~1.7 ms per frame; reading the floats
    from the serialised bytes costs ~0.1 ms. The layout is checked byte by byte and anything
    else (e.g. visibility fields set) takes the attribute path.
    """
    n = len(face.landmark)
    raw = np.frombuffer(face.SerializeToString(), dtype=np.uint8)
    if raw.size == 17 * n:
        records = raw.reshape(n, 17)
        if np.array_equal(records[:, _WIRE_TAG_BYTES], np.broadcast_to(_WIRE_TAGS, (n, 5))):
            return records[:, _WIRE_FLOAT_BYTES].copy().view("<f4").astype(np.float32, copy=False)
    return np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)


def _as_rgb_uint8(image):
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(
            "image must be an RGB array of shape (height, width, 3), an RGBA array (height, width, 4) "
            f"or a grayscale array (height, width); got shape {arr.shape}."
        )
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise ValueError(
                f"A floating-point image must hold finite values in [0, 1]; got {n_bad} NaN or "
                "infinite value(s). Replace them before extracting landmarks."
            )
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(
                "A floating-point image must hold values in [0, 1]; got values in "
                f"[{arr.min()}, {arr.max()}]. Pass a uint8 image (0..255) or rescale it."
            )
        return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))
    raise TypeError(
        f"image must have dtype uint8 (0..255) or float in [0, 1]; got dtype {arr.dtype}."
    )


def extract_landmarks_from_image(image, *, refine=True, max_faces=1):
    """Run MediaPipe Face Mesh on one still image.

    Parameters
    ----------
    image : array-like of shape (height, width, 3)
        RGB image (not OpenCV's BGR order), dtype uint8 or float in [0, 1]. Grayscale
        ``(height, width)`` and RGBA ``(height, width, 4)`` images are accepted too.
    refine : bool, default=True
        Use the attention model with refined lips, eyes and irises: 478 landmarks.
        With False the 468-landmark model is used.
    max_faces : int, default=1
        Largest number of faces to look for.

    Returns
    -------
    landmarks : ndarray of shape (n_faces, n_landmarks, 3), dtype float32
        One block per face found (``0 <= n_faces <= max_faces``), in MediaPipe-normalised
        coordinates (see :class:`VideoLandmarks`). ``n_faces`` is 0 when no face is found.

    Raises
    ------
    ImportError
        If MediaPipe (the ``video`` extra) is not installed.
    ValueError
        If ``image`` does not have one of the accepted shapes or value ranges.

    See Also
    --------
    extract_landmarks : The same for every frame of a video.

    Examples
    --------
    >>> from skimage.data import astronaut
    >>> from hadasklearn.video import extract_landmarks_from_image
    >>> faces = extract_landmarks_from_image(astronaut())  # doctest: +SKIP
    >>> faces.shape  # doctest: +SKIP
    (1, 478, 3)
    """
    n_landmarks = _check_options(refine, max_faces)
    rgb = _as_rgb_uint8(image)
    with _face_mesh(static=True, refine=refine, max_faces=max_faces) as mesh:
        out, n_found = _process(mesh, rgb, n_landmarks, max_faces)
    return out[:n_found]


def _read_landmarks(path, *, refine, tracking, max_faces, progress):
    """Extract without warning; return (landmarks 4-D, fps, n_frames_without_face)."""
    n_landmarks = _check_options(refine, max_faces)
    cv2 = _import_cv2()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Video file not found: '{path}'.")
    if path.is_dir():
        raise IsADirectoryError(f"Expected a video file, got the directory '{path}'.")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise OSError(
                f"Could not open '{path}' as a video: OpenCV/FFmpeg does not recognise its format. "
                "Check that the file is a complete video (e.g. .mp4, .avi, .mov) and not truncated."
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        fps = fps if math.isfinite(fps) and fps > 0 else None
        n_expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        from tqdm.auto import tqdm

        frames = []
        n_missing = 0
        with (
            tqdm(total=n_expected if n_expected > 0 else None, desc=path.name, unit="frame",
                 disable=not progress) as bar,
            _face_mesh(static=not tracking, refine=refine, max_faces=max_faces) as mesh,
        ):
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                lm, n_found = _process(mesh, rgb, n_landmarks, max_faces)
                frames.append(lm)
                n_missing += n_found == 0
                bar.update(1)
    finally:
        capture.release()
    if not frames:
        raise OSError(
            f"Could not decode any frame from '{path}': the file is empty, truncated or not a video "
            "that OpenCV/FFmpeg can read."
        )
    return np.stack(frames), fps, n_missing


def extract_landmarks(path, *, refine=True, tracking=True, max_faces=1, progress=False):
    """Run MediaPipe Face Mesh on every frame of a video file.

    Parameters
    ----------
    path : str or path-like
        Video file in any format the OpenCV build shipped with MediaPipe decodes
        (mp4/H.264, avi/MJPG, mov, ...).
    refine : bool, default=True
        Use the attention model with refined lips, eyes and irises (478 landmarks, the
        layout of the ``"mediapipe478"`` scheme). With False the 468-landmark model is used.
    tracking : bool, default=True
        Track the face from frame to frame (MediaPipe's video mode): detection runs only when
        tracking is lost, which is faster and temporally smoother. With False every frame is
        processed as an independent still image.
    max_faces : int, default=1
        Largest number of faces per frame. With 1 (the default) the landmarks have shape
        ``(n_frames, n_landmarks, 3)``; with more, ``(n_frames, max_faces, n_landmarks, 3)`` with
        NaN blocks for absent faces.
    progress : bool, default=False
        Show a per-frame progress bar (tqdm).

    Returns
    -------
    result : VideoLandmarks
        Named tuple ``(landmarks, fps)``: float32 landmarks in MediaPipe-normalised coordinates
        with NaN rows for frames without a face, and the container's frame rate (None when
        unknown). Unpack it as ``landmarks, fps = extract_landmarks(path)``.

    Raises
    ------
    ImportError
        If MediaPipe (the ``video`` extra) is not installed.
    FileNotFoundError
        If ``path`` does not exist.
    OSError
        If the file cannot be opened as a video or no frame can be decoded from it.

    Warns
    -----
    MissingFramesWarning
        When some frames contain no face, with their count. Their landmarks are NaN; the
        missing-frame policy of :class:`~hadasklearn.DMarkerTransformer` interpolates or rejects them.

    See Also
    --------
    extract_landmarks_from_image : The same for one still image.
    write_landmark_npy : Save the landmarks in the ``load_landmark_folder`` layout.

    Examples
    --------
    >>> from hadasklearn.video import extract_landmarks
    >>> landmarks, fps = extract_landmarks("smile.mp4")  # doctest: +SKIP
    >>> landmarks.shape, landmarks.dtype  # doctest: +SKIP
    ((250, 478, 3), dtype('float32'))
    """
    landmarks, fps, n_missing = _read_landmarks(
        path, refine=refine, tracking=tracking, max_faces=max_faces, progress=progress
    )
    if n_missing:
        warnings.warn(
            f"{n_missing} of {len(landmarks)} frames of '{path}' contain no face; "
            "their landmarks are NaN.",
            MissingFramesWarning,
            stacklevel=2,
        )
    if max_faces == 1:
        landmarks = landmarks[:, 0]
    return VideoLandmarks(landmarks, fps)


def _default_file_mode():
    # mkstemp creates 0600 files; give the result the mode a plain open() would (0666 & ~umask).
    # Reading the umask means setting it, so do it once, at first use.
    global _FILE_MODE
    if _FILE_MODE is None:
        umask = os.umask(0o022)
        os.umask(umask)
        _FILE_MODE = 0o666 & ~umask
    return _FILE_MODE


_FILE_MODE = None


def write_landmark_npy(path, array):
    """Save an array as ``.npy`` atomically: readers never see a partial file.

    The array is written to a temporary file in the destination folder and then renamed
    over ``path`` (:func:`os.replace`), so an interrupted run leaves either the old file or
    none, which is what makes ``hadasklearn extract`` safely resumable.

    Parameters
    ----------
    path : str or path-like
        Destination, used verbatim (no ``.npy`` suffix is appended). Its folder must exist.
    array : array-like
        The data, e.g. landmarks of shape ``(n_frames, 478, 3)``.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from hadasklearn.video import write_landmark_npy
    >>> folder = tempfile.mkdtemp()
    >>> out = write_landmark_npy(os.path.join(folder, "a.mp4.npy"), np.zeros((2, 478, 3), np.float32))
    >>> np.load(out).shape
    (2, 478, 3)
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype == object:
        raise TypeError("array must be a numeric array; got dtype object (ragged or mixed input?).")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
