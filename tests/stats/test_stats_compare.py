"""Tests for hadasklearn.stats._compare: method-vs-reference tables and cross_validate conversion."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hadasklearn.exceptions import UnknownNameError
from hadasklearn.stats import (
    compare_to_reference,
    corrected_resampled_ttest,
    fold_scores_from_cv,
    holm,
    mcnemar,
    paired_effect_size,
    wilcoxon_signed_rank,
)

BASE_COLUMNS = [
    "method", "reference", "n_folds", "mean", "std", "reference_mean", "reference_std",
    "mean_difference", "effect_size", "ttest_statistic", "ttest_pvalue", "ttest_pvalue_holm",
    "wilcoxon_pvalue", "wilcoxon_pvalue_holm",
]

SCORES = {
    "hadamard": [0.90, 0.88, 0.93, 0.91, 0.89, 0.92],
    "concat": [0.87, 0.88, 0.90, 0.89, 0.86, 0.90],
    "film": [0.91, 0.87, 0.92, 0.92, 0.88, 0.93],
    "none": [0.70, 0.72, 0.69, 0.71, 0.73, 0.70],
}
N_TEST = [20, 20, 20, 20, 19, 19]


def _long(scores=SCORES, n_test=N_TEST, n_total=118):
    rows = [
        {"method": m, "fold": f, "accuracy": s, "n_train": n_total - n_test[f], "n_test": n_test[f]}
        for m, values in scores.items()
        for f, s in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _predictions(scores=SCORES, n_per_fold=20, seed=0):
    """Item-level predictions whose per-method error counts roughly follow the scores."""
    rng = np.random.default_rng(seed)
    rows = []
    for fold in range(len(next(iter(scores.values())))):
        items = np.arange(fold * n_per_fold, (fold + 1) * n_per_fold)
        y_true = rng.integers(0, 2, n_per_fold)
        for method, values in scores.items():
            wrong = rng.random(n_per_fold) > values[fold]
            y_pred = np.where(wrong, 1 - y_true, y_true)
            rows += [
                {"method": method, "fold": fold, "index": i, "y_true": t, "y_pred": p}
                for i, t, p in zip(items, y_true, y_pred)
            ]
    return pd.DataFrame(rows)


def test_each_row_matches_the_individual_tests():
    frame = _long()
    table = compare_to_reference(frame)
    assert list(table.columns) == [*BASE_COLUMNS, "significant"]
    assert table["method"].tolist() == ["concat", "film", "none"]
    ref = np.array(SCORES["hadamard"])
    n_test = np.array(N_TEST, dtype=float)
    for _, row in table.iterrows():
        scores = np.array(SCORES[row["method"]])
        ttest = corrected_resampled_ttest(scores, ref, n_train=118 - n_test, n_test=n_test)
        assert row["reference"] == "hadamard" and row["n_folds"] == 6
        assert row["mean"] == pytest.approx(scores.mean())
        assert row["std"] == pytest.approx(scores.std(ddof=1))
        assert row["reference_mean"] == pytest.approx(ref.mean())
        assert row["reference_std"] == pytest.approx(ref.std(ddof=1))
        assert row["mean_difference"] == pytest.approx(scores.mean() - ref.mean())
        assert row["ttest_statistic"] == ttest.statistic
        assert row["ttest_pvalue"] == ttest.pvalue
        assert row["wilcoxon_pvalue"] == wilcoxon_signed_rank(scores, ref).pvalue
        assert row["effect_size"] == paired_effect_size(scores, ref)
    np.testing.assert_array_equal(table["ttest_pvalue_holm"], holm(table["ttest_pvalue"]))
    np.testing.assert_array_equal(table["wilcoxon_pvalue_holm"], holm(table["wilcoxon_pvalue"]))
    # The landmark-only baseline is far worse on every fold; the fusions are close to hadamard.
    assert table.set_index("method")["significant"].to_dict() == {
        "concat": False, "film": False, "none": True,
    }
    assert table["significant"].dtype == bool


def test_significance_follows_alpha_on_holm_corrected_ttest():
    table = compare_to_reference(_long())
    p_none = table.set_index("method").loc["none", "ttest_pvalue_holm"]
    assert not compare_to_reference(_long(), alpha=p_none).set_index("method").loc["none", "significant"]
    assert compare_to_reference(_long(), alpha=p_none * 1.01).set_index("method").loc["none", "significant"]


def test_row_order_of_input_does_not_matter():
    frame = _long()
    shuffled = frame.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(
        compare_to_reference(frame).set_index("method").sort_index(),
        compare_to_reference(shuffled).set_index("method").sort_index(),
    )


def test_fold_sizes_from_arguments_match_columns():
    frame = _long(n_test=[20] * 6)
    from_columns = compare_to_reference(frame)
    plain = frame.drop(columns=["n_train", "n_test"])
    pd.testing.assert_frame_equal(from_columns, compare_to_reference(plain, n_train=98, n_test=20))
    mapping = compare_to_reference(
        plain, n_train=dict.fromkeys(range(6), 98), n_test=pd.Series(20, index=range(6))
    )
    pd.testing.assert_frame_equal(from_columns, mapping)
    # A larger test fraction means a stronger correction, hence larger p-values.
    wider = compare_to_reference(plain, n_train=59, n_test=59)
    below_one = from_columns["ttest_pvalue"] < 1  # film has hadamard's mean: p = 1 either way
    assert below_one.sum() == 2
    assert (wider["ttest_pvalue"] > from_columns["ttest_pvalue"])[below_one].all()


def test_mcnemar_columns_pool_predictions_over_folds():
    preds = _predictions()
    table = compare_to_reference(_long(), predictions=preds.sample(frac=1, random_state=1))
    assert list(table.columns) == [
        *BASE_COLUMNS, "mcnemar_pvalue", "mcnemar_pvalue_holm", "significant",
    ]
    ref = preds[preds["method"] == "hadamard"].sort_values(["fold", "index"])
    for _, row in table.iterrows():
        own = preds[preds["method"] == row["method"]].sort_values(["fold", "index"])
        expected = mcnemar(ref["y_true"], own["y_pred"], ref["y_pred"]).pvalue
        assert row["mcnemar_pvalue"] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(table["mcnemar_pvalue_holm"], holm(table["mcnemar_pvalue"]))


def test_only_reference_gives_empty_table_with_all_columns():
    frame = _long({"hadamard": SCORES["hadamard"]})
    table = compare_to_reference(frame)
    assert table.empty
    assert list(table.columns) == [*BASE_COLUMNS, "significant"]


@settings(max_examples=25, deadline=None)
@given(arrays(float, st.integers(2, 10), elements=st.floats(0, 1)), st.integers(1, 3))
def test_identical_methods_are_never_significant(scores, n_copies):
    methods = {"hadamard": scores, **{f"copy{i}": scores.copy() for i in range(n_copies)}}
    frame = _long(methods, n_test=[10] * scores.size, n_total=100)
    table = compare_to_reference(frame)
    for column in ["ttest_pvalue", "ttest_pvalue_holm", "wilcoxon_pvalue", "wilcoxon_pvalue_holm"]:
        assert (table[column] == 1.0).all()
    assert not table["significant"].any()
    assert (table["effect_size"] == 0.0).all()


@settings(max_examples=25, deadline=None)
@given(
    arrays(float, (3, 5), elements=st.floats(0, 1)),
    st.integers(1, 50),
)
def test_all_pvalues_in_unit_interval(scores, n_test):
    methods = {"hadamard": scores[0], "a": scores[1], "b": scores[2]}
    table = compare_to_reference(_long(methods, n_test=[n_test] * 5, n_total=200))
    pcols = [c for c in table.columns if "pvalue" in c]
    values = table[pcols].to_numpy()
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(table["ttest_pvalue_holm"] >= table["ttest_pvalue"])


# ----------------------------------------------------------------------------- validation


def test_unknown_reference_suggests_a_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'hadamard'"):
        compare_to_reference(_long(), reference="hadamrd")
    assert issubclass(UnknownNameError, ValueError)


@pytest.mark.parametrize(
    ("mutate", "kwargs", "match"),
    [
        (lambda f: f.drop(columns="accuracy"), {}, r"missing the column\(s\) \['accuracy'\]"),
        (lambda f: pd.concat([f, f.iloc[:1]]), {}, "several rows for the same"),
        (lambda f: f.assign(accuracy=f["accuracy"].where(f.index != 3)), {}, "finite numbers"),
        (lambda f: f.assign(accuracy=f["accuracy"].replace(0.93, np.inf)), {}, "finite numbers"),
        (lambda f: f[~((f["method"] == "film") & (f["fold"] == 2))], {}, "same folds"),
        (lambda f: f[f["fold"] == 0], {}, "at least 2 folds"),
        (lambda f: f.drop(columns="n_test"), {}, "add an 'n_test' column"),
        (
            lambda f: f.assign(n_test=np.where(f["method"] == "film", 30, f["n_test"])),
            {},
            "not evaluated on the same splits",
        ),
        (lambda f: f, {"n_train": [98] * 6}, "mapping fold -> number"),
        (lambda f: f, {"n_train": {0: 98}}, r"no value for fold\(s\) \[1, 2, 3, 4, 5\]"),
        (lambda f: f, {"n_test": 0}, "n_test must be finite and > 0"),
        (lambda f: f.to_dict(), {}, "must be a pandas DataFrame"),
    ],
)
def test_invalid_fold_scores_raise(mutate, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_to_reference(mutate(_long()), **kwargs)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda p: p.drop(columns="y_pred"), r"missing the column\(s\) \['y_pred'\]"),
        (lambda p: p[p["method"] != "film"], "no rows for method 'film'"),
        (lambda p: p.drop(index=p.index[(p["method"] == "none")][:2]), "not on the same test items"),
        (
            lambda p: p.assign(y_true=np.where(p["method"] == "concat", 1 - p["y_true"], p["y_true"])),
            "disagree on y_true",
        ),
        (lambda p: pd.concat([p, p.iloc[:1]]), "several rows for the same"),
    ],
)
def test_invalid_predictions_raise(mutate, match):
    with pytest.raises(ValueError, match=match):
        compare_to_reference(_long(), predictions=mutate(_predictions()))


# ----------------------------------------------------------------------------- fold_scores_from_cv


def _cv_output(scores, n=30, k=3, shift=0, with_indices=True):
    test = [np.arange(i, n, k) for i in range(k)]
    test = [np.sort((t + shift) % n) for t in test]
    out = {
        "fit_time": np.full(k, 0.1),
        "score_time": np.full(k, 0.01),
        "test_accuracy": np.asarray(scores, dtype=float),
        "train_accuracy": np.ones(k),
    }
    if with_indices:
        out["indices"] = {"train": [np.setdiff1d(np.arange(n), t) for t in test], "test": test}
    return out


def test_fold_scores_from_cv_columns_and_sizes():
    frame = fold_scores_from_cv({"a": _cv_output([0.8, 0.7, 0.9]), "b": _cv_output([0.6, 0.7, 0.5])})
    assert list(frame.columns) == [
        "method", "fold", "accuracy", "train_accuracy", "fit_time", "score_time", "n_train", "n_test",
    ]
    assert frame["method"].tolist() == ["a"] * 3 + ["b"] * 3
    assert frame["fold"].tolist() == [0, 1, 2] * 2
    assert frame["accuracy"].tolist() == [0.8, 0.7, 0.9, 0.6, 0.7, 0.5]
    assert (frame["n_train"] == 20).all() and (frame["n_test"] == 10).all()


def test_fold_scores_from_cv_drops_estimators_and_works_without_indices():
    out = _cv_output([0.8, 0.7, 0.9], with_indices=False)
    out["estimator"] = [object()] * 3
    frame = fold_scores_from_cv({"a": out})
    assert "estimator" not in frame and "n_train" not in frame


@pytest.mark.parametrize(
    ("results", "match"),
    [
        ({}, "non-empty mapping"),
        ([1, 2], "non-empty mapping"),
        ({"a": [0.1, 0.2]}, "dict returned by cross_validate"),
        (
            {"a": _cv_output([0.8, 0.7, 0.9]), "b": _cv_output([0.8, 0.7, 0.9], shift=1)},
            "different test folds",
        ),
        (
            {"a": _cv_output([0.8, 0.7, 0.9]), "b": _cv_output([0.8, 0.7, 0.9], with_indices=False)},
            "same scoring",
        ),
        (
            {
                "a": _cv_output([0.8, 0.7, 0.9], with_indices=False),
                "b": _cv_output([0.8, 0.7], k=2, with_indices=False),
            },
            "different numbers of folds",
        ),
        ({"a": {"test_score": [0.8, 0.7], "fit_time": [0.1]}}, "different lengths"),
    ],
)
def test_fold_scores_from_cv_rejects_bad_results(results, match):
    with pytest.raises(ValueError, match=match):
        fold_scores_from_cv(results)


def test_end_to_end_with_sklearn_cross_validate():
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import KFold, cross_validate
    from sklearn.neighbors import NearestCentroid

    X, y = load_iris(return_X_y=True)
    cv = KFold(n_splits=5, shuffle=True, random_state=0)
    results = {
        name: cross_validate(
            model, X, y, cv=cv, scoring=["accuracy", "balanced_accuracy"], return_indices=True
        )
        for name, model in {"centroid": NearestCentroid(), "dummy": DummyClassifier()}.items()
    }
    frame = fold_scores_from_cv(results)
    assert {"accuracy", "balanced_accuracy", "n_train", "n_test"} <= set(frame.columns)
    table = compare_to_reference(frame, reference="centroid", score="balanced_accuracy")
    row = table.iloc[0]
    assert row["method"] == "dummy" and row["mean_difference"] < -0.5 and row["significant"]
