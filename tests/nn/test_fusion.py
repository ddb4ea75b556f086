"""Tests of the fusion modules of hadasklearn.nn.fusion (tensor level, no backbone)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hadasklearn.nn import (
    AdditiveFusion,
    AttentionFusion,
    BilinearFusion,
    CrossAttentionFusion,
    FactorizedBilinearFusion,
    FilmFusion,
    GatedConcatFusion,
    HadamardFusion,
    HadamardGatedConcatFusion,
    MultiHeadCrossAttentionFusion,
    MultitaskFusion,
    get_fusion,
    list_fusions,
)

DIM, BATCH, TIME = 8, 3, 5
OPTIONS = {"factorized_bilinear": {"hidden": 16}, "factorized_bilinear_hadamard": {"hidden": 16}}
ALL = list_fusions(include_baselines=True)


def _make(name, **kwargs):
    torch.manual_seed(0)
    return get_fusion(name)(dim=DIM, **{**OPTIONS.get(name, {}), **kwargs}).eval()


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, z = torch.randn(BATCH, DIM, generator=g), torch.randn(BATCH, DIM, generator=g)
    x_tokens = torch.randn(BATCH, TIME, DIM, generator=g)
    z_tokens = torch.randn(BATCH, 9, DIM, generator=g)
    x_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    return x, z, x_tokens, z_tokens, x_mask


def _call(fusion, x, z, x_tokens, z_tokens, x_mask):
    # Give each fusion only what it declares it reads, as the model does.
    if not fusion.needs_vectors:
        x = z = None
    if not fusion.needs_tokens:
        x_tokens_in, z_tokens_in = x_tokens, None
    else:
        x_tokens_in, z_tokens_in = x_tokens, z_tokens
    if not fusion.uses_dmarkers:
        z = z_tokens_in = None
    if not fusion.uses_landmarks:
        x = x_tokens_in = x_mask = None
    return fusion(x, z, x_tokens_in, z_tokens_in, x_mask)


@pytest.mark.parametrize("name", ALL)
def test_shape_finite_and_gradients(name):
    fusion = _make(name).train()
    inputs = [t.requires_grad_() if t.is_floating_point() else t for t in _inputs()]
    out = _call(fusion, *inputs)
    assert out.shape == (BATCH, fusion.out_dim)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for param_name, param in fusion.named_parameters():
        if param_name.startswith("dmarker_head"):
            continue  # multitask's auxiliary head is trained through predict_dmarkers
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize("name", ALL)
def test_each_declared_stream_influences_the_output(name):
    fusion = _make(name)
    x, z, x_tokens, z_tokens, x_mask = _inputs()
    reference = _call(fusion, x, z, x_tokens, z_tokens, x_mask)
    # Perturb the landmark stream (vector and real tokens) and, separately, the D-Marker stream.
    # Random (not constant or scaling) perturbations: LayerNorm is invariant to those.
    g = torch.Generator().manual_seed(1)
    landmark_changed = _call(
        fusion, x + torch.randn(x.shape, generator=g), z,
        x_tokens + torch.randn(x_tokens.shape, generator=g), z_tokens, x_mask,
    )
    dmarker_changed = _call(
        fusion, x, z + torch.randn(z.shape, generator=g),
        x_tokens, z_tokens + torch.randn(z_tokens.shape, generator=g), x_mask,
    )
    assert (not torch.allclose(reference, landmark_changed)) == fusion.uses_landmarks
    assert (not torch.allclose(reference, dmarker_changed)) == fusion.uses_dmarkers


@pytest.mark.parametrize("name", [n for n in ALL if get_fusion(n).needs_tokens])
def test_token_fusions_attend_to_every_clip_of_both_streams(name):
    """The released code attended over one token, which ignored the landmark stream; check each row."""
    fusion = _make(name)
    x, z, x_tokens, z_tokens, x_mask = _inputs()
    reference = fusion(None, None, x_tokens, z_tokens, x_mask)
    g = torch.Generator().manual_seed(1)
    for changed in (
        fusion(None, None, x_tokens, z_tokens + torch.randn(z_tokens.shape, generator=g), x_mask),
        fusion(None, None, x_tokens + torch.randn(x_tokens.shape, generator=g), z_tokens, x_mask),
    ):
        assert not torch.isclose(reference, changed).all(dim=1).any()


@settings(max_examples=10, deadline=None)
@given(
    name=st.sampled_from([n for n in ALL if get_fusion(n).needs_tokens]),
    lengths=st.lists(st.integers(1, TIME), min_size=BATCH, max_size=BATCH),
    fill=st.floats(-1e6, 1e6),
)
def test_token_fusions_ignore_padded_frames(name, lengths, fill):
    fusion = _make(name)
    _, _, x_tokens, z_tokens, _ = _inputs()
    x_mask = torch.arange(TIME)[None, :] < torch.tensor(lengths)[:, None]
    padded = torch.where(x_mask[:, :, None], x_tokens, torch.full_like(x_tokens, fill))
    expected = fusion(None, None, x_tokens, z_tokens, x_mask)
    torch.testing.assert_close(fusion(None, None, padded, z_tokens, x_mask), expected)
    # A clip cut to its real frames gives the same result as the padded clip.
    for row, length in enumerate(lengths):
        alone = fusion(None, None, x_tokens[row : row + 1, :length], z_tokens[row : row + 1], None)
        torch.testing.assert_close(alone, expected[row : row + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_rows_are_independent_in_eval_mode(name):
    fusion = _make(name)
    inputs = _inputs()
    batched = _call(fusion, *inputs)
    single = _call(fusion, *[t[:1] for t in inputs])
    torch.testing.assert_close(single, batched[:1], atol=1e-5, rtol=1e-5)


def test_hadamard_is_the_product_of_the_projections():
    fusion = _make("hadamard")
    x, z, *_ = _inputs()
    torch.testing.assert_close(fusion(x, z), fusion.proj_x(x) * fusion.proj_z(z))
    with torch.no_grad():
        fusion.proj_z.weight.zero_()
        fusion.proj_z.bias.zero_()
    assert (fusion(x, z) == 0).all()  # a product, not a sum: no landmark signal survives z' = 0


def test_gated_concat_mixes_convexly():
    fusion = _make("gated_concat")
    x, z, *_ = _inputs()
    out = fusion(x, z)
    low, high = torch.minimum(x, z), torch.maximum(x, z)
    assert ((out >= low - 1e-6) & (out <= high + 1e-6)).all()
    torch.testing.assert_close(_make("hadamard_gated_concat")(x, z), out + x * z)


def test_additive_weights_are_a_softmax_over_the_two_streams():
    fusion = _make("additive")
    x, z, *_ = _inputs()
    xp, zp = fusion.proj_x(x), fusion.proj_z(z)
    out = fusion(x, z)
    low, high = torch.minimum(xp, zp), torch.maximum(xp, zp)
    assert ((out >= low - 1e-6) & (out <= high + 1e-6)).all()


def test_film_modulation_is_unconstrained():
    """gamma and beta may be negative (the released code's ReLU clipped them)."""
    fusion = _make("film")
    x, z, *_ = _inputs()
    with torch.no_grad():
        fusion.film.mlp.fc2.weight.zero_()
        fusion.film.mlp.fc2.bias.copy_(torch.cat([torch.full((DIM,), -3.0), torch.full((DIM,), -1.0)]))
    normed = torch.nn.functional.layer_norm(x, (DIM,))
    torch.testing.assert_close(fusion(x, z), -2.0 * normed - 1.0)
    torch.testing.assert_close(_make("film_hadamard").film.norm(x), normed)


def test_bilinear_sizes():
    assert sum(p.numel() for p in BilinearFusion(dim=DIM).parameters()) == DIM**3 + DIM
    x, z, *_ = _inputs()
    fusion = _make("bilinear")
    expected = torch.einsum("bi,oij,bj->bo", x, fusion.bilinear.weight, z) + fusion.bilinear.bias
    torch.testing.assert_close(fusion(x, z), expected)


def test_factorized_bilinear_sum_pools_the_product():
    fusion = FactorizedBilinearFusion(dim=DIM, hidden=12, factor=3, dropout=0.0)
    x, z, *_ = _inputs()
    mfb = fusion.mfb
    product = mfb.proj_x(x) * mfb.proj_z(z)
    pooled = product[:, 0::3] + product[:, 1::3] + product[:, 2::3]
    torch.testing.assert_close(fusion(x, z), mfb.out(pooled))
    assert mfb.out.in_features == 4


def test_multitask_head_width():
    fusion = MultitaskFusion(dim=DIM, n_dmarkers=45)
    assert fusion.predict_dmarkers(torch.randn(2, DIM)).shape == (2, 45)
    assert fusion.predicts_dmarkers and not fusion.uses_dmarkers


def test_mh_cross_attention_is_symmetric_and_multi_head():
    fusion = MultiHeadCrossAttentionFusion(dim=DIM)
    assert fusion.symmetric and fusion.x_to_z.num_heads == 4
    single = CrossAttentionFusion(dim=DIM)
    assert not single.symmetric and single.x_to_z.num_heads == 1
    assert AttentionFusion(dim=DIM).attn.num_heads == 1


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: AttentionFusion(dim=DIM, num_heads=3), "divisible by num_heads"),
        (lambda: CrossAttentionFusion(dim=DIM, num_heads=0), "num_heads must be a positive int"),
        (lambda: FactorizedBilinearFusion(dim=DIM, hidden=10, factor=4), "divisible by factor"),
        (lambda: HadamardFusion(dim=0), "dim must be a positive int"),
        (lambda: GatedConcatFusion(dim=DIM, dropout=1.5), "dropout must be in"),
        (lambda: FilmFusion(dim=DIM, n_dmarkers=-1), "n_dmarkers must be a positive int"),
    ],
)
def test_bad_options_raise(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        HadamardGatedConcatFusion(dim=DIM, hidden=3)
    with pytest.raises(TypeError):
        AdditiveFusion(dim=DIM, num_heads=2)
