"""The fusion strategies of HadaSmileNet (landmark stream x D-Marker stream) and the single-stream baselines.

Every class is registered by name (``list_fusions()``) and maps the landmark vector ``x``, the
D-Marker vector ``z`` (both ``(batch, dim)``) and, for the attention family, the landmark tokens
``X`` ``(batch, time, dim)`` with their frame mask and the D-Marker tokens ``Z`` ``(batch, 9, dim)``
to one ``(batch, out_dim)`` representation. Definitions follow the HadaSmileNet paper (Hadamard
product of projected streams and 14 alternatives), with the defects of its released code fixed
(noted per class).
"""

import torch
from timm.layers import Attention, Mlp
from torch import nn

from ._registry import register_fusion
from .layers import masked_mean

__all__ = [
    "AdditiveFusion",
    "AttentionFusion",
    "BilinearFusion",
    "BilinearHadamardFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "DMarkerOnlyFusion",
    "FactorizedBilinearFusion",
    "FactorizedBilinearHadamardFusion",
    "FilmFusion",
    "FilmHadamardFusion",
    "Fusion",
    "GatedConcatFusion",
    "HadamardFusion",
    "HadamardGatedConcatFusion",
    "LandmarkOnlyFusion",
    "MultiHeadAttentionFusion",
    "MultiHeadCrossAttentionFusion",
    "MultitaskFusion",
]


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


class Fusion(nn.Module):
    """Base class of the fusions: validates ``dim``/``dropout`` and declares what the model must compute.

    Parameters
    ----------
    dim : int
        Width of both stream vectors (and tokens).
    n_dmarkers : int, default=225
        Number of D-Markers (used by the ``multitask`` head only).
    dropout : float, default=0.1
        Dropout rate used inside the fusion's MLPs / attention.

    Attributes
    ----------
    out_dim : int
        Width of the fused representation.
    uses_landmarks, uses_dmarkers : bool
        Which streams the fusion reads (class attributes).
    needs_tokens : bool
        Whether ``forward`` reads ``x_tokens``/``z_tokens`` (class attribute).
    needs_vectors : bool
        Whether ``forward`` reads the vectors ``x``/``z`` (class attribute).
    predicts_dmarkers : bool
        Whether the fusion has an auxiliary D-Marker regression head (class attribute).
    """

    uses_landmarks = True
    uses_dmarkers = True
    needs_tokens = False
    needs_vectors = True
    predicts_dmarkers = False

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__()
        _check_positive_int("dim", dim)
        _check_positive_int("n_dmarkers", n_dmarkers)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.dim = dim
        self.n_dmarkers = n_dmarkers
        self.out_dim = dim

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        """Fuse the streams.

        Parameters
        ----------
        x : torch.Tensor or None
            ``(batch, dim)`` landmark vector (``None`` if the fusion does not need it).
        z : torch.Tensor or None
            ``(batch, dim)`` D-Marker vector.
        x_tokens : torch.Tensor or None
            ``(batch, time, dim)`` landmark tokens.
        z_tokens : torch.Tensor or None
            ``(batch, 9, dim)`` D-Marker (region x phase) tokens.
        x_mask : torch.Tensor of bool or None
            ``(batch, time)``, True for real frames (``None`` = all real).

        Returns
        -------
        torch.Tensor
            ``(batch, out_dim)``.
        """
        raise NotImplementedError


@register_fusion("concat")
class ConcatFusion(Fusion):
    """``MLP([x; z])``: concatenation followed by a two-layer MLP to ``dim``.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout inside the MLP.

    Examples
    --------
    >>> import torch
    >>> fusion = ConcatFusion(dim=8)
    >>> fusion(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.mlp = Mlp(2 * dim, hidden_features=dim, out_features=dim, drop=dropout)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.mlp(torch.cat([x, z], dim=-1))


class _Gate(nn.Module):
    """``g = sigmoid(W [x; z])``; ``g * x + (1 - g) * z`` (a convex, per-feature mix of the streams)."""

    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Linear(2 * dim, dim)

    def forward(self, x, z):
        gate = torch.sigmoid(self.gate(torch.cat([x, z], dim=-1)))
        return gate * x + (1.0 - gate) * z


@register_fusion("gated_concat")
class GatedConcatFusion(Fusion):
    """Gated mix ``g * x + (1 - g) * z`` with ``g = sigmoid(W [x; z])``.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Unused (the gate has no dropout).

    Examples
    --------
    >>> import torch
    >>> GatedConcatFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.gate = _Gate(dim)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.gate(x, z)


@register_fusion("additive")
class AdditiveFusion(Fusion):
    """Additive attention over the two streams: ``a = softmax(W [x'; z'])``, ``a1 x' + a2 z'``.

    ``x' = ReLU(LN(W_x x))`` and ``z' = ReLU(LN(W_z z))``; the softmax runs over the 2 streams.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Unused (the projections have no dropout).

    Examples
    --------
    >>> import torch
    >>> AdditiveFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.proj_x = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU())
        self.proj_z = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU())
        self.score = nn.Linear(2 * dim, 2)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        x, z = self.proj_x(x), self.proj_z(z)
        weights = torch.softmax(self.score(torch.cat([x, z], dim=-1)), dim=-1)
        return weights[:, :1] * x + weights[:, 1:] * z


@register_fusion("hadamard")
class HadamardFusion(Fusion):
    """HadaSmileNet's fusion: ``(W_x x) * (W_z z)`` (element-wise product; no parameters in the product).

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Unused (the product has no dropout).

    References
    ----------
    .. [1] HadaSmileNet: Hadamard fusion of handcrafted and deep-learning features for enhancing
       facial emotion recognition of genuine smiles (2025).

    Examples
    --------
    >>> import torch
    >>> HadamardFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.proj_x = nn.Linear(dim, dim)
        self.proj_z = nn.Linear(dim, dim)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.proj_x(x) * self.proj_z(z)


def _joint_mask(x_mask, n_z):
    """Mask of the joint token set ``[X; Z]``: ``x_mask`` for X, all True for the D-Marker tokens."""
    if x_mask is None:
        return None
    z_mask = torch.ones(x_mask.shape[0], n_z, dtype=torch.bool, device=x_mask.device)
    return torch.cat([x_mask, z_mask], dim=1)


@register_fusion("attention")
class AttentionFusion(Fusion):
    """Self-attention over the joint token set ``[X; Z]``, then a mean over its real tokens.

    A learned stream-type embedding is added to each token, one pre-norm residual attention layer
    (single head here, ``num_heads`` in :class:`MultiHeadAttentionFusion`) mixes the landmark tokens
    (padded frames masked out as keys) and the 9 D-Marker tokens, and the output is the mean over the
    real tokens followed by a ``LayerNorm``. Fixes the released code, which attended over a single
    token (softmax over one key is 1, so the landmark stream was ignored).

    Parameters
    ----------
    dim : int
        Token width.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout after the attention projection.
    num_heads : int, default=1
        Attention heads (must divide ``dim``).

    Examples
    --------
    >>> import torch
    >>> fusion = AttentionFusion(dim=8)
    >>> fusion(None, None, torch.randn(2, 5, 8), torch.randn(2, 9, 8)).shape
    torch.Size([2, 8])
    """

    needs_tokens = True
    needs_vectors = False
    default_heads = 1

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1, num_heads=None):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        num_heads = self.default_heads if num_heads is None else num_heads
        _check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
        self.stream_embed = nn.Parameter(torch.randn(2, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=True, proj_drop=dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        tokens = torch.cat([x_tokens + self.stream_embed[0], z_tokens + self.stream_embed[1]], dim=1)
        mask = _joint_mask(x_mask, z_tokens.shape[1])
        attn_mask = None if mask is None else mask[:, None, None, :]
        tokens = tokens + self.attn(self.norm(tokens), attn_mask=attn_mask)
        return self.out_norm(masked_mean(tokens, mask, dim=1))


@register_fusion("mh_attention")
class MultiHeadAttentionFusion(AttentionFusion):
    """:class:`AttentionFusion` with ``num_heads`` heads (default 4).

    Examples
    --------
    >>> import torch
    >>> fusion = MultiHeadAttentionFusion(dim=8)
    >>> fusion(None, None, torch.randn(2, 5, 8), torch.randn(2, 9, 8)).shape
    torch.Size([2, 8])
    """

    default_heads = 4


@register_fusion("cross_attention")
class CrossAttentionFusion(Fusion):
    """Cross-attention: queries from the landmark tokens X, keys/values from the D-Marker tokens Z.

    ``Y = X + Attn(LN(X), LN(Z))`` is averaged over the real frames. With ``symmetric=True`` (the
    default of :class:`MultiHeadCrossAttentionFusion`) the other direction
    ``W = Z + Attn'(LN(Z), LN(X))`` (padded frames masked out as keys) is averaged over the 9
    D-Marker tokens and the two pooled vectors are averaged, so that each stream both queries and
    is queried. A final ``LayerNorm`` follows. Fixes the released code's single-token attention.

    Parameters
    ----------
    dim : int
        Token width.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout on the attention output.
    num_heads : int, default=1
        Attention heads (must divide ``dim``).
    symmetric : bool, default=False
        Also attend from Z to X and average both directions.

    Examples
    --------
    >>> import torch
    >>> fusion = CrossAttentionFusion(dim=8)
    >>> fusion(None, None, torch.randn(2, 5, 8), torch.randn(2, 9, 8)).shape
    torch.Size([2, 8])
    """

    needs_tokens = True
    needs_vectors = False
    default_heads = 1
    default_symmetric = False

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1, num_heads=None, symmetric=None):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        num_heads = self.default_heads if num_heads is None else num_heads
        self.symmetric = self.default_symmetric if symmetric is None else bool(symmetric)
        _check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
        self.norm_x = nn.LayerNorm(dim)
        self.norm_z = nn.LayerNorm(dim)
        self.x_to_z = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        if self.symmetric:
            self.z_to_x = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        x_normed, z_normed = self.norm_x(x_tokens), self.norm_z(z_tokens)
        attended, _ = self.x_to_z(x_normed, z_normed, z_normed, need_weights=False)
        fused = masked_mean(x_tokens + self.drop(attended), x_mask, dim=1)
        if self.symmetric:
            padding = None if x_mask is None else ~x_mask
            attended, _ = self.z_to_x(
                z_normed, x_normed, x_normed, key_padding_mask=padding, need_weights=False
            )
            fused = 0.5 * (fused + (z_tokens + self.drop(attended)).mean(dim=1))
        return self.out_norm(fused)


@register_fusion("mh_cross_attention")
class MultiHeadCrossAttentionFusion(CrossAttentionFusion):
    """:class:`CrossAttentionFusion` with 4 heads, symmetric (X -> Z and Z -> X, averaged) by default.

    Examples
    --------
    >>> import torch
    >>> fusion = MultiHeadCrossAttentionFusion(dim=8)
    >>> fusion(None, None, torch.randn(2, 5, 8), torch.randn(2, 9, 8)).shape
    torch.Size([2, 8])
    """

    default_heads = 4
    default_symmetric = True


class _Film(nn.Module):
    """``gamma * LN(x) + beta`` with ``[gamma - 1, beta] = MLP(z)`` (unconstrained signs)."""

    def __init__(self, dim, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = Mlp(dim, hidden_features=dim, out_features=2 * dim, drop=dropout)

    def forward(self, x, z):
        delta_gamma, beta = self.mlp(z).chunk(2, dim=-1)
        # 1 + delta keeps the modulation near identity at initialisation.
        return (1.0 + delta_gamma) * self.norm(x) + beta


@register_fusion("film")
class FilmFusion(Fusion):
    """FiLM (Perez et al., 2018): ``gamma * LN(x) + beta`` with ``[gamma, beta] = MLP(z)``.

    ``gamma`` and ``beta`` are unconstrained (the released code's ReLU forced them to be >= 0);
    ``gamma`` is parametrised as ``1 + MLP(z)[:dim]`` so the layer starts close to ``LN(x)``.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout inside the MLP producing ``gamma`` and ``beta``.

    References
    ----------
    .. [1] E. Perez, F. Strub, H. de Vries, V. Dumoulin, A. Courville, "FiLM: visual reasoning with a
       general conditioning layer", AAAI 2018.

    Examples
    --------
    >>> import torch
    >>> FilmFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.film = _Film(dim, dropout)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.film(x, z)


@register_fusion("film_hadamard")
class FilmHadamardFusion(FilmFusion):
    """``film(x, z) + x * z``.

    Examples
    --------
    >>> import torch
    >>> FilmHadamardFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.film(x, z) + x * z


@register_fusion("bilinear")
class BilinearFusion(Fusion):
    """Full bilinear pooling ``W_o vec(x z^T) + b`` (``dim**3 + dim`` parameters: 16.8 M at dim 256).

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Unused (the bilinear map has no dropout).

    Examples
    --------
    >>> import torch
    >>> BilinearFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.bilinear = nn.Bilinear(dim, dim, dim)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.bilinear(x, z)


@register_fusion("bilinear_hadamard")
class BilinearHadamardFusion(BilinearFusion):
    """``MLP(bilinear(x, z) + x * z)``.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout inside the MLP.

    Examples
    --------
    >>> import torch
    >>> BilinearHadamardFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.mlp = Mlp(dim, hidden_features=dim, out_features=dim, drop=dropout)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.mlp(self.bilinear(x, z) + x * z)


class _FactorizedBilinear(nn.Module):
    """MFB: ``W_o sumpool_k((W_p x) * (W_q z))`` with ``hidden`` product features in groups of ``factor``."""

    def __init__(self, dim, hidden, factor, dropout):
        super().__init__()
        _check_positive_int("hidden", hidden)
        _check_positive_int("factor", factor)
        if hidden % factor:
            raise ValueError(f"hidden={hidden} must be divisible by factor={factor}.")
        self.factor = factor
        self.proj_x = nn.Linear(dim, hidden)
        self.proj_z = nn.Linear(dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden // factor, dim)

    def forward(self, x, z):
        product = self.drop(self.proj_x(x) * self.proj_z(z))
        pooled = product.unflatten(-1, (-1, self.factor)).sum(dim=-1)
        return self.out(pooled)


@register_fusion("factorized_bilinear")
class FactorizedBilinearFusion(Fusion):
    """Multi-modal factorised bilinear pooling (MFB, Yu et al., 2017): ``W_o sumpool((W_p x) * (W_q z))``.

    The ``hidden``-wide product is sum-pooled over non-overlapping windows of ``factor`` features
    (the rank of the factorisation), then projected back to ``dim``. MFB's power and L2
    normalisations are left out: the head's ``LayerNorm`` plays that role and the signed square
    root has an infinite gradient at 0.

    Parameters
    ----------
    dim : int
        Stream width.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout on the product.
    hidden : int, default=512
        Width of the factorised product.
    factor : int, default=4
        Sum-pooling window (factorisation rank); must divide ``hidden``.

    References
    ----------
    .. [1] Z. Yu, J. Yu, J. Fan, D. Tao, "Multi-modal factorized bilinear pooling with co-attention
       learning for visual question answering", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> FactorizedBilinearFusion(dim=8, hidden=16)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1, hidden=512, factor=4):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.mfb = _FactorizedBilinear(dim, hidden, factor, dropout)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.mfb(x, z)


@register_fusion("factorized_bilinear_hadamard")
class FactorizedBilinearHadamardFusion(FactorizedBilinearFusion):
    """``MLP(factorized_bilinear(x, z) + x * z)``.

    Parameters
    ----------
    dim : int
        Stream width.
    n_dmarkers : int, default=225
        Unused (kept for a uniform constructor).
    dropout : float, default=0.1
        Dropout on the product and inside the MLP.
    hidden : int, default=512
        Width of the factorised product.
    factor : int, default=4
        Sum-pooling window (factorisation rank); must divide ``hidden``.

    Examples
    --------
    >>> import torch
    >>> fusion = FactorizedBilinearHadamardFusion(dim=8, hidden=16)
    >>> fusion(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1, hidden=512, factor=4):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout, hidden=hidden, factor=factor)
        self.mlp = Mlp(dim, hidden_features=dim, out_features=dim, drop=dropout)

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return self.mlp(self.mfb(x, z) + x * z)


@register_fusion("hadamard_gated_concat")
class HadamardGatedConcatFusion(GatedConcatFusion):
    """``x * z + gated_concat(x, z)``.

    Examples
    --------
    >>> import torch
    >>> HadamardGatedConcatFusion(dim=8)(torch.randn(2, 8), torch.randn(2, 8)).shape
    torch.Size([2, 8])
    """

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return x * z + self.gate(x, z)


@register_fusion("none", kind="baseline")
class LandmarkOnlyFusion(Fusion):
    """Baseline without D-Markers (the MeshSmileNet model): returns the landmark vector ``x``.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(2, 8)
    >>> bool((LandmarkOnlyFusion(dim=8)(x, None) == x).all())
    True
    """

    uses_dmarkers = False

    def forward(self, x, z=None, x_tokens=None, z_tokens=None, x_mask=None):
        return x


@register_fusion("dmarker_only", kind="baseline")
class DMarkerOnlyFusion(Fusion):
    """Baseline without landmarks: returns the D-Marker vector ``z`` (the model builds no backbone).

    Examples
    --------
    >>> import torch
    >>> z = torch.randn(2, 8)
    >>> bool((DMarkerOnlyFusion(dim=8)(None, z) == z).all())
    True
    """

    uses_landmarks = False

    def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
        return z


@register_fusion("multitask", kind="baseline")
class MultitaskFusion(Fusion):
    """DeepMarkerNet baseline: classify from ``x`` and regress the D-Markers from it (auxiliary task).

    D-Markers are not an input; they are a training target only (loss
    :func:`hadasklearn.nn.multitask_loss`), so inference needs landmarks alone.
    :meth:`predict_dmarkers` is an MLP ``dim -> dim -> n_dmarkers``.

    Parameters
    ----------
    dim : int
        Width of the stream vectors ``x`` and ``z`` and of the output.
    n_dmarkers : int, default=225
        Width of the auxiliary D-Marker prediction.
    dropout : float, default=0.1
        Dropout inside the auxiliary head.

    Examples
    --------
    >>> import torch
    >>> fusion = MultitaskFusion(dim=8, n_dmarkers=225)
    >>> fusion.predict_dmarkers(torch.randn(2, 8)).shape
    torch.Size([2, 225])
    """

    uses_dmarkers = False
    predicts_dmarkers = True

    def __init__(self, *, dim, n_dmarkers=225, dropout=0.1):
        super().__init__(dim=dim, n_dmarkers=n_dmarkers, dropout=dropout)
        self.dmarker_head = Mlp(dim, hidden_features=dim, out_features=n_dmarkers, drop=dropout)

    def forward(self, x, z=None, x_tokens=None, z_tokens=None, x_mask=None):
        return x

    def predict_dmarkers(self, x):
        """Regress the (standardised) D-Markers ``(batch, n_dmarkers)`` from ``x`` ``(batch, dim)``."""
        return self.dmarker_head(x)
