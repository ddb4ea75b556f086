"""``make_smiles``: a seeded, physiologically grounded generator of genuine and posed smile videos."""

import functools
import importlib.resources
import numbers

import numpy as np
import pandas as pd
from scipy import special
from sklearn.utils import Bunch
from threadpoolctl import threadpool_limits

from ..landmarks import gather_points, get_scheme

__all__ = ["SMILE_PRESETS", "make_smiles"]

_TEMPLATE_FILE = "face_template_mediapipe478.npy"

#: Sizes and protocols of the published benchmark sets that ``preset=`` mimics. ``composition``
#: lists, per subject kind, ``(n_genuine, n_posed, n_subjects_of_that_kind)``.
SMILE_PRESETS = {
    # Per-subject composition counted from the published UvA-NEMO fold files (Dibeklioglu et al.,
    # 2012): 400 subjects, 1240 videos, 597 spontaneous / 643 deliberate.
    "uvanemo": {
        "composition": (
            (0, 1, 16), (0, 2, 27), (1, 0, 13), (1, 1, 35),
            (1, 2, 69), (2, 0, 19), (2, 1, 42), (2, 2, 179),
        ),
        "fps": 50.0,
        "cv_folds": 10,
    },
    # MMI: 184 videos (138 spontaneous / 46 posed), genuine recorded at 29 fps and posed at 25 fps,
    # 9 folds. The subject count is not part of the published protocol; 27 subjects (3 per fold)
    # is this generator's choice.
    "mmi": {"n_genuine": 138, "n_posed": 46, "n_subjects": 27, "fps": (25.0, 29.0), "cv_folds": 9},
    # SPOS: 80 videos (66 / 14) of 7 subjects at 25 fps, leave-one-subject-out.
    "spos": {"n_genuine": 66, "n_posed": 14, "n_subjects": 7, "fps": 25.0, "cv_folds": 7},
    # BBC: 20 videos (10 / 10) of 20 subjects at 25 fps, 10 folds.
    "bbc": {"n_genuine": 10, "n_posed": 10, "n_subjects": 20, "fps": 25.0, "cv_folds": 10},
}

#: Latent columns that differ between the classes by construction (the rest are nuisances).
CLASS_INFORMATIVE_LATENTS = (
    "amplitude",
    "asymmetry",
    "onset_s",
    "apex_s",
    "offset_s",
    "au6_ratio",
    "au6_lag_s",
    "irregularity",
)

# Class-conditional parameters, each as (genuine value, posed value). Log-normal quantities are
# given by their medians; the within-class spread is the log standard deviation. Directions follow
# the literature (see make_smiles's Notes); magnitudes are calibrated (docs/synthetic_calibration.md).
_CLASS = {
    # AU12 lip-corner displacement at apex, in inter-ocular distances (IOD): posed larger.
    "amplitude": ((0.105, 0.135), 0.22),
    # Onset / apex / offset durations in seconds: posed faster onset and offset, shorter apex.
    "onset_s": ((0.75, 0.48), 0.28),
    "apex_s": ((1.25, 0.85), 0.38),
    "offset_s": ((1.00, 0.66), 0.28),
    # Standard deviation of the left/right amplitude asymmetry: posed more asymmetric.
    "asymmetry_sd": (0.05, 0.14),
    # Probability that AU6 (cheek raiser) co-occurs: the Duchenne marker.
    "au6_prob": (0.80, 0.25),
    # AU6 amplitude relative to AU12 when present (median, log sd): weaker in posed smiles.
    "au6_ratio": ((0.55, 0.38), 0.25),
    # AU6 onset lag behind AU12 in seconds (mean, sd): later in posed smiles.
    "au6_lag_s": ((0.04, 0.30), 0.10),
    # Amplitude of the 1.5-3.5 Hz modulation of the smile (median, log sd): posed less smooth.
    "irregularity": ((0.025, 0.06), 0.40),
}

# Subject random effects (log standard deviations / logit sd) and nuisance magnitudes.
_SUBJECT_EXPRESSIVITY_SD = 0.22
_SUBJECT_SPEED_SD = 0.18
_SUBJECT_AU6_LOGIT_SD = 0.8
# Share of each class cue's within-class variance that a subject's videos of one class have in
# common: a person reproduces their own posed smile, and their own genuine smile, from video to
# video, so most of the spread of a cue lies between (subject, class) pairs, not between videos.
_SUBJECT_CLASS_SHARE = 0.95
# A personal smile routine, one draw per (subject, class) and equal in distribution for both
# classes: the profile of the rise and fall (exponent of the ramp's time warp, log-sd), growth or
# fading of the smile over its apex, an eyelid narrowing (AU7) or widening (AU5) that goes with the
# smile, the same three for AU6, AU6's rise time relative to AU12, and whether a blink is locked to
# the smile's onset. None differs between the classes on average, so none is a label cue.
_ROUTINE_SHAPE_LOGSD = 1.0
_ROUTINE_CREEP_SD = 0.5
_ROUTINE_LID_SD = 0.55
_ROUTINE_AU6_ONSET_LOGSD = 0.3
_ROUTINE_LOCKED_BLINK_P = 0.4
# Class-independent habits of a person: left/right bias of the lip corners, jaw-drop habit
# (Beta(a, a) probability per subject), blink rate (log-sd), left/right balance of AU6 (sd), and
# recording conditions (tracking jitter and head-motion level, log-sd).
_SUBJECT_ASYMMETRY_SD = 0.06
_SUBJECT_JAW_BETA = 0.3
_SUBJECT_BLINK_LOGSD = 1.0
_SUBJECT_AU6_SIDE_SD = 0.095
_VIDEO_AU6_SIDE_SD = 0.032
_SUBJECT_TRACKING_LOGSD = 0.7
_SUBJECT_HEAD_LOGSD = 0.4
_JITTER_SD = 0.002  # per-landmark tracking jitter, IOD, at noise=1 (median subject)
_HEAD_ANGLE_DEG = 3.0  # head rotation scale (degrees) at head_motion=1
_BLINK_RATE_HZ = 0.3

_ACTIONS = ("au12_right", "au12_left", "au6_right", "au6_left", "au25_26", "au45")


def _rng_from(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(None if random_state is None else int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2**63 - 1, dtype=np.int64)))
    raise TypeError(
        "random_state must be None, an int, a numpy Generator or a RandomState; got "
        f"{type(random_state).__name__}."
    )


@functools.lru_cache(maxsize=1)
def _load_template():
    """The neutral MediaPipe template shipped as package data (see scripts/make_face_template.py)."""
    resource = importlib.resources.files("hadasklearn.datasets") / "data" / _TEMPLATE_FILE
    with importlib.resources.as_file(resource) as path:
        template = np.load(path)
    if template.shape != (478, 3) or not np.isfinite(template).all():
        raise RuntimeError(
            f"The packaged face template {_TEMPLATE_FILE} must be a finite (478, 3) array; got shape "
            f"{template.shape}. Re-create it with scripts/make_face_template.py."
        )
    template = template.astype(np.float64)
    template.setflags(write=False)
    return template


def _lognormal_unit_mean(rng, log_sd, size):
    """Log-normal factors with mean 1 (median ``exp(-log_sd**2 / 2)``)."""
    return np.exp(rng.normal(0.0, log_sd, size) - 0.5 * log_sd**2)


def _smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _gauss(points, anchor, sigma_x, sigma_y=None):
    sigma_y = sigma_x if sigma_y is None else sigma_y
    d = points[:, :2] - anchor[:2]
    return np.exp(-0.5 * ((d[:, 0] / sigma_x) ** 2 + (d[:, 1] / sigma_y) ** 2))


@functools.lru_cache(maxsize=8)
def _face_model(scheme):
    """Template in IOD units centred between the eyes, action bases and identity bases.

    All displacement fields are smooth Gaussian-weighted fields around the scheme's D-Marker points,
    so any tracker point near an anchor moves coherently with it.
    """
    template = _load_template()
    anchors = gather_points(template, scheme)
    right_eye = 0.5 * (anchors[0] + anchors[2])
    left_eye = 0.5 * (anchors[3] + anchors[5])
    origin = 0.5 * (right_eye + left_eye)
    iod = float(np.linalg.norm(left_eye - right_eye))
    face = (template - origin) / iod
    a = (anchors - origin) / iod
    r_eye, l_eye = (right_eye - origin) / iod, (left_eye - origin) / iod
    # Image axes: x to the image right (the subject's left), y down, z away from the camera.
    sign = np.sign(a[10, 0] - a[9, 0]) or 1.0  # +1 when the subject's left corner is image-right
    x, y = face[:, 0], face[:, 1]
    bases = np.zeros((len(_ACTIONS), len(face), 3))

    # AU12 lip-corner puller: the corner moves up, outwards and slightly back (zygomaticus major
    # pulls obliquely towards the cheekbone); nearby lips, the nasolabial area and (weakly) the cheek
    # follow.
    for k, (corner, outward) in enumerate(((a[9], -sign), (a[10], sign))):
        w = _gauss(face, corner, 0.38, 0.32)
        bases[k] = w[:, None] * np.array([0.55 * outward, -0.80, 0.15])

    # AU6 cheek raiser (orbicularis oculi, pars orbitalis): raises the cheek, pushes the lower lid
    # up and narrows the eye from below, and pulls the lateral upper lid slightly down (Ekman &
    # Friesen, FACS); the cheek bulge also spreads laterally. One unit = one IOD of cheek displacement.
    for k, (cheek, eye, lid, outward) in enumerate(((a[6], r_eye, a[1], -sign), (a[7], l_eye, a[4], sign))):
        cheek_w = _gauss(face, cheek, 0.30, 0.22)
        below_eye = _smoothstep((y - eye[1]) / 0.04 + 0.5)
        lower_lid_w = _gauss(face, eye + np.array([0.0, 0.08, 0.0]), 0.22, 0.10) * below_eye
        upper_lid_w = _gauss(face, lid, 0.20, 0.08) * (1.0 - below_eye)
        field = cheek_w[:, None] * np.array([0.35 * outward, -1.0, -0.2])
        field += 0.7 * lower_lid_w[:, None] * np.array([0.0, -1.0, 0.0])
        field += 0.3 * upper_lid_w[:, None] * np.array([0.0, 1.0, 0.0])
        bases[2 + k] = field

    # AU25/26 lips part / jaw drop: everything below the mouth line drops, most at the midline.
    mouth_y = 0.5 * (a[9, 1] + a[10, 1])
    jaw_w = _smoothstep((y - mouth_y) / 0.15) * np.exp(-0.5 * (x / 0.9) ** 2)
    bases[4] = jaw_w[:, None] * np.array([0.0, 1.0, 0.1])

    # AU45 blink: the upper lid descends onto the lower lid, which lies about on the line of the eye
    # corners (one unit = full closure); the corners themselves stay put.
    for eye, lid, (c1, c2) in ((r_eye, a[1], (a[0], a[2])), (l_eye, a[4], (a[3], a[5]))):
        above = 1.0 - _smoothstep((y - eye[1]) / 0.04 + 0.5)
        half_width = 0.5 * abs(c2[0] - c1[0])
        window = np.clip(1.0 - ((x - lid[0]) / half_width) ** 2, 0.0, 1.0)
        w = window * np.exp(-0.5 * ((y - lid[1]) / 0.08) ** 2) * above
        bases[5, :, 1] += w * (max(eye[1] - lid[1], 0.05) + 0.03)

    # Identity: smooth per-subject shape variation (face width and height, eye distance, mouth
    # width, nose depth, eye opening), so that identity is a nuisance rather than a label cue.
    identity = np.zeros((6, len(face), 3))
    identity[0, :, 0] = x
    identity[1, :, 1] = y - 0.6
    for eye, direction in ((r_eye, -sign), (l_eye, sign)):
        identity[2, :, 0] += direction * _gauss(face, eye, 0.45)
    for corner, direction in ((a[9], -sign), (a[10], sign)):
        identity[3, :, 0] += direction * _gauss(face, corner, 0.35)
    identity[4, :, 2] = face[:, 2] * _gauss(face, a[8], 0.6)
    identity[5] = -bases[5] * 0.25
    return {
        "face": face.astype(np.float32),
        "bases": bases.reshape(len(_ACTIONS), -1).astype(np.float32),
        "identity": identity.reshape(len(identity), -1),
        "iod": iod,
        "origin": origin,
        "centre": face.mean(axis=0),
    }


def _render_basis(face, bases, n_points):
    """Rows ``(a, i, j)`` = field ``a``'s coordinate ``j`` written into output coordinate ``i``.

    ``a`` runs over the centred face and the action fields; three final rows hold the constant
    translation of each output coordinate. Shape ``(7 * 9 + 3, n_points * 3)``, float32.
    """
    fields = np.concatenate([face[None], bases], axis=0).reshape(-1, n_points, 3)
    n_fields = fields.shape[0]
    rows = np.zeros((n_fields, 3, 3, n_points, 3), dtype=np.float32)
    for i in range(3):
        rows[:, i, :, :, i] = fields.transpose(0, 2, 1)
    const = np.zeros((3, n_points, 3), dtype=np.float32)
    for i in range(3):
        const[i, :, i] = 1.0
    return np.concatenate([rows.reshape(n_fields * 9, -1), const.reshape(3, -1)], axis=0)


def _ramp(u):
    """Raised-cosine ramp from 0 (u <= 0) to 1 (u >= 1): smooth velocity, no jumps."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _envelope(t, start, onset, apex, offset, onset_shape=1.0, offset_shape=1.0, creep=0.0):
    """Rise over ``onset``, hold (growing by ``creep`` over ``apex``), fall over ``offset``.

    The exponents warp each ramp's time (``u ** shape``): above 1 a slow start and a steep end.
    """
    up = _ramp(np.clip((t - start) / onset, 0.0, 1.0) ** onset_shape)
    down = _ramp(np.clip((t - start - onset - apex) / offset, 0.0, 1.0) ** offset_shape)
    hold = 1.0 + creep * np.clip((t - start - onset) / apex, 0.0, 1.0)
    return (up - down) * hold


def _smooth_process(rng, t, scale, size):
    """Sum of three random low-frequency sinusoids (0.05-0.6 Hz): slow drifts with unit-order RMS."""
    freq = rng.uniform(0.05, 0.6, size=(3, size))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(3, size))
    amp = rng.normal(0.0, 1.0, size=(3, size)) / np.sqrt(3.0)
    waves = amp[None] * np.sin(2.0 * np.pi * freq[None] * t[:, None, None] + phase[None])
    return scale * waves.sum(1)


def _rotation_matrices(yaw, pitch, roll):
    """Per-frame rotations R = Rz(roll) Ry(yaw) Rx(pitch), angles in radians, shape (T, 3, 3)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r = np.empty(yaw.shape + (3, 3))
    r[:, 0, 0] = cr * cy
    r[:, 0, 1] = cr * sy * sp - sr * cp
    r[:, 0, 2] = cr * sy * cp + sr * sp
    r[:, 1, 0] = sr * cy
    r[:, 1, 1] = sr * sy * sp + cr * cp
    r[:, 1, 2] = sr * sy * cp - cr * sp
    r[:, 2, 0] = -sy
    r[:, 2, 1] = cy * sp
    r[:, 2, 2] = cy * cp
    return r


def _check_nonnegative(name, value, upper=None):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number; got {value!r}.")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}; got {value!r}.")
    return float(value)


def _composition(preset, n_subjects, videos_per_subject, rng):
    """Per-video labels and subject ids, grouped by subject (posed first, as in sorted file names)."""
    if preset is None:
        labels = []
        for s in range(n_subjects):
            n_gen = videos_per_subject // 2 + (videos_per_subject % 2) * (s % 2 == 0)
            labels.append((n_gen, videos_per_subject - n_gen))
        return labels
    spec = SMILE_PRESETS[preset]
    if "composition" in spec:
        labels = [(g, p) for g, p, count in spec["composition"] for _ in range(count)]
        return [labels[i] for i in rng.permutation(len(labels))]
    n_sub, n_gen = spec["n_subjects"], spec["n_genuine"]
    # Every subject gets as equal a share of the videos as the counts allow (at least one), and the
    # labels are dealt at random over all videos, so subjects differ in their class mix.
    sizes = np.full(n_sub, (n_gen + spec["n_posed"]) // n_sub)
    sizes[rng.permutation(n_sub)[: (n_gen + spec["n_posed"]) % n_sub]] += 1
    labels = np.zeros(sizes.sum(), dtype=np.int64)
    labels[rng.permutation(len(labels))[:n_gen]] = 1
    owner = np.repeat(np.arange(n_sub), sizes)
    return [(int(labels[owner == s].sum()), int((labels[owner == s] == 0).sum())) for s in range(n_sub)]


def _action_timecourses(t, p, rng):
    """Activations ``(T, 6)`` of the actions of :data:`_ACTIONS` for one video, and its blink count."""
    shape = (p["onset_shape"], p["offset_shape"], p["creep"])
    env = _envelope(t, p["lead"], p["onset"], p["apex"], p["offset"], *shape)
    phase = rng.uniform(0, 2 * np.pi)
    wobble = 1.0 + p["irregularity"] * np.sin(2 * np.pi * p["irregularity_freq"] * t + phase)
    act = np.zeros((len(t), len(_ACTIONS)))
    act[:, 0] = p["amplitude"] * (1.0 + 0.5 * p["asymmetry"]) * env * wobble
    act[:, 1] = p["amplitude"] * (1.0 - 0.5 * p["asymmetry"]) * env * wobble
    if p["au6_present"]:
        # AU6 follows AU12 after its lag, with a slightly slower rise, and relaxes with it.
        env6 = _envelope(
            t,
            p["lead"] + p["au6_lag"],
            p["onset"] * p["au6_onset_factor"],
            max(p["apex"] - p["au6_lag"], 0.05),
            p["offset"],
            p["au6_onset_shape"], p["au6_offset_shape"], p["au6_creep"],
        )
        side = p["au6_side"] + rng.normal(0.0, _VIDEO_AU6_SIDE_SD)
        act[:, 2] = p["au6_ratio"] * p["amplitude"] * side * env6
        act[:, 3] = p["au6_ratio"] * p["amplitude"] * (2.0 - side) * env6
    act[:, 4] = p["jaw"] * env
    n_draws = int(p["duration"] * p["blink_rate"] * 6 + 4)  # enough inter-blink gaps to pass the end
    blinks = np.cumsum(rng.exponential(1.0 / p["blink_rate"], size=n_draws))
    blinks = blinks[blinks < p["duration"]]
    if np.isfinite(p["locked_blink"]):
        blinks = np.sort(np.append(blinks, p["lead"] + p["locked_blink"]))
        blinks = blinks[blinks < p["duration"]]
    # The personal eyelid habit follows the smile: narrowing (AU7) > 0, widening (AU5) < 0.
    act[:, 5] += p["lid"] * env
    for tb in blinks:
        u = (t - tb) / rng.uniform(0.18, 0.32)
        act[:, 5] += rng.uniform(0.7, 1.0) * np.where(np.abs(u) < 0.5, 0.5 + 0.5 * np.cos(2 * np.pi * u), 0.0)
    return act, len(blinks)


def _render_video(t, act, basis, face_size, position, head_motion, noise, rng):
    """Landmarks ``(T, n_points, 3)`` float32 from activations, with head motion, placement and jitter.

    The head rotates about the face centre by drifting yaw/pitch/roll, its size and position drift,
    and the face is placed in MediaPipe-normalised image units (z keeps the x scale, as MediaPipe's
    relative depth does).
    """
    T = len(t)
    angles = np.deg2rad(_HEAD_ANGLE_DEG * head_motion) * (
        rng.normal(0.0, 1.0, 3)[None, :] * 0.7 + _smooth_process(rng, t, 1.0, 3)
    )
    scale = face_size * (1.0 + 0.02 * head_motion * _smooth_process(rng, t, 1.0, 1)[:, 0])
    motion = _rotation_matrices(angles[:, 0], angles[:, 1], angles[:, 2]) * scale[:, None, None]
    shift = np.zeros((T, 3))
    shift[:, :2] = position + 0.01 * head_motion * _smooth_process(rng, t, 1.0, 2)
    # out[t, p, i] = sum_a sum_j act[t, a] M[t, i, j] basis_a[p, j] + shift[t, i] is linear in the
    # per-frame coefficients act[t, a] M[t, i, j]: one (T, 7*9 + 3) @ (7*9 + 3, n_points*3) matmul
    # renders the whole video directly in its output layout.
    act_all = np.concatenate([np.ones((T, 1)), act], axis=1)
    coef = np.concatenate([(act_all[:, :, None, None] * motion[:, None]).reshape(T, -1), shift], axis=1)
    out = np.matmul(coef.astype(np.float32), basis)
    if noise > 0:
        # Isotropic jitter is rotation invariant in distribution, so it is added after the rigid
        # motion, scaled per frame.
        jitter = rng.standard_normal(out.shape, dtype=np.float32)
        jitter *= (_JITTER_SD * noise * scale).astype(np.float32)[:, None]
        out += jitter
    return out.reshape(T, -1, 3)


def _drop_frames(video, fraction, rng):
    """Overwrite bursts of 1-5 frames with NaN (about ``fraction`` of the frames); first/last kept."""
    T = len(video)
    if fraction <= 0 or T <= 2:
        return 0
    lost = np.zeros(T, dtype=bool)
    n_bursts = rng.binomial(T, fraction / 3.0)
    for start, length in zip(rng.integers(1, T - 1, n_bursts), rng.integers(1, 6, n_bursts)):
        lost[start:start + length] = True
    lost[0] = lost[-1] = False
    video[lost] = np.nan
    return int(lost.sum())


def make_smiles(
    n_subjects=None,
    videos_per_subject=None,
    *,
    preset=None,
    fps=None,
    difficulty=0.5,
    head_motion=1.0,
    noise=1.0,
    missing_frames=0.0,
    scheme="mediapipe478",
    random_state=None,
):
    r"""Generate genuine and posed smile videos as MediaPipe Face Mesh landmark sequences.

    Every video is a neutral face that smiles once (onset, apex, offset) and returns to neutral,
    seen by a slightly moving head through a jittery tracker. Genuine (spontaneous) and posed
    (deliberate) smiles differ in the way the literature reports, each cue as an overlapping
    distribution, so that the handcrafted D-Marker pipeline reaches accuracies close to those
    published on UvA-NEMO and better models have measurable headroom.

    Parameters
    ----------
    n_subjects : int, default=20
        Number of simulated people. Must be left unset with ``preset``.
    videos_per_subject : int, default=4
        Videos per subject, half genuine and half posed (an odd count alternates the extra video
        between the classes). Must be left unset with ``preset``.
    preset : {"uvanemo", "mmi", "spos", "bbc"}, optional
        Mimic the size, class counts, frame rate and fold count of a published set:
        ``"uvanemo"`` 1240 videos (597 genuine / 643 posed, the per-subject composition of the
        published folds), 400 subjects, 50 fps, 10 folds; ``"mmi"`` 184 (138 / 46), 27 subjects,
        29 fps genuine and 25 fps posed, 9 folds; ``"spos"`` 80 (66 / 14), 7 subjects, 25 fps,
        7 folds; ``"bbc"`` 20 (10 / 10), 20 subjects, 25 fps, 10 folds.
    fps : float, optional
        Frame rate. Default 50.0, or the preset's (per class for ``"mmi"``). Giving it with a
        preset overrides the preset's rate for every video (durations in seconds are unchanged,
        so a low rate gives a cheap, short version of the same set).
    difficulty : float in [0, 1], default=0.5
        Class overlap. Every class difference below is scaled by ``s = 2 (1 - difficulty)``:
        0 doubles the literature-based differences, 0.5 uses them as calibrated, 1 removes them
        (chance level).
    head_motion : float, default=1.0
        Scale of head rotation (about 3 degrees of yaw/pitch/roll per unit), translation and scale
        drift. 0 keeps the head still.
    noise : float, default=1.0
        Scale of the per-landmark tracking jitter (0.002 IOD standard deviation per unit for the
        median subject; each subject's recording has its own jitter level).
    missing_frames : float in [0, 0.5], default=0.0
        Expected fraction of frames where the tracker lost the face, written as all-NaN rows in
        bursts of 1-5 frames (first and last frames are always tracked).
    scheme : str or LandmarkScheme, default="mediapipe478"
        Landmark scheme whose D-Marker points anchor the facial actions. Must have 478 landmarks
        (the template is a MediaPipe Face Mesh).
    random_state : int, numpy Generator, RandomState or None, default=None
        Seed. The same seed gives the same data.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X``: list of float32 arrays ``(n_frames_i, 478, 3)`` in MediaPipe-normalised
          coordinates (x, y image fractions with y down, z relative depth).
        - ``y``: int array, 1 = genuine/spontaneous, 0 = posed/deliberate.
        - ``target_names``: ``array(["posed", "genuine"])``.
        - ``groups``: int array of subject ids.
        - ``fps``: float, or a float array with one rate per video (``"mmi"``).
        - ``names``: array of video names such as ``"017_spontaneous_smile_2"``.
        - ``latent``: :class:`pandas.DataFrame` of the per-video generative parameters (one row per
          video; ``latent.attrs["class_informative"]`` names the class-dependent columns).
        - ``cv_folds``: number of folds of the mimicked protocol.
        - ``DESCR``: a short description.

    Raises
    ------
    ValueError
        For an unknown preset, sizes given together with a preset, out-of-range parameters or a
        scheme that is not a 478-point scheme.

    See Also
    --------
    hadasklearn.datasets.save_landmark_folder : Write the data in the published folder layout.
    hadasklearn.model_selection.subject_independent_folds : The folds of the mimicked protocol.

    Notes
    -----
    **Face.** A neutral template :math:`F_0 \in \mathbb{R}^{478 \times 3}` (MediaPipe on
    ``skimage.data.astronaut()``, produced by ``scripts/make_face_template.py``) is expressed in
    inter-ocular distances (IOD). Subject :math:`s` has the identity
    :math:`F_s = F_0 + \sum_k b_{sk} S_k` with smooth shape fields :math:`S_k` (face width and
    height, eye distance, mouth width, nose depth, eye opening) and :math:`b_{sk}` normal.

    **Actions.** Six displacement fields :math:`B_a` (Gaussian-weighted around the scheme's
    D-Marker points): AU12 right and left (lip corners up, out and back), AU6 right and left
    (cheek up, lower lid up, upper lid slightly down: the Duchenne marker, Ekman & Friesen 1978;
    Ekman et al. 1990), AU25/26 (lower face drops) and AU45 (blink). Frame :math:`t` is

    .. math:: P(t) = T_t\Big(F_s + \sum_a \alpha_a(t) B_a + \varepsilon_t\Big),
              \qquad \varepsilon_t \sim \mathcal{N}(0, \sigma^2 I)

    with :math:`T_t` a rigid head motion (rotation about the face centre by drifting yaw, pitch
    and roll, a drifting translation and scale) and the MediaPipe placement of the face.

    **Time courses.** With the raised-cosine ramp :math:`r(u) = \tfrac12 - \tfrac12\cos(\pi\,
    \mathrm{clip}(u, 0, 1))`, the smile envelope is
    :math:`e(t) = \big[r(u_{on}^{k_{on}}) - r(u_{off}^{k_{off}})\big]\,(1 + \kappa\, u_{apex})`
    with :math:`u_{on} = \tfrac{t - t_0}{d_{on}}`,
    :math:`u_{apex} = \mathrm{clip}\big(\tfrac{t - t_0 - d_{on}}{d_{apex}}, 0, 1\big)`,
    :math:`u_{off} = \tfrac{t - t_0 - d_{on} - d_{apex}}{d_{off}}` (clipped to [0, 1]), the
    profile exponents :math:`k` and apex drift :math:`\kappa` of the subject's routine (below), and
    :math:`\alpha_{12,R/L}(t) = A (1 \pm \tfrac{\gamma}{2})\, e(t)\,
    (1 + \iota \sin(2\pi f t + \phi))`. AU6, when present, follows an envelope of this form (its
    own routine profile and drift) delayed by
    :math:`\lambda` with amplitude :math:`\rho A`. Blinks (AU45) are raised-cosine bumps at a
    Poisson rate (0.3/s for the average subject) in both classes; AU25/26 follows the envelope with
    a per-subject probability (half the videos on average) in both classes.

    **Class differences** (genuine vs posed; log-normal medians; all distributions overlap):

    - amplitude :math:`A` 0.105 vs 0.135 IOD: deliberate smiles are larger (Schmidt et al., 2006;
      Dibeklioglu et al., 2012);
    - onset :math:`d_{on}` 0.75 vs 0.48 s and offset :math:`d_{off}` 1.0 vs 0.66 s, hence faster
      posed onset and offset speeds :math:`A / d` (Cohn & Schmidt, 2004; Schmidt et al., 2006;
      Dibeklioglu et al., 2012, 2015);
    - apex :math:`d_{apex}` 1.25 vs 0.85 s: shorter apex in posed smiles (Dibeklioglu et al., 2012);
    - asymmetry :math:`\gamma \sim \mathcal{N}(0, \sigma_\gamma^2)`, :math:`\sigma_\gamma` 0.05 vs
      0.14: deliberate expressions are more asymmetric (Ekman, Hager & Friesen, 1981);
    - AU6 present with probability 0.80 vs 0.25, ratio :math:`\rho` 0.55 vs 0.38, lag
      :math:`\lambda` 0.04 vs 0.30 s: the Duchenne marker is weaker, later or absent in posed
      smiles, yet some posed smiles have it and some genuine ones lack it (Ekman et al., 1990;
      Krumhuber & Manstead, 2009; Dibeklioglu et al., 2012);
    - irregularity :math:`\iota` 0.025 vs 0.06: spontaneous smiles are smoother (Cohn & Schmidt,
      2004; Schmidt et al., 2006).

    ``difficulty`` scales every difference in log space (logit space for the AU6 probability).

    **Subject random effects.** Expressivity (log-sd 0.22) multiplies the amplitudes, speed
    (log-sd 0.18) the durations, and an AU6 propensity (logit-sd 0.8) shifts the AU6 probability.
    Each class cue :math:`c` above is drawn as
    :math:`\log c = \mu_{c,y} + \sigma_c(\sqrt{w}\, u_{s,y} + \sqrt{1 - w}\, \varepsilon_v)` with
    :math:`w = 0.95`: a person reproduces their own posed smile, and their own genuine smile,
    so almost all of a cue's within-class spread lies between (subject, class) pairs (the AU6
    presence uses the same split through a Gaussian copula). A *smile routine*, drawn once per
    (subject, class) and identical in distribution for both classes, shapes every video of that
    pair: the rise and fall profiles :math:`r(u^{k})` with :math:`k = \exp(\mathcal N(0, 1))`
    clipped to [0.4, 3], a growth or fading of the smile over its apex (sd 0.5 of the amplitude),
    an eyelid narrowing (AU7) or widening (AU5) that follows the smile (sd 0.55 of a blink), the
    same profile and drift for AU6, AU6's rise time relative to AU12 (log-sd 0.3), and in 40 % of
    the routines a blink locked to the smile's onset. Class-independent habits complete the
    person: a left/right bias of the lip corners (sd 0.06), a jaw-drop habit (each subject's
    probability of AU25/26 is Beta(0.3, 0.3)), a blink rate (log-sd 1.0 around 0.3/s), an AU6
    left/right balance, and recording conditions (tracking jitter log-sd 0.7, head-motion level
    log-sd 0.4). None of these is a label cue on average, but together they make a subject's
    videos of one class resemble each other in D-Marker space far more than two videos of
    different people: a model evaluated with random (not subject-independent) folds can recall a
    sibling video's label, as on the real sets, so subject-independent CV is harder.
    **Nuisances:** neutral lead-in and tail of 0.3-1.2 s (videos of about 2-8 s), head rotation
    and drift, per-landmark jitter, per-subject face placement and size, optional NaN dropouts.

    References
    ----------
    .. [1] Cohn, J. F., & Schmidt, K. L. (2004). The timing of facial motion in posed and
       spontaneous smiles. International Journal of Wavelets, Multiresolution and Information
       Processing, 2(2), 121-132.
    .. [2] Schmidt, K. L., Ambadar, Z., Cohn, J. F., & Reed, L. I. (2006). Movement differences
       between deliberate and spontaneous facial expressions: zygomaticus major action in smiling.
       Journal of Nonverbal Behavior, 30(1), 37-52.
    .. [3] Dibeklioglu, H., Salah, A. A., & Gevers, T. (2012). Are you really smiling at me?
       Spontaneous versus posed enjoyment smiles. ECCV, 525-538.
    .. [4] Dibeklioglu, H., Salah, A. A., & Gevers, T. (2015). Recognition of genuine smiles.
       IEEE Transactions on Multimedia, 17(3), 279-294.
    .. [5] Ekman, P., Hager, J. C., & Friesen, W. V. (1981). The symmetry of emotional and
       deliberate facial actions. Psychophysiology, 18(2), 101-106.
    .. [6] Ekman, P., Davidson, R. J., & Friesen, W. V. (1990). The Duchenne smile: emotional
       expression and brain physiology II. Journal of Personality and Social Psychology, 58(2),
       342-353.
    .. [7] Krumhuber, E. G., & Manstead, A. S. R. (2009). Can Duchenne smiles be feigned? New
       evidence on felt and false smiles. Emotion, 9(6), 807-820.

    Examples
    --------
    >>> from hadasklearn.datasets import make_smiles
    >>> data = make_smiles(n_subjects=3, videos_per_subject=2, fps=10, random_state=0)
    >>> len(data.X), data.X[0].shape[1:], data.X[0].dtype
    (6, (478, 3), dtype('float32'))
    >>> data.y.tolist(), data.groups.tolist()
    ([0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 2, 2])
    >>> str(data.names[1])
    '000_spontaneous_smile_1'
    """
    if preset is not None:
        if preset not in SMILE_PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; valid presets are {sorted(SMILE_PRESETS)}.")
        if n_subjects is not None or videos_per_subject is not None:
            raise ValueError(
                f"preset={preset!r} fixes the number of subjects and videos; leave n_subjects and "
                "videos_per_subject unset, or pass preset=None."
            )
    else:
        n_subjects = 20 if n_subjects is None else n_subjects
        videos_per_subject = 4 if videos_per_subject is None else videos_per_subject
        for name, value in (("n_subjects", n_subjects), ("videos_per_subject", videos_per_subject)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    difficulty = _check_nonnegative("difficulty", difficulty, 1.0)
    head_motion = _check_nonnegative("head_motion", head_motion)
    noise = _check_nonnegative("noise", noise)
    missing_frames = _check_nonnegative("missing_frames", missing_frames, 0.5)
    if fps is not None:
        fps = _check_nonnegative("fps", fps)
        if fps < 5:
            raise ValueError(f"fps must be at least 5 to resolve a smile's onset; got {fps!r}.")
    scheme_obj = get_scheme(scheme)
    if scheme_obj.n_landmarks != 478:
        raise ValueError(
            f"make_smiles animates a 478-point MediaPipe Face Mesh template; scheme "
            f"{scheme_obj.name!r} has {scheme_obj.n_landmarks} landmarks. Use scheme='mediapipe478' "
            "or a LandmarkScheme with n_landmarks=478."
        )
    model = _face_model(scheme_obj)

    rng = _rng_from(random_state)
    composition = _composition(preset, n_subjects, videos_per_subject, rng)
    y, groups, names = [], [], []
    for s, (n_gen, n_pos) in enumerate(composition):
        for label, count, word in ((0, n_pos, "deliberate"), (1, n_gen, "spontaneous")):
            for k in range(count):
                y.append(label)
                groups.append(s)
                names.append(f"{s:03d}_{word}_smile_{k + 1}")
    y = np.asarray(y, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n = len(y)
    n_sub = len(composition)

    if fps is None:
        spec_fps = SMILE_PRESETS[preset]["fps"] if preset is not None else 50.0
        if isinstance(spec_fps, tuple):
            fps_out = np.where(y == 1, spec_fps[1], spec_fps[0]).astype(np.float64)
            video_fps = fps_out
        else:
            fps_out = float(spec_fps)
            video_fps = np.full(n, fps_out)
    else:
        fps_out = float(fps)
        video_fps = np.full(n, fps_out)
    cv_folds = SMILE_PRESETS[preset]["cv_folds"] if preset is not None else int(min(10, n_sub))

    # Subject random effects and identity.
    sep = 2.0 * (1.0 - difficulty)
    g = groups
    expressivity = np.exp(rng.normal(0.0, _SUBJECT_EXPRESSIVITY_SD, n_sub))
    speed = np.exp(rng.normal(0.0, _SUBJECT_SPEED_SD, n_sub))
    au6_logit_shift = rng.normal(0.0, _SUBJECT_AU6_LOGIT_SD, n_sub)
    identity = rng.normal(0.0, 1.0, (n_sub, model["identity"].shape[0])) * np.array(
        [0.06, 0.05, 0.04, 0.04, 0.15, 0.4]
    )
    face_scale = rng.uniform(0.9, 2.2, n_sub)  # face size relative to the template photo
    face_pos = np.column_stack([rng.normal(0.5, 0.04, n_sub), rng.normal(0.45, 0.04, n_sub)])
    tracking = _lognormal_unit_mean(rng, _SUBJECT_TRACKING_LOGSD, n_sub)
    head_level = _lognormal_unit_mean(rng, _SUBJECT_HEAD_LOGSD, n_sub)

    def subject_class_normal():
        """Standard normal per video, ``_SUBJECT_CLASS_SHARE`` of its variance shared by the
        subject's videos of the same class."""
        shared = rng.normal(0.0, 1.0, (n_sub, 2))[g, y]
        w = _SUBJECT_CLASS_SHARE
        return np.sqrt(w) * shared + np.sqrt(1.0 - w) * rng.normal(0.0, 1.0, n)

    def class_value(key, log=True):
        (gen, pos), sd = _CLASS[key]
        lo, hi = (np.log(gen), np.log(pos)) if log else (gen, pos)
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * sep
        centre = np.where(y == 1, mid - half, mid + half)
        value = centre + sd * subject_class_normal()
        return np.exp(value) if log else value

    amplitude = class_value("amplitude") * expressivity[g]
    onset = np.clip(class_value("onset_s") * speed[g], 0.15, 2.0)
    apex = np.clip(class_value("apex_s") * speed[g], 0.1, 3.0)
    offset = np.clip(class_value("offset_s") * speed[g], 0.2, 2.5)
    gen_sd, pos_sd = _CLASS["asymmetry_sd"]
    log_mid, log_half = 0.5 * np.log(gen_sd * pos_sd), 0.5 * np.log(pos_sd / gen_sd) * sep
    asymmetry = np.exp(np.where(y == 1, log_mid - log_half, log_mid + log_half)) * subject_class_normal()
    subject_asymmetry = rng.normal(0.0, _SUBJECT_ASYMMETRY_SD, n_sub)
    asymmetry = np.clip(asymmetry + subject_asymmetry[g], -0.8, 0.8)
    p_gen, p_pos = _CLASS["au6_prob"]
    logit_mid = 0.5 * (np.log(p_gen / (1 - p_gen)) + np.log(p_pos / (1 - p_pos)))
    logit_half = 0.5 * (np.log(p_gen / (1 - p_gen)) - np.log(p_pos / (1 - p_pos))) * sep
    logit = np.where(y == 1, logit_mid + logit_half, logit_mid - logit_half) + au6_logit_shift[g]
    # A Gaussian copula: each video's AU6 has the probability of its class and subject, and a
    # subject's videos of one class mostly agree.
    au6_present = special.ndtr(subject_class_normal()) < special.expit(logit)
    au6_ratio = np.where(au6_present, class_value("au6_ratio"), 0.0)
    au6_lag = np.where(au6_present, np.maximum(class_value("au6_lag_s", log=False), -0.1), np.nan)
    irregularity = class_value("irregularity")
    irregularity_freq = 0.9 * rng.uniform(1.5, 3.5, n_sub)[g] + 0.1 * rng.uniform(1.5, 3.5, n)
    jaw_habit = rng.beta(_SUBJECT_JAW_BETA, _SUBJECT_JAW_BETA, n_sub)
    jaw_size = rng.uniform(0.05, 0.25, n_sub)
    jaw_on = rng.random(n) < jaw_habit[g]
    jaw = np.where(jaw_on, jaw_size[g] * np.exp(rng.normal(0.0, 0.15, n)), 0.0) * expressivity[g]
    blink_rate = _BLINK_RATE_HZ * _lognormal_unit_mean(rng, _SUBJECT_BLINK_LOGSD, n_sub)
    au6_side = 1.0 + rng.normal(0.0, _SUBJECT_AU6_SIDE_SD, n_sub)

    def routine():
        """Standard normal, one draw per (subject, class), the same for that pair's videos."""
        return rng.normal(0.0, 1.0, (n_sub, 2))[g, y]

    # The clips keep every profile and drift within what a face does: an exponent of 0.4 is a
    # snap-like start (steepest in the first frame), 3 a slow, hesitant one.
    onset_shape = np.clip(np.exp(_ROUTINE_SHAPE_LOGSD * routine()), 0.4, 3.0)
    offset_shape = np.clip(np.exp(_ROUTINE_SHAPE_LOGSD * routine()), 0.4, 3.0)
    creep = np.clip(_ROUTINE_CREEP_SD * routine(), -0.6, 0.8)
    lid = np.clip(_ROUTINE_LID_SD * routine(), -0.6, 0.6)
    au6_onset_shape = np.clip(np.exp(_ROUTINE_SHAPE_LOGSD * routine()), 0.4, 3.0)
    au6_offset_shape = np.clip(np.exp(_ROUTINE_SHAPE_LOGSD * routine()), 0.4, 3.0)
    au6_creep = np.clip(_ROUTINE_CREEP_SD * routine(), -0.6, 0.8)
    au6_onset_factor = 1.1 * np.exp(_ROUTINE_AU6_ONSET_LOGSD * routine())
    blink_locked = special.ndtr(routine()) < _ROUTINE_LOCKED_BLINK_P
    locked_blink = np.where(blink_locked, np.clip(0.4 + 0.5 * routine(), -0.2, 2.0) * onset, np.nan)

    lead = rng.uniform(0.3, 1.2, n)
    tail = rng.uniform(0.3, 1.2, n)
    # Keep videos within about 2-8 s, as in the published sets.
    total = lead + onset + apex + offset + tail
    excess = np.maximum(total - 8.0, 0.0)
    cut = np.minimum(excess, lead + tail - 0.5)
    lead, tail = lead - cut * lead / (lead + tail), tail - cut * tail / (lead + tail)
    tail = tail + np.maximum(2.0 - (lead + onset + apex + offset + tail), 0.0)
    duration = lead + onset + apex + offset + tail
    n_frames = np.maximum(np.round(duration * video_fps).astype(np.int64), 3)

    seeds = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
    face_rows = (model["face"].reshape(-1) - np.tile(model["centre"], model["face"].shape[0]))[None] + (
        identity @ model["identity"]
    )
    params = pd.DataFrame(
        {
            "lead": lead, "onset": onset, "apex": apex, "offset": offset, "duration": duration,
            "amplitude": amplitude, "asymmetry": asymmetry, "au6_present": au6_present,
            "au6_ratio": au6_ratio, "au6_lag": au6_lag, "irregularity": irregularity,
            "irregularity_freq": irregularity_freq, "jaw": jaw, "blink_rate": blink_rate[g],
            "au6_side": au6_side[g], "onset_shape": onset_shape, "offset_shape": offset_shape,
            "creep": creep, "lid": lid, "au6_onset_shape": au6_onset_shape,
            "au6_offset_shape": au6_offset_shape, "au6_creep": au6_creep,
            "au6_onset_factor": au6_onset_factor, "locked_blink": locked_blink,
        }
    ).to_dict("records")
    X = []
    n_blinks = np.zeros(n, dtype=np.int64)
    n_missing = np.zeros(n, dtype=np.int64)
    basis_subject, basis = -1, None
    # Many small products: BLAS threads would only add contention (limited once: it is costly).
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(n):
            vrng = np.random.default_rng(seeds[i])
            s = g[i]
            t = np.arange(n_frames[i]) / video_fps[i]
            act, n_blinks[i] = _action_timecourses(t, params[i], vrng)
            if s != basis_subject:  # videos come grouped by subject
                basis, basis_subject = _render_basis(face_rows[s], model["bases"], len(model["face"])), s
            shift = face_pos[s]
            out = _render_video(
                t, act, basis, model["iod"] * face_scale[s], shift,
                head_motion * head_level[s], noise * tracking[s], vrng,
            )
            n_missing[i] = _drop_frames(out, missing_frames, vrng)
            X.append(out)

    latent = pd.DataFrame(
        {
            "name": names,
            "subject": groups,
            "label": y,
            "fps": video_fps,
            "n_frames": n_frames,
            "duration_s": duration,
            "lead_s": lead,
            "onset_s": onset,
            "apex_s": apex,
            "offset_s": offset,
            "amplitude": amplitude,
            "asymmetry": asymmetry,
            "onset_speed": amplitude * np.pi / (2.0 * onset),
            "offset_speed": amplitude * np.pi / (2.0 * offset),
            "au6_present": au6_present,
            "au6_ratio": au6_ratio,
            "au6_lag_s": au6_lag,
            "irregularity": irregularity,
            "jaw_amplitude": jaw,
            "n_blinks": n_blinks,
            "n_missing_frames": n_missing,
            "subject_expressivity": expressivity[g],
            "subject_speed": speed[g],
            "subject_asymmetry": subject_asymmetry[g],
            "subject_blink_rate_hz": blink_rate[g],
            "subject_jaw_habit": jaw_habit[g],
            "subject_au6_side": au6_side[g],
            "subject_tracking_noise": tracking[g],
            "subject_head_motion": head_level[g],
            "routine_onset_shape": onset_shape,
            "routine_offset_shape": offset_shape,
            "routine_apex_creep": creep,
            "routine_lid": lid,
            "routine_au6_onset_shape": au6_onset_shape,
            "routine_au6_offset_shape": au6_offset_shape,
            "routine_au6_apex_creep": au6_creep,
            "routine_au6_onset_factor": au6_onset_factor,
            "routine_locked_blink_s": locked_blink,
        }
    )
    latent.attrs["class_informative"] = list(CLASS_INFORMATIVE_LATENTS)
    descr = (
        f"Synthetic smiles (hadasklearn.datasets.make_smiles): {n} videos "
        f"({int(y.sum())} genuine / {int(n - y.sum())} posed) of {n_sub} subjects"
        + (f", preset {preset!r}" if preset else "")
        + f", difficulty={difficulty}, head_motion={head_motion}, noise={noise}, "
        f"missing_frames={missing_frames}."
    )
    return Bunch(
        X=X,
        y=y,
        target_names=np.array(["posed", "genuine"]),
        groups=groups,
        fps=fps_out,
        names=np.array(names),
        latent=latent,
        cv_folds=cv_folds,
        DESCR=descr,
    )
