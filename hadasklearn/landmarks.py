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


def _dot(a, b):
    """Dot product over the coordinate axis (third from last) of (..., C, n, T) arrays.

    Written out term by term so it can broadcast one frame (C, n, T) against several points
    (k, C, n, T); the sum order, and so every bit of the result, is that of ``np.einsum``.
    """
    out = a[..., 0, :, :] * b[..., 0, :, :]
    for i in range(1, a.shape[-3]):
        out += a[..., i, :, :] * b[..., i, :, :]
    return out


def _norm(v):
    """Euclidean norm over the coordinate axis (third from last) of a (..., C, n, T) array."""
    return np.sqrt(_dot(v, v))


def _eye_centres(P):
    """Right and left eye centres, (l1 + l3) / 2 and (l4 + l6) / 2, as one (2, C, n, T) array."""
    centres = P[[0, 3]] + P[[2, 5]]
    centres *= 0.5
    return centres


def _face_axes(P, centres=None):
    """Origin, rows of the rotation and scale of every frame, as :func:`face_frame` returns them.

    ``P`` is (11, C, n, T): coordinates first, so every operation below is on contiguous (n, T)
    planes instead of tiny trailing axes (an order of magnitude faster than ``align_points``).
    ``centres`` are the eye centres (:func:`_eye_centres`) if the caller has them already.
    """
    n_coords = P.shape[1]
    c1, c2 = _eye_centres(P) if centres is None else centres
    origin = c1 + c2
    origin *= 0.5
    e_x = c2 - c1
    scale = _norm(e_x)
    e_x /= scale
    if n_coords == 2:
        return origin, (e_x, np.stack([-e_x[1], e_x[0]])), scale
    towards_nose = P[8] - origin
    v = towards_nose - _dot(towards_nose, e_x) * e_x
    v_norm = _norm(v)
    degenerate = v_norm <= 1e-9 * scale
    e_y = v / v_norm
    if degenerate.any():
        # Nose tip on the eye line: the vertical is the in-image perpendicular .
        fallback = np.stack([-e_x[1], e_x[0], np.zeros_like(e_x[0])])
        fallback /= np.maximum(_norm(fallback), 1e-300)
        e_y = np.where(degenerate, fallback, e_y)
    e_z = np.empty_like(e_x)
    for k, (i, j) in enumerate(((1, 2), (2, 0), (0, 1))):
        np.subtract(e_x[i] * e_y[j], e_x[j] * e_y[i], out=e_z[k])
    return origin, (e_x, e_y, e_z), scale


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
    lead = points.shape[:-2]
    # One implementation for both layouts: the D-Marker engine's (11, C, n, T) planes.
    planes = np.moveaxis(points, (-2, -1), (0, 1)).reshape(points.shape[-2], n_coords, 1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        origin, axes, scale = _face_axes(planes)
    origin = np.moveaxis(origin.reshape(n_coords, -1), 0, -1).reshape(lead + (n_coords,))
    rotation = np.moveaxis(np.stack(axes).reshape(n_coords, n_coords, -1), -1, 0)
    return origin, rotation.reshape(lead + (n_coords, n_coords)), scale.reshape(lead)


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
