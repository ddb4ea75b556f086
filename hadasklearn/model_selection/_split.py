"""Cross-validation splitters that scikit-learn lacks: fold files as a splitter, subject-independent folds."""

import numbers

import numpy as np
from sklearn.model_selection import GroupKFold, PredefinedSplit, StratifiedGroupKFold

__all__ = ["PredefinedFolds", "subject_independent_folds"]


class PredefinedFolds(PredefinedSplit):
    """Folds fixed in advance, e.g. by published fold files, usable as ``cv=`` anywhere.

    A :class:`~sklearn.model_selection.PredefinedSplit` that can also carry explicit training
    sets: fold files may leave some videos out of a fold's training set, and reproducing them
    exactly then needs more than "train = not test". Without ``train_masks`` it behaves exactly
    like :class:`~sklearn.model_selection.PredefinedSplit`.

    Parameters
    ----------
    test_fold : array-like of shape (n_samples,)
        ``test_fold[i]`` is the fold (0..K-1) whose test set holds sample ``i``, or -1 if sample
        ``i`` is never tested. Fold ``k`` is the k-th smallest value, as in ``PredefinedSplit``.
    train_masks : array-like of bool, shape (n_folds, n_samples), optional
        Row ``k``: the training set of fold ``k``. Default: every sample not in the test set.
        A sample may not be in both the training and the test set of a fold.

    Attributes
    ----------
    unique_folds : ndarray
        The fold labels, sorted (as in ``PredefinedSplit``).

    See Also
    --------
    subject_independent_folds : Build a ``test_fold`` array that never splits a subject.
    hadasklearn.datasets.load_landmark_folder : Returns one of these for fold files on disk.

    Examples
    --------
    >>> import numpy as np
    >>> from hadasklearn.model_selection import PredefinedFolds
    >>> cv = PredefinedFolds([0, 0, 1, 1, 2, 2])
    >>> cv.get_n_splits()
    3
    >>> [test.tolist() for _, test in cv.split()]
    [[0, 1], [2, 3], [4, 5]]
    >>> masks = np.array([[0, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 0, 0]], bool)
    >>> [train.tolist() for train, _ in PredefinedFolds([0, 0, 1, 1, 2, 2], train_masks=masks).split()]
    [[2, 4, 5], [0, 1, 4, 5], [0, 1, 2, 3]]
    """

    def __init__(self, test_fold, *, train_masks=None):
        test_fold = np.asarray(test_fold)
        if test_fold.ndim != 1 or not np.issubdtype(test_fold.dtype, np.integer):
            raise ValueError(
                f"test_fold must be a 1-D integer array (fold of each sample, -1 = never tested); got "
                f"shape {test_fold.shape} and dtype {test_fold.dtype}."
            )
        super().__init__(test_fold)
        self.train_masks = train_masks
        if train_masks is not None:
            masks = np.asarray(train_masks)
            n_folds = len(self.unique_folds)
            if masks.dtype != bool or masks.shape != (n_folds, len(self.test_fold)):
                raise ValueError(
                    f"train_masks must be a boolean array of shape (n_folds={n_folds}, "
                    f"n_samples={len(self.test_fold)}); got dtype {masks.dtype} and shape {masks.shape}."
                )
            for k, fold in enumerate(self.unique_folds):
                both = np.flatnonzero(masks[k] & (self.test_fold == fold))
                if both.size:
                    raise ValueError(
                        f"Fold {k}: {both.size} sample(s) are in both its training and test sets "
                        f"(first indices {both[:5].tolist()})."
                    )
            self._train_masks = masks

    def split(self, X=None, y=None, groups=None):
        """Generate (train, test) index arrays, one pair per fold.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility. If given, their length must match
            ``test_fold``.

        Yields
        ------
        train : ndarray
        test : ndarray
        """
        n = len(self.test_fold)
        for name, value in (("X", X), ("y", y), ("groups", groups)):
            if value is not None and len(value) != n:
                raise ValueError(
                    f"{name} has {len(value)} samples but these folds were defined for {n} samples."
                )
        indices = np.arange(n)
        for k, fold in enumerate(self.unique_folds):
            test = indices[self.test_fold == fold]
            if self.train_masks is None:
                train = indices[self.test_fold != fold]
            else:
                train = indices[self._train_masks[k]]
            yield train, test

    def __repr__(self):
        return f"{type(self).__name__}(n_splits={self.get_n_splits()})"


def subject_independent_folds(y, groups, *, n_splits=10, random_state=None):
    """Assign every sample to one of ``n_splits`` test folds without splitting any subject.

    A thin wrapper over :class:`~sklearn.model_selection.StratifiedGroupKFold` (shuffled, so
    folds are balanced by class as far as whole subjects allow) that returns the ``test_fold``
    array of :class:`PredefinedFolds` and checks the result. When no class has ``n_splits``
    samples, stratification is impossible and the folds come from a shuffled
    :class:`~sklearn.model_selection.GroupKFold` (still subject-independent).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.
    groups : array-like of shape (n_samples,)
        Subject of each sample.
    n_splits : int, default=10
        Number of folds; at most the number of subjects.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling.

    Returns
    -------
    test_fold : ndarray of shape (n_samples,), int
        Fold (0..n_splits-1) whose test set holds each sample.

    Raises
    ------
    ValueError
        If there are fewer subjects than folds, or inputs disagree in length.

    Examples
    --------
    >>> from hadasklearn.model_selection import subject_independent_folds
    >>> y = [0, 1, 0, 1, 0, 1, 0, 1]
    >>> groups = [0, 0, 1, 1, 2, 2, 3, 3]
    >>> folds = subject_independent_folds(y, groups, n_splits=2, random_state=0)
    >>> sorted(set(folds.tolist()))
    [0, 1]
    >>> all(len(set(folds[[2 * s, 2 * s + 1]])) == 1 for s in range(4))
    True
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    if y.ndim != 1 or groups.shape != y.shape:
        raise ValueError(
            f"y and groups must be 1-D and of equal length; got shapes {y.shape} and {groups.shape}."
        )
    if not isinstance(n_splits, numbers.Integral) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2; got {n_splits!r}.")
    n_groups = len(np.unique(groups))
    if n_splits > n_groups:
        raise ValueError(
            f"Cannot make {n_splits} subject-independent folds from {n_groups} subject(s); use "
            f"n_splits <= {n_groups}."
        )
    test_fold = np.full(len(y), -1, dtype=np.int64)
    if n_splits > np.unique(y, return_counts=True)[1].max():
        # No class has n_splits members, so the folds cannot be stratified (StratifiedGroupKFold
        # refuses); they can still be subject-independent.
        cv = GroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    else:
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for k, (_, test) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
        test_fold[test] = k
    return test_fold
