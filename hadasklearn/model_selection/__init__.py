"""Cross-validation helpers that scikit-learn lacks: fold files as splitters, subject-independent folds."""

from ._split import PredefinedFolds, subject_independent_folds

__all__ = ["PredefinedFolds", "subject_independent_folds"]
