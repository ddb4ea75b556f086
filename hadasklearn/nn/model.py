"""HadaSmileNet: a landmark backbone and the D-Marker stream joined by a registered fusion, then a head."""

import inspect

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from . import _memory
from ._parallel import can_split, map_batch
from ._registry import get_backbone, get_fusion

__all__ = ["HadaSmileNet", "multitask_loss"]

#: The D-Markers are 3 regions (eyelid, cheek, lip) x 3 phases (onset, apex, offset) x 25 features,
#: region-major, so ``d.view(batch, 9, -1)`` yields one token per (region, phase).
N_DMARKER_TOKENS = 9
#: Clips per call of a thread in parallel inference for backbones that do not set ``inference_chunk``.
_INFERENCE_CHUNK = 8


def _resolve(spec, getter, kind):
    if isinstance(spec, str):
        return getter(spec)
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        return spec
    raise TypeError(
        f"{kind} must be a registered {kind} name (str) or an nn.Module subclass, got {spec!r}."
    )


def _default_dim(backbone_cls):
    parameter = inspect.signature(backbone_cls).parameters.get("dim")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise ValueError(f"{backbone_cls.__name__} has no default `dim`; pass dim= explicitly.")
    return parameter.default


class HadaSmileNet(nn.Module):
    """Two-stream smile classifier: landmark backbone x D-Marker stream -> fusion -> head.

    The landmark stream encodes a clip with a registered backbone into per-frame tokens ``X`` and a
    vector ``x``; the D-Marker stream projects the 225 standardised D-Markers to a vector
    ``z = W d`` and (for the attention fusions) to 9 region x phase tokens ``Z`` (25 values each,
    projected, plus a learned token embedding). A registered fusion combines them and the head
    ``MLP -> LayerNorm -> Linear`` gives the logits. Only what the fusion reads is built: the
    ``dmarker_only`` baseline has no backbone; ``none`` and ``multitask`` have no D-Marker stream.

    Parameters
    ----------
    backbone : str or type, default="lite"
        Name from :func:`~hadasklearn.nn.list_backbones` or a backbone class.
    fusion : str or type, default="hadamard"
        Name from :func:`~hadasklearn.nn.list_fusions` (``include_baselines=True``) or a fusion class.
    n_classes : int, default=2
        Number of classes (logits).
    n_dmarkers : int, default=225
        Number of D-Markers (must be a multiple of 9 for the attention fusions).
    n_landmarks : int, default=478
        Landmarks per frame.
    n_coords : int, default=3
        Coordinates per landmark.
    clip_length : int, default=16
        Maximum frames per clip.
    dim : int or None, default=None
        Width of both streams; ``None`` uses the backbone's default.
    head_hidden : int or None, default=None
        Hidden width of the head MLP; ``None`` uses the fusion's ``out_dim``.
    dropout : float, default=0.1
        Dropout of the backbone, the fusion and the head.
    backbone_kwargs, fusion_kwargs : dict or None, default=None
        Extra keyword arguments of the backbone / fusion class.
    parallel_inference : bool, default=True
        In eval mode without autograd, on CPU, with more than one torch thread: split the batch
        over ``torch.get_num_threads()`` threads, each running torch single-threaded on a few
        clips at a time (the backbone's ``inference_chunk``), instead of running every operator
        on all threads (:func:`hadasklearn.nn._parallel.map_batch`). Rows are independent in
        eval mode, so the outputs are the same up to float round-off; on 2 CPU cores inference
        is about 20-40 % faster (``benchmarks/bench_nets.py``). This whole-model split is for
        inference only; in training only the backbone's transformer splits its clips (see
        :class:`~hadasklearn.nn.backbones.LandmarkBackbone`).
    retain_memory : bool, default=True
        While the model trains on CPU (training mode, autograd on), keep the memory torch frees
        in the process for the next step instead of returning it to the operating system
        (glibc's ``malloc`` on Linux; elsewhere nothing changes). Each training step otherwise
        maps its large activations afresh and page-faults them: for a ``curvenet`` step of 16
        clips on 2 CPU cores this removed 0.4 s of system time per step, and steps were 7.5 %
        faster across fresh processes (same-process comparisons, where the heap is already
        warm: 1 % slower to 7 % faster; ``benchmarks/bench_cpu_runtime.py``). The process
        then holds on to its peak memory until a model is switched to eval mode (``eval()``),
        which returns it. The setting is process-wide (:mod:`hadasklearn.nn._memory`).

    Attributes
    ----------
    backbone : nn.Module or None
        The landmark backbone (``None`` for ``dmarker_only``).
    fusion : nn.Module
        The fusion module.
    head : nn.Sequential
        ``Mlp -> LayerNorm -> Linear``.

    Examples
    --------
    >>> import torch
    >>> net = HadaSmileNet("lite", "hadamard", n_landmarks=20, clip_length=4, dim=16,
    ...                    backbone_kwargs=dict(embed_dim=8, n_tokens=4)).eval()
    >>> net(torch.randn(3, 4, 20, 3), torch.randn(3, 225)).shape
    torch.Size([3, 2])
    >>> mt = HadaSmileNet("lite", "multitask", n_landmarks=20, clip_length=4, dim=16,
    ...                   backbone_kwargs=dict(embed_dim=8, n_tokens=4)).eval()
    >>> logits, dmarker_pred = mt(torch.randn(3, 4, 20, 3))
    >>> tuple(dmarker_pred.shape), mt.uses_dmarkers, mt.predicts_dmarkers
    ((3, 225), False, True)
    """

    def __init__(
        self,
        backbone="lite",
        fusion="hadamard",
        *,
        n_classes=2,
        n_dmarkers=225,
        n_landmarks=478,
        n_coords=3,
        clip_length=16,
        dim=None,
        head_hidden=None,
        dropout=0.1,
        backbone_kwargs=None,
        fusion_kwargs=None,
        parallel_inference=True,
        retain_memory=True,
    ):
        super().__init__()
        self.parallel_inference = bool(parallel_inference)
        self.retain_memory = bool(retain_memory)
        backbone_cls = _resolve(backbone, get_backbone, "backbone")
        fusion_cls = _resolve(fusion, get_fusion, "fusion")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}.")
        if dim is None:
            dim = _default_dim(backbone_cls)
        self.n_classes = n_classes
        self.n_dmarkers = n_dmarkers
        self.n_landmarks = n_landmarks
        self.n_coords = n_coords

        self.backbone = None
        if fusion_cls.uses_landmarks:
            self.backbone = backbone_cls(
                n_landmarks=n_landmarks,
                n_coords=n_coords,
                clip_length=clip_length,
                dim=dim,
                dropout=dropout,
                **(backbone_kwargs or {}),
            )
            dim = self.backbone.out_dim
        self.fusion = fusion_cls(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout, **(fusion_kwargs or {}))

        self.dmarker_proj = None
        self.dmarker_token_proj = None
        if self.fusion.uses_dmarkers:
            if self.fusion.needs_vectors:
                self.dmarker_proj = nn.Linear(n_dmarkers, dim)
            if self.fusion.needs_tokens:
                if n_dmarkers % N_DMARKER_TOKENS:
                    raise ValueError(
                        f"The {fusion_cls.__name__} fusion views the D-Markers as {N_DMARKER_TOKENS} "
                        f"region x phase tokens, so n_dmarkers must be a multiple of "
                        f"{N_DMARKER_TOKENS}; got {n_dmarkers}."
                    )
                self.dmarker_token_proj = nn.Linear(n_dmarkers // N_DMARKER_TOKENS, dim)
                self.dmarker_token_embed = nn.Parameter(torch.randn(N_DMARKER_TOKENS, dim) * 0.02)

        hidden = head_hidden or self.fusion.out_dim
        self.head = nn.Sequential(
            Mlp(self.fusion.out_dim, hidden_features=hidden, out_features=hidden, drop=dropout),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, n_classes),
        )

    @property
    def uses_landmarks(self):
        """Whether ``forward`` needs ``landmarks`` (False only for ``dmarker_only``)."""
        return bool(self.fusion.uses_landmarks)

    @property
    def uses_dmarkers(self):
        """Whether ``forward`` needs ``dmarkers`` as input (False for ``none`` and ``multitask``)."""
        return bool(self.fusion.uses_dmarkers)

    @property
    def predicts_dmarkers(self):
        """Whether ``forward`` also returns a D-Marker prediction (True only for ``multitask``)."""
        return bool(getattr(self.fusion, "predicts_dmarkers", False))

    def train(self, mode=True):
        """As :meth:`torch.nn.Module.train`; leaving training returns retained memory (``retain_memory``)."""
        super().train(mode)
        if not mode and self.retain_memory:
            _memory.release()
        return self

    def _dtype(self):
        return self.head[-1].weight.dtype

    def _check_dmarkers(self, dmarkers, batch):
        if dmarkers is None:
            raise ValueError(
                f"The {type(self.fusion).__name__} fusion needs dmarkers of shape "
                f"(batch, {self.n_dmarkers}), got None; compute them with DMarkerTransformer."
            )
        if not isinstance(dmarkers, torch.Tensor) or dmarkers.dim() != 2:
            got = tuple(dmarkers.shape) if isinstance(dmarkers, torch.Tensor) else type(dmarkers).__name__
            raise ValueError(f"dmarkers must have shape (batch, {self.n_dmarkers}), got {got}.")
        if dmarkers.shape[1] != self.n_dmarkers:
            raise ValueError(
                f"dmarkers must have {self.n_dmarkers} columns (the model's n_dmarkers), got "
                f"{dmarkers.shape[1]} (shape {tuple(dmarkers.shape)})."
            )
        if batch is not None and dmarkers.shape[0] != batch:
            raise ValueError(
                f"landmarks and dmarkers disagree on the batch size: {batch} vs {dmarkers.shape[0]}."
            )
        if not dmarkers.is_floating_point():
            raise ValueError(f"dmarkers must be floating point, got dtype {dmarkers.dtype}.")
        if not bool(torch.isfinite(dmarkers).all()):
            raise ValueError("dmarkers contain NaN or infinite values; impute or drop those rows first.")
        return dmarkers.to(self._dtype())

    def forward(self, landmarks=None, dmarkers=None, mask=None):
        """Classify clips.

        Parameters
        ----------
        landmarks : torch.Tensor or None
            ``(batch, time, n_landmarks, n_coords)`` normalised clips (unused by ``dmarker_only``).
        dmarkers : torch.Tensor or None, default=None
            ``(batch, n_dmarkers)`` standardised D-Markers; required when :attr:`uses_dmarkers`,
            ignored otherwise.
        mask : torch.Tensor of bool or None, default=None
            ``(batch, time)``, True for real frames.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_classes)``.
        dmarker_pred : torch.Tensor
            ``(batch, n_dmarkers)``, only when :attr:`predicts_dmarkers` (then a tuple is returned).

        Raises
        ------
        ValueError
            If a required input is missing or has the wrong shape.
        """
        if self.retain_memory and self.training and torch.is_grad_enabled() and self.head[-1].weight.device.type == "cpu":
            _memory.retain()
        if self._splits_batch(landmarks, dmarkers, mask):
            return map_batch(self._forward, [landmarks, dmarkers, mask], chunk=getattr(self.backbone, "inference_chunk", _INFERENCE_CHUNK))
        return self._forward(landmarks, dmarkers, mask)

    def _splits_batch(self, *inputs):
        """Whether :meth:`forward` spreads the batch over threads (see ``parallel_inference``)."""
        if not self.parallel_inference or self.backbone is None or torch.is_grad_enabled():
            return False
        if not isinstance(inputs[0], torch.Tensor) or not can_split(*inputs):
            return False
        return not any(m.training for m in self.modules())

    def _forward(self, landmarks, dmarkers, mask):
        fusion = self.fusion
        x = x_tokens = z = z_tokens = None
        batch = None
        if self.backbone is not None:
            if landmarks is None:
                raise ValueError(
                    f"The {type(fusion).__name__} fusion needs landmarks of shape "
                    f"(batch, time, {self.n_landmarks}, {self.n_coords}), got None."
                )
            if isinstance(landmarks, torch.Tensor) and landmarks.is_floating_point():
                landmarks = landmarks.to(self._dtype())
            x_tokens, x = self.backbone(landmarks, mask)
            batch = x.shape[0]
        if fusion.uses_dmarkers:
            dmarkers = self._check_dmarkers(dmarkers, batch)
            if self.dmarker_proj is not None:
                z = self.dmarker_proj(dmarkers)
            if self.dmarker_token_proj is not None:
                groups = dmarkers.reshape(dmarkers.shape[0], N_DMARKER_TOKENS, -1)
                z_tokens = self.dmarker_token_proj(groups) + self.dmarker_token_embed
        if self.predicts_dmarkers:
            return self.head(fusion(x, z, x_tokens, z_tokens, mask)), fusion.predict_dmarkers(x)
        if not fusion.needs_vectors:
            x = None  # the pooled vector is free, but the fusion must not rely on it
        return self.head(fusion(x, z, x_tokens, z_tokens, mask if self.backbone is not None else None))


def multitask_loss(logits, dmarker_pred, y, dmarkers, weight):
    """DeepMarkerNet loss ``(1 - weight) * CE(logits, y) + weight * MSE(dmarker_pred, dmarkers)``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(batch, n_classes)``.
    dmarker_pred : torch.Tensor
        ``(batch, n_dmarkers)`` predicted standardised D-Markers.
    y : torch.Tensor
        ``(batch,)`` integer class labels.
    dmarkers : torch.Tensor
        ``(batch, n_dmarkers)`` target standardised D-Markers.
    weight : float
        Weight of the regression term, in ``[0, 1]``.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Raises
    ------
    ValueError
        If ``weight`` is outside ``[0, 1]`` or the D-Marker shapes disagree.

    References
    ----------
    .. [1] DeepMarkerNet: deep facial landmarks and D-Markers for genuine smile recognition.

    Examples
    --------
    >>> import torch
    >>> logits, y = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    >>> pred, target = torch.zeros(4, 3), torch.ones(4, 3)
    >>> round(float(multitask_loss(logits, pred, y, target, weight=0.5)), 4)
    0.8466
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}.")
    if dmarker_pred.shape != dmarkers.shape:
        raise ValueError(
            f"dmarker_pred and dmarkers must have the same shape, got {tuple(dmarker_pred.shape)} "
            f"and {tuple(dmarkers.shape)}."
        )
    classification = F.cross_entropy(logits, y)
    regression = F.mse_loss(dmarker_pred, dmarkers.to(dmarker_pred.dtype))
    return (1.0 - weight) * classification + weight * regression
