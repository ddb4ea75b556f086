"""Fixed-length landmark clips cut from whole videos: the torch datasets behind :class:`HadaSmileClassifier`."""

import numpy as np
import torch
from torch.utils.data import Dataset

from ._validation import interpolate_video
from .landmarks import align_points, gather_points, get_scheme

__all__ = ["ClipDataset", "aligned_clip", "clip_span", "evenly_spaced_starts", "prepare_videos"]


def prepare_videos(data):
    """The videos of a validated :class:`~hadasklearn._validation.LandmarkData`, missing frames filled.

    Videos without all-NaN frames are returned as they are (no copy: memory maps stay lazy); the
    others are copies with those frames linearly interpolated over time. The caller has already
    scanned the values (``check_landmarks(..., check_values=True)``), so partial-NaN frames,
    infinities and the ``missing="raise"`` policy are dealt with before this point.
    """
    videos = []
    for i in range(len(data)):
        video = data.video(i)
        if np.issubdtype(np.asarray(video[:1]).dtype, np.floating):
            video = interpolate_video(video)
        videos.append(video)
    return videos


def aligned_clip(video, start, clip_length, scheme, stride=1):
    """Frames ``start, start + stride, ...`` (``clip_length`` of them) of ``video``, head pose removed, padded at the end.

    Every frame is expressed in its own face frame (:func:`~hadasklearn.landmarks.align_points`:
    origin between the eyes, eye line horizontal, unit inter-ocular distance), so the network sees
    facial motion, not head motion or the subject's distance to the camera.

    Returns
    -------
    clip : ndarray of shape (clip_length, n_landmarks, n_coords), float32
        Frames past the end of a short video are zeros (the mask tells the network to ignore them).
    mask : ndarray of shape (clip_length,), bool
        True for real frames.
    """
    frames = np.asarray(video[start : start + stride * clip_length : stride], dtype=np.float64)
    n_real = len(frames)
    aligned = align_points(frames, frame_points=gather_points(frames, scheme))
    clip = np.zeros((clip_length,) + aligned.shape[1:], dtype=np.float32)
    clip[:n_real] = aligned
    mask = np.zeros(clip_length, dtype=bool)
    mask[:n_real] = True
    return clip, mask


def clip_span(clip_length, stride=1):
    """Frames from the first to the last frame of a clip: ``stride * (clip_length - 1) + 1``."""
    return int(stride) * (int(clip_length) - 1) + 1


def evenly_spaced_starts(n_frames, clip_length, n_clips, stride=1):
    """Start frames of ``n_clips`` clips spread evenly over a video (duplicates removed).

    The first clip starts at frame 0 and the last one ends at the last frame; a video no longer
    than the clip's span (:func:`clip_span`) has one clip.

    Examples
    --------
    >>> evenly_spaced_starts(100, 16, 5).tolist()
    [0, 21, 42, 63, 84]
    >>> evenly_spaced_starts(10, 16, 5).tolist()
    [0]
    >>> evenly_spaced_starts(100, 8, 3, stride=4).tolist()
    [0, 36, 71]
    """
    last = max(int(n_frames) - clip_span(clip_length, stride), 0)
    return np.unique(np.round(np.linspace(0, last, int(n_clips))).astype(np.intp))


class ClipDataset(Dataset):
    """Clips of landmark videos with their (standardised) D-Markers, as a torch ``Dataset``.

    In training mode (``starts=None``) item ``i`` is a clip of video ``i`` starting at a random
    frame, drawn anew at every access from a seeded generator (one random clip per video per epoch,
    a cheap temporal augmentation). Otherwise item ``j`` is the clip of video ``video_index[j]``
    starting at ``starts[j]``.

    Parameters
    ----------
    videos : list of ndarray of shape (n_frames_i, n_landmarks, n_coords)
        Videos with missing frames already filled (:func:`prepare_videos`).
    y : ndarray of shape (n_videos,) of int or None
        Encoded labels; ``None`` yields a dummy label 0 (prediction).
    clip_length : int
        Frames per clip.
    stride : int, default=1
        Step between the frames of a clip (1: consecutive frames).
    scheme : str or LandmarkScheme
        Landmark scheme used to align each frame.
    dmarkers : ndarray of shape (n_videos, n_dmarkers) or None
        Standardised D-Markers of each video, passed through with every clip.
    with_landmarks : bool, default=True
        Whether items carry the landmark clip (the ``dmarker_only`` baseline does not read it).
    video_index, starts : ndarray of int or None
        Fixed clips (evaluation); both ``None`` for random training clips.
    seed : int, default=0
        Seed of the random clip starts.
    """

    def __init__(
        self,
        videos,
        y,
        *,
        clip_length,
        scheme,
        stride=1,
        dmarkers=None,
        with_landmarks=True,
        video_index=None,
        starts=None,
        seed=0,
    ):
        self.videos = videos
        self.y = y
        self.clip_length = int(clip_length)
        self.stride = int(stride)
        self.scheme = get_scheme(scheme)
        self.dmarkers = None if dmarkers is None else np.asarray(dmarkers, dtype=np.float32)
        self.with_landmarks = with_landmarks
        self.video_index = video_index
        self.starts = starts
        self.rng = np.random.default_rng(seed)

    @classmethod
    def evaluation(cls, videos, y, *, n_clips, **kwargs):
        """Fixed, evenly spaced clips: ``n_clips`` per video (fewer for short videos)."""
        index, starts = [], []
        for i, video in enumerate(videos):
            s = evenly_spaced_starts(len(video), kwargs["clip_length"], n_clips, kwargs.get("stride", 1))
            index.append(np.full(len(s), i, dtype=np.intp))
            starts.append(s)
        return cls(videos, y, video_index=np.concatenate(index), starts=np.concatenate(starts), **kwargs)

    def __len__(self):
        return len(self.videos) if self.starts is None else len(self.starts)

    def __getitem__(self, item):
        if self.starts is None:
            video_id = item
            n_frames = len(self.videos[video_id])
            span = clip_span(self.clip_length, self.stride)
            start = int(self.rng.integers(0, max(n_frames - span, 0) + 1))
        else:
            video_id, start = int(self.video_index[item]), int(self.starts[item])
        x = {}
        if self.with_landmarks:
            clip, mask = aligned_clip(self.videos[video_id], start, self.clip_length, self.scheme, self.stride)
            x["landmarks"] = torch.from_numpy(clip)
            x["mask"] = torch.from_numpy(mask)
        if self.dmarkers is not None:
            x["dmarkers"] = torch.from_numpy(self.dmarkers[video_id])
        label = 0 if self.y is None else int(self.y[video_id])
        return x, torch.tensor(label, dtype=torch.long)
