"""Compare every method of a cross-validated study against a reference method, fold by fold."""

import difflib
from collections.abc import Mapping
from numbers import Real

import numpy as np
import pandas as pd

from ..exceptions import UnknownNameError
from ._significance import (
    corrected_resampled_ttest,
    holm,
    mcnemar,
    paired_effect_size,
    wilcoxon_signed_rank,
)

__all__ = ["compare_to_reference", "fold_scores_from_cv"]

_PREDICTION_COLUMNS = ("index", "y_true", "y_pred")


def _require_columns(frame, columns, frame_name):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{frame_name} is missing the column(s) {missing}; it has {list(frame.columns)}. "
            "Rename the columns or pass the *_col arguments that name them."
        )


def _fold_sizes(value, name, fold_scores, fold_col, folds):
    """Per-fold sample sizes (aligned with ``folds``) from an argument or a column."""
    if value is None:
        if name not in fold_scores.columns:
            raise ValueError(
                f"The corrected t-test needs the number of {name.split('_')[1]} samples per fold: "
                f"pass {name}= (a number, or a mapping fold -> number) or add an {name!r} column "
                "to fold_scores (fold_scores_from_cv adds it when cross_validate was called with "
                "return_indices=True)."
            )
        per_fold = fold_scores.groupby(fold_col, sort=False)[name]
        spread = per_fold.nunique(dropna=False)
        if (spread > 1).any():
            bad = spread.index[spread > 1].tolist()
            raise ValueError(
                f"Column {name!r} differs between methods on fold(s) {bad}: the methods were not "
                "evaluated on the same splits, so a paired comparison is meaningless. Use one CV "
                "splitter (with a fixed random_state) for every method."
            )
        sizes = per_fold.first().reindex(folds)
    elif isinstance(value, Real):
        sizes = pd.Series(float(value), index=folds)
    elif isinstance(value, (Mapping, pd.Series)):
        sizes = pd.Series(value, dtype=float)
        missing = [f for f in folds if f not in sizes.index]
        if missing:
            raise ValueError(f"{name} has no value for fold(s) {missing}; it must cover {list(folds)}.")
        sizes = sizes.reindex(folds)
    else:
        raise ValueError(
            f"{name} must be None, a number, or a mapping fold -> number, got "
            f"{type(value).__name__}. A bare array is ambiguous about which fold is which."
        )
    return sizes.to_numpy(dtype=float)


def _unknown_reference(reference, methods):
    close = difflib.get_close_matches(str(reference), [str(m) for m in methods], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(
        f"reference={reference!r} is not one of the methods in fold_scores: "
        f"{[str(m) for m in methods]}.{hint}"
    )


def _score_table(fold_scores, score, method_col, fold_col, reference):
    """Pivot to a (fold x method) table after checking that every method has the same folds."""
    if not isinstance(fold_scores, pd.DataFrame):
        raise ValueError(
            "fold_scores must be a pandas DataFrame with one row per method and fold, got "
            f"{type(fold_scores).__name__}. Build one with fold_scores_from_cv."
        )
    _require_columns(fold_scores, [method_col, fold_col, score], "fold_scores")
    duplicated = fold_scores.duplicated([method_col, fold_col], keep=False)
    if duplicated.any():
        pairs = fold_scores.loc[duplicated, [method_col, fold_col]].drop_duplicates()
        raise ValueError(
            f"fold_scores has several rows for the same ({method_col}, {fold_col}): "
            f"{list(pairs.itertuples(index=False, name=None))[:5]}. Keep one row per method and fold."
        )
    values = pd.to_numeric(fold_scores[score], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = fold_scores.loc[bad, [method_col, fold_col, score]]
        raise ValueError(
            f"Column {score!r} must hold finite numbers, got {rows.to_dict('records')[:5]}. "
            "A NaN score usually means a fold failed; fix or drop that fold for every method."
        )
    methods = pd.unique(fold_scores[method_col]).tolist()
    if reference not in methods:
        raise _unknown_reference(reference, methods)
    folds = pd.unique(fold_scores.loc[fold_scores[method_col] == reference, fold_col]).tolist()
    for method in methods:
        method_folds = set(fold_scores.loc[fold_scores[method_col] == method, fold_col].tolist())
        if method_folds != set(folds):
            raise ValueError(
                f"Method {method!r} was scored on folds {sorted(method_folds, key=str)} but the "
                f"reference {reference!r} on {sorted(folds, key=str)}; paired tests need every "
                "method on the same folds."
            )
    if len(folds) < 2:
        raise ValueError(
            f"Paired tests over folds need at least 2 folds, got {len(folds)}. Use a "
            "cross-validation with n_splits >= 2."
        )
    frame = fold_scores.assign(**{score: values})
    table = frame.pivot(index=fold_col, columns=method_col, values=score)
    return table.reindex(index=folds, columns=methods), methods, folds


def _pooled_predictions(predictions, method, reference, method_col, fold_col):
    """Align the pooled test predictions of ``method`` and ``reference`` item by item."""
    keys = [fold_col, "index"]
    own = predictions[predictions[method_col] == method]
    ref = predictions[predictions[method_col] == reference]
    for name, part in ((method, own), (reference, ref)):
        if part.empty:
            raise ValueError(f"predictions has no rows for method {name!r}.")
        if part.duplicated(keys).any():
            raise ValueError(
                f"predictions has several rows for the same ({fold_col}, index) for method {name!r}."
            )
    merged = own.merge(ref, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise ValueError(
            f"The predictions of {method!r} and {reference!r} are not on the same test items: "
            f"{int(unmatched.sum())} ({fold_col}, index) pair(s) appear for only one of them, e.g. "
            f"{list(merged.loc[unmatched, keys].itertuples(index=False, name=None))[:3]}."
        )
    if not (merged["y_true_a"] == merged["y_true_b"]).all():
        raise ValueError(
            f"predictions disagree on y_true between {method!r} and {reference!r} for the same "
            f"({fold_col}, index); they must describe the same test items."
        )
    return merged["y_true_a"].to_numpy(), merged["y_pred_a"].to_numpy(), merged["y_pred_b"].to_numpy()


def compare_to_reference(
    fold_scores,
    *,
    reference="hadamard",
    score="accuracy",
    method_col="method",
    fold_col="fold",
    n_train=None,
    n_test=None,
    predictions=None,
    alpha=0.05,
):
    """Test every method against a reference method on the same cross-validation folds.

    For each method other than ``reference``, the per-fold scores are compared with the
    reference's on the same folds by the corrected resampled t-test (Nadeau & Bengio), the
    Wilcoxon signed-rank test and, when ``predictions`` are given, McNemar's test on the pooled
    test predictions. Each p-value column is Holm-corrected over the family of comparisons
    (one per method), and a comparison is called ``significant`` when the Holm-corrected t-test
    p-value is below ``alpha``.

    Parameters
    ----------
    fold_scores : pandas.DataFrame
        Long table, one row per method and fold, with columns ``method_col``, ``fold_col`` and
        ``score`` (e.g. the output of :func:`fold_scores_from_cv`). Optional columns ``n_train``
        and ``n_test`` give the fold sizes when the arguments of the same name are None.
    reference : str, default="hadamard"
        Method that every other method is compared with.
    score : str, default="accuracy"
        Column holding the score to compare (higher or lower is better: the tests are two-sided).
    method_col : str, default="method"
        Column naming the method, in ``fold_scores`` and ``predictions``.
    fold_col : str, default="fold"
        Column naming the fold, in ``fold_scores`` and ``predictions``.
    n_train : float, mapping or None, default=None
        Training-set size per fold for the corrected t-test: a number for all folds, a mapping
        (dict or Series) fold -> size, or None to read the ``n_train`` column of
        ``fold_scores``.
    n_test : float, mapping or None, default=None
        Test-set size per fold, as for ``n_train``.
    predictions : pandas.DataFrame or None, default=None
        Test predictions with columns ``method_col``, ``fold_col``, ``index`` (the item's
        identity within the dataset), ``y_true`` and ``y_pred``. When given, McNemar's test is
        computed on the items pooled over all folds; when None the McNemar columns are omitted.
    alpha : float, default=0.05
        Family-wise significance level applied to the Holm-corrected t-test p-value.

    Returns
    -------
    comparison : pandas.DataFrame
        One row per method other than ``reference``, in order of first appearance, with columns
        ``method``, ``reference``, ``n_folds``, ``mean``, ``std``, ``reference_mean``,
        ``reference_std`` (standard deviations over folds, ``ddof=1``), ``mean_difference``
        (method minus reference), ``effect_size`` (Cohen's d_z of method minus reference),
        ``ttest_statistic``, ``ttest_pvalue``, ``ttest_pvalue_holm``, ``wilcoxon_pvalue``,
        ``wilcoxon_pvalue_holm``, then ``mcnemar_pvalue`` and ``mcnemar_pvalue_holm`` when
        ``predictions`` is given, and the boolean ``significant``. Empty (with these columns)
        when ``reference`` is the only method.

    Raises
    ------
    ValueError
        If columns are missing, a (method, fold) pair appears twice, scores are not finite,
        methods were scored on different folds or fold sizes, there are fewer than 2 folds, fold
        sizes are missing or invalid, or ``predictions`` do not cover the same items for each
        method.
    hadasklearn.exceptions.UnknownNameError
        If ``reference`` is not a method in ``fold_scores`` (a ``ValueError`` subclass).

    See Also
    --------
    fold_scores_from_cv : Build ``fold_scores`` from :func:`sklearn.model_selection.cross_validate`.
    corrected_resampled_ttest : The t-test behind ``ttest_pvalue`` and ``significant``.
    wilcoxon_signed_rank : The test behind ``wilcoxon_pvalue``.
    mcnemar : The test behind ``mcnemar_pvalue``.
    holm : The correction behind the ``*_holm`` columns.
    paired_effect_size : The ``effect_size`` column.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import StratifiedKFold, cross_validate
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from hadasklearn.stats import compare_to_reference, fold_scores_from_cv
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    >>> models = {"logreg": make_pipeline(StandardScaler(), LogisticRegression()),
    ...           "nb": GaussianNB(), "dummy": DummyClassifier()}
    >>> results = {name: cross_validate(model, X, y, cv=cv, return_indices=True)
    ...            for name, model in models.items()}
    >>> scores = fold_scores_from_cv(results)  # single metric: the column is "score"
    >>> table = compare_to_reference(scores, reference="logreg", score="score")
    >>> table[["method", "mean_difference", "ttest_pvalue_holm", "significant"]].round(3)
      method  mean_difference  ttest_pvalue_holm  significant
    0     nb           -0.040              0.075        False
    1  dummy           -0.351              0.000         True
    """
    table, methods, folds = _score_table(fold_scores, score, method_col, fold_col, reference)
    train_sizes = _fold_sizes(n_train, "n_train", fold_scores, fold_col, folds)
    test_sizes = _fold_sizes(n_test, "n_test", fold_scores, fold_col, folds)
    if predictions is not None:
        if not isinstance(predictions, pd.DataFrame):
            raise ValueError(
                f"predictions must be a pandas DataFrame or None, got {type(predictions).__name__}."
            )
        _require_columns(predictions, [method_col, fold_col, *_PREDICTION_COLUMNS], "predictions")

    ref_scores = table[reference].to_numpy()
    rows = []
    for method in methods:
        if method == reference:
            continue
        scores = table[method].to_numpy()
        ttest = corrected_resampled_ttest(scores, ref_scores, n_train=train_sizes, n_test=test_sizes)
        row = {
            "method": method,
            "reference": reference,
            "n_folds": len(folds),
            "mean": float(np.mean(scores)),
            "std": float(np.std(scores, ddof=1)),
            "reference_mean": float(np.mean(ref_scores)),
            "reference_std": float(np.std(ref_scores, ddof=1)),
            "mean_difference": ttest.mean_difference,
            "effect_size": paired_effect_size(scores, ref_scores),
            "ttest_statistic": ttest.statistic,
            "ttest_pvalue": ttest.pvalue,
            "wilcoxon_pvalue": wilcoxon_signed_rank(scores, ref_scores).pvalue,
        }
        if predictions is not None:
            y_true, pred_a, pred_b = _pooled_predictions(
                predictions, method, reference, method_col, fold_col
            )
            row["mcnemar_pvalue"] = mcnemar(y_true, pred_a, pred_b).pvalue
        rows.append(row)

    tests = ["ttest", "wilcoxon"] + (["mcnemar"] if predictions is not None else [])
    columns = [
        "method", "reference", "n_folds", "mean", "std", "reference_mean", "reference_std",
        "mean_difference", "effect_size", "ttest_statistic",
    ]
    for test in tests:
        columns += [f"{test}_pvalue", f"{test}_pvalue_holm"]
    columns.append("significant")

    raw_columns = [c for c in columns if not c.endswith("_holm") and c != "significant"]
    result = pd.DataFrame(rows, columns=raw_columns)
    for test in tests:
        result[f"{test}_pvalue_holm"] = holm(result[f"{test}_pvalue"].to_numpy(dtype=float))
    result["significant"] = (result["ttest_pvalue_holm"] < alpha).astype(bool)
    return result[columns]


def fold_scores_from_cv(results):
    """Turn several :func:`sklearn.model_selection.cross_validate` outputs into a long table.

    Parameters
    ----------
    results : mapping of str to dict
        ``{method: cross_validate(...)}``. Every output must have the same keys and the same
        number of folds.

    Returns
    -------
    fold_scores : pandas.DataFrame
        One row per method and fold with columns ``method``, ``fold`` (0-based) and one column
        per array in the outputs: ``test_<name>`` becomes ``<name>`` (so single-metric scoring
        gives ``score``), ``train_<name>``, ``fit_time`` and ``score_time`` keep their names. When
        the outputs hold ``indices`` (``return_indices=True``), ``n_train`` and ``n_test`` columns
        give the fold sizes. Fitted estimators (``return_estimator=True``) are left out.

    Raises
    ------
    ValueError
        If ``results`` is empty, the outputs have different keys or numbers of folds, or their
        ``indices`` show that the methods were evaluated on different test sets.

    See Also
    --------
    compare_to_reference : Test each method against a reference on these folds.

    Examples
    --------
    >>> from hadasklearn.stats import fold_scores_from_cv
    >>> cv_a = {"fit_time": [0.1, 0.2], "score_time": [0.0, 0.0], "test_score": [0.8, 0.9]}
    >>> cv_b = {"fit_time": [0.3, 0.3], "score_time": [0.0, 0.0], "test_score": [0.7, 0.9]}
    >>> fold_scores_from_cv({"a": cv_a, "b": cv_b})[["method", "fold", "score"]]
      method  fold  score
    0      a     0    0.8
    1      a     1    0.9
    2      b     0    0.7
    3      b     1    0.9
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(
            "results must be a non-empty mapping {method: cross_validate output}, got "
            f"{results!r:.80}."
        )
    frames = []
    fold_counts = {}
    keys = None
    test_indices = None
    first_method = None
    for method, output in results.items():
        if not isinstance(output, Mapping):
            raise ValueError(
                f"results[{method!r}] must be the dict returned by cross_validate, got "
                f"{type(output).__name__}."
            )
        method_keys = set(output) - {"estimator"}
        if keys is None:
            keys, first_method = method_keys, method
        elif method_keys != keys:
            raise ValueError(
                f"results[{method!r}] has keys {sorted(method_keys)} but results[{first_method!r}] "
                f"has {sorted(keys)}; use the same scoring (and return_* options) for every method."
            )
        columns = {}
        # Test scores first (what is compared), then train scores, then timings.
        ordered = sorted(
            (key for key in output if key not in ("estimator", "indices")),
            key=lambda key: (not key.startswith("test_"), not key.startswith("train_")),
        )
        for key in ordered:
            values = np.asarray(output[key])
            if values.ndim != 1:
                raise ValueError(
                    f"results[{method!r}][{key!r}] must be 1-D (one value per fold), got shape "
                    f"{values.shape}."
                )
            name = key.removeprefix("test_") if key.startswith("test_") else key
            columns[name] = values
        if "indices" in output:
            train, test = output["indices"]["train"], output["indices"]["test"]
            columns["n_train"] = np.array([len(t) for t in train])
            columns["n_test"] = np.array([len(t) for t in test])
            if test_indices is None:
                test_indices = [np.sort(np.asarray(t)) for t in test]
            elif len(test) != len(test_indices) or any(
                not np.array_equal(np.sort(np.asarray(t)), ref) for t, ref in zip(test, test_indices)
            ):
                raise ValueError(
                    f"results[{method!r}] was evaluated on different test folds than "
                    f"results[{first_method!r}]; paired tests need identical splits. Pass the same "
                    "CV splitter (with a fixed random_state if it shuffles) to every cross_validate."
                )
        lengths = {name: len(v) for name, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"results[{method!r}] has arrays of different lengths: {lengths}.")
        n_folds = next(iter(lengths.values()), 0)
        fold_counts[method] = n_folds
        frames.append(pd.DataFrame({"method": method, "fold": np.arange(n_folds), **columns}))
    if len(set(fold_counts.values())) > 1:
        raise ValueError(
            f"The methods have different numbers of folds: {fold_counts}; use the same CV for all."
        )
    return pd.concat(frames, ignore_index=True)
