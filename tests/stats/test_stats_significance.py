"""Tests for hadasklearn.stats._significance: paired tests over CV folds, McNemar, Holm, effect size."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from hadasklearn.stats import (
    CorrectedTTestResult,
    corrected_resampled_ttest,
    holm,
    mcnemar,
    paired_effect_size,
    wilcoxon_signed_rank,
)

# Per-fold scores as accuracies of 10 folds; "clean" values avoid accidental float ties.
A10 = np.array([0.82, 0.80, 0.85, 0.79, 0.84, 0.81, 0.83, 0.86, 0.80, 0.82])
D10 = np.array([0.02, 0.01, 0.03, 0.00, 0.02, 0.01, 0.02, 0.03, 0.01, 0.02])

scores_strategy = st.integers(2, 12).flatmap(
    lambda k: st.tuples(
        arrays(float, k, elements=st.floats(0, 1, allow_nan=False)),
        arrays(float, k, elements=st.floats(0, 1, allow_nan=False)),
    )
)


# ----------------------------------------------------------------------------- corrected t-test


def test_ttest_hand_computed_nadeau_bengio_k10():
    # d = D10: mean 0.017, sum of squared deviations 810e-6 -> s^2 = 90e-6;
    # (1/10 + 1/9) * 90e-6 = 19e-6, so t = 0.017 / sqrt(19e-6) = 17 / sqrt(19).
    res = corrected_resampled_ttest(A10, A10 - D10, n_train=90, n_test=10)
    expected_t = 17 / math.sqrt(19)
    assert isinstance(res, CorrectedTTestResult)
    assert res.df == 9
    assert res.mean_difference == pytest.approx(0.017, rel=1e-9)
    assert res.statistic == pytest.approx(expected_t, rel=1e-9)
    assert res.pvalue == pytest.approx(2 * stats.t.sf(expected_t, 9), rel=1e-9)
    # The uncorrected test would claim far more: the correction must make p larger.
    assert res.pvalue > stats.ttest_rel(A10, A10 - D10).pvalue


@pytest.mark.parametrize("seed", range(5))
def test_ttest_tends_to_scipy_ttest_rel_when_test_fraction_vanishes(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 15))
    a, b = rng.uniform(0.5, 1, k), rng.uniform(0.5, 1, k)
    ref = stats.ttest_rel(a, b)
    res = corrected_resampled_ttest(a, b, n_train=1e15, n_test=1)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-7)
    assert res.df == ref.df


@pytest.mark.parametrize("ratio", [1 / 9, 1 / 4, 1.0])
def test_ttest_is_ttest_rel_scaled_by_variance_inflation(ratio):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 1, 10), rng.uniform(0.5, 1, 10)
    expected = stats.ttest_rel(a, b).statistic * math.sqrt((1 / 10) / (1 / 10 + ratio))
    res = corrected_resampled_ttest(a, b, n_train=1000, n_test=1000 * ratio)
    assert res.statistic == pytest.approx(expected, rel=1e-9)


def test_ttest_per_fold_sizes_use_their_means():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.5, 1, 5), rng.uniform(0.5, 1, 5)
    n_test = np.array([114, 114, 114, 114, 113])
    n_train = 569 - n_test
    per_fold = corrected_resampled_ttest(a, b, n_train=n_train, n_test=n_test)
    means = corrected_resampled_ttest(a, b, n_train=n_train.mean(), n_test=n_test.mean())
    assert per_fold == means


def test_ttest_sign_follows_a_minus_b():
    res = corrected_resampled_ttest(A10 - D10, A10, n_train=90, n_test=10)
    assert res.statistic < 0
    assert res.mean_difference == pytest.approx(-0.017)


def test_ttest_zero_variance_cases():
    same = corrected_resampled_ttest(A10, A10, n_train=90, n_test=10)
    assert (same.statistic, same.pvalue, same.mean_difference) == (0.0, 1.0, 0.0)
    shifted = corrected_resampled_ttest(A10, A10 - 0.25, n_train=90, n_test=10)
    assert shifted.statistic == np.inf and shifted.pvalue == 0.0
    assert corrected_resampled_ttest(A10 - 0.25, A10, n_train=90, n_test=10).statistic == -np.inf


def test_ttest_constant_difference_with_float_noise_is_exactly_constant():
    # 0.9 - 0.8 and 0.8 - 0.7 differ in floating point; exactly they are both 0.1.
    a, b = np.array([0.9, 0.8, 0.7]), np.array([0.8, 0.7, 0.6])
    assert np.std(a - b) > 0  # the premise: raw float differences do spread
    assert corrected_resampled_ttest(a, b, n_train=9, n_test=1).statistic == np.inf


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}, "same folds"),
        ([0.1], [0.2], {}, "at least 2 folds"),
        ([0.1, np.nan], [0.2, 0.3], {}, "finite"),
        ([0.1, 0.2], [np.inf, 0.3], {}, "finite"),
        ([[0.1, 0.2]], [[0.2, 0.3]], {}, "1-D"),
        (["a", "b"], [0.2, 0.3], {}, "numbers"),
        ([0.1, 0.2], [0.2, 0.3], {"n_train": 0}, "n_train must be finite and > 0"),
        ([0.1, 0.2], [0.2, 0.3], {"n_test": -1}, "n_test must be finite and > 0"),
        ([0.1, 0.2], [0.2, 0.3], {"n_test": [1, 2, 3]}, "one value per fold"),
        ([0.1, 0.2], [0.2, 0.3], {"n_train": np.nan}, "n_train must be finite"),
    ],
)
def test_ttest_rejects_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        corrected_resampled_ttest(a, b, **{"n_train": 90, "n_test": 10, **kwargs})


# ----------------------------------------------------------------------------- Wilcoxon


def test_wilcoxon_matches_scipy_exact_without_ties():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.5, 1, 10), rng.uniform(0.5, 1, 10)
    ref = stats.wilcoxon(a - b, method="exact")
    res = wilcoxon_signed_rank(a, b)
    assert res.statistic == ref.statistic
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_wilcoxon_small_sample_is_exact():
    # 5 positive differences: under H0 each sign pattern has probability 1/32, two-sided 2/32.
    res = wilcoxon_signed_rank([0.9, 0.8, 0.7, 0.6, 0.5], [0.85, 0.71, 0.62, 0.48, 0.3])
    assert res.statistic == 0.0
    assert res.pvalue == pytest.approx(2 / 32, rel=1e-12)


def test_wilcoxon_all_zero_differences_give_p_one_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = wilcoxon_signed_rank(A10, A10.copy())
    assert (res.statistic, res.pvalue) == (0.0, 1.0)


def test_wilcoxon_float_noise_ties_are_ties():
    # Exactly, the differences are [0.1, 0.1, 0.1, 0.2, -0.05]: three tied ranks.
    a = np.array([0.9, 0.8, 0.7, 0.9, 0.55])
    b = np.array([0.8, 0.7, 0.6, 0.7, 0.6])
    ref = stats.wilcoxon([0.1, 0.1, 0.1, 0.2, -0.05])
    res = wilcoxon_signed_rank(a, b)
    assert res.statistic == ref.statistic
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_with_ties_and_zeros_matches_scipy_permutation_test(seed):
    # Scores on a 0.1 grid: many tied |differences| and some zeros. Small n keeps scipy's
    # exhaustive permutation test (its method="auto" choice here) fast.
    rng = np.random.default_rng(seed)
    a, b = np.round(rng.uniform(size=8), 1), np.round(rng.uniform(size=8), 1)
    exact_d = np.round(a - b, 10)
    if not exact_d.any():
        pytest.skip("all differences are zero")
    ref = stats.wilcoxon(exact_d, zero_method="wilcox")
    res = wilcoxon_signed_rank(a, b)
    assert res.statistic == ref.statistic
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_wilcoxon_large_sample_uses_normal_approximation():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=60), rng.uniform(size=60)
    ref = stats.wilcoxon(a - b, method="asymptotic")
    res = wilcoxon_signed_rank(a, b)
    assert res.statistic == ref.statistic
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


def test_wilcoxon_rejects_bad_input():
    with pytest.raises(ValueError, match="same folds"):
        wilcoxon_signed_rank([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2 folds"):
        wilcoxon_signed_rank([0.1], [0.2])
    with pytest.raises(ValueError, match="finite"):
        wilcoxon_signed_rank([0.1, np.nan], [0.2, 0.3])


# ----------------------------------------------------------------------------- McNemar


def _paired_predictions(n_a_only, n_b_only, n_both=7, n_neither=4):
    """Binary labels/predictions with the given discordant counts (shuffled order)."""
    y = np.ones(n_a_only + n_b_only + n_both + n_neither, dtype=int)
    correct_a = np.r_[np.ones(n_a_only), np.zeros(n_b_only), np.ones(n_both), np.zeros(n_neither)]
    correct_b = np.r_[np.zeros(n_a_only), np.ones(n_b_only), np.ones(n_both), np.zeros(n_neither)]
    order = np.random.default_rng(n_a_only * 100 + n_b_only).permutation(y.size)
    pred_a = np.where(correct_a, y, 0)[order]
    pred_b = np.where(correct_b, y, 0)[order]
    return y[order], pred_a, pred_b


@pytest.mark.parametrize(("n_a", "n_b"), [(5, 0), (0, 5), (12, 11), (3, 9), (1, 0), (20, 4)])
def test_mcnemar_exact_matches_scipy_binomtest(n_a, n_b):
    res = mcnemar(*_paired_predictions(n_a, n_b))
    assert res.exact
    assert (res.n_a_only, res.n_b_only) == (n_a, n_b)
    assert res.statistic == min(n_a, n_b)
    assert res.pvalue == pytest.approx(stats.binomtest(n_a, n_a + n_b, 0.5).pvalue, rel=1e-12)


def test_mcnemar_chi2_hand_computed():
    # (|30 - 15| - 1)^2 / 45 = 196 / 45; for 1 df, P[chi2 > x] = erfc(sqrt(x / 2)).
    res = mcnemar(*_paired_predictions(30, 15))
    assert not res.exact
    assert res.statistic == pytest.approx(196 / 45, rel=1e-12)
    assert res.pvalue == pytest.approx(math.erfc(math.sqrt(196 / 90)), rel=1e-12)


def test_mcnemar_chi2_with_equal_discordant_counts_is_zero():
    res = mcnemar(*_paired_predictions(20, 20), exact=False)
    assert (res.statistic, res.pvalue) == (0.0, 1.0)


def test_mcnemar_switches_to_chi2_at_25_discordant_items():
    assert mcnemar(*_paired_predictions(20, 4)).exact
    assert not mcnemar(*_paired_predictions(20, 5)).exact
    assert mcnemar(*_paired_predictions(20, 5), exact=True).exact
    assert not mcnemar(*_paired_predictions(3, 2), exact=False).exact


@pytest.mark.parametrize("exact", [None, True, False])
def test_mcnemar_no_discordant_items_gives_p_one(exact):
    res = mcnemar(*_paired_predictions(0, 0), exact=exact)
    assert (res.n_a_only, res.n_b_only, res.pvalue) == (0, 0, 1.0)


def test_mcnemar_multiclass_string_labels():
    y = ["posed", "genuine", "other", "posed"]
    res = mcnemar(y, ["posed", "genuine", "other", "x"], ["x", "x", "other", "x"])
    assert (res.n_a_only, res.n_b_only) == (2, 0)
    assert res.pvalue == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0, 1], [0, 1], [0]), {}, "lengths 2, 2 and 1"),
        (([], [], []), {}, "at least one"),
        (([[0, 1]], [[0, 1]], [[0, 1]]), {}, "1-D"),
        (([0, 1], [0, 1], [0, 1]), {"exact": "yes"}, "exact must be"),
    ],
)
def test_mcnemar_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mcnemar(*args, **kwargs)


# ----------------------------------------------------------------------------- Holm


def test_holm_textbook_example():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_clips_at_one_and_keeps_a_single_pvalue():
    np.testing.assert_allclose(holm([0.4, 0.5, 0.9]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(holm([0.3]), [0.3])
    assert holm([]).shape == (0,)


@pytest.mark.parametrize(
    ("pvalues", "match"),
    [([0.1, np.nan], "NaN"), ([0.1, 1.5], r"\[0, 1\]"), ([-0.1], r"\[0, 1\]"), ([[0.1]], "1-D")],
)
def test_holm_rejects_bad_input(pvalues, match):
    with pytest.raises(ValueError, match=match):
        holm(pvalues)


def _holm_by_definition(p):
    """Holm's step-down procedure written directly from its definition, one p-value at a time."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_properties(pvalues):
    p = np.array(pvalues)
    adjusted = holm(p)
    np.testing.assert_allclose(adjusted, _holm_by_definition(pvalues), rtol=1e-12, atol=0)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)
    perm = np.random.default_rng(len(p)).permutation(p.size)
    np.testing.assert_array_equal(holm(p[perm]), adjusted[perm])


# ----------------------------------------------------------------------------- effect size


def test_effect_size_hand_computed_and_relation_to_ttest_rel():
    # d = [0.1, 0, 0.05]: mean 0.05, sd 0.05.
    assert paired_effect_size([0.9, 0.8, 0.85], [0.8, 0.8, 0.8]) == pytest.approx(1.0)
    rng = np.random.default_rng(4)
    a, b = rng.uniform(size=8), rng.uniform(size=8)
    expected = stats.ttest_rel(a, b).statistic / math.sqrt(8)
    assert paired_effect_size(a, b) == pytest.approx(expected, rel=1e-9)
    assert paired_effect_size(b, a) == pytest.approx(-expected, rel=1e-9)


def test_effect_size_without_spread_is_zero_or_signed_inf():
    assert paired_effect_size(A10, A10) == 0.0
    assert paired_effect_size([0.7, 0.8], [0.6, 0.7]) == np.inf
    assert paired_effect_size([0.6, 0.7], [0.7, 0.8]) == -np.inf


def test_effect_size_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 folds"):
        paired_effect_size([0.5], [0.4])
    with pytest.raises(ValueError, match="finite"):
        paired_effect_size([0.5, np.inf], [0.4, 0.3])


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(scores_strategy, st.integers(1, 1000), st.integers(1, 1000))
def test_fold_tests_pvalues_in_unit_interval_and_symmetric(scores, n_train, n_test):
    a, b = scores
    t_ab = corrected_resampled_ttest(a, b, n_train=n_train, n_test=n_test)
    t_ba = corrected_resampled_ttest(b, a, n_train=n_train, n_test=n_test)
    w_ab, w_ba = wilcoxon_signed_rank(a, b), wilcoxon_signed_rank(b, a)
    for p in (t_ab.pvalue, w_ab.pvalue):
        assert 0.0 <= p <= 1.0
    assert t_ab.pvalue == pytest.approx(t_ba.pvalue, rel=1e-12)
    assert t_ab.statistic == -t_ba.statistic
    assert w_ab.pvalue == pytest.approx(w_ba.pvalue, rel=1e-12)
    e_ab, e_ba = paired_effect_size(a, b), paired_effect_size(b, a)
    assert not math.isnan(e_ab) and e_ab == -e_ba


@settings(max_examples=40, deadline=None)
@given(arrays(float, st.integers(2, 12), elements=st.floats(-1e3, 1e3)))
def test_identical_fold_scores_give_p_one(scores):
    assert corrected_resampled_ttest(scores, scores.copy(), n_train=9, n_test=1).pvalue == 1.0
    assert wilcoxon_signed_rank(scores, scores.copy()).pvalue == 1.0
    assert paired_effect_size(scores, scores.copy()) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=80),
    st.sampled_from([None, True, False]),
)
def test_mcnemar_pvalue_in_unit_interval_and_symmetric(rows, exact):
    y, a, b = (np.array(col) for col in zip(*rows))
    ab, ba = mcnemar(y, a, b, exact=exact), mcnemar(y, b, a, exact=exact)
    assert 0.0 <= ab.pvalue <= 1.0
    assert ab.pvalue == ba.pvalue
    assert (ab.n_a_only, ab.n_b_only) == (ba.n_b_only, ba.n_a_only)
    assert mcnemar(y, a, a.copy(), exact=exact).pvalue == 1.0
