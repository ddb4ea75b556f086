"""Paired significance tests for comparing two models on the same cross-validation folds or test items."""

from dataclasses import dataclass
from numbers import Real

import numpy as np
from scipy import stats

__all__ = [
    "CorrectedTTestResult",
    "McNemarResult",
    "WilcoxonResult",
    "corrected_resampled_ttest",
    "holm",
    "mcnemar",
    "paired_effect_size",
    "wilcoxon_signed_rank",
]

# Below this many discordant pairs the chi-square approximation of McNemar's statistic is poor,
# so ``mcnemar(exact=None)`` switches to the exact binomial test (a common rule of thumb).
_MCNEMAR_EXACT_BELOW = 25

# Paired differences are rounded to this many digits relative to the largest absolute score
# (see _paired_differences): far below any meaningful score resolution, far above float noise.
_SIGNIFICANT_DIGITS = 12

# Largest number of non-zero differences for which wilcoxon_signed_rank computes the exact null
# distribution (the same limit as scipy's exact method); beyond it the normal approximation is good.
_WILCOXON_EXACT_MAX = 50


@dataclass(frozen=True, slots=True)
class CorrectedTTestResult:
    """Result of :func:`corrected_resampled_ttest` (frozen; each parameter is an attribute).

    Parameters
    ----------
    statistic : float
        Corrected t statistic; positive when ``scores_a`` is larger on average. ``±inf`` when all
        paired differences are equal and non-zero.
    pvalue : float
        Two-sided p-value from Student's t distribution with ``df`` degrees of freedom.
    mean_difference : float
        Mean of ``scores_a - scores_b`` over the folds.
    df : int
        Degrees of freedom, the number of folds minus one.

    Examples
    --------
    >>> from hadasklearn.stats import corrected_resampled_ttest
    >>> corrected_resampled_ttest([0.9, 0.8], [0.9, 0.8], n_train=9, n_test=1)
    CorrectedTTestResult(statistic=0.0, pvalue=1.0, mean_difference=0.0, df=1)
    """

    statistic: float
    pvalue: float
    mean_difference: float
    df: int


@dataclass(frozen=True, slots=True)
class WilcoxonResult:
    """Result of :func:`wilcoxon_signed_rank` (frozen; each parameter is an attribute).

    Parameters
    ----------
    statistic : float
        The smaller of the two signed-rank sums (scipy's two-sided statistic).
    pvalue : float
        Two-sided p-value.

    Examples
    --------
    >>> from hadasklearn.stats import wilcoxon_signed_rank
    >>> wilcoxon_signed_rank([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    WilcoxonResult(statistic=0.0, pvalue=0.25)
    """

    statistic: float
    pvalue: float


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """Result of :func:`mcnemar` (frozen; each parameter is an attribute).

    Parameters
    ----------
    statistic : float
        ``min(n_a_only, n_b_only)`` for the exact test; the continuity-corrected chi-square
        statistic otherwise.
    pvalue : float
        Two-sided p-value.
    n_a_only : int
        Number of items model ``a`` got right and model ``b`` got wrong.
    n_b_only : int
        Number of items model ``b`` got right and model ``a`` got wrong.
    exact : bool
        Whether the exact binomial test was used.

    Examples
    --------
    >>> from hadasklearn.stats import mcnemar
    >>> mcnemar([0, 1, 1], [0, 1, 1], [0, 1, 0])
    McNemarResult(statistic=0.0, pvalue=1.0, n_a_only=1, n_b_only=0, exact=True)
    """

    statistic: float
    pvalue: float
    n_a_only: int
    n_b_only: int
    exact: bool


def _as_scores(values, name):
    """Return ``values`` as a finite 1-D float array, or raise saying what is wrong."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a 1-D sequence of numbers (one score per fold); could not convert it "
            f"to floats: {exc}"
        ) from None
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one score per fold), got an array of shape {array.shape}. "
            "Pass the per-fold scores of one model, e.g. cross_validate(...)['test_score']."
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} must contain only finite scores, got {array[bad].tolist()} at fold position(s) "
            f"{bad.tolist()}. A NaN score usually means a fold failed to fit or score "
            "(see error_score in cross_validate); fix or drop that fold for every model."
        )
    return array


def _paired_differences(scores_a, scores_b):
    """Validate two paired per-fold score vectors and return ``scores_a - scores_b``."""
    a = _as_scores(scores_a, "scores_a")
    b = _as_scores(scores_b, "scores_b")
    if a.shape != b.shape:
        raise ValueError(
            f"scores_a and scores_b must hold one score per fold for the same folds, got "
            f"{a.size} and {b.size} scores. Evaluate both models with the same CV splitter."
        )
    if a.size < 2:
        raise ValueError(
            f"A paired test over folds needs scores for at least 2 folds, got {a.size}. "
            "Use a cross-validation with n_splits >= 2."
        )
    d = a - b
    # Differences that are equal in exact arithmetic often are not in floating point
    # (0.9 - 0.8 != 0.8 - 0.7); left as they are, they break ties for the ranks and give a spread
    # of ~1e-17 that turns an exactly constant difference into t ~ 1e15 instead of inf.
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    if scale == 0:
        return d
    # Group by magnitude (ties in |d| matter for the ranks, even across signs) and snap each
    # group to one of its own members, not to the rounded value, so that exact differences such
    # as 0.25 stay exact.
    magnitude = np.abs(d)
    keys = np.round(magnitude / scale, _SIGNIFICANT_DIGITS)
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    return np.where(keys == 0, 0.0, np.copysign(magnitude[first][group], d))


def _as_sample_size(value, name, n_folds):
    """Mean of a positive scalar or per-fold array of sample sizes."""
    array = np.asarray(value, dtype=float) if not isinstance(value, Real) else np.float64(value)
    if array.ndim > 1 or (array.ndim == 1 and array.size != n_folds):
        raise ValueError(
            f"{name} must be a number or a 1-D array with one value per fold ({n_folds}), got "
            f"shape {array.shape}."
        )
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(
            f"{name} must be finite and > 0 (a number of samples), got {array.tolist()}."
        )
    return float(np.mean(array))


def corrected_resampled_ttest(scores_a, scores_b, *, n_train, n_test):
    r"""Corrected resampled t-test of Nadeau & Bengio for two models scored on the same CV folds.

    The folds of a cross-validation share most of their training data, so the per-fold score
    differences are positively correlated and the ordinary paired t-test (which treats them as
    independent) is far too liberal. Nadeau & Bengio (2003) correct this by inflating the
    variance of the mean difference:

    .. math::

        t = \frac{\bar d}{\sqrt{\left(\frac{1}{k} + \frac{n_{test}}{n_{train}}\right) s_d^2}},

    where :math:`d_j = a_j - b_j` is the difference on fold :math:`j`, :math:`\bar d` and
    :math:`s_d^2` are its mean and sample variance (``ddof=1``) over the :math:`k` folds, and
    :math:`t` is referred to Student's t distribution with :math:`k - 1` degrees of freedom
    (two-sided).

    Parameters
    ----------
    scores_a : array-like of shape (n_folds,)
        Score of model ``a`` on each fold.
    scores_b : array-like of shape (n_folds,)
        Score of model ``b`` on the same folds, in the same order.
    n_train : float or array-like of shape (n_folds,)
        Number of training samples per fold. When it varies between folds (folds of unequal
        size), pass one value per fold: the ratio uses the mean of ``n_test`` over the mean of
        ``n_train``.
    n_test : float or array-like of shape (n_folds,)
        Number of test samples per fold, as for ``n_train``.

    Returns
    -------
    result : CorrectedTTestResult
        ``statistic``, ``pvalue``, ``mean_difference`` (mean of ``a - b``) and ``df``. When all
        differences are zero the statistic is 0 and the p-value 1; when they are all equal and
        non-zero (zero variance), the statistic is ``±inf`` and the p-value 0.

    Raises
    ------
    ValueError
        If the score vectors differ in length, have fewer than 2 folds or hold non-finite values,
        or if ``n_train``/``n_test`` are not positive and finite or have the wrong length.

    See Also
    --------
    wilcoxon_signed_rank : Rank-based alternative that does not assume normal differences.
    paired_effect_size : Standardised size of the same paired difference.

    Notes
    -----
    For repeated k-fold (``r`` repetitions of ``k`` folds) pass all ``r * k`` scores: the same
    formula with :math:`k` replaced by the total number of resamples is the corrected repeated
    k-fold test of Bouckaert & Frank (2004). With ``n_test / n_train -> 0`` the statistic tends to
    that of the ordinary paired t-test (:func:`scipy.stats.ttest_rel`).

    The differences are rounded to 12 digits relative to the largest absolute score, so that a
    difference that is constant in exact arithmetic (``0.9 - 0.8`` and ``0.8 - 0.7``) has zero
    variance rather than a floating-point spread of about ``1e-17``.

    References
    ----------
    .. [1] C. Nadeau and Y. Bengio, "Inference for the Generalization Error", Machine Learning,
       52(3), 239-281, 2003. https://doi.org/10.1023/A:1024068626366
    .. [2] R. R. Bouckaert and E. Frank, "Evaluating the Replicability of Significance Tests for
       Comparing Learning Algorithms", PAKDD 2004, LNCS 3056, 3-12.

    Examples
    --------
    >>> from hadasklearn.stats import corrected_resampled_ttest
    >>> a = [0.82, 0.80, 0.85, 0.79, 0.84, 0.81, 0.83, 0.86, 0.80, 0.82]
    >>> b = [0.80, 0.79, 0.82, 0.79, 0.82, 0.80, 0.81, 0.83, 0.79, 0.80]
    >>> res = corrected_resampled_ttest(a, b, n_train=90, n_test=10)
    >>> res.df, round(res.mean_difference, 3), round(res.statistic, 3), round(res.pvalue, 4)
    (9, 0.017, 3.9, 0.0036)
    """
    d = _paired_differences(scores_a, scores_b)
    k = d.size
    ratio = _as_sample_size(n_test, "n_test", k) / _as_sample_size(n_train, "n_train", k)
    df = k - 1
    # Test equality, not variance == 0: the mean of equal floats is not always exactly one of them.
    if np.all(d == d[0]):
        # Degenerate but well defined: no spread at all. Equal scores are no evidence of a
        # difference (p = 1); a constant non-zero difference is the limit t -> ±inf (p = 0).
        if d[0] == 0.0:
            return CorrectedTTestResult(0.0, 1.0, 0.0, df)
        return CorrectedTTestResult(float(np.copysign(np.inf, d[0])), 0.0, float(d[0]), df)
    # t is scale invariant; normalising first keeps tiny differences from underflowing to 0.
    unit = d / np.max(np.abs(d))
    statistic = np.mean(unit) / np.sqrt((1.0 / k + ratio) * np.var(unit, ddof=1))
    pvalue = float(min(1.0, 2.0 * stats.t.sf(abs(statistic), df)))
    return CorrectedTTestResult(float(statistic), pvalue, float(np.mean(d)), df)


def wilcoxon_signed_rank(scores_a, scores_b):
    """Wilcoxon signed-rank test for two models scored on the same folds (two-sided).

    The test of :func:`scipy.stats.wilcoxon` (``zero_method="wilcox"``) on the paired
    differences ``scores_a - scores_b``, with the cases frequent with CV folds made well defined
    and fast: all-zero differences, ties, and few folds.

    Parameters
    ----------
    scores_a : array-like of shape (n_folds,)
        Score of model ``a`` on each fold.
    scores_b : array-like of shape (n_folds,)
        Score of model ``b`` on the same folds, in the same order.

    Returns
    -------
    result : WilcoxonResult
        ``statistic`` (smaller signed-rank sum) and two-sided ``pvalue``.

    Raises
    ------
    ValueError
        If the score vectors differ in length, have fewer than 2 folds or hold non-finite values.

    See Also
    --------
    corrected_resampled_ttest : Parametric test that accounts for overlapping training sets.

    Notes
    -----
    - Zero differences are discarded (``zero_method="wilcox"``). When *all* differences are
      zero the two models are indistinguishable on these folds: the result is statistic 0 and
      p-value 1 (scipy would divide by zero).
    - Up to 50 non-zero differences the p-value is exact: the null distribution of the
      signed-rank sum over all :math:`2^n` equally likely sign assignments is computed by
      convolution, with mid-ranks for tied absolute differences. Without ties this is scipy's
      ``method="exact"``; with ties (frequent: fold accuracies are multiples of ``1/n_test``) it
      equals scipy's exhaustive permutation test, in microseconds rather than the seconds scipy
      takes for 10 to 13 folds. Beyond 50, scipy's normal approximation with tie correction is
      used. With ``n`` non-zero differences the smallest attainable two-sided p-value is
      ``2 / 2**n`` (0.0625 for 5 folds, about 0.002 for 10 folds).
    - Differences are rounded to 12 digits relative to the largest absolute score before
      ranking, so that differences equal in exact arithmetic but not in floating point
      (``0.9 - 0.8`` and ``0.8 - 0.7``) are ranked as ties.
    - Unlike the t-test, this test ignores the dependence between CV folds; it is reported
      alongside as a distribution-free check, as recommended by Demšar (2006).

    References
    ----------
    .. [1] F. Wilcoxon, "Individual Comparisons by Ranking Methods", Biometrics Bulletin, 1(6),
       80-83, 1945. https://doi.org/10.2307/3001968
    .. [2] J. Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets", JMLR 7,
       1-30, 2006.

    Examples
    --------
    >>> from hadasklearn.stats import wilcoxon_signed_rank
    >>> a = [0.82, 0.80, 0.85, 0.79, 0.84, 0.81, 0.83, 0.86, 0.80, 0.82]
    >>> b = [0.80, 0.79, 0.82, 0.79, 0.82, 0.80, 0.81, 0.83, 0.79, 0.80]
    >>> res = wilcoxon_signed_rank(a, b)
    >>> float(res.statistic), round(res.pvalue, 4)
    (0.0, 0.0039)
    >>> wilcoxon_signed_rank(a, a).pvalue
    1.0
    """
    d = _paired_differences(scores_a, scores_b)
    d = d[d != 0]
    if d.size == 0:
        return WilcoxonResult(0.0, 1.0)
    if d.size > _WILCOXON_EXACT_MAX:
        res = stats.wilcoxon(d, zero_method="wilcox", method="asymptotic")
        return WilcoxonResult(float(res.statistic), float(min(1.0, res.pvalue)))
    # Mid-ranks are multiples of 1/2, so doubled ranks are integers and the null distribution of
    # the doubled positive-rank sum is the product of the generating functions (1 + x**r) / 2.
    doubled = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)
    null = np.zeros(int(doubled.sum()) + 1)
    null[0] = 1.0
    for r in doubled:
        null[r:] = 0.5 * (null[r:] + null[:-r])
        null[:r] *= 0.5
    observed = int(doubled[d > 0].sum())
    p_low, p_high = null[: observed + 1].sum(), null[observed:].sum()
    pvalue = min(1.0, 2.0 * min(p_low, p_high))
    r_plus = observed / 2.0
    return WilcoxonResult(float(min(r_plus, doubled.sum() / 2.0 - r_plus)), float(pvalue))


def _as_labels(values, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one label per test item), got an array of shape {array.shape}."
        )
    return array


def mcnemar(y_true, pred_a, pred_b, *, exact=None):
    r"""Test whether two classifiers err equally often on the same test items (McNemar, two-sided).

    Only the discordant items matter: :math:`n_{a}` items that model ``a`` classifies correctly
    and model ``b`` does not, and :math:`n_{b}` the other way round. Under the null hypothesis
    of equal error rates, :math:`n_a \sim \mathrm{Binomial}(n_a + n_b, 1/2)`.

    - Exact test: the two-sided binomial p-value
      :math:`\min(1, 2\,P[X \le \min(n_a, n_b)])`, :math:`X \sim \mathrm{Binomial}(n_a + n_b, 1/2)`.
    - Asymptotic test: :math:`\chi^2 = (\max(|n_a - n_b| - 1, 0))^2 / (n_a + n_b)` with one degree
      of freedom (Edwards' continuity correction, floored at 0 so that :math:`n_a = n_b` gives
      :math:`\chi^2 = 0`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels. Pool the test items of all CV folds to compare two models over a CV.
    pred_a : array-like of shape (n_samples,)
        Predictions of model ``a`` for the same items.
    pred_b : array-like of shape (n_samples,)
        Predictions of model ``b`` for the same items.
    exact : bool or None, default=None
        ``True`` for the exact binomial test, ``False`` for the chi-square approximation, ``None``
        to use the exact test when there are fewer than 25 discordant items.

    Returns
    -------
    result : McNemarResult
        ``statistic``, ``pvalue``, the discordant counts ``n_a_only`` and ``n_b_only`` and whether
        the test was ``exact``. With no discordant items the p-value is 1.

    Raises
    ------
    ValueError
        If the three arrays are not 1-D of the same non-zero length, or ``exact`` is not a bool
        or None.

    See Also
    --------
    scipy.stats.binomtest : The exact test used here.

    References
    ----------
    .. [1] Q. McNemar, "Note on the sampling error of the difference between correlated
       proportions or percentages", Psychometrika, 12(2), 153-157, 1947.
    .. [2] A. L. Edwards, "Note on the 'correction for continuity' in testing the significance of
       the difference between correlated proportions", Psychometrika, 13(3), 185-187, 1948.
    .. [3] T. G. Dietterich, "Approximate Statistical Tests for Comparing Supervised
       Classification Learning Algorithms", Neural Computation, 10(7), 1895-1923, 1998.

    Examples
    --------
    >>> from hadasklearn.stats import mcnemar
    >>> y = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    >>> a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    >>> b = [0, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    >>> res = mcnemar(y, a, b)
    >>> res.n_a_only, res.n_b_only, res.exact, round(res.pvalue, 4)
    (5, 0, True, 0.0625)
    """
    if exact is not None and not isinstance(exact, (bool, np.bool_)):
        raise ValueError(f"exact must be True, False or None, got {exact!r}.")
    y = _as_labels(y_true, "y_true")
    a = _as_labels(pred_a, "pred_a")
    b = _as_labels(pred_b, "pred_b")
    if not (y.size == a.size == b.size):
        raise ValueError(
            "y_true, pred_a and pred_b must have one entry per test item, got lengths "
            f"{y.size}, {a.size} and {b.size}."
        )
    if y.size == 0:
        raise ValueError("mcnemar needs at least one test item, got empty arrays.")
    correct_a = a == y
    correct_b = b == y
    n_a = int(np.count_nonzero(correct_a & ~correct_b))
    n_b = int(np.count_nonzero(~correct_a & correct_b))
    n = n_a + n_b
    use_exact = n < _MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    if n == 0:
        return McNemarResult(0.0, 1.0, n_a, n_b, use_exact)
    if use_exact:
        statistic = min(n_a, n_b)
        pvalue = min(1.0, 2.0 * float(stats.binom.cdf(statistic, n, 0.5)))
        return McNemarResult(float(statistic), pvalue, n_a, n_b, True)
    statistic = max(abs(n_a - n_b) - 1, 0) ** 2 / n
    pvalue = float(stats.chi2.sf(statistic, 1))
    return McNemarResult(float(statistic), pvalue, n_a, n_b, False)


def holm(pvalues):
    r"""Holm-Bonferroni step-down adjusted p-values.

    With the :math:`m` p-values sorted increasingly, :math:`p_{(1)} \le \dots \le p_{(m)}`, the
    adjusted values are

    .. math::

        \tilde p_{(i)} = \min\left(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\right).

    Rejecting the hypotheses whose adjusted p-value is below :math:`\alpha` controls the
    family-wise error rate at :math:`\alpha` under any dependence between the tests.

    Parameters
    ----------
    pvalues : array-like of shape (n_tests,)
        Raw p-values of the family of tests, each in ``[0, 1]``.

    Returns
    -------
    adjusted : ndarray of shape (n_tests,)
        Adjusted p-values, in the order of the input. Each is ``>=`` its raw p-value and ``<= 1``,
        and they are non-decreasing in the order of the raw p-values.

    Raises
    ------
    ValueError
        If ``pvalues`` is not 1-D, contains NaN, or has values outside ``[0, 1]``.

    References
    ----------
    .. [1] S. Holm, "A Simple Sequentially Rejective Multiple Test Procedure", Scandinavian
       Journal of Statistics, 6(2), 65-70, 1979.

    Examples
    --------
    >>> from hadasklearn.stats import holm
    >>> holm([0.01, 0.04, 0.03, 0.005]).round(4).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    try:
        p = np.asarray(pvalues, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pvalues must be a 1-D sequence of numbers: {exc}") from None
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got an array of shape {p.shape}.")
    if np.isnan(p).any():
        raise ValueError(
            f"pvalues must not contain NaN, got NaN at position(s) {np.flatnonzero(np.isnan(p)).tolist()}. "
            "A NaN p-value means a test could not be computed; fix its input rather than "
            "correcting over it."
        )
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"pvalues must lie in [0, 1], got {p[(p < 0) | (p > 1)].tolist()}.")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * np.arange(m, 0, -1)
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def paired_effect_size(scores_a, scores_b):
    r"""Compute Cohen's :math:`d_z`, the standardised mean of paired score differences.

    .. math::

        d_z = \frac{\bar d}{s_d}, \qquad d_j = a_j - b_j,

    with :math:`s_d` the sample standard deviation (``ddof=1``) of the differences.

    Parameters
    ----------
    scores_a : array-like of shape (n_folds,)
        Score of model ``a`` on each fold.
    scores_b : array-like of shape (n_folds,)
        Score of model ``b`` on the same folds, in the same order.

    Returns
    -------
    effect_size : float
        :math:`d_z`; positive when ``a`` scores higher. When the differences have no spread it is
        0.0 if they are all zero and ``+inf``/``-inf`` (the sign of the difference) if they are all
        equal and non-zero; it is never NaN.

    Raises
    ------
    ValueError
        If the score vectors differ in length, have fewer than 2 folds or hold non-finite values.

    Notes
    -----
    :math:`d_z` describes the consistency of the difference over folds, not its size in score
    units (see ``mean_difference`` of :func:`corrected_resampled_ttest` for that). Because CV
    folds overlap, it is larger than an effect size over independent samples would be.
    The differences are rounded to 12 digits relative to the largest absolute score, so that a
    difference that is constant in exact arithmetic gives ``±inf`` rather than about ``±1e15``.

    References
    ----------
    .. [1] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed.,
       Lawrence Erlbaum, 1988.
    .. [2] D. Lakens, "Calculating and reporting effect sizes to facilitate cumulative science:
       a practical primer for t-tests and ANOVAs", Frontiers in Psychology, 4, 863, 2013.
       https://doi.org/10.3389/fpsyg.2013.00863

    Examples
    --------
    >>> from hadasklearn.stats import paired_effect_size
    >>> round(paired_effect_size([0.9, 0.8, 0.85], [0.8, 0.8, 0.8]), 3)
    1.0
    >>> paired_effect_size([0.7, 0.8], [0.7, 0.8]), paired_effect_size([0.7, 0.8], [0.8, 0.9])
    (0.0, -inf)
    """
    d = _paired_differences(scores_a, scores_b)
    if np.all(d == d[0]):
        return 0.0 if d[0] == 0.0 else float(np.copysign(np.inf, d[0]))
    unit = d / np.max(np.abs(d))
    return float(np.mean(unit) / np.std(unit, ddof=1))
