"""``check_landmarks``: the one validator that turns every accepted form of ``X`` into :class:`LandmarkData`."""

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .exceptions import LandmarkValidationError, MissingFramesWarning
from .landmarks import get_scheme

__all__ = ["LandmarkData", "check_landmarks", "fill_missing_frames", "interpolate_video"]

_MISSING_POLICIES = ("interpolate", "raise")
# Frames per block in ``LandmarkData.gather_planes``: the ~11 cache lines a frame's selected
# landmarks occupy, times this, stay well inside a 1 MiB L2 cache.
_GATHER_BLOCK = 1024
_FORMS_HELP = (
    "Accepted forms: a 4-D float array (n_videos, n_frames, n_landmarks, n_coords); a list of "
    "per-video arrays (n_frames_i, n_landmarks, n_coords); or a dict/SliceDict with key "
    "'landmarks' (one of those) and optionally 'dmarkers' (n_videos, n_dmarkers)."
)


@dataclass
class LandmarkData:
    """Validated landmark videos: the internal form every entry point works on.

    Built by :func:`check_landmarks`; not meant to be constructed by hand.

    Parameters
    ----------
    videos : ndarray of shape (n_videos, n_frames, n_landmarks, n_coords) or list of ndarray
        The caller's arrays, not copied (a 4-D array stays one array; memory maps stay lazy).
    lengths : ndarray of shape (n_videos,)
        Frames per video.
    n_landmarks, n_coords : int
        Landmarks per frame and coordinates per landmark.
    dmarkers : ndarray of shape (n_videos, n_dmarkers) or None
        Precomputed D-Markers when ``X`` was a mapping that carried them.
    is_array : bool
        Whether ``videos`` is one 4-D array.
    fps : ndarray of shape (n_videos,) or None
        Per-video frame rates when ``X`` was a mapping with key ``"fps"``.
    """

    videos: object
    lengths: np.ndarray
    n_landmarks: int
    n_coords: int
    dmarkers: np.ndarray | None = None
    is_array: bool = False
    fps: np.ndarray | None = None

    def __len__(self):
        return len(self.lengths)

    def video(self, i):
        """The i-th video as an array ``(n_frames_i, n_landmarks, n_coords)``."""
        return self.videos[i]

    def take(self, indices):
        """A new :class:`LandmarkData` holding the videos at ``indices``."""
        indices = np.asarray(indices, dtype=np.intp)
        videos = self.videos[indices] if self.is_array else [self.videos[i] for i in indices]
        return LandmarkData(
            videos,
            self.lengths[indices],
            self.n_landmarks,
            self.n_coords,
            None if self.dmarkers is None else self.dmarkers[indices],
            self.is_array,
            None if self.fps is None else self.fps[indices],
        )

    def gather(self, landmark_index, *, missing="interpolate"):
        """Selected landmarks of every video, padded: ``(n_videos, max_frames, k, n_coords)`` float64.

        Values are checked here (only the landmarks read): infinities and partially missing frames
        raise; frames whose selected landmarks are all NaN are filled by ``missing`` (see
        :func:`fill_missing_frames`). Frames past a video's length repeat its last frame, so
        downstream arithmetic stays finite; use ``lengths`` to mask them.
        """
        index = np.asarray(landmark_index, dtype=np.intp)
        n, t_max = len(self), int(self.lengths.max())
        if self.is_array:
            out = np.asarray(self.videos[:, :, index, :], dtype=np.float64)
        else:
            out = np.empty((n, t_max, len(index), self.n_coords), dtype=np.float64)
            for i, video in enumerate(self.videos):
                t = self.lengths[i]
                out[i, :t] = video[:, index, :]
                if t < t_max:
                    out[i, t:] = out[i, t - 1]
        return fill_missing_frames(out, self.lengths, missing=missing)


    def gather_planes(self, landmark_index, videos=None):
        """Selected landmarks as coordinate planes ``(k, n_coords, n_videos, max_frames)`` float64.

        The layout suits per-frame arithmetic: every ``[j, c]`` plane is a contiguous
        ``(n_videos, max_frames)`` array. Values are **not** checked; callers that detect a
        non-finite result fall back to :meth:`gather`, which validates and fills missing frames.
        Frames past a video's length repeat its last frame. ``videos``, a slice, restricts the
        result to those videos (padded to their own longest), without copying the others.
        """
        index = np.asarray(landmark_index, dtype=np.intp)
        videos = slice(None) if videos is None else videos
        lengths = self.lengths[videos]
        n, t_max = len(lengths), int(lengths.max())
        out = np.empty((len(index), self.n_coords, n, t_max), dtype=np.float64)
        if self.is_array:
            # Copy one strided column per (landmark, coordinate), a block of frames at a time: the
            # few cache lines holding a landmark are then still cached when its next coordinate is
            # read (reading whole frames would move ~40x more memory than the 11 points need).
            source = self.videos[videos]
            step = max(1, _GATHER_BLOCK // t_max)
            for v in range(0, n, step):
                block = source[v : v + step]
                for j, i in enumerate(index):
                    for c in range(self.n_coords):
                        out[j, c, v : v + step] = block[:, :, i, c]
        else:
            for v, video in enumerate(self.videos[videos]):
                t = lengths[v]
                out[:, :, v, :t] = np.moveaxis(np.asarray(video[:, index, :]), 0, -1)
                if t < t_max:
                    out[:, :, v, t:] = out[:, :, v, t - 1 : t]
        return out


def _frame_pattern(values, lengths):
    """Per frame: any-NaN, all-NaN, any-inf masks over the landmark and coordinate axes."""
    nan = np.isnan(values)
    any_nan = nan.any(axis=(-2, -1))
    all_nan = nan.all(axis=(-2, -1))
    inf = np.isinf(values).any(axis=(-2, -1))
    in_video = np.arange(values.shape[1])[None, :] < lengths[:, None]
    return any_nan & in_video, all_nan & in_video, inf & in_video


def fill_missing_frames(values, lengths, *, missing="interpolate"):
    """Check frame values and fill frames without a face by linear interpolation over time.

    Parameters
    ----------
    values : ndarray of shape (n_videos, n_frames, n_points, n_coords)
        Modified in place (float dtype) and returned.
    lengths : ndarray of shape (n_videos,)
    missing : {"interpolate", "raise"}
        ``"interpolate"``: all-NaN frames are linearly interpolated between the nearest valid
        frames; leading/trailing ones take the first/last valid frame. ``"raise"``: any all-NaN
        frame is an error.

    Raises
    ------
    LandmarkValidationError
        Infinite values; frames with some but not all values NaN; a video with no valid frame;
        any missing frame under ``missing="raise"``. Messages name the video index and frame.

    Examples
    --------
    >>> v = np.arange(4.0).reshape(1, 4, 1, 1); v[0, 1] = np.nan
    >>> fill_missing_frames(v, np.array([4])).ravel().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    if missing not in _MISSING_POLICIES:
        raise ValueError(f"missing must be one of {_MISSING_POLICIES}; got {missing!r}.")
    lengths = np.asarray(lengths)
    # Fast path: one pass over the values when nothing is missing (the common case); the
    # per-frame masks below cost several passes over small trailing axes.
    if np.isfinite(values).all():
        return values
    any_nan, all_nan, inf = _frame_pattern(values, lengths)
    if inf.any():
        i, t = np.argwhere(inf)[0]
        raise LandmarkValidationError(
            f"Video {i} has infinite landmark coordinates (first at frame {t}); landmarks must be "
            "finite, with frames where the face was lost written as all-NaN rows."
        )
    partial = any_nan & ~all_nan
    if partial.any():
        i, t = np.argwhere(partial)[0]
        raise LandmarkValidationError(
            f"Video {i}, frame {t} has NaN in some but not all landmark coordinates "
            f"({int(partial.sum())} such frame(s) in total). A frame is either fully tracked or "
            "marked missing with all-NaN values; fix the tracker output or set the whole frame to NaN."
        )
    if not all_nan.any():
        return values
    n_missing = all_nan.sum(axis=1)
    empty = np.flatnonzero(n_missing == lengths)
    if empty.size:
        raise LandmarkValidationError(
            f"Video {empty[0]} has no frame with a face (all {lengths[empty[0]]} frames are NaN)"
            + (f"; {empty.size} such videos: {empty[:5].tolist()}..." if empty.size > 1 else "")
            + ". Remove it or re-run the landmark tracker."
        )
    if missing == "raise":
        i = int(np.flatnonzero(n_missing)[0])
        raise LandmarkValidationError(
            f"Video {i} has {int(n_missing[i])} frame(s) without a face (all-NaN), first at frame "
            f"{int(np.flatnonzero(all_nan[i])[0])}; {int((n_missing > 0).sum())} video(s) have such "
            "frames. Use missing='interpolate' to fill them linearly over time."
        )
    n_frames = values.shape[1]
    t = np.arange(n_frames)
    valid = ~all_nan & (t[None, :] < lengths[:, None])
    prev_idx = np.maximum.accumulate(np.where(valid, t, -1), axis=1)
    next_idx = np.minimum.accumulate(np.where(valid, t, n_frames)[:, ::-1], axis=1)[:, ::-1]
    first_valid = np.argmax(valid, axis=1)
    last_valid = n_frames - 1 - np.argmax(valid[:, ::-1], axis=1)
    prev_idx = np.where(prev_idx < 0, first_valid[:, None], prev_idx)
    next_idx = np.where(next_idx >= n_frames, last_valid[:, None], next_idx)
    span = (next_idx - prev_idx).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (t[None, :] - prev_idx) / span, 0.0).clip(0.0, 1.0)
    rows = np.arange(len(lengths))[:, None]
    filled = (1.0 - w)[..., None, None] * values[rows, prev_idx] + w[..., None, None] * values[rows, next_idx]
    values[all_nan] = filled[all_nan]
    # Padding past a video's end repeats its last frame, which may just have been filled.
    pad = t[None, :] >= lengths[:, None]
    if pad.any():
        values[pad] = np.broadcast_to(values[rows, lengths[:, None] - 1], values.shape)[pad]
    warnings.warn(
        f"{int(all_nan.sum())} frame(s) without a face in {int((n_missing > 0).sum())} video(s) "
        "were linearly interpolated over time.",
        MissingFramesWarning,
        stacklevel=3,
    )
    return values


def _as_video_list(landmarks):
    if isinstance(landmarks, np.ndarray) and landmarks.dtype != object:
        if landmarks.ndim == 4:
            return landmarks, True
        hint = (
            " A single video of shape (n_frames, n_landmarks, n_coords) must be wrapped: X[None] "
            "or [X]."
            if landmarks.ndim == 3
            else ""
        )
        raise LandmarkValidationError(
            f"Expected landmark videos as a 4-D array (n_videos, n_frames, n_landmarks, n_coords); "
            f"got a {landmarks.ndim}-D array of shape {landmarks.shape}.{hint} {_FORMS_HELP}"
        )
    if isinstance(landmarks, (str, bytes)) or not isinstance(landmarks, (Sequence, np.ndarray)):
        raise LandmarkValidationError(
            f"Expected landmark videos; got an object of type {type(landmarks).__name__}. {_FORMS_HELP}"
        )
    return list(landmarks), False


def check_landmarks(
    X,
    *,
    scheme=None,
    n_landmarks=None,
    n_coords=None,
    min_frames=3,
    check_values=False,
    missing="interpolate",
    n_dmarkers=None,
):
    """Validate landmark videos in any accepted form and return :class:`LandmarkData`.

    Shapes are always checked (cheaply, without reading the data). Values are checked where they
    are read (:meth:`LandmarkData.gather` checks the landmarks it selects); ``check_values=True``
    also scans every landmark of every video now, for callers that use all of them.

    Parameters
    ----------
    X : array-like, sequence of array-like, or mapping
        A 4-D array ``(n_videos, n_frames, n_landmarks, n_coords)``, a sequence of per-video arrays
        ``(n_frames_i, n_landmarks, n_coords)`` (lengths may differ), or a mapping (e.g.
        ``skorch.helper.SliceDict``) with key ``"landmarks"`` holding one of those and optionally
        ``"dmarkers"`` of shape ``(n_videos, n_dmarkers)`` and ``"fps"`` of shape ``(n_videos,)``
        (per-video frame rates, for data sets whose videos differ, e.g. MMI).
    scheme : str or LandmarkScheme, optional
        If given, ``n_landmarks`` must match the scheme's landmark count.
    n_landmarks, n_coords : int, optional
        Required values (e.g. those seen in ``fit``).
    min_frames : int, default=3
        Shortest accepted video.
    check_values : bool, default=False
        Scan all values now: infinities, partially-NaN frames and videos without a valid frame
        raise; all-NaN frames follow ``missing``.
    missing : {"interpolate", "raise"}, default="interpolate"
        Policy for all-NaN frames during the value scan.
    n_dmarkers : int, optional
        Required width of precomputed D-Markers.

    Returns
    -------
    LandmarkData

    Raises
    ------
    LandmarkValidationError
        With a message stating what was expected and what came in.

    Examples
    --------
    >>> X = [np.zeros((5, 478, 3), np.float32), np.zeros((7, 478, 3), np.float32)]
    >>> data = check_landmarks(X, scheme="mediapipe478")
    >>> len(data), data.lengths.tolist(), data.n_coords
    (2, [5, 7], 3)
    >>> check_landmarks(np.zeros((2, 5, 68, 2)), scheme="mediapipe478")
    Traceback (most recent call last):
    ...
    hadasklearn.exceptions.LandmarkValidationError: Landmark scheme 'mediapipe478' expects 478 landmarks per frame; got 68 (video 0 has shape (5, 68, 2)). Pass scheme='ibug68' or a custom LandmarkScheme matching your tracker.
    """
    dmarkers = fps = None
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise LandmarkValidationError(
            f"Sparse input is not supported: landmark videos are dense coordinates; got "
            f"{type(X).__name__}. {_FORMS_HELP}"
        )
    if isinstance(X, Mapping) or (hasattr(X, "keys") and hasattr(X, "__getitem__") and not isinstance(X, np.ndarray)):
        keys = set(X.keys())
        if "landmarks" not in keys:
            raise LandmarkValidationError(
                f"A mapping X must have the key 'landmarks'; got keys {sorted(keys)}. {_FORMS_HELP}"
            )
        unknown = keys - {"landmarks", "dmarkers", "fps"}
        if unknown:
            raise LandmarkValidationError(
                f"Unexpected key(s) {sorted(unknown)} in X; allowed keys are 'landmarks', 'dmarkers' "
                "and 'fps'."
            )
        dmarkers = X["dmarkers"] if "dmarkers" in keys else None
        fps = X["fps"] if "fps" in keys else None
        X = X["landmarks"]

    videos, is_array = _as_video_list(X)
    if len(videos) == 0:
        raise LandmarkValidationError(f"X contains no videos (0 samples); at least one is required. {_FORMS_HELP}")

    if is_array:
        if not (np.issubdtype(videos.dtype, np.floating) or np.issubdtype(videos.dtype, np.integer)):
            raise LandmarkValidationError(
                f"Landmark coordinates must be numeric (float or int); got dtype {videos.dtype}."
            )
        lengths = np.full(videos.shape[0], videos.shape[1], dtype=np.intp)
        shapes = [videos.shape[1:]]
    else:
        shapes = []
        for i, video in enumerate(videos):
            if not hasattr(video, "shape") or not hasattr(video, "dtype"):
                video = np.asarray(video)
                videos[i] = video
            if video.ndim != 3:
                raise LandmarkValidationError(
                    f"Video {i} must be a 3-D array (n_frames, n_landmarks, n_coords); got shape "
                    f"{tuple(video.shape)}. {_FORMS_HELP}"
                )
            if not (np.issubdtype(video.dtype, np.floating) or np.issubdtype(video.dtype, np.integer)):
                raise LandmarkValidationError(
                    f"Video {i} must hold numeric coordinates (float or int); got dtype {video.dtype}."
                )
            shapes.append(tuple(video.shape))
        lengths = np.array([s[0] for s in shapes], dtype=np.intp)
        first = shapes[0]
        for i, s in enumerate(shapes):
            if s[1:] != first[1:]:
                raise LandmarkValidationError(
                    f"All videos must have the same number of landmarks and coordinates; video 0 has "
                    f"{first[1]} landmarks x {first[2]} coords but video {i} has {s[1]} x {s[2]}."
                )

    got_landmarks, got_coords = int(shapes[0][1]), int(shapes[0][2])
    if got_coords not in (2, 3):
        raise LandmarkValidationError(
            f"Landmarks need 2 (x, y) or 3 (x, y, z) coordinates; got {got_coords} "
            f"(video 0 has shape {tuple(shapes[0]) if not is_array else videos.shape[1:]})."
        )
    shape0 = tuple(shapes[0]) if not is_array else tuple(videos.shape[1:])
    if scheme is not None:
        scheme_obj = get_scheme(scheme)
        expected = scheme_obj.n_landmarks
        if expected is not None and got_landmarks != expected:
            raise LandmarkValidationError(
                f"Landmark scheme {scheme_obj.name!r} expects {expected} landmarks per frame; got "
                f"{got_landmarks} (video 0 has shape {shape0}). Pass scheme='ibug68' or a custom "
                "LandmarkScheme matching your tracker."
                if expected == 478
                else f"Landmark scheme {scheme_obj.name!r} expects {expected} landmarks per frame; got "
                f"{got_landmarks} (video 0 has shape {shape0}). Pass the scheme of your tracker."
            )
        if expected is None and got_landmarks < scheme_obj.min_landmarks:
            raise LandmarkValidationError(
                f"Landmark scheme {scheme_obj.name!r} reads landmark index {scheme_obj.min_landmarks - 1}; "
                f"got only {got_landmarks} landmarks per frame."
            )
    if n_landmarks is not None and got_landmarks != n_landmarks:
        raise LandmarkValidationError(
            f"X has {got_landmarks} landmarks per frame, but {n_landmarks} were expected (the count "
            "seen during fit). Use the same landmark tracker for training and prediction."
        )
    if n_coords is not None and got_coords != n_coords:
        raise LandmarkValidationError(
            f"X has {got_coords} coordinates per landmark, but {n_coords} were expected (the count "
            "seen during fit)."
        )
    short = np.flatnonzero(lengths < min_frames)
    if short.size:
        raise LandmarkValidationError(
            f"Video {short[0]} has {lengths[short[0]]} frame(s); at least {min_frames} are needed"
            + (f" ({short.size} videos are too short: {short[:5].tolist()})" if short.size > 1 else "")
            + "."
        )

    if dmarkers is not None:
        dmarkers = np.asarray(dmarkers)
        if dmarkers.ndim != 2 or dmarkers.shape[0] != len(lengths):
            raise LandmarkValidationError(
                f"X['dmarkers'] must have shape (n_videos={len(lengths)}, n_dmarkers); got "
                f"{dmarkers.shape}."
            )
        if n_dmarkers is not None and dmarkers.shape[1] != n_dmarkers:
            raise LandmarkValidationError(
                f"X['dmarkers'] must have {n_dmarkers} columns; got {dmarkers.shape[1]}."
            )
        if not np.issubdtype(dmarkers.dtype, np.number) or not np.isfinite(dmarkers).all():
            raise LandmarkValidationError("X['dmarkers'] must be finite numbers; got NaN, inf or non-numeric values.")
        dmarkers = dmarkers.astype(np.float64, copy=False)

    if fps is not None:
        fps = np.asarray(fps, dtype=np.float64).reshape(-1)
        if fps.shape != (len(lengths),) or not (np.isfinite(fps).all() and (fps > 0).all()):
            raise LandmarkValidationError(
                f"X['fps'] must hold one positive finite frame rate per video ({len(lengths)}); got "
                f"shape {fps.shape} with values in [{fps.min() if fps.size else None}, "
                f"{fps.max() if fps.size else None}]."
            )
    data = LandmarkData(videos, lengths, got_landmarks, got_coords, dmarkers, is_array, fps)
    if check_values:
        _scan_values(data, missing)
    return data


def _scan_values(data, missing):
    """Scan every landmark of every video (one video at a time, to bound memory)."""
    if missing not in _MISSING_POLICIES:
        raise ValueError(f"missing must be one of {_MISSING_POLICIES}; got {missing!r}.")
    n_with_missing = 0
    for i in range(len(data)):
        video = np.asarray(data.video(i))
        if not np.issubdtype(video.dtype, np.floating):
            continue
        frame_nan = np.isnan(video).reshape(len(video), -1)
        if np.isinf(video).any():
            t = int(np.flatnonzero(np.isinf(video).reshape(len(video), -1).any(axis=1))[0])
            raise LandmarkValidationError(
                f"Video {i} has infinite landmark coordinates (first at frame {t}); landmarks must "
                "be finite, with frames where the face was lost written as all-NaN rows."
            )
        any_nan = frame_nan.any(axis=1)
        if not any_nan.any():
            continue
        all_nan = frame_nan.all(axis=1)
        partial = np.flatnonzero(any_nan & ~all_nan)
        if partial.size:
            raise LandmarkValidationError(
                f"Video {i}, frame {partial[0]} has NaN in some but not all landmark coordinates. "
                "A frame is either fully tracked or marked missing with all-NaN values."
            )
        if all_nan.all():
            raise LandmarkValidationError(
                f"Video {i} has no frame with a face (all {len(video)} frames are NaN). Remove it or "
                "re-run the landmark tracker."
            )
        if missing == "raise":
            raise LandmarkValidationError(
                f"Video {i} has {int(all_nan.sum())} frame(s) without a face (all-NaN), first at "
                f"frame {int(np.flatnonzero(all_nan)[0])}. Use missing='interpolate' to fill them."
            )
        n_with_missing += 1
    return n_with_missing


def interpolate_video(video, *, warn=False):
    """One video ``(n_frames, n_landmarks, n_coords)`` with all-NaN frames interpolated (a copy if needed).

    Parameters
    ----------
    video : array-like of shape (n_frames, n_landmarks, n_coords)
        Frames without a face are all-NaN; at least one frame must be valid.
    warn : bool, default=False
        Emit :class:`~hadasklearn.exceptions.MissingFramesWarning` when frames were filled.

    Returns
    -------
    ndarray of shape (n_frames, n_landmarks, n_coords)
        ``video`` itself when nothing is missing, else a filled copy.
    """
    video = np.asarray(video)
    if not np.issubdtype(video.dtype, np.floating) or not np.isnan(video[:, 0, 0]).any():
        return video
    out = np.array(video, dtype=video.dtype, copy=True)[None]
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore", MissingFramesWarning)
        fill_missing_frames(out, np.array([len(video)]), missing="interpolate")
    return out[0]
