"""``HadaSmileClassifier``: HadaSmileNet (landmark clips x D-Markers) as a scikit-learn classifier, trained by skorch."""

import contextlib
import math
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d
from skorch import NeuralNet
from skorch.utils import to_tensor
from torch import nn

from ._clips import ClipDataset, prepare_videos
from ._validation import check_landmarks
from .landmarks import LandmarkScheme, get_scheme

__all__ = ["HadaSmileClassifier"]

#: Frame rate assumed for the D-Markers when neither ``fps`` nor ``X["fps"]`` gives one: UvA-NEMO's
#: (and ``make_smiles``'s) 50 fps, the same default as :class:`~hadasklearn.DMarkerTransformer`.
DEFAULT_FPS = 50.0
#: Patience used when ``early_stopping=True``.
DEFAULT_PATIENCE = 10


def _resolve_module_class(spec, kind):
    from .nn import get_backbone, get_fusion

    if isinstance(spec, str):
        return (get_fusion if kind == "fusion" else get_backbone)(spec)
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        return spec
    raise TypeError(f"{kind} must be a registered {kind} name or an nn.Module subclass; got {spec!r}.")


def _resolve_device(device):
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'auto' or a torch device string such as 'cpu' or 'cuda:0'; got {device!r}."
        ) from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; use "
            "device='auto' (CUDA when available, else CPU) or device='cpu'."
        )
    return str(parsed)


class _SmileLoss(nn.Module):
    """Cross-entropy (optionally class-weighted), plus the DeepMarkerNet D-Marker regression term.

    With a D-Marker prediction the loss is ``(1 - w) CE + w MSE``, the formula of
    :func:`hadasklearn.nn.multitask_loss` with the class weights applied to the CE term.
    """

    def __init__(self, class_weight=None, multitask_weight=0.5):
        super().__init__()
        self.register_buffer(
            "class_weight",
            None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32),
        )
        self.multitask_weight = float(multitask_weight)

    def forward(self, logits, y, dmarker_pred=None, dmarker_target=None):
        weight = None if self.class_weight is None else self.class_weight.to(logits.device)
        classification = F.cross_entropy(logits.float(), y, weight=weight)
        if dmarker_pred is None:
            return classification
        regression = F.mse_loss(dmarker_pred.float(), dmarker_target.float())
        w = self.multitask_weight
        return (1.0 - w) * classification + w * regression


class _SmileNeuralNet(NeuralNet):
    """skorch ``NeuralNet`` with the multitask loss hook and optional bf16 autocast on CUDA."""

    def __init__(self, module, *, precision="32", **kwargs):
        super().__init__(module, **kwargs)
        self.precision = precision

    def _autocast(self):
        if self.precision == "bf16" and torch.device(self.device).type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def infer(self, x, **fit_params):
        with self._autocast():
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device)
        if isinstance(y_pred, tuple):
            logits, dmarker_pred = y_pred
            target = to_tensor(X["dmarkers"], device=self.device)
            return self.criterion_(logits, y_true, dmarker_pred, target)
        return self.criterion_(y_pred, y_true)


class HadaSmileClassifier(ClassifierMixin, BaseEstimator):
    """Genuine vs posed smile classifier: HadaSmileNet over landmark clips and D-Markers.

    A landmark backbone encodes fixed-length clips of head-pose-aligned face landmarks; the 225
    D-Markers of Dibeklioglu et al. [1]_ (computed on the whole video, standardised with the
    training statistics) form the second stream; a registered ``fusion`` joins the two (the
    Hadamard product of HadaSmileNet [2]_ by default) and a head classifies. Training uses a
    skorch ``NeuralNet`` (kept as ``net_``); any label set with two or more classes works.

    Parameters
    ----------
    fusion : str or type, default="hadamard"
        Fusion strategy: a name from ``hadasklearn.nn.list_fusions(include_baselines=True)``
        (``"hadamard"``, ``"concat"``, ``"film"``, ..., and the baselines ``"none"`` (landmarks
        only), ``"dmarker_only"`` and ``"multitask"`` (DeepMarkerNet: D-Markers as an auxiliary
        regression target, not an input)) or a fusion class.
    backbone : str or type, default="lite"
        Landmark backbone: ``"lite"`` (fast), ``"curvenet"`` (paper-faithful) or a backbone class.
    dim : int or None, default=None
        Width of both streams; ``None`` uses the backbone's default (64 for ``"lite"``).
    depth : int or None, default=None
        Blocks of the backbone's space-time transformer; ``None`` uses the backbone's default.
    head_hidden : int or None, default=None
        Hidden width of the classification head; ``None`` uses the fused width.
    dropout : float, default=0.1
        Dropout of the backbone, the fusion and the head.
    clip_length : int, default=16
        Frames per clip. Videos shorter than this are padded at the end and the padding is masked:
        padded frames influence no output of the network.
    clip_stride : int, default=1
        Step between the frames of a clip: 1 takes consecutive frames (the published protocol);
        ``s > 1`` takes every ``s``-th frame, so a clip spans ``s * (clip_length - 1) + 1``
        frames and a short clip can cover a whole smile (onset to offset) at lower cost.
    n_test_clips : int, default=5
        Evenly spaced clips evaluated per video by ``predict_proba`` (first at frame 0, last ending
        at the last frame; one clip for videos no longer than ``clip_length``); the clip
        probabilities are averaged.
    scheme : str or LandmarkScheme, default="mediapipe478"
        Landmark scheme of ``X`` (which landmarks are the 11 D-Marker points, used for the
        D-Markers and the per-frame alignment).
    fps : float or None, default=None
        Frame rate for the D-Markers' durations and speeds. Per-video rates carried by ``X``
        (mapping key ``"fps"``) take precedence; when neither is given, 50 fps is assumed (the
        rate of UvA-NEMO and of :func:`~hadasklearn.datasets.make_smiles`, and the default of
        :class:`~hadasklearn.DMarkerTransformer`).
    smoothing : {"median5", "median3"} or None, default="median5"
        Running median applied to the amplitude signals (see
        :func:`~hadasklearn.dmarker_features`).
    missing : {"interpolate", "raise"}, default="interpolate"
        Frames without a face (all-NaN rows): interpolated linearly over time, or an error.
    max_epochs : int, default=50
        Maximum number of epochs (one random clip per training video per epoch).
    batch_size : int, default=16
        Clips per batch, for training and prediction.
    lr : float, default=1e-3
        Learning rate.
    weight_decay : float, default=1e-2
        Weight decay of the optimizer.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        Optimizer (SGD uses momentum 0.9).
    scheduler : {"cosine"} or None, default="cosine"
        Learning-rate schedule: cosine annealing over ``max_epochs``, or constant.
    validation_fraction : float, default=0.1
        Fraction of the training videos held out as an inner validation set for early stopping
        and best-epoch selection; used only when ``early_stopping`` is on. Model selection never
        sees the data passed to ``predict`` or ``score``.
    early_stopping : int, bool or None, default=10
        Patience in epochs: training stops when the inner validation loss has not improved for
        that many epochs, and the weights of the best epoch are restored. ``True`` means a
        patience of 10; ``False``/``None`` (or ``validation_fraction=0``) trains on all videos for
        ``max_epochs`` epochs and keeps the last epoch.
    class_weight : dict, "balanced" or None, default=None
        Class weights of the cross-entropy loss (``"balanced"``: inversely proportional to the
        class frequencies of the training videos).
    multitask_weight : float, default=0.5
        Weight ``w`` of the D-Marker regression term of the ``"multitask"`` fusion: the loss is
        ``(1 - w) CE + w MSE``. Ignored by the other fusions.
    device : str, default="auto"
        Torch device; ``"auto"`` picks CUDA when available, else the CPU.
    precision : {"32", "bf16"}, default="32"
        ``"bf16"`` runs the network under bfloat16 autocast on CUDA (the loss stays float32). On a
        CPU device it has no effect and a warning says so.
    retain_memory : bool, default=True
        Passed to :class:`~hadasklearn.nn.HadaSmileNet`: while the network trains on CPU, glibc
        keeps freed memory in the process for the next step (process-wide, Linux only); it is
        returned when the network switches to eval mode (at validation and prediction).
        ``False`` leaves the C library alone.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, dropout, batch order, clip sampling and the inner
        validation split. With a fixed value, two fits on CPU give identical ``predict_proba``.
        The global torch random state is left untouched.
    verbose : int, default=0
        ``0`` prints nothing; ``1`` prints skorch's per-epoch table.
    callbacks : list or None, default=None
        Extra skorch callbacks (instances or ``(name, callback)`` tuples).
    backbone_kwargs : dict or None, default=None
        Extra keyword arguments of the backbone class (e.g. ``n_tokens``, ``num_heads``).
    fusion_kwargs : dict or None, default=None
        Extra keyword arguments of the fusion class.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    net_ : skorch.NeuralNet
        The trained network wrapper; ``net_.module_`` is the
        :class:`~hadasklearn.nn.HadaSmileNet` and ``net_.history`` the per-epoch log.
    n_landmarks_ : int
        Landmarks per frame seen during fit.
    n_coords_ : int
        Coordinates per landmark seen during fit.
    n_dmarkers_ : int or None
        Width of the D-Markers used (``None`` when the fusion reads no D-Markers).
    dmarker_mean_, dmarker_scale_ : ndarray of shape ``(n_dmarkers_,)`` or None
        Training statistics used to standardise the D-Markers (a column without variance has
        scale 1, so it becomes 0 rather than NaN).
    device_ : str
        Device the network was trained on.
    n_epochs_ : int
        Epochs actually run.
    best_epoch_ : int
        The epoch (1-based) whose weights were kept.

    See Also
    --------
    hadasklearn.DMarkerTransformer : The D-Markers alone, e.g. for an SVM.
    hadasklearn.nn.HadaSmileNet : The network trained inside.

    Notes
    -----
    **Inner validation split.** With ``groups`` passed to :meth:`fit` (subject ids), the inner
    validation videos are whole subjects (a fold of :class:`~sklearn.model_selection.StratifiedGroupKFold`);
    without them the split is stratified by label only, so one subject's videos may fall on both
    sides of it (this affects only which epoch is kept, never the outer evaluation). To forward
    ``groups`` through :func:`~sklearn.model_selection.cross_validate`, enable metadata routing
    and call ``set_fit_request(groups=True)``. When the data are too small to split, a warning
    is issued and training uses all videos for ``max_epochs`` epochs.

    **Clips.** Training draws one random clip per video per epoch; prediction averages the
    probabilities of ``n_test_clips`` fixed clips. Every frame is aligned to its own face frame
    (origin between the eyes, eye line horizontal, unit inter-ocular distance) before entering the
    network.

    **Persistence.** Fitted estimators pickle (and ``joblib.dump``); :meth:`save_weights` /
    :meth:`load_weights` store only tensors and a JSON configuration, and never unpickle.

    References
    ----------
    .. [1] H. Dibeklioglu, A. A. Salah, T. Gevers, "Recognition of genuine smiles", IEEE Trans.
       Multimedia 17(3), 2015.
    .. [2] HadaSmileNet: Hadamard fusion of handcrafted and deep-learning features for enhancing
       facial emotion recognition of genuine smiles, 2025.

    Examples
    --------
    >>> import numpy as np
    >>> from hadasklearn import HadaSmileClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(12, 478, 3)).astype("float32") for _ in range(8)]
    >>> y = ["genuine", "posed"] * 4
    >>> clf = HadaSmileClassifier(dim=16, depth=1, clip_length=4, max_epochs=1,
    ...                           early_stopping=False, random_state=0).fit(X, y)
    >>> clf.classes_.tolist()
    ['genuine', 'posed']
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        "fusion": [str, type],
        "backbone": [str, type],
        "dim": [Interval(Integral, 1, None, closed="left"), None],
        "depth": [Interval(Integral, 1, None, closed="left"), None],
        "head_hidden": [Interval(Integral, 1, None, closed="left"), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "clip_length": [Interval(Integral, 1, None, closed="left")],
        "clip_stride": [Interval(Integral, 1, None, closed="left")],
        "n_test_clips": [Interval(Integral, 1, None, closed="left")],
        "scheme": [str, LandmarkScheme],
        "fps": [Interval(Real, 0, None, closed="neither"), None],
        "smoothing": [StrOptions({"median5", "median3"}), None],
        "missing": [StrOptions({"interpolate", "raise"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions({"adamw", "adam", "sgd"})],
        "scheduler": [StrOptions({"cosine"}), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [Interval(Integral, 1, None, closed="left"), "boolean", None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "multitask_weight": [Interval(Real, 0, 1, closed="both")],
        "device": [str],
        "precision": [StrOptions({"32", "bf16"})],
        "retain_memory": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "backbone_kwargs": [dict, None],
        "fusion_kwargs": [dict, None],
    }

    def __init__(
        self,
        fusion="hadamard",
        *,
        backbone="lite",
        dim=None,
        depth=None,
        head_hidden=None,
        dropout=0.1,
        clip_length=16,
        clip_stride=1,
        n_test_clips=5,
        scheme="mediapipe478",
        fps=None,
        smoothing="median5",
        missing="interpolate",
        max_epochs=50,
        batch_size=16,
        lr=1e-3,
        weight_decay=1e-2,
        optimizer="adamw",
        scheduler="cosine",
        validation_fraction=0.1,
        early_stopping=10,
        class_weight=None,
        multitask_weight=0.5,
        device="auto",
        precision="32",
        retain_memory=True,
        random_state=None,
        verbose=0,
        callbacks=None,
        backbone_kwargs=None,
        fusion_kwargs=None,
    ):
        self.fusion = fusion
        self.backbone = backbone
        self.dim = dim
        self.depth = depth
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.clip_length = clip_length
        self.clip_stride = clip_stride
        self.n_test_clips = n_test_clips
        self.scheme = scheme
        self.fps = fps
        self.smoothing = smoothing
        self.missing = missing
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.class_weight = class_weight
        self.multitask_weight = multitask_weight
        self.device = device
        self.precision = precision
        self.retain_memory = retain_memory
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.backbone_kwargs = backbone_kwargs
        self.fusion_kwargs = fusion_kwargs

    # ------------------------------------------------------------------ helpers

    def _dmarker_role(self):
        """(needs D-Markers as input, needs them as a training target, reads landmarks)."""
        fusion_cls = _resolve_module_class(self.fusion, "fusion")
        as_input = bool(getattr(fusion_cls, "uses_dmarkers", True))
        as_target = bool(getattr(fusion_cls, "predicts_dmarkers", False))
        return as_input, as_target, bool(getattr(fusion_cls, "uses_landmarks", True))

    def _raw_dmarkers(self, data):
        """D-Markers of every video of ``data``: the precomputed ones, or computed on whole videos."""
        if data.dmarkers is not None:
            return np.asarray(data.dmarkers, dtype=np.float64)
        from ._dmarker import dmarker_features

        fps = DEFAULT_FPS if self.fps is None else self.fps
        return dmarker_features(
            data, scheme=self.scheme, fps=fps, smoothing=self.smoothing, missing=self.missing
        )

    def _standardise(self, dmarkers):
        return ((dmarkers - self.dmarker_mean_) / self.dmarker_scale_).astype(np.float32)

    def _inner_split(self, y, groups, seed):
        """Train/validation indices for early stopping, or ``None`` (train on everything)."""
        if not self.early_stopping or self.validation_fraction == 0:
            return None
        n = len(y)
        try:
            if groups is not None:
                n_groups = len(np.unique(groups))
                n_splits = min(max(2, round(1 / self.validation_fraction)), n_groups)
                if n_groups < 2:
                    raise ValueError(f"only {n_groups} group(s) in groups")
                cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                train, valid = next(cv.split(np.zeros(n), y, groups))
            else:
                n_valid = max(math.ceil(self.validation_fraction * n), 1)
                cv = StratifiedShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
                train, valid = next(cv.split(np.zeros(n), y))
        except ValueError as exc:
            warnings.warn(
                f"Could not hold out an inner validation set of {n} training videos "
                f"(validation_fraction={self.validation_fraction}): {exc}. Training on all videos for "
                f"max_epochs={self.max_epochs} epochs without early stopping.",
                UserWarning,
                stacklevel=3,
            )
            return None
        if len(np.unique(y[train])) < len(np.unique(y)):
            warnings.warn(
                "The inner validation split left a class without training videos; training on all "
                f"videos for max_epochs={self.max_epochs} epochs without early stopping.",
                UserWarning,
                stacklevel=3,
            )
            return None
        return train, valid

    def _build_module(self, n_classes, n_dmarkers):
        from .nn import HadaSmileNet

        backbone_kwargs = dict(self.backbone_kwargs or {})
        if self.depth is not None:
            if "depth" in backbone_kwargs:
                raise ValueError(
                    "depth is given both as a parameter and in backbone_kwargs; pass it once."
                )
            backbone_kwargs["depth"] = self.depth
        return HadaSmileNet(
            self.backbone,
            self.fusion,
            n_classes=n_classes,
            n_dmarkers=n_dmarkers if n_dmarkers is not None else 225,
            n_landmarks=self.n_landmarks_,
            n_coords=self.n_coords_,
            clip_length=self.clip_length,
            dim=self.dim,
            head_hidden=self.head_hidden,
            dropout=self.dropout,
            backbone_kwargs=backbone_kwargs,
            fusion_kwargs=self.fusion_kwargs,
            retain_memory=self.retain_memory,
        )

    def _make_net(self, module, class_weight, train_split, n_train):
        from skorch.callbacks import EarlyStopping, LRScheduler

        optimizers = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
        extra = {"optimizer__momentum": 0.9} if self.optimizer == "sgd" else {}
        callbacks = []
        if train_split is not None:
            patience = DEFAULT_PATIENCE if self.early_stopping is True else int(self.early_stopping)
            callbacks.append(
                ("hadasklearn_early_stopping", EarlyStopping(monitor="valid_loss", patience=patience, load_best=True))
            )
        if self.scheduler == "cosine":
            callbacks.append(
                ("hadasklearn_lr_scheduler", LRScheduler(policy="CosineAnnealingLR", T_max=self.max_epochs))
            )
        callbacks.extend(self.callbacks or [])
        return _SmileNeuralNet(
            module,
            precision=self.precision,
            criterion=_SmileLoss,
            criterion__class_weight=class_weight,
            criterion__multitask_weight=self.multitask_weight,
            optimizer=optimizers[self.optimizer],
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            # A last batch of one clip breaks batch-norm layers (curvenet); drop it only then.
            iterator_train__shuffle=True,
            iterator_train__drop_last=n_train > 1 and n_train % self.batch_size == 1,
            iterator_train__num_workers=0,
            iterator_valid__num_workers=0,
            train_split=train_split,
            callbacks=callbacks,
            device=self.device_,
            verbose=self.verbose,
            **extra,
        )

    def _dataset_kwargs(self, dmarkers, with_landmarks):
        return dict(
            clip_length=self.clip_length,
            stride=self.clip_stride,
            scheme=self.scheme,
            dmarkers=dmarkers,
            with_landmarks=with_landmarks,
        )

    def _fork_rng(self):
        devices = []
        if torch.device(self.device_).type == "cuda":
            index = torch.device(self.device_).index
            devices = [torch.cuda.current_device() if index is None else index]
        return torch.random.fork_rng(devices=devices)

    # ------------------------------------------------------------------ API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, groups=None):
        """Train the network on landmark videos.

        Parameters
        ----------
        X : array-like, sequence of array-like or mapping
            Landmark videos: a 4-D array ``(n_videos, n_frames, n_landmarks, n_coords)``, a list of
            ``(n_frames_i, n_landmarks, n_coords)`` arrays, or a dict/``SliceDict`` with key
            ``"landmarks"`` and optionally ``"dmarkers"`` (precomputed, e.g. by
            ``DMarkerTransformer(passthrough=True)``) and ``"fps"``. Frames without a face are
            all-NaN rows (see ``missing``).
        y : array-like of shape (n_videos,)
            Labels (any hashable type, at least two classes).
        groups : array-like of shape (n_videos,), default=None
            Subject ids; when given, the inner validation split keeps subjects whole.

        Returns
        -------
        self : HadaSmileClassifier
            The fitted estimator.

        Raises
        ------
        LandmarkValidationError
            Malformed ``X`` (wrong landmark count for the scheme, mixed shapes, videos shorter
            than 3 frames, empty ``X``, ...).
        ValueError
            NaN in ``y``, fewer than two classes, or inconsistent lengths.
        """
        data = check_landmarks(X, scheme=self.scheme, check_values=True, missing=self.missing)
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        y = column_or_1d(y, warn=True)
        check_consistent_length(data.lengths, y)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"HadaSmileClassifier needs samples of at least 2 classes in y; got only one class: "
                f"{encoder.classes_[0]!r}."
            )
        y_enc = encoder.transform(y).astype(np.int64)
        if groups is not None:
            groups = column_or_1d(check_array(groups, ensure_2d=False, dtype=None, input_name="groups"))
            check_consistent_length(y, groups)

        as_input, as_target, with_landmarks = self._dmarker_role()
        if self.precision == "bf16" and _resolve_device(self.device).split(":")[0] != "cuda":
            warnings.warn(
                "precision='bf16' uses CUDA autocast; on the CPU the network runs in float32.",
                UserWarning,
                stacklevel=2,
            )
        self.device_ = _resolve_device(self.device)
        self.classes_ = encoder.classes_
        self.n_landmarks_, self.n_coords_ = data.n_landmarks, data.n_coords

        dmarkers = None
        self.n_dmarkers_ = self.dmarker_mean_ = self.dmarker_scale_ = None
        if as_input or as_target:
            raw = self._raw_dmarkers(data)
            self.n_dmarkers_ = raw.shape[1]
            self.dmarker_mean_ = raw.mean(axis=0)
            scale = raw.std(axis=0)
            # As sklearn's StandardScaler: a constant column keeps scale 1 and becomes 0, not NaN.
            scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(self.dmarker_mean_), 1.0)] = 1.0
            self.dmarker_scale_ = scale
            dmarkers = self._standardise(raw)

        rng = check_random_state(self.random_state)
        torch_seed, split_seed, clip_seed = (int(s) for s in rng.randint(np.iinfo(np.int32).max, size=3))
        videos = prepare_videos(data)
        split = self._inner_split(y_enc, groups, split_seed)
        train_idx = np.arange(len(y_enc)) if split is None else split[0]

        class_weight = None
        if self.class_weight is not None:
            # Computed on the videos actually trained on; a dict is keyed by the original labels.
            class_weight = torch.as_tensor(
                compute_class_weight(self.class_weight, classes=self.classes_, y=y[train_idx]),
                dtype=torch.float32,
            )

        def subset(idx):
            return [videos[i] for i in idx], None if dmarkers is None else dmarkers[idx]

        train_videos, train_dm = subset(train_idx)
        train_ds = ClipDataset(
            train_videos, y_enc[train_idx], seed=clip_seed, **self._dataset_kwargs(train_dm, with_landmarks)
        )
        train_split = None
        if split is not None:
            from skorch.helper import predefined_split

            valid_videos, valid_dm = subset(split[1])
            valid_ds = ClipDataset.evaluation(
                valid_videos,
                y_enc[split[1]],
                n_clips=self.n_test_clips,
                **self._dataset_kwargs(valid_dm, with_landmarks),
            )
            train_split = predefined_split(valid_ds)

        with self._fork_rng():
            torch.manual_seed(torch_seed)
            module = self._build_module(len(self.classes_), self.n_dmarkers_)
            self.net_ = self._make_net(module, class_weight, train_split, len(train_idx))
            self.net_.fit(train_ds, None)
        # The validation set is not needed any more; do not carry its videos in pickles.
        self.net_.train_split = None
        history = self.net_.history
        self.n_epochs_ = len(history)
        if split is not None:
            best = [i for i, row in enumerate(history) if row.get("valid_loss_best")]
            self.best_epoch_ = best[-1] + 1 if best else self.n_epochs_
        else:
            self.best_epoch_ = self.n_epochs_
        return self

    def _check_predict_input(self, X):
        check_is_fitted(self)
        data = check_landmarks(
            X,
            scheme=self.scheme,
            n_landmarks=self.n_landmarks_,
            n_coords=self.n_coords_,
            check_values=True,
            missing=self.missing,
            n_dmarkers=self.n_dmarkers_,
        )
        return data

    def predict_proba(self, X):
        """Class probabilities of each video: the mean over ``n_test_clips`` evenly spaced clips.

        Parameters
        ----------
        X : array-like, sequence of array-like or mapping
            Landmark videos in any form accepted by :meth:`fit`, with the landmark and coordinate
            counts seen during fit.

        Returns
        -------
        proba : ndarray of shape (n_videos, n_classes)
            Rows sum to 1; columns follow ``classes_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        LandmarkValidationError
            Malformed ``X`` or landmark/coordinate counts other than those seen during fit.
        """
        data = self._check_predict_input(X)
        as_input, _, with_landmarks = self._dmarker_role_fitted()
        dmarkers = self._standardise(self._raw_dmarkers(data)) if as_input else None
        dataset = ClipDataset.evaluation(
            prepare_videos(data), None, n_clips=self.n_test_clips, **self._dataset_kwargs(dmarkers, with_landmarks)
        )
        with torch.inference_mode():
            out = self.net_.forward(dataset, training=False, device="cpu")
        logits = out[0] if isinstance(out, tuple) else out
        clip_proba = torch.softmax(logits.float(), dim=-1).numpy().astype(np.float64)
        proba = np.zeros((len(data), len(self.classes_)))
        np.add.at(proba, dataset.video_index, clip_proba)
        proba /= np.bincount(dataset.video_index, minlength=len(data))[:, None]
        return proba / proba.sum(axis=1, keepdims=True)

    def _dmarker_role_fitted(self):
        module = self.net_.module_
        return module.uses_dmarkers, module.predicts_dmarkers, module.uses_landmarks

    def predict(self, X):
        """Predicted class of each video.

        Parameters
        ----------
        X : array-like, sequence of array-like or mapping
            Landmark videos in any form accepted by :meth:`fit`.

        Returns
        -------
        y_pred : ndarray of shape (n_videos,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def save_weights(self, path):
        """Save the fitted network and everything needed to predict, without pickle.

        The file holds the network's tensors and the D-Marker statistics in the safetensors
        format, and the estimator's parameters and labels as JSON metadata. It is written to a
        temporary file first and moved into place, so an interrupted save never leaves a
        truncated file. Skorch ``callbacks`` are training-time objects and are not saved.

        Parameters
        ----------
        path : str or path-like
            Destination file (conventionally ``*.safetensors``).

        Returns
        -------
        path : pathlib.Path
            The written file.

        Raises
        ------
        TypeError
            If ``fusion``/``backbone`` is an unregistered class or the labels are not plain
            strings, integers, floats or booleans (they could not be restored without pickle).
        """
        from ._persistence import save_weights

        return save_weights(self, path)

    @classmethod
    def load_weights(cls, path, *, device="auto"):
        """Rebuild a fitted estimator from :meth:`save_weights` output (no unpickling).

        Parameters
        ----------
        path : str or path-like
            File written by :meth:`save_weights`.
        device : str, default="auto"
            Device to load the network on.

        Returns
        -------
        estimator : HadaSmileClassifier
            Fitted; predicts exactly as the saved one.
        """
        from ._persistence import load_weights

        return load_weights(cls, path, device=device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = True
        return tags
