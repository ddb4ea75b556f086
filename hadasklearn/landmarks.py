"""Landmark schemes (which tracker points are the 11 D-Marker points) and per-frame head-pose alignment."""

from dataclasses import dataclass

import numpy as np

from ._registry import Registry

__all__ = [
    "DMARKER_POINT_NAMES",
    "LandmarkScheme",
    "align_points",
    "face_frame",
    "gather_points",
    "get_scheme",
    "list_schemes",
    "register_scheme",
]

#: The 11 D-Marker points l1..l11 of Dibeklioglu et al. (2012), in this order. "Right"/"left" are
#: the subject's: the right eye appears on the left of an unmirrored image.
DMARKER_POINT_NAMES = (
    "right_eye_outer",  # l1
    "right_upper_eyelid",  # l2
    "right_eye_inner",  # l3
    "left_eye_inner",  # l4
    "left_upper_eyelid",  # l5
    "left_eye_outer",  # l6
    "right_cheek",  # l7
    "left_cheek",  # l8
    "nose_tip",  # l9
    "right_lip_corner",  # l10
    "left_lip_corner",  # l11
)


@dataclass(frozen=True)
class LandmarkScheme:
    """Where a landmark tracker puts the 11 D-Marker points.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"mediapipe478"``.
    n_landmarks : int or None
        Number of landmarks per frame the tracker produces; ``None`` accepts any count larger
        than the largest index used.
    points : tuple of 11 tuples of int
        For each of l1..l11 (see :data:`DMARKER_POINT_NAMES`), the landmark indices whose mean is
        that point. One index is the usual case; several define a proxy (e.g. a lid centre).
    description : str, default=""
        Free text: the tracker, and any proxy used.

    Examples
    --------
    >>> scheme = LandmarkScheme(
    ...     "my_tracker", 11, tuple((i,) for i in range(11)), "points stored in l1..l11 order")
    >>> scheme.point_indices[:3]
    ((0,), (1,), (2,))
    """

    name: str
    n_landmarks: int | None
    points: tuple
    description: str = ""

    def __post_init__(self):
        points = tuple(
            (int(p),) if np.ndim(p) == 0 else tuple(int(i) for i in p) for p in self.points
        )
        if len(points) != len(DMARKER_POINT_NAMES):
            raise ValueError(
                f"A LandmarkScheme needs {len(DMARKER_POINT_NAMES)} point definitions "
                f"({', '.join(DMARKER_POINT_NAMES)}); got {len(points)}."
            )
        if any(len(p) == 0 for p in points):
            raise ValueError("Every D-Marker point needs at least one landmark index; got an empty one.")
        largest = max(max(p) for p in points)
        if min(min(p) for p in points) < 0:
            raise ValueError("Landmark indices must be non-negative.")
        if self.n_landmarks is not None and largest >= self.n_landmarks:
            raise ValueError(
                f"Scheme {self.name!r} uses landmark index {largest} but declares only "
                f"{self.n_landmarks} landmarks."
            )
        object.__setattr__(self, "points", points)

    @property
    def point_indices(self):
        """The landmark indices of l1..l11 (tuples; several indices mean their centroid)."""
        return self.points

    @property
    def min_landmarks(self):
        """The smallest landmark count this scheme can read."""
        return max(max(p) for p in self.points) + 1


SCHEMES = Registry("landmark scheme")


def register_scheme(scheme):
    """Register a :class:`LandmarkScheme` under its name so it can be passed as ``scheme="name"``.

    Parameters
    ----------
    scheme : LandmarkScheme
        The scheme; its ``name`` must not be registered yet.

    Returns
    -------
    LandmarkScheme
        ``scheme`` itself.
    """
    if not isinstance(scheme, LandmarkScheme):
        raise TypeError(f"Expected a LandmarkScheme, got {type(scheme).__name__}.")
    SCHEMES.register(scheme.name)(scheme)
    return scheme


def list_schemes():
    """Names of the registered landmark schemes.

    Examples
    --------
    >>> list_schemes()
    ['mediapipe478', 'ibug68']
    """
    return SCHEMES.list()


def get_scheme(scheme):
    """Return the :class:`LandmarkScheme` for a registered name (or the scheme itself).

    Parameters
    ----------
    scheme : str or LandmarkScheme
        A name from :func:`list_schemes`, or a scheme (returned unchanged).

    Returns
    -------
    LandmarkScheme

    Examples
    --------
    >>> get_scheme("mediapipe478").points[9]
    (62,)
    >>> get_scheme("mediapip478")
    Traceback (most recent call last):
    ...
    hadasklearn.exceptions.UnknownNameError: Unknown landmark scheme 'mediapip478'. Did you mean 'mediapipe478'? Valid landmark scheme names: ['ibug68', 'mediapipe478'].
    """
    if isinstance(scheme, LandmarkScheme):
        return scheme
    if not isinstance(scheme, str):
        raise TypeError(
            f"scheme must be a registered name ({list_schemes()}) or a LandmarkScheme; "
            f"got {type(scheme).__name__}."
        )
    return SCHEMES.get(scheme)


# Indices as used by the published HadaSmileNet / DeepMarkerNet code (MediaPipe Face Mesh with
# refined iris). 62/308 are the mouth corners of the inner lip contour used there.
register_scheme(
    LandmarkScheme(
        "mediapipe478",
        478,
        ((33,), (159,), (133,), (362,), (386,), (263,), (50,), (280,), (1,), (62,), (308,)),
        "MediaPipe Face Mesh with refined iris landmarks (478 points).",
    )
)

# iBUG 300-W / dlib / OpenFace 68-point markup (0-based). It has no cheek points: the cheek is
# taken as the centroid of the jaw-contour point at cheek height, the nostril wing and the lower
# eyelid, so the cheek raiser (AU6), which lifts the lower lid and the cheek skin, moves it while
# the lip-corner puller (AU12) barely does.
register_scheme(
    LandmarkScheme(
        "ibug68",
        68,
        (
            (36,),
            (37, 38),
            (39,),
            (42,),
            (43, 44),
            (45,),
            (1, 31, 41),
            (15, 35, 46),
            (30,),
            (48,),
            (54,),
        ),
        "iBUG 68-point markup (dlib, OpenFace). Upper-lid centres are the mean of the two upper-lid "
        "points; cheeks are proxies: the centroid of points (1, 31, 41) on the right and "
        "(15, 35, 46) on the left.",
    )
)


def gather_points(landmarks, scheme):
    """Select l1..l11 from landmarks ``(..., n_landmarks, n_coords)`` -> ``(..., 11, n_coords)``.

    Parameters
    ----------
    landmarks : array-like of shape (..., n_landmarks, n_coords)
        Landmarks of one or more frames.
    scheme : str or LandmarkScheme
        Where the tracker puts the D-Marker points; points defined by several landmarks are
        their mean.

    Returns
    -------
    points : ndarray of shape (..., 11, n_coords)

    Examples
    --------
    >>> frames = np.zeros((2, 68, 2)); frames[:, 37] = 1.0
    >>> gather_points(frames, "ibug68")[0, 1]  # mean of points 37 and 38
    array([0.5, 0.5])
    """
    scheme = get_scheme(scheme)
    landmarks = np.asarray(landmarks)
    if all(len(p) == 1 for p in scheme.points):
        return landmarks[..., [p[0] for p in scheme.points], :]
    flat = [i for p in scheme.points for i in p]
    taken = landmarks[..., flat, :]
    starts = np.cumsum([0] + [len(p) for p in scheme.points[:-1]])
    sizes = np.array([len(p) for p in scheme.points], dtype=taken.dtype)
    return np.add.reduceat(taken, starts, axis=-2) / sizes[:, None]


def face_frame(points):
    """Per-frame face coordinate frame from the D-Marker points ``(..., 11, C)``, C in {2, 3}.

    The origin is the midpoint of the eye centres ``c1 = (l1 + l3) / 2`` and ``c2 = (l4 + l6) / 2``;
    the first axis runs from ``c1`` to ``c2`` (the eye line becomes horizontal); in 3-D the second
    axis is the part of ``l9 - origin`` (towards the nose tip) orthogonal to the eye line, so the
    plane through the eyes and the nose tip becomes the frontal plane; the scale is the
    inter-ocular distance ``|c2 - c1|``. Axes keep the image convention (x right, y down), so a
    point "below" another has a larger second coordinate.

    Parameters
    ----------
    points : array-like of shape (..., 11, C)
        The D-Marker points l1..l11 of each frame (see :func:`gather_points`), C in {2, 3}.

    Returns
    -------
    origin : ndarray of shape (..., C)
    rotation : ndarray of shape (..., C, C)
        Rows are the new axes; aligned = ``rotation @ (p - origin) / scale``.
    scale : ndarray of shape (...)
    """
    points = np.asarray(points, dtype=np.float64)
    n_coords = points.shape[-1]
    if n_coords not in (2, 3):
        raise ValueError(f"Points need 2 or 3 coordinates; got {n_coords}.")
    c1 = 0.5 * (points[..., 0, :] + points[..., 2, :])
    c2 = 0.5 * (points[..., 3, :] + points[..., 5, :])
    origin = 0.5 * (c1 + c2)
    eye_axis = c2 - c1
    scale = np.sqrt(np.einsum("...i,...i->...", eye_axis, eye_axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        e_x = eye_axis / scale[..., None]
    if n_coords == 2:
        e_y = np.stack([-e_x[..., 1], e_x[..., 0]], axis=-1)
        rotation = np.stack([e_x, e_y], axis=-2)
    else:
        towards_nose = points[..., 8, :] - origin
        v = towards_nose - np.einsum("...i,...i->...", towards_nose, e_x)[..., None] * e_x
        v_norm = np.sqrt(np.einsum("...i,...i->...", v, v))
        # A nose tip on the eye line (degenerate tracking) leaves the vertical undefined: fall back
        # to the in-image perpendicular of the eye line.
        fallback = np.stack([-e_x[..., 1], e_x[..., 0], np.zeros_like(e_x[..., 0])], axis=-1)
        fallback /= np.maximum(np.linalg.norm(fallback, axis=-1, keepdims=True), 1e-300)
        degenerate = v_norm <= 1e-9 * np.maximum(scale, 1e-300)
        with np.errstate(invalid="ignore", divide="ignore"):
            e_y = np.where(degenerate[..., None], fallback, v / v_norm[..., None])
        e_z = np.cross(e_x, e_y)
        rotation = np.stack([e_x, e_y, e_z], axis=-2)
    return origin, rotation, scale


def align_points(points, *, frame_points=None):
    """Remove translation, rotation and scale per frame (see :func:`face_frame`).

    Parameters
    ----------
    points : array-like of shape (..., K, C)
        Points to express in the face frame.
    frame_points : array-like of shape (..., 11, C), optional
        The D-Marker points defining the frame; by default ``points`` itself (then K = 11).

    Returns
    -------
    aligned : ndarray of shape (..., K, C), float64
        In units of the inter-ocular distance. Frames with coincident eye centres (zero scale) give
        non-finite values; validate the input first (:func:`hadasklearn.utils.check_landmarks`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pts = rng.normal(size=(4, 11, 3))
    >>> theta = 0.3
    >>> rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    >>> moved = 2.5 * pts @ rot.T + 7.0
    >>> bool(np.allclose(align_points(pts), align_points(moved)))
    True
    """
    points = np.asarray(points, dtype=np.float64)
    frame_points = points if frame_points is None else np.asarray(frame_points, dtype=np.float64)
    origin, rotation, scale = face_frame(frame_points)
    centred = points - origin[..., None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("...ij,...kj->...ki", rotation, centred) / scale[..., None, None]
