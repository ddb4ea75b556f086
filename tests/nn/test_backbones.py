"""Tests of the landmark backbones (hadasklearn.nn.backbones) and their layers (hadasklearn.nn.layers)."""

import copy
import functools
import importlib.util

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hadasklearn.nn import CurveNetBackbone, LiteBackbone, get_backbone, list_backbones
from hadasklearn.nn.layers import (
    FactorizedSpaceTimeTransformer,
    LandmarkTokenPooling,
    MaskedTransformer,
    masked_mean,
    sinusoidal_positions,
)

HAS_CURVENET = importlib.util.find_spec("hadasklearn.nn.curvenet") is not None
N_LANDMARKS, CLIP = 20, 4
TINY = {
    "lite": dict(dim=16, embed_dim=8, n_tokens=4, depth=2, temporal_depth=1, num_heads=2),
    "curvenet": dict(
        dim=32, k=4, n_tokens=4, depth=2, temporal_depth=1, num_heads=2,
        encoder_kwargs=dict(n_curves=4, curve_length=3),
    ),
}
BACKBONES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(name == "curvenet" and not HAS_CURVENET, reason="no CurveNet encoder"),
    )
    for name in list_backbones()
]
# The CurveNet encoder is slow on CPU: secondary checks of it run with the slow tests only.
BACKBONES_CORE = [
    pytest.param(*p.values, marks=[*p.marks, pytest.mark.slow] if p.values[0] == "curvenet" else p.marks)
    for p in BACKBONES
]


@functools.lru_cache(maxsize=None)
def _backbone(name, dropout=0.0):
    torch.manual_seed(0)
    return get_backbone(name)(n_landmarks=N_LANDMARKS, clip_length=CLIP, dropout=dropout, **TINY[name]).eval()


def _clips(batch=3, seed=0):
    return torch.randn(batch, CLIP, N_LANDMARKS, 3, generator=torch.Generator().manual_seed(seed))


MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)


@pytest.mark.parametrize("name", BACKBONES)
def test_shapes_and_finite(name):
    net = _backbone(name)
    tokens, pooled = net(_clips(), MASK)
    assert tokens.shape == (3, CLIP, net.out_dim) and pooled.shape == (3, net.out_dim)
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()
    assert (tokens[~MASK] == 0).all()
    # Shorter clips than clip_length are accepted.
    assert net(_clips()[:, :2])[0].shape == (3, 2, net.out_dim)


@pytest.mark.parametrize("name", BACKBONES)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    net = get_backbone(name)(n_landmarks=N_LANDMARKS, clip_length=CLIP, **TINY[name]).train()
    tokens, pooled = net(_clips(), MASK)
    ((tokens * torch.randn_like(tokens)).sum() + (pooled * torch.randn_like(pooled)).sum()).backward()
    for param_name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize(
    ("name", "train"),
    [pytest.param(*p.values, False, marks=p.marks) for p in BACKBONES_CORE]
    + [pytest.param(*p.values, True, marks=p.marks) for p in BACKBONES],
)
def test_padded_frames_have_no_influence(name, train):
    net = _backbone(name, dropout=0.0).train(train)
    clips = _clips()
    garbage = clips.clone()
    garbage[~MASK] = float("nan")
    garbage[2, 3] = 1e6
    try:
        tokens, pooled = net(clips, MASK)
        tokens_g, pooled_g = net(garbage, MASK)
    finally:
        net.eval()
    torch.testing.assert_close(pooled_g, pooled)
    torch.testing.assert_close(tokens_g[MASK], tokens[MASK])


@settings(max_examples=8, deadline=None)
@given(length=st.integers(1, CLIP), row=st.integers(0, 2))
def test_padding_is_the_same_as_a_shorter_clip(length, row):
    net = _backbone("lite")
    clips = _clips()
    mask = torch.ones(3, CLIP, dtype=torch.bool)
    mask[row, length:] = False
    tokens, pooled = net(clips, mask)
    short_tokens, short_pooled = net(clips[row : row + 1, :length])
    torch.testing.assert_close(short_pooled, pooled[row : row + 1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(short_tokens, tokens[row : row + 1, :length], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BACKBONES)
def test_rows_are_independent_in_eval_mode(name):
    net = _backbone(name)
    clips = _clips()
    _, batched = net(clips, MASK)
    _, single = net(clips[1:2], MASK[1:2])
    torch.testing.assert_close(single, batched[1:2], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BACKBONES_CORE)
def test_output_depends_on_time_and_on_landmarks(name):
    net = _backbone(name)
    clips = _clips(batch=1)
    _, pooled = net(clips)
    _, reversed_pooled = net(clips.flip(1))
    moved = clips.clone()
    moved[:, :, 5] += 0.5  # one landmark moves
    _, moved_pooled = net(moved)
    assert not torch.allclose(pooled, reversed_pooled)
    assert not torch.allclose(pooled, moved_pooled)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize(
    ("landmarks", "mask", "match"),
    [
        (torch.zeros(2, CLIP, N_LANDMARKS + 1, 3), None, "built for 20 landmarks x 3 coordinates"),
        (torch.zeros(2, CLIP, N_LANDMARKS, 2), None, "got 20 x 2"),
        (torch.zeros(2, N_LANDMARKS, 3), None, "expects landmarks of shape"),
        (torch.zeros(2, CLIP + 1, N_LANDMARKS, 3), None, "at most clip_length=4"),
        (torch.zeros(2, CLIP, N_LANDMARKS, 3, dtype=torch.long), None, "floating-point"),
        (torch.zeros(2, CLIP, N_LANDMARKS, 3), torch.ones(2, CLIP), "bool mask"),
        (torch.zeros(2, CLIP, N_LANDMARKS, 3), torch.ones(2, 3, dtype=torch.bool), r"mask of shape"),
        (
            torch.zeros(2, CLIP, N_LANDMARKS, 3),
            torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]).bool(),
            r"clip\(s\) \[1\]",
        ),
        (torch.full((2, CLIP, N_LANDMARKS, 3), float("nan")), None, "NaN or infinite"),
    ],
)
def test_bad_input_raises(name, landmarks, mask, match):
    with pytest.raises(ValueError, match=match):
        _backbone(name)(landmarks, mask)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(dim=10, num_heads=4), "divisible by num_heads"),
        (dict(n_tokens=0), "n_tokens must be a positive int"),
        (dict(dropout=1.0), "dropout must be in"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LiteBackbone(n_landmarks=N_LANDMARKS, clip_length=CLIP, **kwargs)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_published_transformer_parameter_counts():
    # One pre-norm block: dim 256, 4 heads, MLP 512, qkv without bias, proj with bias.
    assert _count(MaskedTransformer(256, 1, num_heads=4, mlp_ratio=2.0)) == 526_336
    assert _count(FactorizedSpaceTimeTransformer(256, 6, num_heads=4, mlp_ratio=2.0)) == 3_158_016
    assert _count(MaskedTransformer(256, 3, num_heads=4, mlp_ratio=2.0)) == 1_579_008
    assert _count(LandmarkTokenPooling(478, 32)) == 15_360


@pytest.mark.parametrize("train", [True, False])
def test_token_pooling_is_the_published_conv1d_layer(train):
    # The batched product must equal Conv1d(n_landmarks, n_tokens, 1) + BatchNorm1d, gradients too.
    torch.manual_seed(0)
    pool = LandmarkTokenPooling(7, 3).train(train)
    with torch.no_grad():
        pool.norm.running_mean.uniform_(-1, 1)
        pool.norm.running_var.uniform_(0.5, 2)
    ref = copy.deepcopy(pool)
    x = torch.randn(5, 7, 4, dtype=torch.float64, requires_grad=True)
    pool.double(), ref.double()
    out = pool(x)
    expected = ref.norm(ref.pool(x))
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (x, pool.pool.weight))
    ref_grads = torch.autograd.grad(expected.square().sum(), (x, ref.pool.weight))
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(pool.norm.running_mean, ref.norm.running_mean)


@pytest.mark.skipif(not HAS_CURVENET, reason="no CurveNet encoder")
def test_curvenet_matches_published_size():
    net = CurveNetBackbone()
    assert _count(net.space_time) == 3_158_016
    assert _count(net.temporal) == 1_579_008
    assert _count(net.pool) == 15_360
    assert abs(_count(net) - 4_895_568) <= 0.05 * 4_895_568
    assert net.out_dim == 256 and len(net.space_time.blocks) == 6


def test_lite_defaults_are_small():
    net = LiteBackbone()
    assert 64 <= net.out_dim <= 128
    assert _count(net) < 0.1 * 4_895_568


def test_space_time_blocks_alternate_time_and_token_attention():
    torch.manual_seed(0)
    layer = FactorizedSpaceTimeTransformer(8, 1, num_heads=2, dropout=0.0).eval()
    x = torch.randn(1, 3, 2, 8)
    y = x.clone()
    y[0, 0, 0] += torch.randn(8)  # change token 0 of frame 0 (not by a constant: LayerNorm)
    out_x, out_y = layer(x), layer(y)
    changed = ~torch.isclose(out_x, out_y).all(dim=-1)
    # A time block mixes frames of the same token only.
    assert changed[0, :, 0].all() and not changed[0, :, 1].any()
    layer = FactorizedSpaceTimeTransformer(8, 2, num_heads=2, dropout=0.0).eval()
    layer.blocks[0] = torch.nn.Identity()  # keep only the token block
    layer.blocks[0].forward = lambda seq, attn_mask=None: seq
    changed = ~torch.isclose(layer(x), layer(y)).all(dim=-1)
    assert changed[0, 0].all() and not changed[0, 1:].any()  # a token block mixes one frame's tokens


def test_masked_transformer_ignores_padded_keys():
    torch.manual_seed(0)
    layer = MaskedTransformer(8, 2, num_heads=2, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    y = x.clone()
    y[0, 3:] = 100.0
    torch.testing.assert_close(layer(y, mask)[0, :3], layer(x, mask)[0, :3])
    torch.testing.assert_close(layer(x[:1, :3]), layer(x, mask)[:1, :3], atol=1e-5, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6),
    keep=st.lists(st.booleans(), min_size=6, max_size=6).filter(any),
)
def test_masked_mean_averages_the_kept_positions(values, keep):
    x = torch.tensor(values, dtype=torch.float64).reshape(1, 6, 1)
    mask = torch.tensor(keep).reshape(1, 6)
    expected = torch.tensor([v for v, k in zip(values, keep) if k], dtype=torch.float64).mean()
    torch.testing.assert_close(masked_mean(x, mask)[0, 0], expected)
    x[~mask] = float("inf")  # whatever sits at masked positions stays out
    torch.testing.assert_close(masked_mean(x, mask)[0, 0], expected)


def test_masked_mean_rejects_empty_rows():
    with pytest.raises(ValueError, match="entirely False"):
        masked_mean(torch.zeros(2, 3, 1), torch.tensor([[True, False, False], [False, False, False]]))


def test_sinusoidal_positions():
    enc = sinusoidal_positions(50, 16)
    assert enc.shape == (50, 16) and enc.abs().max() <= 1.0
    torch.testing.assert_close(enc[:, 0], torch.sin(torch.arange(50.0)))
    torch.testing.assert_close(enc[:, 1], torch.cos(torch.arange(50.0)))
    assert torch.unique(enc, dim=0).shape[0] == 50  # every position is distinct
    assert sinusoidal_positions(4, 5).shape == (4, 5)


def test_token_pooling_rejects_bad_norm():
    with pytest.raises(ValueError, match="norm must be"):
        LandmarkTokenPooling(4, 2, norm="group")
    with pytest.raises(ValueError, match="needs the feature width"):
        LandmarkTokenPooling(4, 2, norm="layer")


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_with_copy_free_qkv_backward_equals_timm_attention(qkv_bias, masked):
    from timm.layers import Attention

    from hadasklearn.nn import layers

    torch.manual_seed(0)
    ours = layers._Attention(16, num_heads=2, qkv_bias=qkv_bias).double()
    theirs = Attention(16, num_heads=2, qkv_bias=qkv_bias).double()
    theirs.load_state_dict(ours.state_dict())
    assert ours.fused_attn  # the overridden path (not timm's fallback) is the one compared
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    mask = layers._key_padding_mask(torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 1, 0, 0, 0]], dtype=torch.bool)) if masked else None
    upstream = torch.randn(3, 5, 16, dtype=torch.float64)
    results = []
    for module in (ours, theirs):
        xx = x.clone().requires_grad_()
        out = module(xx, attn_mask=mask)
        (out * upstream).sum().backward()
        results.append([out.detach(), xx.grad] + [p.grad for p in module.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    weight, bias = ours.qkv.weight.detach().clone().requires_grad_(), None
    if qkv_bias:
        bias = ours.qkv.bias.detach().clone().requires_grad_()
    # only q and v used: the unused k gradient arrives as None
    torch.autograd.gradcheck(
        lambda u, w, b: (lambda q, k, v: (q * v).sum(-1))(*layers._QKV.apply(u, w, b, 2)),
        (x[:2, :3].clone().requires_grad_(), weight, bias),
    )
