"""Public utilities: the landmark validator every entry point uses, and the Dask scale-out context."""

from ._dask import dask_parallel
from ._validation import LandmarkData, check_landmarks, fill_missing_frames, interpolate_video

__all__ = ["LandmarkData", "check_landmarks", "dask_parallel", "fill_missing_frames", "interpolate_video"]
