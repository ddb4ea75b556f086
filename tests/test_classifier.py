"""Tests of HadaSmileClassifier: the sklearn contract, determinism, inputs, errors, persistence, the issue's snippets."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from skorch.helper import SliceDict

from hadasklearn import DMarkerTransformer, HadaSmileClassifier
from hadasklearn._clips import ClipDataset, aligned_clip, evenly_spaced_starts
from hadasklearn.datasets import make_smiles
from hadasklearn.exceptions import LandmarkValidationError, UnknownNameError
from hadasklearn.landmarks import LandmarkScheme, get_scheme

# 20 of the 478 MediaPipe landmarks: the 11 D-Marker points first (so a trivial scheme reads them),
# then 9 others. The synthetic smiles keep their dynamics and every fit is ~25x cheaper.
_MP = get_scheme("mediapipe478")
_EXTRA = (0, 13, 14, 17, 61, 291, 105, 334, 152)
SMALL_INDEX = np.array([p[0] for p in _MP.points] + list(_EXTRA))
SMALL = LandmarkScheme("test20", 20, tuple((i,) for i in range(11)), "MediaPipe subset for tests")

# A network of a few thousand parameters: enough to learn the synthetic smiles in a few epochs.
CHEAP = dict(
    dim=16,
    depth=1,
    clip_length=8,
    n_test_clips=3,
    max_epochs=3,
    batch_size=8,
    lr=3e-3,
    fps=10.0,
    early_stopping=False,
    random_state=0,
    backbone_kwargs=dict(embed_dim=8, n_tokens=4, num_heads=2),
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The test machines have 2 shared cores: intra-op threads only add contention for these tiny nets.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small(data, indices=None):
    videos = data.X if indices is None else [data.X[i] for i in indices]
    return [v[:, SMALL_INDEX] for v in videos]


@pytest.fixture(scope="module")
def smiles():
    """48 short synthetic videos (16 subjects, 10 fps, easy), full 478 landmarks."""
    return make_smiles(16, 3, fps=10.0, difficulty=0.2, random_state=0)


@pytest.fixture(scope="module")
def small(smiles):
    """The same videos reduced to 20 landmarks, with the matching scheme."""
    return _small(smiles), smiles.y, smiles.groups


def _clf(fusion="hadamard", **kwargs):
    return HadaSmileClassifier(fusion, **{**CHEAP, "scheme": SMALL, **kwargs})


@pytest.fixture(scope="module")
def fitted(small):
    X, y, _ = small
    return _clf().fit(X[:24], y[:24])


# ---------------------------------------------------------------------------- sklearn contract


def test_get_params_lists_every_init_parameter_and_set_params_round_trips():
    clf = HadaSmileClassifier()
    params = clf.get_params()
    assert params["fusion"] == "hadamard" and params["clip_length"] == 16 and params["n_test_clips"] == 5
    for name in ("lr", "max_epochs", "dim", "backbone", "early_stopping", "precision", "device"):
        assert name in params
    clf.set_params(fusion="concat", lr=3e-4, dim=8)
    assert clf.get_params()["fusion"] == "concat" and clf.lr == 3e-4 and clf.dim == 8
    cloned = clone(clf)
    assert cloned is not clf and cloned.get_params() == clf.get_params()


def test_fusion_is_positional_and_the_rest_keyword_only():
    assert HadaSmileClassifier("film").fusion == "film"
    with pytest.raises(TypeError):
        HadaSmileClassifier("film", "lite")


def test_fit_does_not_change_params_and_clone_of_fitted_is_unfitted(small, fitted):
    X, y, _ = small
    clf = _clf(callbacks=[])
    before = clf.get_params()
    clf.fit(X[:16], y[:16])
    after = clf.get_params()
    assert before.keys() == after.keys()
    assert all(before[k] is after[k] or before[k] == after[k] for k in before)
    with pytest.raises(NotFittedError):
        clone(fitted).predict(X[:2])


def test_predict_proba_rows_sum_to_one_and_predict_is_argmax(small, fitted):
    X, _, _ = small
    proba = fitted.predict_proba(X[24:])
    assert proba.shape == (24, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(fitted.predict(X[24:]), fitted.classes_[proba.argmax(axis=1)])
    assert 0.0 <= fitted.score(X[24:], small[1][24:]) <= 1.0


def test_same_random_state_gives_identical_probabilities(small):
    X, y, _ = small
    a = _clf().fit(X[:16], y[:16]).predict_proba(X[16:24])
    clf = _clf()
    b = clf.fit(X[:16], y[:16]).predict_proba(X[16:24])
    c = clf.fit(X[:16], y[:16]).predict_proba(X[16:24])  # refitting the same object
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)
    d = _clf(random_state=1).fit(X[:16], y[:16]).predict_proba(X[16:24])
    assert not np.array_equal(a, d)


def test_fit_leaves_the_global_torch_random_state_alone(small):
    X, y, _ = small
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _clf(max_epochs=1).fit(X[:8], y[:8])
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_string_labels_keep_their_sorted_order(small):
    X, y, _ = small
    labels = np.array(["posed", "genuine"])[y[:16]]
    clf = _clf(max_epochs=1).fit(X[:16], labels)
    np.testing.assert_array_equal(clf.classes_, ["genuine", "posed"])
    assert set(clf.predict(X[:4])) <= {"genuine", "posed"}


def test_three_classes(small):
    X, y, _ = small
    y3 = np.arange(18) % 3
    clf = _clf(max_epochs=1).fit(X[:18], y3)
    proba = clf.predict_proba(X[18:22])
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.net_.module_.n_classes == 3


# ---------------------------------------------------------------------------- inputs


def test_every_input_form_gives_the_same_predictions(small, fitted):
    X, _, _ = small
    X4 = np.stack([v[:20] for v in X[24:28]])  # one 4-D array (equal lengths)
    as_list = list(X4)
    p_array = fitted.predict_proba(X4)
    np.testing.assert_array_equal(p_array, fitted.predict_proba(as_list))
    np.testing.assert_array_equal(p_array, fitted.predict_proba({"landmarks": X4}))
    np.testing.assert_array_equal(p_array, fitted.predict_proba(SliceDict(landmarks=X4)))


def test_precomputed_dmarkers_are_used_and_standardised_with_training_statistics(small):
    from hadasklearn import dmarker_features

    X, y, _ = small
    D = dmarker_features(X[:16], scheme=SMALL, fps=10.0)
    D[:, 0] = 7.0  # a constant column must be scaled by 1, not divided by 0
    clf = _clf(max_epochs=1).fit({"landmarks": X[:16], "dmarkers": D}, y[:16])
    np.testing.assert_allclose(clf.dmarker_mean_, D.mean(axis=0))
    assert clf.dmarker_scale_[0] == 1.0
    np.testing.assert_allclose(clf.dmarker_scale_[1:], np.where(D[:, 1:].std(0) > 0, D[:, 1:].std(0), 1.0))
    assert np.isfinite(clf.predict_proba({"landmarks": X[16:20], "dmarkers": D[:4]})).all()
    # Computing them internally from the same landmarks gives the same training statistics.
    internal = _clf(max_epochs=1).fit(X[:16], y[:16])
    np.testing.assert_allclose(internal.dmarker_mean_[1:], D.mean(axis=0)[1:])


def test_videos_shorter_than_the_clip_are_padded_and_masked(small):
    X, y, _ = small
    video = X[0]
    clip, mask = aligned_clip(video[:5], 0, 8, SMALL)
    assert clip.shape == (8, 20, 3) and mask.tolist() == [True] * 5 + [False] * 3
    assert (clip[5:] == 0).all() and np.isfinite(clip).all()
    # The padding never reaches the output: a short video predicts the same whatever fills the pad.
    clf = _clf(max_epochs=1, clip_length=32).fit(X[:8], y[:8])
    ds = ClipDataset.evaluation([video[:5]], None, n_clips=3, clip_length=32, scheme=SMALL)
    assert len(ds) == 1
    x, _ = ds[0]
    module = clf.net_.module_.eval()
    dm = torch.zeros(1, clf.n_dmarkers_)
    with torch.no_grad():
        ref = module(x["landmarks"][None], dm, x["mask"][None])
        filled = x["landmarks"].clone()
        filled[5:] = 3.0
        other = module(filled[None], dm, x["mask"][None])
    torch.testing.assert_close(ref, other)


def test_evenly_spaced_clips_cover_the_video():
    starts = evenly_spaced_starts(40, 8, 5)
    assert starts[0] == 0 and starts[-1] == 32 and len(starts) == 5
    assert evenly_spaced_starts(8, 8, 5).tolist() == [0]


def test_training_clips_are_random_but_seeded(small):
    X, y, _ = small
    kwargs = dict(clip_length=4, scheme=SMALL, seed=3)
    a = ClipDataset(X[:1], y[:1], **kwargs)
    b = ClipDataset(X[:1], y[:1], **kwargs)
    first = [a[0][0]["landmarks"] for _ in range(5)]
    second = [b[0][0]["landmarks"] for _ in range(5)]
    for u, v in zip(first, second):
        torch.testing.assert_close(u, v)
    assert any(not torch.equal(first[0], u) for u in first[1:])


def test_missing_frames_are_interpolated_or_rejected(small, fitted):
    X, _, _ = small
    video = X[30].copy()
    video[5:7] = np.nan
    with pytest.warns(UserWarning, match="interpolated"):
        proba = fitted.predict_proba([video])
    assert np.isfinite(proba).all()
    strict = clone(fitted).set_params(missing="raise")
    with pytest.raises(LandmarkValidationError, match="without a face"):
        strict.fit([video] + X[:9], np.arange(10) % 2)


# ---------------------------------------------------------------------------- bad input


def test_wrong_landmark_count_for_scheme(small):
    X, y, _ = small
    with pytest.raises(LandmarkValidationError, match="expects 478 landmarks"):
        HadaSmileClassifier(**CHEAP).fit(X[:4], y[:4])


def test_mixed_coordinate_counts(small):
    X, y, _ = small
    mixed = [X[0], X[1][..., :2]]
    with pytest.raises(LandmarkValidationError, match="same number of landmarks and coordinates"):
        _clf().fit(mixed, y[:2])


def test_empty_x():
    with pytest.raises(LandmarkValidationError, match="no videos"):
        _clf().fit([], [])


def test_single_class(small):
    X, _, _ = small
    with pytest.raises(ValueError, match="at least 2 classes"):
        _clf().fit(X[:4], [1, 1, 1, 1])


def test_nan_in_y(small):
    X, _, _ = small
    with pytest.raises(ValueError, match="Input y contains NaN"):
        _clf().fit(X[:4], [0.0, 1.0, np.nan, 1.0])


def test_inconsistent_lengths(small):
    X, y, _ = small
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _clf().fit(X[:4], y[:5])


def test_video_shorter_than_three_frames(small):
    X, y, _ = small
    with pytest.raises(LandmarkValidationError, match="at least 3 are needed"):
        _clf().fit([X[0][:2]] + X[1:4], y[:4])


def test_predict_before_fit(small):
    with pytest.raises(NotFittedError):
        _clf().predict(small[0][:2])


def test_other_landmark_count_at_predict(smiles, fitted):
    from hadasklearn.landmarks import LandmarkScheme as Scheme

    other = [v[:, np.r_[SMALL_INDEX, 1, 2]] for v in smiles.X[:2]]
    wide = clone(fitted).set_params(scheme=Scheme("wide", None, SMALL.points))
    wide.fit([v[:, SMALL_INDEX] for v in smiles.X[:8]], smiles.y[:8])
    with pytest.raises(LandmarkValidationError, match="22 landmarks per frame, but 20 were expected"):
        wide.predict(other)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"lr": -1.0}, InvalidParameterError, "'lr' parameter"),
        ({"optimizer": "rmsprop"}, InvalidParameterError, "'optimizer' parameter"),
        ({"clip_length": 0}, InvalidParameterError, "'clip_length' parameter"),
        ({"fusion": "hadamrd"}, UnknownNameError, "Did you mean 'hadamard'"),
        ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "tpu"}, ValueError, "device"),
    ],
)
def test_bad_parameters_raise_clear_errors(small, params, error, match):
    X, y, _ = small
    with pytest.raises(error, match=match):
        _clf(**params).fit(X[:4], y[:4])


def test_bf16_on_cpu_warns_and_trains_in_float32(small):
    if torch.cuda.is_available():
        pytest.skip("the warning is for CPU-only machines")
    X, y, _ = small
    with pytest.warns(UserWarning, match="bf16"):
        clf = _clf(max_epochs=1, precision="bf16").fit(X[:8], y[:8])
    assert clf.predict_proba(X[:2]).dtype == np.float64


@pytest.mark.parametrize("retain", [True, False])
def test_retain_memory_reaches_the_network_and_prediction_releases(small, retain, monkeypatch):
    from hadasklearn.nn import _memory

    calls = []
    monkeypatch.setattr(_memory, "retain", lambda: calls.append("retain") or True)
    monkeypatch.setattr(_memory, "release", lambda: calls.append("release"))
    X, y, _ = small
    clf = _clf(max_epochs=1, early_stopping=False, retain_memory=retain).fit(X[:8], y[:8])
    assert clf.net_.module_.retain_memory is retain
    assert ("retain" in calls) is retain
    calls.clear()
    clf.predict(X[:2])
    assert ("release" in calls) is retain  # prediction switches the network to eval mode


# ---------------------------------------------------------------------------- fusions and training


@pytest.mark.parametrize("fusion", ["none", "dmarker_only", "multitask", "cross_attention"])
def test_baselines_and_token_fusions_train(small, fusion, monkeypatch):
    X, y, _ = small
    if fusion == "none":
        # Without a D-Marker stream nothing must compute D-Markers.
        import hadasklearn._dmarker as dm

        monkeypatch.setattr(dm, "dmarker_features", lambda *a, **k: pytest.fail("D-Markers computed"))
    clf = _clf(fusion, max_epochs=1).fit(X[:12], y[:12])
    assert clf.predict_proba(X[12:16]).shape == (4, 2)
    if fusion in ("none",):
        assert clf.n_dmarkers_ is None and clf.dmarker_mean_ is None
    if fusion == "multitask":
        assert clf.n_dmarkers_ == 225 and clf.net_.module_.predicts_dmarkers


def test_set_params_fusion_then_fit_rebuilds_the_network(small):
    from hadasklearn.nn import ConcatFusion, FilmFusion

    X, y, _ = small
    clf = _clf(max_epochs=1).fit(X[:8], y[:8])
    clf.set_params(fusion="concat").fit(X[:8], y[:8])
    assert isinstance(clf.net_.module_.fusion, ConcatFusion)
    clf.set_params(fusion=FilmFusion).fit(X[:8], y[:8])  # a class works as well as a name
    assert isinstance(clf.net_.module_.fusion, FilmFusion)


def test_early_stopping_on_a_subject_grouped_inner_split(small):
    X, y, groups = small
    clf = _clf(early_stopping=2, validation_fraction=0.25, max_epochs=6)
    train, valid = clf._inner_split(y, groups, seed=0)
    assert not set(groups[train]) & set(groups[valid])
    assert set(y[valid]) == {0, 1}
    clf.fit(X, y, groups=groups)
    history = clf.net_.history
    assert "valid_loss" in history[-1]
    assert 1 <= clf.best_epoch_ <= clf.n_epochs_ <= 6
    assert history[clf.best_epoch_ - 1, "valid_loss"] == min(history[:, "valid_loss"])
    assert clf.net_.train_split is None  # the validation videos are not kept in the model


def test_without_early_stopping_all_videos_train_for_max_epochs(small):
    X, y, _ = small
    clf = _clf(early_stopping=False, max_epochs=2).fit(X[:8], y[:8])
    assert clf.n_epochs_ == clf.best_epoch_ == 2
    assert "valid_loss" not in clf.net_.history[-1]


def test_too_small_for_an_inner_split_warns_and_trains_on_all(small):
    X, y, _ = small
    with pytest.warns(UserWarning, match="inner validation"):
        clf = _clf(early_stopping=3, validation_fraction=0.5, max_epochs=1).fit(X[:3], [0, 1, 1])
    assert clf.n_epochs_ == 1


def test_balanced_class_weight_reaches_the_loss(small):
    X, y, _ = small
    y_unbalanced = np.array([0] * 9 + [1] * 3)
    clf = _clf(class_weight="balanced", max_epochs=1).fit(X[:12], y_unbalanced)
    weight = clf.net_.criterion_.class_weight
    torch.testing.assert_close(weight, torch.tensor([12 / 18, 12 / 6]))


def test_verbose_prints_the_epoch_table_only_when_asked(small):
    X, y, _ = small
    out = io.StringIO()
    with redirect_stdout(out):
        _clf(max_epochs=1, verbose=0).fit(X[:8], y[:8])
    assert out.getvalue() == ""
    with redirect_stdout(out):
        _clf(max_epochs=2, verbose=1).fit(X[:8], y[:8])
    assert "epoch" in out.getvalue() and "train_loss" in out.getvalue()


def test_skorch_callbacks_are_passed_through(small):
    from skorch.callbacks import Callback

    class Count(Callback):
        def initialize(self):
            self.epochs = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.epochs += 1

    X, y, _ = small
    clf = _clf(max_epochs=2, callbacks=[("count", Count())]).fit(X[:8], y[:8])
    assert dict(clf.net_.callbacks_)["count"].epochs == 2


def test_tags():
    tags = HadaSmileClassifier().__sklearn_tags__()
    assert tags.input_tags.three_d_array and tags.input_tags.dict and tags.input_tags.allow_nan
    assert not tags.input_tags.two_d_array
    assert tags.estimator_type == "classifier" and tags.classifier_tags.multi_class


# ---------------------------------------------------------------------------- persistence


def test_pickle_and_joblib_round_trips_predict_identically(small, fitted, tmp_path):
    X, _, _ = small
    expected = fitted.predict_proba(X[24:30])
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X[24:30]), expected)
    joblib.dump(fitted, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict_proba(X[24:30]), expected)


def test_save_and_load_weights_without_pickle(small, fitted, tmp_path, monkeypatch):
    X, _, _ = small
    expected = fitted.predict_proba(X[24:30])
    path = fitted.save_weights(tmp_path / "clf.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.safetensors"]  # no temporary file left
    # Loading must never unpickle.
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    loaded = HadaSmileClassifier.load_weights(path, device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X[24:30]), expected)
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.get_params()["scheme"] == SMALL and loaded.dim == fitted.dim


def test_save_weights_of_string_labels_and_errors(small, tmp_path):
    X, y, _ = small
    clf = _clf(max_epochs=1).fit(X[:8], np.array(["posed", "genuine"])[y[:8]])
    loaded = HadaSmileClassifier.load_weights(clf.save_weights(tmp_path / "s.safetensors"))
    np.testing.assert_array_equal(loaded.predict(X[8:12]), clf.predict(X[8:12]))
    with pytest.raises(NotFittedError):
        _clf().save_weights(tmp_path / "unfitted.safetensors")
    (tmp_path / "foreign.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(Exception):
        HadaSmileClassifier.load_weights(tmp_path / "foreign.safetensors")


# ---------------------------------------------------------------------------- the snippets


def test_snippet_cross_validate_subject_independent(smiles):
    # 48 videos, 4 subject-independent folds; a D-Marker SVM reaches ~0.9 on this set. Chance is 0.5
    # and the binomial standard deviation of the accuracy of 48 guesses is 0.072, so 0.7 is ~2.8 sd
    # above chance while leaving room below what the network reaches (0.9, deterministic seed).
    cv = StratifiedGroupKFold(n_splits=4)
    clf = HadaSmileClassifier(fusion="hadamard", **{**CHEAP, "max_epochs": 8})
    scores = cross_validate(clf, smiles.X, smiles.y, groups=smiles.groups, cv=cv)
    assert scores["test_score"].mean() >= 0.7, scores["test_score"]


def test_snippet_grid_search_over_fusions_in_parallel(small):
    X, y, groups = small
    grid = GridSearchCV(
        _clf(max_epochs=2),
        {"fusion": ["hadamard", "concat", "film"], "lr": [1e-3, 3e-3]},
        cv=StratifiedGroupKFold(n_splits=2),
        n_jobs=2,
    )
    grid.fit(X, y, groups=groups)
    assert len(grid.cv_results_["params"]) == 6
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.fusion in ("hadamard", "concat", "film")
    pickle.loads(pickle.dumps(grid.best_estimator_)).predict(X[:2])


def test_snippet_pipeline_with_passthrough_dmarkers(small):
    X, y, _ = small
    pipe = make_pipeline(
        DMarkerTransformer(SMALL, fps=10.0, passthrough=True), _clf(fusion="hadamard", max_epochs=2)
    )
    pipe.fit(X[:24], y[:24])
    proba = pipe.predict_proba(X[24:])
    # The classifier used the transformer's D-Markers: the same as computing them itself.
    direct = _clf(fusion="hadamard", max_epochs=2).fit(X[:24], y[:24])
    np.testing.assert_allclose(proba, direct.predict_proba(X[24:]), rtol=1e-5, atol=1e-6)


def test_groups_are_routed_by_metadata_routing(small):
    X, y, groups = small
    seen = []

    class Spy(HadaSmileClassifier):
        def fit(self, X, y, groups=None):
            seen.append(groups)
            return super().fit(X, y, groups=groups)

    with config_context(enable_metadata_routing=True):
        clf = Spy(**{**CHEAP, "scheme": SMALL, "max_epochs": 1}).set_fit_request(groups=True)
        cross_validate(clf, X[:24], y[:24], params={"groups": groups[:24]}, cv=StratifiedGroupKFold(2))
    assert len(seen) == 2 and all(g is not None and len(g) == 12 for g in seen)


def test_clip_stride_takes_every_sth_frame_and_spans_the_video():
    from hadasklearn._clips import ClipDataset, aligned_clip, clip_span
    from hadasklearn.landmarks import align_points, gather_points

    rng = np.random.default_rng(0)
    video = rng.normal(size=(20, 478, 3)) * 0.01 + 0.5
    clip, mask = aligned_clip(video, 1, 4, "mediapipe478", stride=3)
    frames = video[[1, 4, 7, 10]]
    expected = align_points(frames, frame_points=gather_points(frames, "mediapipe478"))
    np.testing.assert_allclose(clip, expected.astype(np.float32), rtol=1e-6)
    assert mask.all()
    # A clip running past the end is padded and masked, never wrapped around.
    clip, mask = aligned_clip(video, 15, 4, "mediapipe478", stride=3)
    assert mask.tolist() == [True, True, False, False] and not clip[2:].any()
    assert clip_span(4, 3) == 10
    # Random training clips always fit inside the video.
    ds = ClipDataset([video], np.array([1]), clip_length=4, stride=6, scheme="mediapipe478", seed=0)
    for _ in range(20):
        x, _ = ds[0]
        assert bool(x["mask"].all())
