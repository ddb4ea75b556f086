import collections
import re

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from hadasklearn import DMarkerTransformer, dmarker_features
from hadasklearn._dmarker import dmarker_feature_names
from hadasklearn.datasets import SMILE_PRESETS, make_smiles
from hadasklearn.landmarks import gather_points, get_scheme


def _small(**kwargs):
    params = dict(n_subjects=3, videos_per_subject=2, fps=10, random_state=0)
    params.update(kwargs)
    return make_smiles(**params)


def test_shapes_dtypes_and_bunch_fields():
    data = _small()
    assert len(data.X) == len(data.y) == len(data.groups) == len(data.names) == len(data.latent) == 6
    for video in data.X:
        assert video.dtype == np.float32 and video.ndim == 3 and video.shape[1:] == (478, 3)
        assert np.isfinite(video).all()
    assert data.y.dtype.kind == "i" and set(data.y.tolist()) == {0, 1}
    assert data.target_names.tolist() == ["posed", "genuine"]
    assert data.fps == 10.0 and data.cv_folds == 3
    assert set(data.latent.attrs["class_informative"]) <= set(data.latent.columns)
    # Coordinates are MediaPipe-normalised image fractions.
    xy = np.concatenate([v[..., :2].reshape(-1, 2) for v in data.X])
    assert (xy > 0).all() and (xy < 1).all()


def test_names_follow_published_convention_and_match_groups():
    data = _small(n_subjects=4, videos_per_subject=5)
    assert len(set(data.names)) == len(data.names)
    for name, label, subject in zip(data.names, data.y, data.groups):
        m = re.fullmatch(r"(\d{3})_(spontaneous|deliberate)_smile_(\d+)", name)
        assert m, name
        assert int(m.group(1)) == subject
        assert (m.group(2) == "spontaneous") == bool(label)


def test_determinism_per_random_state():
    a, b, c = _small(random_state=3), _small(random_state=3), _small(random_state=4)
    assert all(np.array_equal(u, v) for u, v in zip(a.X, b.X))
    assert a.latent.equals(b.latent)
    assert not all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a.X, c.X))
    gen = np.random.default_rng(5)
    d, e = _small(random_state=gen), _small(random_state=np.random.default_rng(5))
    assert all(np.array_equal(u, v) for u, v in zip(d.X, e.X))


@pytest.mark.parametrize(
    "preset, n, n_genuine, n_subjects, folds",
    [
        ("uvanemo", 1240, 597, 400, 10),
        ("mmi", 184, 138, 27, 9),
        ("spos", 80, 66, 7, 7),
        ("bbc", 20, 10, 20, 10),
    ],
)
def test_preset_sizes_and_class_counts_are_exact(preset, n, n_genuine, n_subjects, folds):
    # fps=5 keeps the same videos (durations are in seconds) at a tenth of the cost.
    data = make_smiles(preset=preset, fps=5, random_state=0)
    assert len(data.X) == n and int(data.y.sum()) == n_genuine
    assert len(np.unique(data.groups)) == n_subjects
    assert data.cv_folds == folds == SMILE_PRESETS[preset]["cv_folds"]
    assert all(len(v) >= 3 for v in data.X)
    per_subject = collections.Counter(
        (int(data.y[data.groups == s].sum()), int((data.y[data.groups == s] == 0).sum()))
        for s in np.unique(data.groups)
    )
    assert min(g + p for g, p in per_subject) >= 1
    if preset == "uvanemo":
        # The per-subject class mix counted from the published UvA-NEMO fold files.
        assert per_subject == {(g, p): c for g, p, c in SMILE_PRESETS["uvanemo"]["composition"]}


def test_mmi_frame_rates_differ_by_class():
    data = make_smiles(preset="mmi", random_state=0)
    assert data.fps.shape == (184,)
    assert set(data.fps[data.y == 1].tolist()) == {29.0} and set(data.fps[data.y == 0].tolist()) == {25.0}
    lengths = np.array([len(v) for v in data.X])
    np.testing.assert_allclose(lengths / data.fps, data.latent["duration_s"], atol=0.6 / 25)


def test_video_lengths_between_two_and_eight_seconds():
    data = make_smiles(n_subjects=30, videos_per_subject=4, fps=10, random_state=0)
    duration = data.latent["duration_s"].to_numpy()
    assert duration.min() >= 2.0 - 1e-9 and duration.max() <= 8.0 + 1e-9
    assert duration.max() - duration.min() > 2.0


def test_missing_frames_are_whole_nan_rows_and_edges_are_tracked():
    data = make_smiles(n_subjects=5, videos_per_subject=4, fps=25, missing_frames=0.1, random_state=0)
    total = sum(len(v) for v in data.X)
    n_nan = 0
    for video, n_missing in zip(data.X, data.latent["n_missing_frames"]):
        frame_nan = np.isnan(video).reshape(len(video), -1)
        assert (frame_nan.all(axis=1) == frame_nan.any(axis=1)).all()
        assert not frame_nan[0].any() and not frame_nan[-1].any()
        assert frame_nan.all(axis=1).sum() == n_missing
        n_nan += n_missing
    assert 0.05 < n_nan / total < 0.15
    # The D-Marker engine accepts them (interpolation).
    with pytest.warns(UserWarning):
        assert np.isfinite(dmarker_features(data.X, fps=25.0)).all()


def test_displacement_fields_are_local_to_the_face_actions():
    data = _small(head_motion=0.0, noise=0.0, fps=25)
    scheme = get_scheme("mediapipe478")
    for video, row in zip(data.X, data.latent.itertuples()):
        points = gather_points(video, scheme)
        lip_width = np.linalg.norm(points[0, 9] - points[0, 10])
        apex = int((row.lead_s + row.onset_s + 0.5 * row.apex_s) * 25)
        assert np.linalg.norm(points[apex, 9] - points[0, 9]) / lip_width > 0.05  # moved at the apex
        # Forehead (10, 151) and nose bridge (168) are far from every action: a still head keeps
        # them (almost) still. (Compared with the lip corner's largest excursion: the smile may
        # grow over its apex, so the far points' largest motion need not be at mid-apex.)
        moved = np.linalg.norm(points[:, 9] - points[:1, 9], axis=-1).max() / lip_width
        far = np.abs(video[:, [10, 151, 168]] - video[:1, [10, 151, 168]]).max() / lip_width
        assert far < 0.01 * moved
        np.testing.assert_allclose(points[-1, 9:], points[0, 9:], atol=1e-4)  # back to neutral


def test_no_head_motion_and_no_noise_make_a_subjects_first_frames_equal():
    data = make_smiles(n_subjects=2, videos_per_subject=3, fps=25, head_motion=0.0, noise=0.0, random_state=0)
    lips = [v[0, [61, 291, 0, 17]] for v in data.X]
    assert np.allclose(lips[0], lips[1], atol=1e-6) and np.allclose(lips[0], lips[2], atol=1e-6)
    assert not np.allclose(lips[0], lips[3], atol=1e-4)  # another subject, another face


def _dmarkers_by_name(data, fps):
    return dict(zip(dmarker_feature_names(), dmarker_features(data.X, fps=fps).T))


def test_literature_class_differences_hold_in_generated_landmarks():
    data = make_smiles(n_subjects=60, videos_per_subject=4, fps=25, random_state=0)
    F = _dmarkers_by_name(data, 25.0)
    gen, pos = data.y == 1, data.y == 0

    def median(name, mask):
        return float(np.median(F[name][mask]))

    # Posed smiles: faster onset and offset (Cohn & Schmidt 2004; Schmidt et al. 2006) ...
    assert median("lip_onset_mean_speed_inc", pos) > 1.2 * median("lip_onset_mean_speed_inc", gen)
    assert median("lip_offset_mean_speed_dec", pos) > 1.2 * median("lip_offset_mean_speed_dec", gen)
    # ... larger amplitude (Schmidt et al. 2006) ...
    assert median("lip_apex_max_amplitude", pos) > median("lip_apex_max_amplitude", gen)
    # ... and a shorter apex (Dibeklioglu et al. 2012).
    assert median("lip_apex_duration", gen) > 1.2 * median("lip_apex_duration", pos)
    # The latent parameters show every designed difference.
    lat = data.latent
    assert lat.onset_speed[pos].mean() > lat.onset_speed[gen].mean()
    assert lat.apex_s[gen].median() > lat.apex_s[pos].median()
    assert lat.asymmetry[pos].abs().mean() > lat.asymmetry[gen].abs().mean()
    assert lat.au6_present[gen].mean() > lat.au6_present[pos].mean()
    # ... but the classes overlap: some posed smiles have AU6, some genuine ones lack it.
    assert 0 < lat.au6_present[pos].mean() and lat.au6_present[gen].mean() < 1


def test_difficulty_one_removes_the_class_differences():
    data = make_smiles(n_subjects=100, videos_per_subject=4, fps=5, difficulty=1.0, random_state=0)
    lat = data.latent
    for column in ("onset_s", "apex_s", "amplitude"):
        ratio = np.log(lat[column][data.y == 1]).mean() - np.log(lat[column][data.y == 0]).mean()
        assert abs(ratio) < 0.1, column


def _calibration(data, n_splits, fps):
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
    cv = list(splitter.split(data.X, data.y, data.groups))
    pipe = make_pipeline(DMarkerTransformer(fps=fps), StandardScaler(), SVC())
    pipe_acc = cross_val_score(pipe, data.X, data.y, cv=cv).mean()
    F = dmarker_features(data.X, fps=fps)
    stump = DecisionTreeClassifier(max_depth=1)
    best_column = max(cross_val_score(stump, F[:, [j]], data.y, cv=cv).mean() for j in range(F.shape[1]))
    lat = data.latent
    Z = np.column_stack(
        [
            np.log(lat.amplitude), lat.asymmetry.abs(), np.log(lat.onset_s), np.log(lat.apex_s),
            np.log(lat.offset_s), lat.au6_ratio, lat.au6_lag_s.fillna(1.0), np.log(lat.irregularity),
        ]
    )
    latent_acc = cross_val_score(make_pipeline(StandardScaler(), SVC()), Z, data.y, cv=cv).mean()
    return pipe_acc, best_column, latent_acc


def test_calibration_on_a_reduced_set():
    # 400 videos at 25 fps: the targets of the full preset, with a margin for the smaller sample.
    data = make_smiles(n_subjects=100, videos_per_subject=4, fps=25, random_state=0)
    pipe_acc, best_column, latent_acc = _calibration(data, 5, 25.0)
    assert 0.76 <= pipe_acc <= 0.94
    assert best_column <= 0.82
    assert latent_acc >= 0.93
    assert latent_acc > pipe_acc


@pytest.mark.slow
def test_calibration_on_the_full_uvanemo_preset():
    data = make_smiles(preset="uvanemo", random_state=0)
    pipe_acc, best_column, latent_acc = _calibration(data, 10, 50.0)
    assert 0.80 <= pipe_acc <= 0.92
    assert best_column <= 0.80
    assert latent_acc >= 0.95


def test_a_subjects_videos_of_one_class_cluster_in_dmarker_space():
    # The subject x class effects and the personal smile routine: two videos of one person and one
    # class must be much closer (standardised D-Markers) than two videos of the same class by two
    # different people; otherwise random CV could not profit from a sibling video.
    data = make_smiles(n_subjects=40, videos_per_subject=4, fps=25, random_state=0)
    F = StandardScaler().fit_transform(dmarker_features(data.X, fps=25.0))
    F = F[:, np.isfinite(F).all(axis=0)]
    d2 = ((F[:, None, :] - F[None, :, :]) ** 2).mean(axis=-1)
    same_class = data.y[:, None] == data.y[None, :]
    same_subject = data.groups[:, None] == data.groups[None, :]
    off_diagonal = ~np.eye(len(data.y), dtype=bool)
    sibling = np.median(d2[same_class & same_subject & off_diagonal])
    stranger = np.median(d2[same_class & ~same_subject])
    assert sibling < 0.5 * stranger, (sibling, stranger)
    # The routine is per (subject, class): the same person's other-class videos are not as close.
    other_class = np.median(d2[~same_class & same_subject])
    assert sibling < 0.6 * other_class, (sibling, other_class)
    lat = data.latent
    for column in ("routine_onset_shape", "routine_apex_creep", "routine_lid"):
        per_pair = lat.groupby(["subject", "label"])[column].nunique()
        assert (per_pair == 1).all(), column
    assert lat.groupby("subject")["subject_blink_rate_hz"].nunique().eq(1).all()


@pytest.mark.slow
def test_random_cv_beats_subject_independent_cv_on_the_full_preset():
    # Issue 3: subject random effects make subject-independent CV harder than random CV.
    data = make_smiles(preset="uvanemo", random_state=1)
    F = dmarker_features(data.X, fps=50.0)
    pipe = make_pipeline(StandardScaler(), SVC())
    by_subject = StratifiedGroupKFold(n_splits=10, shuffle=True, random_state=1)
    random_folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=1)
    subject_acc = cross_val_score(pipe, F, data.y, cv=by_subject, groups=data.groups).mean()
    random_acc = cross_val_score(pipe, F, data.y, cv=random_folds).mean()
    assert random_acc - subject_acc >= 0.015, (random_acc, subject_acc)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"preset": "affectiva"}, "Unknown preset 'affectiva'"),
        ({"preset": "bbc", "n_subjects": 3}, "fixes the number of subjects"),
        ({"n_subjects": 0}, "n_subjects must be a positive integer"),
        ({"videos_per_subject": 2.5}, "videos_per_subject must be a positive integer"),
        ({"difficulty": 1.5}, "difficulty must be at most 1.0"),
        ({"noise": -1}, "noise must be a non-negative"),
        ({"missing_frames": 0.9}, "missing_frames must be at most 0.5"),
        ({"fps": 2}, "fps must be at least 5"),
        ({"scheme": "ibug68"}, "478-point MediaPipe Face Mesh template"),
    ],
)
def test_invalid_parameters_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_smiles(**kwargs)


def test_invalid_random_state_type():
    with pytest.raises(TypeError, match="random_state must be"):
        make_smiles(n_subjects=2, random_state="seed")
