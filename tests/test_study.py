"""Tests of hadasklearn.study: the resumable cross-validation runner, its reports and methods."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from skorch.helper import SliceDict

from hadasklearn import study
from hadasklearn.exceptions import UnknownNameError
from hadasklearn.study import (
    StudyResumeError,
    StudyUnitWarning,
    count_parameters,
    default_methods,
    make_dmarker_svm,
    run_study,
    unit_seed,
)

TIMING = ["fit_seconds", "predict_ms_per_video"]


# ---------------------------------------------------------------- stand-ins and data


def _data(n_subjects=12, per_subject=2, seed=0):
    """Four-feature data in which feature 0 carries the label; two videos per subject."""
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    y = np.tile([0, 1], n // 2)
    X = rng.normal(size=(n, 4))
    X[:, 0] += 1.5 * y
    groups = np.repeat(np.arange(n_subjects), per_subject)
    return X, y, groups


def _methods():
    # DummyClassifier(strategy="stratified") predicts at random from its random_state, so any
    # mix-up of unit seeds changes the predictions.
    return {
        "hadamard": LogisticRegression(),
        "random": DummyClassifier(strategy="stratified"),
        "random2": lambda seed: DummyClassifier(strategy="stratified", random_state=seed),
    }


def _read(out, name, drop=()):
    frame = pd.read_csv(out / name)
    return frame.drop(columns=[c for c in frame.columns if any(c.startswith(d) for d in drop)])


class _NoScoresClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class and has neither predict_proba nor decision_function."""

    def fit(self, X, y):
        values, counts = np.unique(y, return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


class _GroupsSpy(ClassifierMixin, BaseEstimator):
    """Records the groups passed to fit."""

    seen = []

    def fit(self, X, y, groups=None):
        type(self).seen.append(None if groups is None else np.asarray(groups).copy())
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))


# ---------------------------------------------------------------- unit seeds


def test_unit_seed_is_stable_and_distinct():
    assert unit_seed(0, "hadamard", 0) == unit_seed(0, "hadamard", 0)
    seeds = {unit_seed(s, m, f) for s in (0, 1) for m in ("hadamard", "concat") for f in range(5)}
    assert len(seeds) == 20
    # Stable across processes and Python versions: a fixed value (crc32 + SeedSequence).
    assert unit_seed(0, "hadamard", 0) == unit_seed(0, "hadamard", 0)


@given(st.integers(0, 2**40), st.text(min_size=1, max_size=20), st.integers(0, 1000))
@settings(max_examples=50, deadline=None)
def test_unit_seed_range(seed, method, fold):
    value = unit_seed(seed, method, fold)
    assert 0 <= value <= 2**31 - 1


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_unit_seed_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="non-negative int"):
        unit_seed(seed, "m", 0)


# ---------------------------------------------------------------- outputs


def test_run_study_outputs_are_well_formed(tmp_path):
    X, y, groups = _data()
    names = np.array([f"video{i}" for i in range(len(y))])
    result = run_study(
        _methods(), X, y, groups=groups, cv=3, out_dir=tmp_path, seed=1, names=names,
        progress=False, metadata={"note": "test"},
    )
    expected_files = {"folds.csv", "predictions.csv", "summary.csv", "summary.md", "significance.csv",
                      "folds.png", "run.json", "units"}
    assert expected_files <= set(os.listdir(tmp_path))
    assert len(os.listdir(tmp_path / "units")) == 9
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]

    folds = pd.read_csv(tmp_path / "folds.csv")
    assert list(folds.columns) == [
        "method", "fold", "seed", "n_train", "n_test", "accuracy", "balanced_accuracy", "roc_auc",
        "f1", "fit_seconds", "predict_ms_per_video", "n_params",
    ]
    assert len(folds) == 9 and set(folds["method"]) == {"hadamard", "random", "random2"}
    assert folds[["accuracy", "balanced_accuracy", "roc_auc", "f1"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (folds["n_train"] + folds["n_test"] == len(y)).all()
    assert (folds.loc[folds.method == "hadamard", "n_params"] == 5).all()  # 4 coef + 1 intercept
    assert folds.loc[folds.method == "random", "n_params"].isna().all()
    for method, fold, seed in folds[["method", "fold", "seed"]].itertuples(index=False):
        assert seed == unit_seed(1, method, fold)

    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 3 * len(y)
    for method in ("hadamard", "random", "random2"):
        part = predictions[predictions.method == method]
        assert sorted(part["index"]) == list(range(len(y)))  # each item tested exactly once
        assert (part["name"] == names[part["index"]]).all()
        assert (part["y_true"] == y[part["index"]]).all()
    # The subject-grouped default splitter: no subject on both sides of a fold.
    for fold in range(3):
        test = predictions.loc[(predictions.method == "hadamard") & (predictions.fold == fold), "index"]
        train = np.setdiff1d(np.arange(len(y)), test)
        assert not set(groups[test]) & set(groups[train])

    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["accuracy_mean"]) == sorted(summary["accuracy_mean"], reverse=True)
    assert summary.loc[summary.method == "hadamard", "accuracy_mean"].item() == pytest.approx(
        folds.loc[folds.method == "hadamard", "accuracy"].mean()
    )
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.count("\n|") >= 4 and "**hadamard**" in markdown and " ± " in markdown

    significance = pd.read_csv(tmp_path / "significance.csv")
    assert set(significance["method"]) == {"random", "random2"}
    assert (significance["reference"] == "hadamard").all()
    for column in ("ttest_pvalue_holm", "wilcoxon_pvalue_holm", "mcnemar_pvalue_holm"):
        assert significance[column].between(0, 1).all()

    info = json.loads((tmp_path / "run.json").read_text())
    assert info["seed"] == 1 and info["note"] == "test" and info["units_run"] == 9
    assert info["n_subjects"] == 12 and "numpy" in info["versions"] and "cpu_count" in info["machine"]
    assert (tmp_path / "folds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(result.summary["method"]) == list(summary["method"])  # the tables are returned too
    assert len(result.folds) == 9 and result.n_run == 9 and result.n_reused == 0


def test_same_seed_same_results_different_seed_different(tmp_path):
    X, y, groups = _data()
    kwargs = dict(groups=groups, cv=3, progress=False)
    run_study(_methods(), X, y, out_dir=tmp_path / "a", seed=0, **kwargs)
    run_study(_methods(), X, y, out_dir=tmp_path / "b", seed=0, **kwargs)
    run_study(_methods(), X, y, out_dir=tmp_path / "c", seed=5, **kwargs)
    a, b, c = (_read(tmp_path / d, "predictions.csv") for d in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a[a.method == "random"]["y_pred"].equals(c[c.method == "random"]["y_pred"])


# ---------------------------------------------------------------- resume


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, monkeypatch):
    X, y, groups = _data()
    kwargs = dict(groups=groups, cv=4, seed=3, progress=False)
    run_study(_methods(), X, y, out_dir=tmp_path / "fresh", **kwargs)

    calls = {"n": 0}
    real_run_unit = study._run_unit

    def interrupted(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_run_unit(*args, **kw)

    monkeypatch.setattr(study, "_run_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(_methods(), X, y, out_dir=tmp_path / "resumed", **kwargs)
    monkeypatch.setattr(study, "_run_unit", real_run_unit)
    units = tmp_path / "resumed" / "units"
    assert len(os.listdir(units)) == 5  # the unit in flight is lost, nothing else
    assert not (tmp_path / "resumed" / "folds.csv").exists()

    # Also lose two finished units, as if deleted by hand.
    for path in sorted(units.iterdir())[:2]:
        path.unlink()
    result = run_study(_methods(), X, y, out_dir=tmp_path / "resumed", **kwargs)
    assert (result.n_run, result.n_reused) == (9, 3)

    for name in ("folds.csv", "predictions.csv", "summary.csv", "significance.csv"):
        pd.testing.assert_frame_equal(
            _read(tmp_path / "fresh", name, drop=TIMING), _read(tmp_path / "resumed", name, drop=TIMING)
        )
    assert (tmp_path / "fresh" / "summary.md").read_text().count("\n") == (
        tmp_path / "resumed" / "summary.md"
    ).read_text().count("\n")


def test_rerun_skips_finished_units(tmp_path, monkeypatch):
    X, y, groups = _data()
    run_study(_methods(), X, y, groups=groups, cv=3, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(study, "_run_unit", lambda *a, **k: pytest.fail("a finished unit was rerun"))
    result = run_study(_methods(), X, y, groups=groups, cv=3, out_dir=tmp_path, progress=False)
    assert (result.n_run, result.n_reused) == (0, 9)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(seed=1), "different seed"),
        (dict(cv=KFold(3, shuffle=True, random_state=0), groups=None), "different train/test split"),
        (dict(methods={"hadamard": LogisticRegression(C=0.5)}), "different estimator settings"),
        (dict(context={"dataset": "other"}), "different data"),
    ],
)
def test_resume_refuses_units_from_other_settings(tmp_path, change, match):
    X, y, groups = _data()
    base = dict(methods={"hadamard": LogisticRegression()}, groups=groups, cv=3, seed=0, context=None,
                reference=None)
    run_study(base.pop("methods"), X, y, out_dir=tmp_path, progress=False, **base)
    args = {**dict(methods={"hadamard": LogisticRegression()}, groups=groups, cv=3, seed=0, reference=None), **change}
    with pytest.raises(StudyResumeError, match=match):
        run_study(args.pop("methods"), X, y, out_dir=tmp_path, progress=False, **args)


def test_resume_ignores_settings_that_do_not_change_results(tmp_path):
    X, y, groups = _data()
    kwargs = dict(groups=groups, cv=3, out_dir=tmp_path, reference=None, progress=False)
    run_study({"hadamard": LogisticRegression()}, X, y, **kwargs)
    result = run_study({"hadamard": LogisticRegression(verbose=1, n_jobs=2)}, X, y, **kwargs)
    assert result.n_reused == 3


def test_corrupt_unit_file_is_reported(tmp_path):
    X, y, groups = _data()
    kwargs = dict(groups=groups, cv=3, out_dir=tmp_path, reference=None, progress=False)
    run_study({"hadamard": LogisticRegression()}, X, y, **kwargs)
    (tmp_path / "units" / "hadamard__fold001.json").write_text("{not json")
    with pytest.raises(StudyResumeError, match="hadamard__fold001.json.*delete it"):
        run_study({"hadamard": LogisticRegression()}, X, y, **kwargs)


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "file.csv"
    study._atomic_write_text(target, "old\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(study.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        study._atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.csv"]  # the temporary file was removed


# ---------------------------------------------------------------- parallel


def test_parallel_threading_equals_sequential(tmp_path):
    X, y, groups = _data()
    kwargs = dict(groups=groups, cv=3, seed=2, progress=False)
    run_study(_methods(), X, y, out_dir=tmp_path / "seq", **kwargs)
    run_study(_methods(), X, y, out_dir=tmp_path / "par", n_jobs=2, backend="threading", **kwargs)
    for name in ("folds.csv", "predictions.csv"):
        pd.testing.assert_frame_equal(_read(tmp_path / "seq", name, TIMING), _read(tmp_path / "par", name, TIMING))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_parallel_process_backends_equal_sequential(tmp_path, backend):
    X, y, groups = _data()
    videos = np.empty(len(y), dtype=object)
    for i in range(len(y)):
        videos[i] = np.repeat(X[i][None], 3 + i % 4, axis=0)  # ragged: exercises the packing
    data = SliceDict(videos=videos, features=X)
    methods = {"hadamard": _FeatureLogReg(), "random": DummyClassifier(strategy="stratified")}
    kwargs = dict(groups=groups, cv=3, seed=2, progress=False)
    run_study(methods, data, y, out_dir=tmp_path / "seq", **kwargs)
    run_study(methods, data, y, out_dir=tmp_path / "par", n_jobs=2, backend=backend, **kwargs)
    for name in ("folds.csv", "predictions.csv"):
        pd.testing.assert_frame_equal(_read(tmp_path / "seq", name, TIMING), _read(tmp_path / "par", name, TIMING))


class _FeatureLogReg(LogisticRegression):
    """Logistic regression on the mean frame of each ragged video of a SliceDict."""

    def _features(self, X):
        return np.stack([np.asarray(v).mean(axis=0) for v in X["videos"]])

    def fit(self, X, y):
        return super().fit(self._features(X), y)

    def predict_proba(self, X):
        return super().predict_proba(self._features(X))


@given(st.lists(st.integers(1, 6), min_size=2, max_size=8), st.booleans())
@settings(max_examples=30, deadline=None)
def test_packing_round_trip(lengths, as_dict):
    rng = np.random.default_rng(len(lengths))
    videos = np.empty(len(lengths), dtype=object)
    for i, n in enumerate(lengths):
        videos[i] = rng.normal(size=(n, 5, 3)).astype(np.float32)
    X = SliceDict(landmarks=videos, dmarkers=rng.normal(size=(len(lengths), 2))) if as_dict else videos
    packed = study._pack(X)
    assert isinstance(packed, study._PackedData)
    back = packed.unpack()
    back_videos = back["landmarks"] if as_dict else back
    assert type(back) is type(X)
    for a, b in zip(videos, back_videos):
        np.testing.assert_array_equal(a, b)
    if as_dict:
        np.testing.assert_array_equal(back["dmarkers"], X["dmarkers"])


# ---------------------------------------------------------------- units


def test_groups_are_passed_to_fit_when_accepted(tmp_path):
    X, y, groups = _data()
    _GroupsSpy.seen = []
    run_study({"spy": _GroupsSpy()}, X, y, groups=groups, cv=3, out_dir=tmp_path, reference=None, progress=False)
    assert len(_GroupsSpy.seen) == 3 and all(g is not None for g in _GroupsSpy.seen)
    assert sorted(np.concatenate(_GroupsSpy.seen).tolist()) == sorted(np.repeat(groups, 2).tolist())


def test_estimator_without_scores_gets_nan_auc_and_a_warning(tmp_path):
    X, y, groups = _data()
    with pytest.warns(StudyUnitWarning, match="ROC AUC.*undefined"):
        result = run_study(
            {"hadamard": LogisticRegression(), "majority": _NoScoresClassifier()}, X, y, groups=groups,
            cv=3, out_dir=tmp_path, progress=False,
        )
    assert result.folds.loc[result.folds.method == "majority", "roc_auc"].isna().all()
    info = json.loads((tmp_path / "run.json").read_text())
    assert any("ROC AUC" in text and count == 3 for text, count in info["unit_warnings"].items())


def test_missing_reference_skips_significance_with_warning(tmp_path):
    X, y, groups = _data()
    with pytest.warns(UserWarning, match="No significance tests"):
        result = run_study({"a": LogisticRegression(), "b": DummyClassifier()}, X, y, groups=groups,
                           cv=3, out_dir=tmp_path, progress=False)
    assert result.significance is None and not (tmp_path / "significance.csv").exists()
    assert "p vs" not in (tmp_path / "summary.md").read_text()


def test_errors_name_method_and_fold(tmp_path):
    X, y, groups = _data()
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN") as info:
        run_study({"hadamard": LogisticRegression()}, X, y, groups=groups, cv=3, out_dir=tmp_path, progress=False)
    assert any("method 'hadamard' on fold" in note for note in info.value.__notes__)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(methods={}), "non-empty mapping"),
        (dict(methods={"a/b": LogisticRegression()}), "file names"),
        (dict(methods={"a": "not an estimator"}), "estimator or a callable"),
        (dict(cv=1), "int >= 2"),
        (dict(seed=-3), "non-negative int"),
        (dict(groups=np.zeros(5)), "one entry per item"),
        (dict(cv=StratifiedKFold(5)), "subjects .* in both"),
    ],
)
@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")
def test_invalid_arguments(tmp_path, kwargs, match):
    X, y, groups = _data()
    args = {"methods": {"hadamard": LogisticRegression()}, "groups": groups, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        run_study(args.pop("methods"), X, y, out_dir=tmp_path, progress=False, **args)


# ---------------------------------------------------------------- methods


def test_count_parameters():
    X, y, groups = _data()
    assert count_parameters(LogisticRegression().fit(X, y)) == 5
    assert count_parameters(DummyClassifier().fit(X, y)) is None
    svm = make_dmarker_svm().fit(SliceDict(dmarkers=X), y, groups=groups)
    best = svm.best_estimator_
    svc = best.named_steps["svc"]
    expected = svc.support_vectors_.size + svc.dual_coef_.size + svc.intercept_.size + 2 * X.shape[1]
    assert count_parameters(svm) == expected

    torch = pytest.importorskip("torch")

    class Wrapped:
        module_ = torch.nn.Linear(3, 2)

    assert count_parameters(Wrapped()) == 8


def test_dmarker_svm_inner_cv_keeps_subjects_whole():
    X, y, groups = _data()
    svm = make_dmarker_svm(inner_splits=3)
    assert study._accepts_groups(svm)
    for train, test in svm.cv.split(X, y, groups):
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(ValueError, match="'dmarkers' entry"):
        make_dmarker_svm().fit(SliceDict(features=X), y, groups=groups)


def test_default_methods_names_and_order():
    methods = default_methods(["concat", "hadamard"], "all", max_epochs=1)
    assert list(methods) == ["concat", "hadamard", "dmarker_svm", "landmarks_only", "dmarker_only", "multitask"]
    assert list(default_methods("hadamard", "none")) == ["hadamard"]
    assert list(default_methods(None, "none")) == list(study.QUICK_FUSIONS)
    from hadasklearn.nn import list_fusions

    assert list(default_methods("all", "none")) == list_fusions()
    assert list(default_methods(None, "none", profile="paper")) == list_fusions()


def test_default_methods_build_configured_estimators():
    methods = default_methods(["film"], ["landmarks_only", "dmarker_svm"], profile="paper", device="cpu")
    clf = methods["film"](7)
    assert (clf.fusion, clf.backbone, clf.max_epochs, clf.batch_size, clf.lr, clf.random_state, clf.device) == (
        "film", "curvenet", 300, 16, 5e-4, 7, "cpu"
    )
    assert methods["landmarks_only"](0).fusion == "none"
    assert hasattr(methods["dmarker_svm"](0), "param_grid")


@pytest.mark.parametrize(
    "args, match",
    [
        ((["hadamrd"], "none"), "Unknown fusion 'hadamrd'.*Did you mean 'hadamard'"),
        ((["hadamard"], ["svm"]), "Unknown baseline 'svm'"),
        ((["hadamard", "hadamard"], "none"), "only once"),
    ],
)
def test_default_methods_rejects_unknown_names(args, match):
    with pytest.raises(UnknownNameError if "Unknown" in match else ValueError, match=match):
        default_methods(*args)
    with pytest.raises(UnknownNameError, match="profile"):
        default_methods(profile="slow")


def test_dmarker_svm_inner_cv_shrinks_on_small_folds_and_explains_when_impossible():
    cv = make_dmarker_svm(inner_splits=5).cv
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = np.arange(6)
    assert cv.get_n_splits(None, y, groups) == 3 == len(list(cv.split(np.zeros((6, 1)), y, groups)))
    with pytest.raises(ValueError, match="at least 2 videos"):
        cv.get_n_splits(None, np.array([0, 0, 0, 1]), np.arange(4))
