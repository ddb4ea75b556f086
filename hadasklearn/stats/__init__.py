"""Paired significance tests for models compared on the same cross-validation folds, with
multiple-comparison correction and a one-call comparison of every method against a reference."""

from ._compare import compare_to_reference, fold_scores_from_cv
from ._significance import (
    CorrectedTTestResult,
    McNemarResult,
    WilcoxonResult,
    corrected_resampled_ttest,
    holm,
    mcnemar,
    paired_effect_size,
    wilcoxon_signed_rank,
)

__all__ = [
    "CorrectedTTestResult",
    "McNemarResult",
    "WilcoxonResult",
    "compare_to_reference",
    "corrected_resampled_ttest",
    "fold_scores_from_cv",
    "holm",
    "mcnemar",
    "paired_effect_size",
    "wilcoxon_signed_rank",
]
