"""The fusion study as a library: cross-validate many methods on the same subject-grouped folds,
resumably (one atomically written file per method x fold), then tabulate, test and plot."""

import contextlib
import datetime
import functools
import hashlib
import inspect
import io
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, check_cv
from sklearn.utils import Bunch, _safe_indexing

from .exceptions import UnknownNameError

__all__ = [
    "BASELINES",
    "PROFILES",
    "QUICK_FUSIONS",
    "StudyResumeError",
    "StudyUnitWarning",
    "count_parameters",
    "default_methods",
    "make_dmarker_svm",
    "run_study",
    "unit_seed",
    "write_reports",
]

#: Training settings of the two profiles of ``hadasklearn benchmark``, as
#: :class:`~hadasklearn.HadaSmileClassifier` parameters shared by every neural method.
#: ``quick`` is sized (lite backbone, 4-frame clips, 2 epochs) for the default study (uvanemo preset, the fusions of
#: :data:`QUICK_FUSIONS` and the four baselines) on a 2-core CPU, one unit per core;
#: ``paper`` is the published protocol (CurveNet backbone, 300 epochs, batch 16, AdamW lr 5e-4),
#: meant for a GPU.
PROFILES = {
    "quick": {
        "backbone": "lite",
        "dim": 32,
        "clip_length": 4,
        "n_test_clips": 2,
        "max_epochs": 2,
        "early_stopping": False,
        "batch_size": 16,
        "lr": 2e-3,
        "backbone_kwargs": {"embed_dim": 16, "n_tokens": 8, "depth": 1, "temporal_depth": 1, "num_heads": 2},
    },
    "paper": {
        "backbone": "curvenet",
        "clip_length": 16,
        "max_epochs": 300,
        "batch_size": 16,
        "optimizer": "adamw",
        "lr": 5e-4,
    },
}

#: Fusions of the quick profile when ``fusions`` is not given: HadaSmileNet's choice and four
#: representatives of the other families (concatenation, gating, conditioning, attention).
QUICK_FUSIONS = ("hadamard", "concat", "gated_concat", "film", "cross_attention")

#: Baseline method name -> what it is (the fusion name for the neural ones).
BASELINES = {
    "dmarker_svm": "D-Markers + StandardScaler + RBF SVM tuned by subject-grouped inner CV",
    "landmarks_only": "none",
    "dmarker_only": "dmarker_only",
    "multitask": "multitask",
}

_METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# Parameters that change how a fit is run or reported, not what it computes: a resumed study
# may change them without invalidating finished units.
_NON_RESULT_PARAMS = {"verbose", "n_jobs", "pre_dispatch", "device", "error_score"}
_TIMING_COLUMNS = ("fit_seconds", "predict_ms_per_video")
_SCORE_COLUMNS = ("accuracy", "balanced_accuracy", "roc_auc", "f1")
_FOLD_COLUMNS = (
    "method", "fold", "seed", "n_train", "n_test", *_SCORE_COLUMNS, *_TIMING_COLUMNS, "n_params",
)
_SVM_GRID = {"svc__C": [0.1, 1.0, 10.0, 100.0], "svc__gamma": ["scale", 1e-3, 1e-2]}


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class StudyResumeError(ValueError):
    """A finished unit in the output folder was computed with different settings than this run."""


class StudyUnitWarning(UserWarning):
    """A warning raised while fitting or scoring one (method, fold) unit, shown once per message."""


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------


def unit_seed(seed, method, fold):
    """Random seed of one (method, fold) unit, derived from the study seed, method name and fold.

    The derivation does not depend on which other units run, in which order or in which process,
    so a resumed or parallel study gives each unit the seed an uninterrupted sequential run would.

    Parameters
    ----------
    seed : int
        Non-negative study seed.
    method : str
        Method name.
    fold : int
        Fold number (0-based).

    Returns
    -------
    int
        A seed in ``[0, 2**31 - 1]``.

    Examples
    --------
    >>> unit_seed(0, "hadamard", 3) == unit_seed(0, "hadamard", 3)
    True
    >>> unit_seed(0, "hadamard", 3) != unit_seed(0, "concat", 3)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    sequence = np.random.SeedSequence([int(seed), zlib.crc32(str(method).encode()), int(fold)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def _select_dmarkers(X):
    """The ``"dmarkers"`` entry of a dict input (module level so that it pickles)."""
    if not isinstance(X, Mapping) or "dmarkers" not in X:
        got = f"a mapping with keys {sorted(X)}" if isinstance(X, Mapping) else type(X).__name__
        raise ValueError(
            "The dmarker_svm baseline reads precomputed D-Markers: expected a dict/SliceDict "
            f"with a 'dmarkers' entry of shape (n_videos, 225), got {got}. Compute them once with "
            "hadasklearn.dmarker_features and pass SliceDict(landmarks=..., dmarkers=...)."
        )
    return np.asarray(X["dmarkers"], dtype=float)


def make_dmarker_svm(random_state=None, *, inner_splits=3, param_grid=None, n_jobs=None):
    """The Dibeklioglu-style baseline: D-Markers -> StandardScaler -> RBF SVM tuned by inner CV.

    The scaler sits inside the grid search so that each inner validation fold is scaled with its
    own training statistics. The inner CV is :class:`~sklearn.model_selection.StratifiedGroupKFold`
    over the subjects passed as ``groups`` to ``fit`` (plain stratified folds without groups).

    Parameters
    ----------
    random_state : int or None, default=None
        Unused (the SVM and the unshuffled inner CV are deterministic); accepted so that the
        function is a method factory of :func:`run_study`.
    inner_splits : int, default=3
        Folds of the inner cross-validation.
    param_grid : dict or None, default=None
        Grid over ``svc__C`` and ``svc__gamma``; ``None`` uses C in {0.1, 1, 10, 100} and gamma in
        {"scale", 1e-3, 1e-2}.
    n_jobs : int or None, default=None
        Parallel jobs of the grid search.

    Returns
    -------
    sklearn.model_selection.GridSearchCV
        Unfitted; ``fit(X, y, groups=subjects)`` with ``X`` a dict holding ``"dmarkers"``.

    References
    ----------
    .. [1] H. Dibeklioglu, A. A. Salah and T. Gevers, "Recognition of genuine smiles",
       IEEE Transactions on Multimedia 17(3), 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skorch.helper import SliceDict
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> X = SliceDict(dmarkers=rng.normal(size=(40, 225)) + 2.0 * y[:, None])
    >>> svm = make_dmarker_svm().fit(X, y, groups=np.arange(40) // 2)
    >>> float(svm.score(X, y)) > 0.9
    True
    """
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.svm import SVC

    pipeline = Pipeline(
        [
            ("dmarkers", FunctionTransformer(_select_dmarkers)),
            ("scaler", StandardScaler()),
            ("svc", SVC(kernel="rbf")),
        ]
    )
    return GridSearchCV(
        pipeline,
        _SVM_GRID if param_grid is None else param_grid,
        cv=_GroupedInnerCV(inner_splits),
        n_jobs=n_jobs,
    )


class _GroupedInnerCV(StratifiedGroupKFold):
    """Inner CV of the SVM baseline: subject-grouped, with fewer folds when the data are small.

    The number of folds is capped by the smallest class count and the number of subjects, so a
    small outer training fold still gets a (coarser) inner CV instead of an error; without
    groups it falls back to stratified folds.
    """

    def _effective_splits(self, y, groups):
        if y is None:
            return self.n_splits
        smallest = int(np.unique(y, return_counts=True)[1].min())
        cap = smallest if groups is None else min(smallest, len(np.unique(groups)))
        if cap < 2:
            raise ValueError(
                f"The inner CV of dmarker_svm needs at least 2 videos (and 2 subjects) per class "
                f"in each outer training fold; got class counts "
                f"{dict(zip(*[a.tolist() for a in np.unique(y, return_counts=True)]))}. Use fewer "
                "outer folds or more videos."
            )
        return min(self.n_splits, cap)

    def get_n_splits(self, X=None, y=None, groups=None):
        return self._effective_splits(y, groups)

    def split(self, X, y=None, groups=None):
        n_splits = self._effective_splits(y, groups)
        if groups is None:
            return StratifiedKFold(n_splits).split(X, y)
        return StratifiedGroupKFold(n_splits).split(X, y, groups)


def _neural_method(random_state=None, *, fusion, params):
    from . import HadaSmileClassifier

    return HadaSmileClassifier(fusion=fusion, random_state=random_state, **params)


def default_methods(fusions=None, baselines="all", *, profile="quick", **params):
    """Method factories of the fusion study: one per fusion plus the baselines.

    Parameters
    ----------
    fusions : "all", sequence of str or None, default=None
        Registered fusion names (see :func:`hadasklearn.nn.list_fusions`); ``"all"`` takes every
        registered fusion; ``None`` takes :data:`QUICK_FUSIONS` for the quick profile and all
        fusions otherwise.
    baselines : "all", "none" or sequence of str, default="all"
        Names among :data:`BASELINES`.
    profile : {"quick", "paper"}, default="quick"
        Training settings from :data:`PROFILES`.
    **params
        :class:`~hadasklearn.HadaSmileClassifier` parameters overriding the profile
        (e.g. ``device="cuda"``, ``max_epochs=2``, ``verbose=0``).

    Returns
    -------
    dict
        Method name -> factory ``f(random_state) -> unfitted estimator`` (picklable); fusions
        first, in the order given, then the baselines.

    Raises
    ------
    hadasklearn.exceptions.UnknownNameError
        If a fusion, baseline or profile name is unknown.

    Examples
    --------
    >>> methods = default_methods(["hadamard", "concat"], ["dmarker_svm", "multitask"], max_epochs=1)
    >>> list(methods)
    ['hadamard', 'concat', 'dmarker_svm', 'multitask']
    """
    from .nn import list_fusions

    if profile not in PROFILES:
        raise _unknown("profile", profile, PROFILES)
    registered = list_fusions()
    if fusions is None:
        fusions = list(QUICK_FUSIONS) if profile == "quick" else registered
    elif isinstance(fusions, str):
        fusions = registered if fusions == "all" else [fusions]
    for name in fusions:
        if name not in registered:
            raise _unknown("fusion", name, registered)
    if isinstance(baselines, str):
        baselines = list(BASELINES) if baselines == "all" else [] if baselines == "none" else [baselines]
    for name in baselines:
        if name not in BASELINES:
            raise _unknown("baseline", name, BASELINES)
    if len(set(fusions) | set(baselines)) != len(fusions) + len(baselines):
        raise ValueError(f"Each method may be named only once; got fusions={fusions}, baselines={baselines}.")

    settings = {**PROFILES[profile], **params}
    methods = {f: functools.partial(_neural_method, fusion=f, params=settings) for f in fusions}
    for name in baselines:
        if name == "dmarker_svm":
            methods[name] = make_dmarker_svm
        else:
            methods[name] = functools.partial(_neural_method, fusion=BASELINES[name], params=settings)
    return methods


def _unknown(kind, name, valid):
    import difflib

    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"Unknown {kind} {name!r}; expected one of {valid}.{hint}")


def _instantiate(spec, seed, name):
    """An unfitted estimator from a method spec (estimator to clone, or factory)."""
    if hasattr(spec, "fit"):
        estimator = clone(spec)
        if "random_state" in estimator.get_params(deep=False):
            estimator.set_params(random_state=seed)
        return estimator
    if callable(spec):
        estimator = spec(seed)
        if not hasattr(estimator, "fit"):
            raise TypeError(
                f"The factory of method {name!r} must return an estimator (an object with fit), "
                f"got {type(estimator).__name__}."
            )
        return estimator
    raise TypeError(
        f"Method {name!r} must be an estimator or a callable random_state -> estimator, got "
        f"{type(spec).__name__}."
    )


def _describe_value(value):
    if isinstance(value, BaseEstimator):
        return type(value).__qualname__  # its own parameters are listed separately (deep=True)
    if isinstance(value, (functools.partial,)):
        return f"partial({_describe_value(value.func)}, {value.keywords!r})"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, sha1={hashlib.sha1(np.ascontiguousarray(value)).hexdigest()[:12]})"
    text = repr(value)
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # memory addresses differ between processes


def _estimator_fingerprint(estimator):
    """The estimator's class and parameters, as stable text (what a finished unit was run with)."""
    try:
        params = estimator.get_params(deep=True)
    except AttributeError:
        return {"class": type(estimator).__qualname__}
    described = {
        key: _describe_value(value)
        for key, value in sorted(params.items())
        # random_state is the unit seed, checked on its own.
        if key.rsplit("__", 1)[-1] not in _NON_RESULT_PARAMS and key != "random_state"
    }
    return {"class": f"{type(estimator).__module__}.{type(estimator).__qualname__}", "params": described}


def count_parameters(estimator):
    """Number of learned numbers in a fitted estimator, or ``None`` when it has no notion of them.

    Counts the parameters of a torch module (``net_.module_`` of a skorch-based estimator, or
    ``module_``), the support vectors, dual coefficients and intercepts of an SVM, ``coef_`` and
    ``intercept_`` of linear models and the statistics of a fitted scaler; a pipeline sums its
    steps and a search counts its ``best_estimator_``.

    Parameters
    ----------
    estimator : object
        A fitted estimator.

    Returns
    -------
    int or None

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> count_parameters(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]))
    5
    >>> from sklearn.dummy import DummyClassifier
    >>> count_parameters(DummyClassifier().fit(np.eye(4), [0, 1, 0, 1])) is None
    True
    """
    module = getattr(getattr(estimator, "net_", None), "module_", None) or getattr(estimator, "module_", None)
    if module is not None and hasattr(module, "parameters"):
        return int(sum(p.numel() for p in module.parameters()))
    if hasattr(estimator, "best_estimator_"):
        return count_parameters(estimator.best_estimator_)
    if hasattr(estimator, "steps"):
        counts = [count_parameters(step) for _, step in estimator.steps if step not in (None, "passthrough")]
        counts = [c for c in counts if c is not None]
        return int(sum(counts)) if counts else None
    names = ("support_vectors_", "dual_coef_", "coef_", "intercept_", "mean_", "scale_")
    total, found = 0, False
    for name in names:
        value = getattr(estimator, name, None)
        if value is not None and not callable(value):
            total += int(np.size(value))
            found = True
    return total if found else None


def _accepts_groups(estimator):
    """Whether ``fit`` takes the subjects (``groups=``): an explicit parameter, or a CV search."""
    from sklearn.model_selection._search import BaseSearchCV

    if isinstance(estimator, BaseSearchCV):
        return True
    try:
        return "groups" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# one unit
# --------------------------------------------------------------------------------------------


def _take(X, indices):
    if isinstance(X, Mapping) and not hasattr(X, "shape"):
        return {key: _take(value, indices) for key, value in X.items()}
    return _safe_indexing(X, indices)


def _predict_with_scores(estimator, X_test):
    """Predicted labels and per-class scores (``predict_proba`` when available: one pass, not two).

    Returns ``(y_pred, scores)`` with ``scores`` of shape ``(n, n_classes)`` (probabilities),
    ``(n,)`` (a binary decision function) or None.
    """
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X_test))
        return np.asarray(estimator.classes_)[np.argmax(proba, axis=1)], proba
    y_pred = np.asarray(estimator.predict(X_test))
    if hasattr(estimator, "decision_function"):
        return y_pred, np.asarray(estimator.decision_function(X_test))
    return y_pred, None


def _to_json(values):
    return np.asarray(values).tolist()


class _PackedVideos:
    """Variable-length videos as one contiguous array plus offsets, for shipping to workers.

    joblib memory-maps large numpy arrays for loky workers (and dask scatters large arguments
    once), but an object array of per-video arrays is pickled again for every task; packed, the
    landmarks of a whole dataset cross the process boundary once.
    """

    def __init__(self, videos):
        self.lengths = np.array([len(v) for v in videos], dtype=np.int64)
        self.flat = np.concatenate([np.asarray(v) for v in videos], axis=0)

    @staticmethod
    def packable(value):
        if not (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object)):
            return False
        arrays = [v for v in value if isinstance(v, np.ndarray) and v.ndim >= 1]
        return (
            len(arrays) == len(value) > 1
            and len({(a.shape[1:], a.dtype) for a in arrays}) == 1
        )

    def unpack(self):
        ends = np.cumsum(self.lengths)
        videos = np.empty(len(self.lengths), dtype=object)
        for i, (start, end) in enumerate(zip(ends - self.lengths, ends)):
            videos[i] = self.flat[start:end]
        return videos


class _PackedData:
    """``X`` with its ragged video collections packed (see :class:`_PackedVideos`)."""

    def __init__(self, X):
        self.kind = type(X)
        if isinstance(X, Mapping):
            self.items = {k: _PackedVideos(v) if _PackedVideos.packable(v) else v for k, v in X.items()}
        else:
            self.items = _PackedVideos(X)

    def unpack(self):
        if isinstance(self.items, _PackedVideos):
            return self.items.unpack()
        items = {k: v.unpack() if isinstance(v, _PackedVideos) else v for k, v in self.items.items()}
        return self.kind(**items)


def _pack(X):
    if (isinstance(X, Mapping) and any(_PackedVideos.packable(v) for v in X.values())) or (
        not isinstance(X, Mapping) and _PackedVideos.packable(X)
    ):
        return _PackedData(X)
    return X


def _run_unit(name, spec, X, y, groups, train, test, fold, seed):
    """Fit one method on one fold's training part and score it on the test part."""
    if isinstance(X, _PackedData):
        X = X.unpack()
    estimator = _instantiate(spec, seed, name)
    X_train, X_test = _take(X, train), _take(X, test)
    y_train, y_test = y[train], y[test]
    fit_params = {}
    if groups is not None and _accepts_groups(estimator):
        fit_params["groups"] = groups[train]
    # Warnings are recorded with the unit (a worker process cannot show them) and shown once by
    # the study runner.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            estimator.fit(X_train, y_train, **fit_params)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            y_pred, scores = _predict_with_scores(estimator, X_test)
            predict_seconds = time.perf_counter() - start
        except Exception as error:
            error.add_note(f"(while running method {name!r} on fold {fold} of the study)")
            raise
        record = _score_unit(name, fold, estimator, y_train, y_test, y_pred, scores)
    record.update(
        {
            "n_train": int(len(train)),
            "n_test": int(len(test)),
            "fit_seconds": float(fit_seconds),
            "predict_ms_per_video": float(1e3 * predict_seconds / len(test)),
            "n_params": count_parameters(estimator),
            "predictions": {
                "index": _to_json(test),
                "y_true": _to_json(y_test),
                "y_pred": _to_json(record.pop("y_pred")),
                "y_score": record.pop("y_score"),
            },
            "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
        }
    )
    return record


def _score_unit(name, fold, estimator, y_train, y_test, y_pred, scores):

    classes = np.asarray(getattr(estimator, "classes_", np.unique(y_train)))
    binary = len(classes) == 2
    metrics = {
        "accuracy": float(accuracy_score(y_test, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, y_pred)),
    }
    # The score of the positive class (classes_[1]) for binary problems; None otherwise.
    y_score = None
    if scores is not None and binary:
        y_score = scores[:, 1] if scores.ndim == 2 else scores
    if scores is None or len(np.unique(y_test)) < 2:
        reason = "the estimator gives no scores" if scores is None else "the test fold has one class"
        warnings.warn(
            f"ROC AUC of method {name!r} is undefined on this fold ({reason}); it is "
            "recorded as NaN.",
            RuntimeWarning,
            stacklevel=2,
        )
        metrics["roc_auc"] = math.nan
    elif binary:
        metrics["roc_auc"] = float(roc_auc_score(y_test == classes[1], y_score))
    else:
        metrics["roc_auc"] = float(roc_auc_score(y_test, scores, multi_class="ovr", labels=classes))
    if binary:
        metrics["f1"] = float(f1_score(y_test, y_pred, pos_label=classes[1]))
    else:
        metrics["f1"] = float(f1_score(y_test, y_pred, average="macro"))
    return {
        "method": name,
        "fold": int(fold),
        **metrics,
        "y_pred": y_pred,
        "y_score": None if y_score is None else _to_json(y_score),
    }


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with _suppress_os_error():
            os.unlink(temporary)
        raise


class _suppress_os_error:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, OSError)


def _atomic_write_text(path, text):
    _atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _dump_json(obj):
    return json.dumps(obj, indent=1, default=_json_default, allow_nan=True) + "\n"


def _unit_path(out_dir, method, fold):
    return Path(out_dir) / "units" / f"{method}__fold{fold:03d}.json"


def _read_unit(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise StudyResumeError(
            f"Cannot read the finished unit {path} ({error}). Units are written atomically, so the "
            "file was changed by something else; delete it and rerun to recompute that unit."
        ) from error


def _fold_key(train, test):
    digest = hashlib.sha1()
    for part in (train, test):
        digest.update(np.asarray(part, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def _check_resumable(record, expected, path):
    for key in ("fold_key", "context", "estimator", "seed"):
        got = json.loads(_dump_json(record.get(key)))
        want = json.loads(_dump_json(expected[key]))
        if got != want:
            what = {
                "fold_key": "on a different train/test split",
                "context": "on different data",
                "estimator": "with different estimator settings",
                "seed": "with a different seed",
            }[key]
            raise StudyResumeError(
                f"The finished unit {path} was computed {what} than this run asks for "
                f"(stored {key}: {str(got)[:300]}; now: {str(want)[:300]}). Use another output "
                "folder, or delete that folder's units/ to recompute everything."
            )


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------


def _check_cv_splits(cv, X, y, groups, n_samples):
    if cv is None or isinstance(cv, Integral):
        n_splits = 5 if cv is None else int(cv)
        if n_splits < 2:
            raise ValueError(f"cv must be an int >= 2 (number of folds), got {cv!r}.")
        splitter = StratifiedGroupKFold(n_splits) if groups is not None else StratifiedKFold(n_splits)
    else:
        splitter = check_cv(cv, y, classifier=True)
    splits = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in splitter.split(X, y, groups)]
    if len(splits) < 2:
        raise ValueError(f"The cross-validation gives {len(splits)} split(s); paired tests need >= 2.")
    for k, (train, test) in enumerate(splits):
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"Fold {k} has an empty training or test part; use fewer folds.")
        if np.intersect1d(train, test).size:
            raise ValueError(f"Fold {k} has items in both its training and test parts.")
        if groups is not None and np.intersect1d(groups[train], groups[test]).size:
            shared = np.intersect1d(groups[train], groups[test])[:5].tolist()
            raise ValueError(
                f"Fold {k} puts subjects {shared} in both its training and test parts; use a "
                "subject-grouped splitter (StratifiedGroupKFold) so scores are not inflated."
            )
        if max(train.max(), test.max()) >= n_samples:
            raise ValueError(f"Fold {k} indexes item {max(train.max(), test.max())} of {n_samples}.")
    return splits


def _validate_methods(methods):
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError(
            "methods must be a non-empty mapping name -> estimator or factory, got "
            f"{type(methods).__name__}."
        )
    for name in methods:
        if not isinstance(name, str) or not _METHOD_NAME.match(name):
            raise ValueError(
                f"Method names become file names: use letters, digits and _.+- only (starting "
                f"with a letter or digit), got {name!r}."
            )


def run_study(
    methods,
    X,
    y,
    *,
    groups=None,
    cv=None,
    out_dir,
    seed=0,
    reference="hadamard",
    names=None,
    context=None,
    metadata=None,
    n_jobs=1,
    backend="loky",
    scheduler=None,
    progress=True,
    reports=True,
):
    """Cross-validate every method on the same folds, one resumable unit per (method, fold).

    Each finished unit is written atomically to ``out_dir/units/<method>__fold<k>.json`` (scores,
    timings, parameter count, test predictions) as soon as it exists; a rerun with the same
    arguments skips finished units, so an interrupted study loses at most the units in flight.
    Every unit gets the seed :func:`unit_seed` ``(seed, method, fold)``, so a resumed study gives
    the same results as an uninterrupted one. At the end the reports are (re)built from the unit
    files (see :func:`write_reports`).

    Parameters
    ----------
    methods : mapping of str to estimator or callable
        Method name -> an unfitted estimator (cloned per unit, its ``random_state`` set to the
        unit seed when it has one) or a factory ``f(random_state) -> unfitted estimator``
        (e.g. :func:`default_methods`). Names must be usable as file names.
    X : array-like, sequence or dict
        The data, indexable by sample (a :class:`skorch.helper.SliceDict` for dict inputs).
    y : array-like of shape (n_samples,)
        Labels.
    groups : array-like of shape (n_samples,) or None, default=None
        Subject of each item. Folds never share a subject; ``fit`` receives the training
        subjects as ``groups=`` when it accepts them (and for a CV search).
    cv : int, splitter, iterable of (train, test) or None, default=None
        An int is the number of :class:`~sklearn.model_selection.StratifiedGroupKFold` folds
        (:class:`~sklearn.model_selection.StratifiedKFold` without groups); ``None`` means 5.
        Splitters must be deterministic (no unseeded shuffling) for resuming to be meaningful.
    out_dir : str or path-like
        Output folder (created if missing).
    seed : int, default=0
        Study seed.
    reference : str or None, default="hadamard"
        Method the significance tests compare every other method with; no tests when ``None``
        or when it is not among ``methods``.
    names : array-like of str or None, default=None
        Item names, added to ``predictions.csv``.
    context : dict or None, default=None
        JSON-able description of the data (e.g. dataset name and options). Finished units are
        reused only when it is unchanged.
    metadata : dict or None, default=None
        Extra JSON-able entries for ``run.json`` (e.g. the command-line arguments).
    n_jobs : int or None, default=1
        Units run in parallel (joblib); 1 runs them in this process.
    backend : str, default="loky"
        joblib backend for ``n_jobs != 1``: ``"loky"``, ``"threading"``, or ``"dask"`` (a
        ``dask.distributed`` client on ``scheduler``, or a local cluster of ``n_jobs`` workers).
    scheduler : str or None, default=None
        Address of a dask scheduler (``backend="dask"`` only).
    progress : bool, default=True
        Show a progress bar over the units (on stderr).
    reports : bool, default=True
        Write the reports at the end.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``folds`` (one row per method x fold), ``predictions``, ``summary`` and ``significance``
        (DataFrames; ``significance`` is None without a reference), ``out_dir``, ``n_run`` and
        ``n_reused`` (units computed now / found finished).

    Raises
    ------
    StudyResumeError
        If a finished unit in ``out_dir`` was computed with other settings (split, data,
        estimator parameters or seed).
    ValueError
        If the methods, labels, groups or folds are invalid.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.dummy import DummyClassifier
    >>> X, y = make_classification(n_samples=60, n_features=5, n_informative=2, n_redundant=0,
    ...                            class_sep=0.8, random_state=1)
    >>> methods = {"logreg": LogisticRegression(), "dummy": DummyClassifier()}
    >>> out = tempfile.mkdtemp()
    >>> result = run_study(methods, X, y, cv=3, out_dir=out, reference="logreg", progress=False)
    >>> result.summary[["method", "accuracy_mean"]].round(2)
       method  accuracy_mean
    0  logreg           0.93
    1   dummy           0.50
    >>> run_study(methods, X, y, cv=3, out_dir=out, reference="logreg", progress=False).n_reused
    6
    """
    _validate_methods(methods)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per item), got shape {y.shape}.")
    n_samples = len(y)
    try:
        n_x = len(X)
    except TypeError:
        raise ValueError(f"X must be indexable by item (have a length), got {type(X).__name__}.") from None
    if n_x != n_samples:
        raise ValueError(f"X has {n_x} items but y has {n_samples} labels.")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"groups must have one entry per item {y.shape}, got shape {groups.shape}.")
    if names is not None:
        names = np.asarray(names)
        if names.shape != y.shape:
            raise ValueError(f"names must have one entry per item {y.shape}, got shape {names.shape}.")
    splits = _check_cv_splits(cv, X, y, groups, n_samples)
    out_dir = Path(out_dir)
    (out_dir / "units").mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)

    units, expected = [], {}
    n_reused = 0
    for name, spec in methods.items():
        for fold, (train, test) in enumerate(splits):
            seed_k = unit_seed(seed, name, fold)
            want = {
                "fold_key": _fold_key(train, test),
                "context": context,
                "estimator": _estimator_fingerprint(_instantiate(spec, seed_k, name)),
                "seed": seed_k,
            }
            expected[name, fold] = want
            path = _unit_path(out_dir, name, fold)
            if path.exists():
                _check_resumable(_read_unit(path), want, path)
                n_reused += 1
            else:
                units.append((name, fold, seed_k))

    def finish(record):
        name, fold = record["method"], record["fold"]
        record.update(
            {
                k: expected[name, fold][k]
                for k in ("fold_key", "context", "estimator", "seed")
            }
        )
        record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        _atomic_write_text(_unit_path(out_dir, name, fold), _dump_json(record))
        for text in record["warnings"]:
            if text not in seen_warnings:
                seen_warnings.add(text)
                message = f"[{name}, fold {fold}] {text}"
                if progress:
                    bar.write(f"warning: {message}", file=sys.stderr)
                else:
                    warnings.warn(message, StudyUnitWarning, stacklevel=3)

    seen_warnings = set()
    bar = _progress_bar(len(units) + n_reused, n_reused, progress)
    try:
        if units and (n_jobs in (None, 1) or len(units) == 1):
            for name, fold, seed_k in units:
                bar.set_postfix_str(f"{name} fold {fold}", refresh=True)
                train, test = splits[fold]
                finish(_run_unit(name, methods[name], X, y, groups, train, test, fold, seed_k))
                bar.update(1)
        elif units:
            _run_parallel(units, methods, X, y, groups, splits, n_jobs, backend, scheduler, finish, bar)
    finally:
        bar.close()

    result = Bunch(out_dir=out_dir, n_run=len(units), n_reused=n_reused)
    if reports:
        finished = datetime.datetime.now(datetime.timezone.utc)
        run_info = {
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "seconds": round((finished - started).total_seconds(), 3),
            "seed": seed,
            "reference": reference,
            "methods": list(methods),
            "units_run": len(units),
            "units_reused": n_reused,
            "n_items": n_samples,
            "n_subjects": None if groups is None else int(len(np.unique(groups))),
            "classes": {str(c): int(n) for c, n in zip(*np.unique(y, return_counts=True))},
            "folds": [{"n_train": len(tr), "n_test": len(te)} for tr, te in splits],
            "context": context,
            "parallel": {"n_jobs": n_jobs, "backend": backend, "scheduler": scheduler},
            **(metadata or {}),
            "versions": _versions(),
            "machine": _machine(),
        }
        result.update(
            write_reports(out_dir, methods=list(methods), n_folds=len(splits), reference=reference,
                          names=names, run_info=run_info)
        )
    return result


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        desc="study",
        unit="fit",
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units "
        "[{elapsed}<{remaining}{postfix}]",
    )


def _run_parallel(units, methods, X, y, groups, splits, n_jobs, backend, scheduler, finish, bar):
    from joblib import Parallel, delayed, parallel_config

    if backend != "dask" and scheduler is not None:
        raise ValueError(f"scheduler is only used with backend='dask', got backend={backend!r}.")
    packed = _pack(X)
    with contextlib.ExitStack() as stack:
        if backend == "dask":
            from ._dask import dask_parallel

            n_workers = os.cpu_count() if n_jobs in (None, -1) else max(1, int(n_jobs))
            # The data set travels to each worker once; tasks refer to the scattered copies.
            scatter = [obj for obj in (packed, y, groups) if obj is not None]
            stack.enter_context(dask_parallel(scheduler, scatter=scatter, n_workers=n_workers))
        else:
            stack.enter_context(parallel_config(backend=backend))
        # Results arrive as units finish (one unit per task), so each is written at once.
        parallel = Parallel(
            n_jobs=-1 if backend == "dask" else n_jobs,
            return_as="generator_unordered",
            batch_size=1,
        )
        tasks = (
            delayed(_run_unit)(name, methods[name], packed, y, groups, *splits[fold], fold, seed_k)
            for name, fold, seed_k in units
        )
        for record in parallel(tasks):
            finish(record)
            bar.set_postfix_str(f"{record['method']} fold {record['fold']}", refresh=False)
            bar.update(1)


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------


def _collect(out_dir, methods, n_folds):
    rows, predictions = [], []
    missing = []
    warning_counts = {}
    for method in methods:
        for fold in range(n_folds):
            path = _unit_path(out_dir, method, fold)
            if not path.exists():
                missing.append(path.name)
                continue
            record = _read_unit(path)
            rows.append({c: record.get(c) for c in _FOLD_COLUMNS})
            for text in record.get("warnings", []):
                warning_counts[text] = warning_counts.get(text, 0) + 1
            p = record["predictions"]
            predictions.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "fold": fold,
                        "index": p["index"],
                        "y_true": p["y_true"],
                        "y_pred": p["y_pred"],
                        "y_score": p["y_score"] if p["y_score"] is not None else math.nan,
                    }
                )
            )
    if missing:
        raise StudyResumeError(
            f"Cannot build the reports: {len(missing)} unit(s) are not finished ({missing[:5]}). "
            "Rerun the study to compute them."
        )
    folds = pd.DataFrame(rows, columns=list(_FOLD_COLUMNS))
    folds["n_params"] = folds["n_params"].astype("Int64")
    return folds, pd.concat(predictions, ignore_index=True), warning_counts


def _summarise(folds, significance, reference):
    agg = {}
    for column in (*_SCORE_COLUMNS, *_TIMING_COLUMNS):
        grouped = folds.groupby("method", sort=False)[column]
        agg[f"{column}_mean"] = grouped.mean()
        agg[f"{column}_std"] = grouped.std(ddof=1)
    summary = pd.DataFrame(agg)
    summary.insert(0, "n_folds", folds.groupby("method", sort=False).size())
    summary["n_params"] = folds.groupby("method", sort=False)["n_params"].median().astype("Int64")
    if significance is not None and len(significance):
        p = significance.set_index("method")["ttest_pvalue_holm"]
        summary["pvalue_vs_reference"] = p.reindex(summary.index)
    summary = summary.reset_index().rename(columns={"index": "method"})
    order = np.lexsort((summary["method"].to_numpy(), -summary["accuracy_mean"].to_numpy()))
    return summary.iloc[order].reset_index(drop=True)


def _markdown(summary, reference):
    def pm(row, column, digits):
        mean, std = row[f"{column}_mean"], row[f"{column}_std"]
        if pd.isna(mean):
            return "n/a"
        return f"{mean:.{digits}f} ± {std:.{digits}f}" if not pd.isna(std) else f"{mean:.{digits}f}"

    header = ["method", "accuracy", "balanced accuracy", "ROC AUC", "F1", "fit (s)", "predict (ms/video)", "parameters"]
    has_p = "pvalue_vs_reference" in summary
    if has_p:
        header.append(f"p vs {reference} (Holm)")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for _, row in summary.iterrows():
        name = f"**{row['method']}**" if row["method"] == reference else row["method"]
        cells = [
            name,
            pm(row, "accuracy", 3),
            pm(row, "balanced_accuracy", 3),
            pm(row, "roc_auc", 3),
            pm(row, "f1", 3),
            pm(row, "fit_seconds", 1),
            pm(row, "predict_ms_per_video", 2),
            "n/a" if pd.isna(row["n_params"]) else f"{int(row['n_params']):,}",
        ]
        if has_p:
            p = row["pvalue_vs_reference"]
            cells.append("reference" if row["method"] == reference else "n/a" if pd.isna(p) else _format_p(p))
        lines.append("| " + " | ".join(cells) + " |")
    n_folds = int(summary["n_folds"].max()) if len(summary) else 0
    note = f"\nMean ± standard deviation over {n_folds} cross-validation folds, sorted by accuracy."
    if has_p:
        note += (
            f" p: corrected resampled t-test (Nadeau & Bengio) against {reference}, Holm-corrected"
            " over the methods; see significance.csv for Wilcoxon and McNemar."
        )
    return "\n".join(lines) + "\n" + note + "\n"


def _format_p(p):
    return "< 0.001" if p < 1e-3 else f"{p:.3f}"


def _plot(folds, summary, reference):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = list(summary["method"])
    figure = Figure(figsize=(max(6.0, 0.6 * len(order) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for i, method in enumerate(order):
        values = folds.loc[folds["method"] == method, "accuracy"].to_numpy(dtype=float)
        color = "tab:red" if method == reference else "tab:blue"
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.6, color=color, lw=0)
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.errorbar(i + 0.3, values.mean(), yerr=std, fmt="D", ms=5, color=color, capsize=3)
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right")
    ax.set_ylabel("accuracy on the test fold")
    ax.set_title("Per-fold accuracy (dots: folds; diamond: mean ± std)")
    ax.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    return buffer.getvalue()


def write_reports(out_dir, *, methods, n_folds, reference="hadamard", names=None, run_info=None):
    """(Re)build the tables, tests and plot of a study from its unit files, each written atomically.

    Writes ``folds.csv`` (one row per method x fold), ``predictions.csv`` (test predictions),
    ``summary.csv`` and ``summary.md`` (mean ± std per method, by decreasing accuracy),
    ``significance.csv`` (every method against ``reference``, see
    :func:`hadasklearn.stats.compare_to_reference`), ``folds.png`` and, when ``run_info`` is
    given, ``run.json``.

    Parameters
    ----------
    out_dir : str or path-like
        Study folder holding ``units/``.
    methods : sequence of str
        Methods to report, in this order.
    n_folds : int
        Number of folds (units ``0 .. n_folds - 1`` must all exist).
    reference : str or None, default="hadamard"
        Reference method of the tests; no ``significance.csv`` when None or absent.
    names : array-like of str or None, default=None
        Item names, indexed like the data, added to ``predictions.csv``.
    run_info : dict or None, default=None
        Contents of ``run.json``; ``unit_warnings`` (each distinct warning raised in a unit, with
        the number of units that raised it) is added.

    Returns
    -------
    dict
        ``folds``, ``predictions``, ``summary`` and ``significance`` DataFrames (``significance``
        may be None).

    Raises
    ------
    StudyResumeError
        If a unit is missing or unreadable.
    """
    from .stats import compare_to_reference

    out_dir = Path(out_dir)
    folds, predictions, warning_counts = _collect(out_dir, list(methods), int(n_folds))
    if names is not None:
        predictions.insert(3, "name", np.asarray(names)[predictions["index"].to_numpy()])

    significance = None
    if reference is not None and reference in set(methods) and len(methods) > 1:
        significance = compare_to_reference(
            folds, reference=reference, score="accuracy", predictions=predictions
        )
        _atomic_write_text(out_dir / "significance.csv", significance.to_csv(index=False))
    elif reference is not None:
        why = (
            f"the reference method {reference!r} is not among the methods {list(methods)}"
            if reference not in set(methods)
            else f"{reference!r} is the only method"
        )
        warnings.warn(f"No significance tests: {why}.", UserWarning, stacklevel=2)
        with _suppress_os_error():
            os.unlink(out_dir / "significance.csv")  # a stale file from an earlier run would mislead
    summary = _summarise(folds, significance, reference)

    _atomic_write_text(out_dir / "folds.csv", folds.to_csv(index=False))
    _atomic_write_text(out_dir / "predictions.csv", predictions.to_csv(index=False))
    _atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    _atomic_write_text(out_dir / "summary.md", _markdown(summary, reference))
    _atomic_write_bytes(out_dir / "folds.png", _plot(folds, summary, reference))
    if run_info is not None:
        run_info = {**run_info, "unit_warnings": warning_counts}
        _atomic_write_text(out_dir / "run.json", _dump_json(run_info))
    return {"folds": folds, "predictions": predictions, "summary": summary, "significance": significance}


def _versions():
    import importlib.metadata
    import platform

    from . import __version__

    versions = {"hadasklearn": __version__, "python": platform.python_version()}
    for package in ("numpy", "scipy", "scikit-learn", "pandas", "torch", "skorch", "timm", "joblib"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _machine():
    import platform

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info
