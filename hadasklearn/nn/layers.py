"""Shared building blocks of the landmark backbones: masked pooling, sinusoidal positions and transformers."""

import math

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block
from torch import nn

from . import _blas
from ._dropout import HashDropout

__all__ = [
    "FactorizedSpaceTimeTransformer",
    "LandmarkTokenPooling",
    "MaskedTransformer",
    "masked_mean",
    "sinusoidal_positions",
]


def masked_mean(x, mask=None, dim=1):
    """Mean of ``x`` over ``dim`` counting only the positions where ``mask`` is True.

    Parameters
    ----------
    x : torch.Tensor
        Values, e.g. ``(batch, time, features)``.
    mask : torch.Tensor of bool or None, default=None
        ``x.shape[:dim + 1]``-shaped mask, True for positions to average. ``None`` averages all.
    dim : int, default=1
        Dimension to reduce (non-negative).

    Returns
    -------
    torch.Tensor
        ``x`` with dimension ``dim`` removed.

    Raises
    ------
    ValueError
        If a row has no True entry in ``mask`` (its mean would be undefined).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
    >>> masked_mean(x, torch.tensor([[True, True, False]]))
    tensor([[2.]])
    """
    if mask is None:
        return x.mean(dim=dim)
    weights = mask.to(x.dtype)
    count = weights.sum(dim=dim, keepdim=True)
    if bool((count == 0).any()):
        raise ValueError(
            "masked_mean got a row whose mask is entirely False; every clip needs at least one "
            "real frame (mask True)."
        )
    weights = weights / count
    while weights.dim() < x.dim():
        weights = weights.unsqueeze(-1)
    # torch.where (not multiplication) so that non-finite values at masked positions cannot leak in.
    return torch.where(weights > 0, x * weights, x.new_zeros(())).sum(dim=dim)


def sinusoidal_positions(n_positions, dim):
    """Fixed sinusoidal position encodings of Vaswani et al. (2017).

    Parameters
    ----------
    n_positions : int
        Number of positions.
    dim : int
        Encoding width (even or odd).

    Returns
    -------
    torch.Tensor
        ``(n_positions, dim)`` float32; even columns ``sin(p / 10000^(2i/dim))``, odd columns ``cos``.

    References
    ----------
    .. [1] A. Vaswani et al., "Attention is all you need", NeurIPS 2017.

    Examples
    --------
    >>> sinusoidal_positions(16, 8).shape
    torch.Size([16, 8])
    >>> sinusoidal_positions(3, 4)[0].tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = position * inv_freq
    encoding = torch.zeros(n_positions, dim)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return encoding


def _key_padding_mask(mask, repeats=1):
    """Boolean SDPA mask ``(batch * repeats, 1, 1, time)``, True where attention is allowed."""
    if mask is None or bool(mask.all()):
        return None  # the fast path: no masking needed
    key_mask = mask[:, None, None, :]
    if repeats > 1:
        key_mask = key_mask.repeat_interleave(repeats, dim=0)
    return key_mask


def _hash_dropouts(module):
    """Replace every ``nn.Dropout`` inside ``module`` by a :class:`HashDropout` of the same rate."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, HashDropout(child.p))
        else:
            _hash_dropouts(child)
    return module


class _Linear(nn.Linear):
    """:class:`torch.nn.Linear` (same parameters and state_dict) whose products use :mod:`._blas`."""

    def forward(self, x):
        """As :meth:`torch.nn.Linear.forward`."""
        return _blas.linear(x, self.weight, self.bias)


def _blas_linears(module):
    """Make every plain ``nn.Linear`` inside ``module`` a :class:`_Linear` (in place; same state)."""
    for child in module.modules():
        if type(child) is nn.Linear:
            child.__class__ = _Linear
    return module


class _QKV(torch.autograd.Function):
    """``q, k, v`` (batch, heads, seq, head_dim) views of ``x @ W.T (+ b)``, as timm's attention splits them.

    Autograd's backward of that split stacks the three gradients and copies them into the
    (batch, seq, 3 * dim) layout before the projection's backward (a third of an attention
    layer's backward time on CPU here). Here each gradient goes through its third of the weight
    directly; scaled_dot_product_attention returns them in the (batch, seq, heads, head_dim)
    memory order the flattening needs, so they are not copied at all.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, heads):
        batch, seq, _ = x.shape
        flat = x.reshape(batch * seq, -1)
        qkv = _blas.linear(flat, weight, bias).view(batch, seq, 3, heads, -1)
        ctx.save_for_backward(flat, weight)
        ctx.shape, ctx.has_bias = x.shape, bias is not None
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def backward(ctx, *grads):
        flat, weight = ctx.saved_tensors
        width = weight.shape[0] // 3
        parts = [
            flat.new_zeros(flat.shape[0], width) if g is None else g.transpose(1, 2).reshape(flat.shape[0], width)
            for g in grads
        ]
        rows = [slice(s * width, (s + 1) * width) for s in range(3)]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _blas.mm(parts[0], weight[rows[0]])
            for g, r in zip(parts[1:], rows[1:]):
                _blas.addmm_(grad_x, g, weight[r])
            grad_x = grad_x.view(ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(weight)
            for g, r in zip(parts, rows):
                _blas.mm(g.T, flat, out=grad_w[r])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = torch.cat([g.sum(0) for g in parts])
        return grad_x, grad_w, grad_b, None


class _Attention(Attention):
    """timm's :class:`~timm.layers.Attention` (same parameters and outputs) with :class:`_QKV`'s backward."""

    def forward(self, x, attn_mask=None, is_causal=False):
        """As :meth:`timm.layers.Attention.forward`."""
        if not self.fused_attn or self.gate is not None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        batch, seq, _ = x.shape
        q, k, v = _QKV.apply(x, self.qkv.weight, self.qkv.bias, self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout = self.attn_drop.p if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, is_causal=is_causal)
        x = self.norm(x.transpose(1, 2).reshape(batch, seq, self.attn_dim))
        return self.proj_drop(self.proj(x))


def _blocks(dim, depth, num_heads, mlp_ratio, dropout, drop_path):
    # timm's pre-norm ViT block; qkv without bias as in the published MeshSmileNet transformer.
    # Its attention's q/k/v split has a copy-free backward (_Attention, same state_dict).
    # Its dropouts (same rates, same state_dict) keep no mask for backward and are several times
    # faster on CPU (see hadasklearn.nn._dropout). Its linear layers (same state_dict) multiply
    # through numpy's OpenBLAS where torch runs single-threaded (see hadasklearn.nn._blas).
    rates = torch.linspace(0, drop_path, depth).tolist() if depth else []
    blocks = (
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=False, proj_drop=dropout, drop_path=rate, attn_layer=_Attention)
        for rate in rates
    )
    return nn.ModuleList(_blas_linears(_hash_dropouts(block)) for block in blocks)


class MaskedTransformer(nn.Module):
    """A stack of pre-norm transformer blocks over time whose attention ignores padded frames.

    Parameters
    ----------
    dim : int
        Token width.
    depth : int
        Number of blocks.
    num_heads : int, default=4
        Attention heads (must divide ``dim``).
    mlp_ratio : float, default=2.0
        MLP hidden width as a multiple of ``dim``.
    dropout : float, default=0.1
        Dropout after the attention projection and in the MLP.
    drop_path : float, default=0.0
        Stochastic-depth rate of the last block (linearly increasing from 0).

    Examples
    --------
    >>> import torch
    >>> layer = MaskedTransformer(8, depth=1, num_heads=2).eval()
    >>> layer(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, dim, depth, *, num_heads=4, mlp_ratio=2.0, dropout=0.1, drop_path=0.0):
        super().__init__()
        self.blocks = _blocks(dim, depth, num_heads, mlp_ratio, dropout, drop_path)

    def forward(self, x, mask=None):
        """Transform ``x`` ``(batch, time, dim)``; ``mask`` ``(batch, time)`` True = real frame."""
        attn_mask = _key_padding_mask(mask)
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        return x


class FactorizedSpaceTimeTransformer(nn.Module):
    """Transformer over ``(time, token)`` grids whose blocks alternate time and token attention.

    Block ``0, 2, 4, ...`` attends over time for each token (padded frames masked out as keys);
    block ``1, 3, 5, ...`` attends over the tokens of each real frame (padded frames skipped). This is
    the factorised space-time attention of the MeshSmileNet/HadaSmileNet landmark encoder (and of
    TimeSformer's divided attention, Bertasius et al. 2021), shared by the ``lite`` and ``curvenet``
    backbones.

    Parameters
    ----------
    dim : int
        Token width.
    depth : int
        Number of blocks (time and token blocks together).
    num_heads : int, default=4
        Attention heads (must divide ``dim``).
    mlp_ratio : float, default=2.0
        MLP hidden width as a multiple of ``dim``.
    dropout : float, default=0.1
        Dropout after the attention projection and in the MLP.
    drop_path : float, default=0.0
        Stochastic-depth rate of the last block (linearly increasing from 0).

    References
    ----------
    .. [1] G. Bertasius, H. Wang, L. Torresani, "Is space-time attention all you need for video
       understanding?", ICML 2021.

    Examples
    --------
    >>> import torch
    >>> layer = FactorizedSpaceTimeTransformer(8, depth=2, num_heads=2).eval()
    >>> layer(torch.randn(2, 5, 3, 8)).shape
    torch.Size([2, 5, 3, 8])
    """

    def __init__(self, dim, depth, *, num_heads=4, mlp_ratio=2.0, dropout=0.1, drop_path=0.0):
        super().__init__()
        self.blocks = _blocks(dim, depth, num_heads, mlp_ratio, dropout, drop_path)

    def forward(self, x, mask=None):
        """Transform ``x`` ``(batch, time, tokens, dim)``; ``mask`` ``(batch, time)`` True = real frame."""
        batch, time, tokens, dim = x.shape
        attn_mask = _key_padding_mask(mask, repeats=tokens)
        all_real = attn_mask is None
        for index, block in enumerate(self.blocks):
            if index % 2 == 0:
                seq = x.transpose(1, 2).reshape(batch * tokens, time, dim)
                seq = block(seq, attn_mask=attn_mask)
                x = seq.reshape(batch, tokens, time, dim).transpose(1, 2)
            elif all_real:
                x = block(x.reshape(batch * time, tokens, dim)).reshape(batch, time, tokens, dim)
            else:
                # Only real frames: padded ones would cost compute and are never read as keys.
                x = x.masked_scatter(mask[:, :, None, None], block(x[mask]))
        return x


class LandmarkTokenPooling(nn.Module):
    """Learned pooling of per-landmark features into a few tokens: 1x1 ``Conv1d`` over landmarks + norm.

    Each output token is a learned weighted sum of all landmarks' features (the channel axis of the
    convolution is the landmark axis), as in the MeshSmileNet encoder.

    Parameters
    ----------
    n_landmarks : int
        Landmarks per frame (input channels).
    n_tokens : int
        Output tokens per frame.
    norm : {"batch", "layer"}, default="batch"
        ``"batch"``: ``BatchNorm1d(n_tokens)`` (the published layer); ``"layer"``: ``LayerNorm`` over
        the feature width (needs ``dim``), independent of the other frames of the batch.
    dim : int or None, default=None
        Feature width, required for ``norm="layer"``.

    Examples
    --------
    >>> import torch
    >>> pool = LandmarkTokenPooling(20, 4)
    >>> pool(torch.randn(6, 20, 8)).shape
    torch.Size([6, 4, 8])
    """

    def __init__(self, n_landmarks, n_tokens, *, norm="batch", dim=None):
        super().__init__()
        self.pool = nn.Conv1d(n_landmarks, n_tokens, kernel_size=1, bias=False)
        if norm == "batch":
            self.norm = nn.BatchNorm1d(n_tokens)
        elif norm == "layer":
            if dim is None:
                raise ValueError("LandmarkTokenPooling(norm='layer') needs the feature width `dim`.")
            self.norm = nn.LayerNorm(dim)
        else:
            raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}.")

    def forward(self, x):
        """Pool ``(frames, n_landmarks, dim)`` features into ``(frames, n_tokens, dim)`` tokens."""
        # The 1x1 convolution as a batched product with the weight broadcast over frames: the same
        # values, but on CPU about 4x faster forward and 2x faster forward + backward than
        # Conv1d's kernel for (256 frames, 478 landmarks, 256 features).
        weight = self.pool.weight.squeeze(-1)
        return self.norm(torch.bmm(weight.expand(x.shape[0], -1, -1), x))
