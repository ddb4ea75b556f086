import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import GridSearchCV, PredefinedSplit, cross_validate

from hadasklearn.model_selection import PredefinedFolds, subject_independent_folds


def test_without_masks_equals_predefined_split():
    test_fold = np.array([2, 0, 1, -1, 0, 2, 1, 1])
    ours, theirs = PredefinedFolds(test_fold), PredefinedSplit(test_fold)
    assert ours.get_n_splits() == theirs.get_n_splits() == 3
    for (a_train, a_test), (b_train, b_test) in zip(ours.split(), theirs.split()):
        assert np.array_equal(a_train, b_train) and np.array_equal(a_test, b_test)


def test_explicit_training_sets():
    masks = np.array([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=bool)
    cv = PredefinedFolds([0, 0, 1, 1], train_masks=masks)
    assert [(tr.tolist(), te.tolist()) for tr, te in cv.split()] == [([2], [0, 1]), ([0], [2, 3])]


def test_usable_as_cv_in_sklearn():
    X = np.arange(12, dtype=float)[:, None]
    y = np.array([0, 1] * 6)
    cv = PredefinedFolds(np.repeat([0, 1, 2], 4))
    assert len(cross_validate(DummyClassifier(), X, y, cv=cv)["test_score"]) == 3
    search = GridSearchCV(DummyClassifier(), {"strategy": ["prior", "uniform"]}, cv=cv).fit(X, y)
    assert search.n_splits_ == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(test_fold=[[0, 1]]), "1-D integer array"),
        (dict(test_fold=[0.5, 1.0]), "1-D integer array"),
        (dict(test_fold=[0, 1], train_masks=np.ones((3, 2), bool)), "shape \\(n_folds=2, n_samples=2\\)"),
        (dict(test_fold=[0, 1], train_masks=np.ones((2, 2), int)), "boolean array"),
        (dict(test_fold=[0, 1], train_masks=np.ones((2, 2), bool)), "Fold 0: 1 sample\\(s\\) are in both"),
    ],
)
def test_invalid_folds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PredefinedFolds(kwargs.pop("test_fold"), **kwargs)


def test_split_checks_sample_count():
    with pytest.raises(ValueError, match="y has 3 samples but these folds were defined for 2"):
        list(PredefinedFolds([0, 1]).split(None, [0, 1, 0]))


@pytest.mark.filterwarnings("ignore:The least populated class")
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=4, max_size=25),
    n_splits=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_subject_independent_folds_never_split_a_subject(sizes, n_splits, seed):
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = np.random.default_rng(seed).integers(0, 2, len(groups))
    if len(np.unique(y)) < 2:
        y[0] = 1 - y[0]
    n_splits = min(n_splits, len(sizes))
    folds = subject_independent_folds(y, groups, n_splits=n_splits, random_state=seed)
    assert folds.shape == groups.shape and folds.min() >= 0 and folds.max() < n_splits
    assert len(np.unique(folds)) == n_splits  # every fold gets a test set
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    again = subject_independent_folds(y, groups, n_splits=n_splits, random_state=seed)
    assert np.array_equal(folds, again)


def test_subject_independent_folds_when_no_class_fills_every_fold():
    # StratifiedGroupKFold refuses (no class has 4 members); the folds are still made, by subject
    y, groups = [1, 1, 1, 0], [0, 1, 2, 3]
    folds = subject_independent_folds(y, groups, n_splits=4, random_state=0)
    assert sorted(folds.tolist()) == [0, 1, 2, 3]
    assert np.array_equal(folds, subject_independent_folds(y, groups, n_splits=4, random_state=0))


def test_subject_independent_folds_errors():
    with pytest.raises(ValueError, match="Cannot make 3 subject-independent folds from 2 subject"):
        subject_independent_folds([0, 1, 0, 1], [0, 0, 1, 1], n_splits=3)
    with pytest.raises(ValueError, match="equal length"):
        subject_independent_folds([0, 1], [0, 0, 1])
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        subject_independent_folds([0, 1], [0, 1], n_splits=1)
