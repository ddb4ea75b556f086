"""Landmark-stream backbones: landmark clips ``(batch, time, landmarks, coords)`` -> tokens and a vector."""

import torch
from torch import nn

from ._parallel import row_parallel
from ._registry import register_backbone
from .layers import (
    FactorizedSpaceTimeTransformer,
    LandmarkTokenPooling,
    MaskedTransformer,
    masked_mean,
    sinusoidal_positions,
)

__all__ = ["CurveNetBackbone", "LandmarkBackbone", "LiteBackbone"]


def check_clip_input(landmarks, mask, *, n_landmarks, n_coords, clip_length, owner):
    """Validate a batch of clips and its frame mask; return ``(landmarks, mask)`` ready for a backbone.

    Padded frames (mask False) are replaced by zeros so that whatever they hold (NaN included) cannot
    reach any output; ``mask`` becomes ``None`` when every frame is real.

    Parameters
    ----------
    landmarks : torch.Tensor
        ``(batch, time, n_landmarks, n_coords)`` floating tensor.
    mask : torch.Tensor of bool or None
        ``(batch, time)``, True for real frames.
    n_landmarks, n_coords, clip_length : int
        What the module was built for.
    owner : str
        Name used in error messages.

    Returns
    -------
    landmarks : torch.Tensor
    mask : torch.Tensor of bool or None

    Raises
    ------
    ValueError
        On a wrong shape or dtype, a clip without real frames, or non-finite values in real frames.
    """
    if not isinstance(landmarks, torch.Tensor) or landmarks.dim() != 4:
        got = tuple(landmarks.shape) if isinstance(landmarks, torch.Tensor) else type(landmarks).__name__
        raise ValueError(
            f"{owner} expects landmarks of shape (batch, time, {n_landmarks}, {n_coords}), got {got}."
        )
    batch, time, n_lmk, n_crd = landmarks.shape
    if (n_lmk, n_crd) != (n_landmarks, n_coords):
        raise ValueError(
            f"{owner} was built for {n_landmarks} landmarks x {n_coords} coordinates per frame, got "
            f"{n_lmk} x {n_crd} (input shape {tuple(landmarks.shape)}); rebuild it with "
            f"n_landmarks={n_lmk}, n_coords={n_crd} or pass matching landmarks."
        )
    if not landmarks.is_floating_point():
        raise ValueError(f"{owner} expects floating-point landmarks, got dtype {landmarks.dtype}.")
    if time < 1 or time > clip_length:
        raise ValueError(
            f"{owner} was built for clips of at most clip_length={clip_length} frames, got {time}; "
            "cut the clip or rebuild the module with a larger clip_length."
        )
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(
                f"{owner} expects a bool mask of shape ({batch}, {time}) (True = real frame), got "
                f"{getattr(mask, 'dtype', type(mask).__name__)}."
            )
        if tuple(mask.shape) != (batch, time):
            raise ValueError(
                f"{owner} expects mask of shape (batch, time) = ({batch}, {time}), "
                f"got {tuple(mask.shape)}."
            )
        if not bool(mask.any(dim=1).all()):
            raise ValueError(
                f"{owner}: every clip needs at least one real frame, but the mask of clip(s) "
                f"{torch.nonzero(~mask.any(dim=1)).flatten().tolist()} is all False."
            )
        if bool(mask.all()):
            mask = None
        else:
            landmarks = torch.where(mask[:, :, None, None], landmarks, landmarks.new_zeros(()))
    if not bool(torch.isfinite(landmarks).all()):
        raise ValueError(
            f"{owner} got NaN or infinite landmarks in real frames; fill or drop frames without a "
            "face first, or mark them False in `mask`."
        )
    return landmarks, mask


class LandmarkBackbone(nn.Module):
    """Base of the factorised space-time backbones: frame tokens -> space-time -> temporal transformer.

    Subclasses implement :meth:`encode_frames` (landmarks of the real frames to ``n_tokens`` tokens
    of width ``dim`` each); this class validates the input, scatters the frame tokens into a
    ``(batch, time, tokens, dim)`` grid, adds sinusoidal time positions, runs the factorised
    space-time transformer, averages the tokens of each frame, runs the temporal transformer and
    averages over the real frames. With autograd on CPU and several torch threads, the space-time
    transformer's clips are split over the threads, forward and backward
    (:func:`hadasklearn.nn._parallel.row_parallel`; same gradients up to round-off, dropout
    masks drawn per block of clips).

    Parameters
    ----------
    n_landmarks, n_coords, clip_length : int
        Input layout the backbone is built for.
    dim : int
        Token width and ``out_dim``.
    n_tokens : int
        Tokens per frame after landmark pooling.
    depth : int
        Blocks of the space-time transformer (alternating time / token attention).
    temporal_depth : int
        Blocks of the temporal transformer.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        MLP width of the transformer blocks as a multiple of ``dim``.
    dropout : float
        Dropout in the transformer blocks.
    drop_path : float
        Stochastic depth rate of the last block.
    final_norm : bool
        Apply a ``LayerNorm`` to the output tokens.

    Attributes
    ----------
    inference_chunk : int
        Clips per call when :class:`~hadasklearn.nn.HadaSmileNet` spreads an eval-mode batch over
        threads (``parallel_inference``): few enough that a call's activations stay in cache and
        below the allocator's mapping threshold (32 MiB), enough to amortise Python overhead.
    """

    inference_chunk = 8

    def __init__(
        self,
        *,
        n_landmarks,
        n_coords,
        clip_length,
        dim,
        n_tokens,
        depth,
        temporal_depth,
        num_heads,
        mlp_ratio,
        dropout,
        drop_path,
        final_norm,
    ):
        super().__init__()
        for name, value in {
            "n_landmarks": n_landmarks,
            "n_coords": n_coords,
            "clip_length": clip_length,
            "dim": dim,
            "n_tokens": n_tokens,
            "num_heads": num_heads,
        }.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.n_landmarks = n_landmarks
        self.n_coords = n_coords
        self.clip_length = clip_length
        self.n_tokens = n_tokens
        self.out_dim = dim
        self.register_buffer("time_positions", sinusoidal_positions(clip_length, dim), persistent=False)
        kwargs = dict(num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout, drop_path=drop_path)
        self.space_time = FactorizedSpaceTimeTransformer(dim, depth, **kwargs)
        self.temporal = MaskedTransformer(dim, temporal_depth, **kwargs)
        self.norm = nn.LayerNorm(dim) if final_norm else nn.Identity()

    def encode_frames(self, landmarks, mask):
        """Tokens ``(n_real_frames, n_tokens, dim)`` of the real frames, in ``landmarks[mask]`` order.

        ``landmarks`` is validated, with padded frames zeroed; ``mask`` is ``None`` when all are real
        (then all ``batch * time`` frames are returned, batch-major).
        """
        raise NotImplementedError

    def forward(self, landmarks, mask=None):
        """Encode clips.

        Parameters
        ----------
        landmarks : torch.Tensor
            ``(batch, time, n_landmarks, n_coords)`` float, each clip already normalised (roughly
            zero-centred, unit inter-ocular distance); ``time <= clip_length``.
        mask : torch.Tensor of bool or None, default=None
            ``(batch, time)``, True for real frames; ``None`` means all real. Padded frames have no
            influence on any output.

        Returns
        -------
        tokens : torch.Tensor
            ``(batch, time, out_dim)`` per-frame tokens (zeros at padded frames).
        pooled : torch.Tensor
            ``(batch, out_dim)`` mean of the tokens over the real frames.
        """
        landmarks, mask = check_clip_input(
            landmarks,
            mask,
            n_landmarks=self.n_landmarks,
            n_coords=self.n_coords,
            clip_length=self.clip_length,
            owner=type(self).__name__,
        )
        batch, time = landmarks.shape[:2]
        frames = self.encode_frames(landmarks, mask)
        if mask is None:
            grid = frames.reshape(batch, time, self.n_tokens, self.out_dim)
        else:
            grid = frames.new_zeros(batch, time, self.n_tokens, self.out_dim)
            grid = grid.masked_scatter(mask[:, :, None, None], frames)
        grid = grid + self.time_positions[:time, None, :]
        # training: clips over threads (the transformer has no batch statistics; nn/_parallel.py)
        grid = row_parallel(self.space_time, grid, mask)
        tokens = self.norm(self.temporal(grid.mean(dim=2), mask))
        pooled = masked_mean(tokens, mask, dim=1)
        if mask is not None:
            tokens = torch.where(mask[:, :, None], tokens, tokens.new_zeros(()))
        return tokens, pooled


@register_backbone("lite")
class LiteBackbone(LandmarkBackbone):
    """Fast landmark backbone: per-landmark embedding, learned pooling, small space-time transformer.

    Each landmark of each frame is described by its coordinates, its displacement from its mean
    position over the real frames of the clip and its frame-to-frame motion (both scaled by
    ``dynamics_scale`` because they are much smaller than the coordinates), embedded by a shared
    linear layer plus a learned landmark-identity embedding and a GELU, then pooled into
    ``n_tokens`` tokens per frame by a learned 1x1 convolution over the landmarks (+ LayerNorm) and
    projected to ``dim``. A factorised space-time transformer (alternating attention over time and
    over tokens), a mean over tokens, a temporal transformer and a mean over real frames follow, as
    in the ``curvenet`` backbone but without the point-cloud network.

    Parameters
    ----------
    n_landmarks : int, default=478
        Landmarks per frame (478 for MediaPipe Face Mesh).
    n_coords : int, default=3
        Coordinates per landmark (2 or 3).
    clip_length : int, default=16
        Maximum frames per clip.
    dim : int, default=64
        Token width and ``out_dim``.
    embed_dim : int, default=32
        Width of the per-landmark embedding.
    n_tokens : int, default=16
        Tokens per frame after landmark pooling.
    depth : int, default=2
        Blocks of the space-time transformer (alternating time / token attention).
    temporal_depth : int, default=1
        Blocks of the temporal transformer.
    num_heads : int, default=4
        Attention heads (must divide ``dim``).
    mlp_ratio : float, default=2.0
        MLP width of the transformer blocks as a multiple of ``dim``.
    dropout : float, default=0.1
        Dropout in the transformer blocks.
    drop_path : float, default=0.0
        Stochastic depth rate of the last block.
    dynamics_scale : float, default=10.0
        Factor applied to the displacement and motion features.

    Attributes
    ----------
    out_dim : int
        Width of ``tokens`` and ``pooled``.

    Examples
    --------
    >>> import torch
    >>> net = LiteBackbone(n_landmarks=20, clip_length=4, dim=16, embed_dim=8, n_tokens=4).eval()
    >>> tokens, pooled = net(torch.randn(2, 4, 20, 3))
    >>> tuple(tokens.shape), tuple(pooled.shape)
    ((2, 4, 16), (2, 16))
    """

    def __init__(
        self,
        *,
        n_landmarks=478,
        n_coords=3,
        clip_length=16,
        dim=64,
        embed_dim=32,
        n_tokens=16,
        depth=2,
        temporal_depth=1,
        num_heads=4,
        mlp_ratio=2.0,
        dropout=0.1,
        drop_path=0.0,
        dynamics_scale=10.0,
    ):
        super().__init__(
            n_landmarks=n_landmarks,
            n_coords=n_coords,
            clip_length=clip_length,
            dim=dim,
            n_tokens=n_tokens,
            depth=depth,
            temporal_depth=temporal_depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=drop_path,
            final_norm=True,
        )
        self.dynamics_scale = float(dynamics_scale)
        self.embed = nn.Linear(3 * n_coords, embed_dim)
        self.landmark_embed = nn.Parameter(torch.randn(n_landmarks, embed_dim) * 0.1)
        self.act = nn.GELU()
        self.pool = LandmarkTokenPooling(n_landmarks, n_tokens, norm="layer", dim=embed_dim)
        self.proj = nn.Linear(embed_dim, dim)

    def encode_frames(self, landmarks, mask):
        """Per-landmark embedding and pooling of the real frames (see :class:`LandmarkBackbone`)."""
        displacement = landmarks - masked_mean(landmarks, mask, dim=1)[:, None]
        motion = torch.zeros_like(landmarks)
        motion[:, 1:] = landmarks[:, 1:] - landmarks[:, :-1]
        if mask is not None:
            # Motion is only defined between two consecutive real frames.
            both_real = torch.zeros_like(mask)
            both_real[:, 1:] = mask[:, 1:] & mask[:, :-1]
            motion = motion * both_real[:, :, None, None]
            displacement, motion, landmarks = displacement[mask], motion[mask], landmarks[mask]
        else:
            flat = (-1,) + landmarks.shape[2:]
            displacement, motion, landmarks = (
                displacement.reshape(flat),
                motion.reshape(flat),
                landmarks.reshape(flat),
            )
        features = torch.cat(
            [landmarks, self.dynamics_scale * displacement, self.dynamics_scale * motion], dim=-1
        )
        embedded = self.act(self.embed(features) + self.landmark_embed)
        return self.proj(self.pool(embedded))


@register_backbone("curvenet")
class CurveNetBackbone(LandmarkBackbone):
    """The published MeshSmileNet/HadaSmileNet landmark encoder, with a CurveNet point encoder per frame.

    Each frame's landmarks are a point cloud encoded by CurveNet (Xiang et al., 2021; ``k``
    neighbours) into ``dim``-wide per-point features, pooled into ``n_tokens`` tokens by
    ``Conv1d(n_landmarks, n_tokens, 1, bias=False)`` + ``BatchNorm1d(n_tokens)``, followed by a
    factorised space-time transformer of depth 6 (alternating time / token attention), a mean over
    tokens, a temporal transformer of depth 3 and a mean over the real frames. Only real frames are
    encoded, so padded frames neither cost compute nor enter the batch-norm statistics.

    With the defaults the parameter counts match the published model: space-time transformer
    3,158,016; temporal transformer 1,579,008; token pooling 15,360; each block (dim 256, 4 heads,
    MLP 512, qkv without bias) 526,336.

    Parameters
    ----------
    n_landmarks : int, default=478
        Landmarks (points) per frame.
    n_coords : int, default=3
        Coordinates per landmark.
    clip_length : int, default=16
        Maximum frames per clip.
    dim : int, default=256
        Point-feature and token width, and ``out_dim``.
    k : int, default=20
        Neighbours of the CurveNet k-NN graph.
    n_tokens : int, default=32
        Tokens per frame after landmark pooling.
    depth : int, default=6
        Blocks of the space-time transformer.
    temporal_depth : int, default=3
        Blocks of the temporal transformer.
    num_heads : int, default=4
        Attention heads.
    mlp_ratio : float, default=2.0
        MLP width of the transformer blocks as a multiple of ``dim``.
    dropout : float, default=0.1
        Dropout in the transformer blocks.
    drop_path : float, default=0.0
        Stochastic depth rate of the last block.
    encoder_kwargs : dict or None, default=None
        Extra keyword arguments of :class:`hadasklearn.nn.curvenet.CurveNetEncoder`.

    Attributes
    ----------
    out_dim : int
        Width of ``tokens`` and ``pooled``.

    References
    ----------
    .. [1] T. Xiang, C. Zhang, Y. Song, J. Yu, W. Cai, "Walk in the cloud: learning curves for point
       clouds shape analysis", ICCV 2021.
    """

    # one clip's widest activation is 16 frames x 478 points x 256 channels = 7.8 MB (float32)
    inference_chunk = 2

    def __init__(
        self,
        *,
        n_landmarks=478,
        n_coords=3,
        clip_length=16,
        dim=256,
        k=20,
        n_tokens=32,
        depth=6,
        temporal_depth=3,
        num_heads=4,
        mlp_ratio=2.0,
        dropout=0.1,
        drop_path=0.0,
        encoder_kwargs=None,
    ):
        super().__init__(
            n_landmarks=n_landmarks,
            n_coords=n_coords,
            clip_length=clip_length,
            dim=dim,
            n_tokens=n_tokens,
            depth=depth,
            temporal_depth=temporal_depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            drop_path=drop_path,
            final_norm=False,
        )
        # Imported here so that the rest of hadasklearn.nn works without the point encoder module.
        from .curvenet import CurveNetEncoder

        self.encoder = CurveNetEncoder(
            in_coords=n_coords, out_dim=dim, k=k, n_points=n_landmarks, **(encoder_kwargs or {})
        )
        self.pool = LandmarkTokenPooling(n_landmarks, n_tokens, norm="batch")

    def encode_frames(self, landmarks, mask):
        """CurveNet point features of the real frames, pooled into tokens (see :class:`LandmarkBackbone`)."""
        if mask is None:
            frames = landmarks.reshape((-1,) + landmarks.shape[2:])
        else:
            frames = landmarks[mask]
        return self.pool(self.encoder(frames))
