"""Tests of HadaSmileNet and the multitask loss (hadasklearn.nn.model), over every backbone x fusion."""

import importlib.util

import pytest
import torch
from timm.layers import Mlp

from hadasklearn.nn import (
    HadamardFusion,
    HadaSmileNet,
    LiteBackbone,
    get_fusion,
    list_backbones,
    list_fusions,
    multitask_loss,
)

HAS_CURVENET = importlib.util.find_spec("hadasklearn.nn.curvenet") is not None
N_LANDMARKS, CLIP, N_DMARKERS = 20, 4, 225
TINY = {
    "lite": dict(dim=16, backbone_kwargs=dict(embed_dim=8, n_tokens=4, num_heads=2)),
    "curvenet": dict(
        dim=32,
        backbone_kwargs=dict(
            k=4, n_tokens=4, depth=2, temporal_depth=1, num_heads=2,
            encoder_kwargs=dict(n_curves=4, curve_length=3),
        ),
    ),
}
FUSION_KWARGS = {"factorized_bilinear": {"hidden": 32}, "factorized_bilinear_hadamard": {"hidden": 32}}
# The CurveNet encoder is slow on CPU: the default run pairs it with the default fusion only
# (dmarker_only builds no backbone); every fusion is covered with lite, and with curvenet under -m slow.
CURVENET_DEFAULT = {"hadamard", "dmarker_only"}
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)


def _combos():
    for backbone in list_backbones():
        for fusion in list_fusions(include_baselines=True):
            marks = []
            if backbone == "curvenet":
                marks.append(pytest.mark.skipif(not HAS_CURVENET, reason="no CurveNet encoder"))
                if fusion not in CURVENET_DEFAULT:
                    marks.append(pytest.mark.slow)
            yield pytest.param(backbone, fusion, marks=marks, id=f"{backbone}-{fusion}")


COMBOS = list(_combos())


def _net(backbone, fusion, **kwargs):
    torch.manual_seed(0)
    options = {**TINY[backbone], "fusion_kwargs": FUSION_KWARGS.get(fusion), **kwargs}
    return HadaSmileNet(backbone, fusion, n_landmarks=N_LANDMARKS, clip_length=CLIP, **options)


def _data(batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    landmarks = torch.randn(batch, CLIP, N_LANDMARKS, 3, generator=g)
    dmarkers = torch.randn(batch, N_DMARKERS, generator=g)
    return landmarks, dmarkers


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize(("backbone", "fusion"), COMBOS)
def test_forward_shapes_and_every_parameter_learns(backbone, fusion):
    net = _net(backbone, fusion).train()
    landmarks, dmarkers = _data()
    out = net(landmarks, dmarkers, MASK)
    logits = _logits(out)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    loss = (logits * torch.randn_like(logits)).sum()
    if net.predicts_dmarkers:
        assert isinstance(out, tuple) and out[1].shape == (3, N_DMARKERS)
        loss = multitask_loss(logits, out[1], torch.tensor([0, 1, 1]), dmarkers, weight=0.5)
    else:
        assert isinstance(out, torch.Tensor)
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("backbone", "fusion"), COMBOS)
def test_inputs_influence_padding_and_batch_independence(backbone, fusion):
    net = _net(backbone, fusion).eval()
    landmarks, dmarkers = _data()
    other_landmarks, other_dmarkers = _data(seed=1)
    reference = _logits(net(landmarks, dmarkers, MASK))

    moved = _logits(net(landmarks + 0.3 * other_landmarks, dmarkers, MASK))
    assert (not torch.isclose(moved, reference).all(dim=1).any()) == net.uses_landmarks
    if not net.uses_landmarks:
        torch.testing.assert_close(moved, reference)
    changed = _logits(net(landmarks, other_dmarkers, MASK))
    assert (not torch.isclose(changed, reference).all(dim=1).any()) == net.uses_dmarkers
    if not net.uses_dmarkers:
        torch.testing.assert_close(changed, reference)

    padded = landmarks.clone()
    padded[~MASK] = float("nan")  # padded frames may hold anything
    torch.testing.assert_close(_logits(net(padded, dmarkers, MASK)), reference)

    single = _logits(net(landmarks[2:], dmarkers[2:], MASK[2:]))
    torch.testing.assert_close(single, reference[2:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("fusion", "uses_landmarks", "uses_dmarkers", "predicts_dmarkers"),
    [
        ("hadamard", True, True, False),
        ("attention", True, True, False),
        ("none", True, False, False),
        ("dmarker_only", False, True, False),
        ("multitask", True, False, True),
    ],
)
def test_stream_properties(fusion, uses_landmarks, uses_dmarkers, predicts_dmarkers):
    net = _net("lite", fusion)
    assert (net.uses_landmarks, net.uses_dmarkers, net.predicts_dmarkers) == (
        uses_landmarks, uses_dmarkers, predicts_dmarkers,
    )
    assert (net.backbone is not None) == uses_landmarks
    assert (net.dmarker_proj is not None) == (uses_dmarkers and get_fusion(fusion).needs_vectors)
    assert (net.dmarker_token_proj is not None) == (uses_dmarkers and get_fusion(fusion).needs_tokens)


def test_single_stream_entries_need_only_their_stream():
    landmarks, dmarkers = _data()
    assert _net("lite", "dmarker_only").eval()(None, dmarkers).shape == (3, 2)
    assert _net("lite", "none").eval()(landmarks).shape == (3, 2)
    logits, dmarker_pred = _net("lite", "multitask").eval()(landmarks, mask=MASK)
    assert logits.shape == (3, 2) and dmarker_pred.shape == (3, N_DMARKERS)


def test_dmarker_tokens_are_region_phase_groups():
    net = _net("lite", "attention").eval()
    _, dmarkers = _data()
    captured = {}
    net.fusion.register_forward_hook(lambda module, args, out: captured.update(z_tokens=args[3]))
    net(_data()[0], dmarkers)
    expected = net.dmarker_token_proj(dmarkers.view(3, 9, 25)) + net.dmarker_token_embed
    torch.testing.assert_close(captured["z_tokens"], expected)


def test_accepts_classes_and_default_dim():
    net = HadaSmileNet(LiteBackbone, HadamardFusion)
    assert net.backbone.out_dim == 64 and net.fusion.out_dim == 64
    assert isinstance(net.head[0], Mlp) and isinstance(net.head[1], torch.nn.LayerNorm)
    assert isinstance(net.head[2], torch.nn.Linear) and net.head[2].out_features == 2


def test_head_hidden_and_n_classes():
    net = _net("lite", "concat", head_hidden=12, n_classes=4).eval()
    assert net.head[1].normalized_shape == (12,)
    assert net(*_data()).shape == (3, 4)


def test_float64_inputs_are_cast():
    net = _net("lite", "hadamard").eval()
    landmarks, dmarkers = _data()
    torch.testing.assert_close(net(landmarks.double(), dmarkers.double()), net(landmarks, dmarkers))


@pytest.mark.parametrize(
    ("fusion", "args", "match"),
    [
        ("hadamard", (torch.zeros(3, CLIP, N_LANDMARKS + 2, 3), torch.zeros(3, 225)), "built for 20 landm"),
        ("hadamard", (torch.zeros(3, CLIP, N_LANDMARKS, 2), torch.zeros(3, 225)), "got 20 x 2"),
        ("hadamard", (torch.zeros(3, CLIP, N_LANDMARKS, 3), None), "needs dmarkers of shape"),
        ("hadamard", (torch.zeros(3, CLIP, N_LANDMARKS, 3), torch.zeros(3, 224)), "must have 225 columns"),
        ("attention", (torch.zeros(3, CLIP, N_LANDMARKS, 3), torch.zeros(225)), r"shape \(batch, 225\)"),
        ("hadamard", (torch.zeros(3, CLIP, N_LANDMARKS, 3), torch.zeros(2, 225)), "batch size: 3 vs 2"),
        ("hadamard", (None, torch.zeros(3, 225)), "needs landmarks"),
        ("dmarker_only", (None, torch.full((3, 225), float("nan"))), "NaN or infinite"),
        ("dmarker_only", (None, torch.zeros(3, 225, dtype=torch.long)), "floating point"),
    ],
)
def test_bad_inputs_raise(fusion, args, match):
    with pytest.raises(ValueError, match=match):
        _net("lite", fusion).eval()(*args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(fusion="attention", n_dmarkers=100), ValueError, "multiple of 9"),
        (dict(n_classes=1), ValueError, "n_classes must be an int >= 2"),
        (dict(backbone=42), TypeError, "registered backbone name"),
        (dict(fusion=HadamardFusion(dim=4)), TypeError, "registered fusion name"),
    ],
)
def test_bad_construction_raises(kwargs, error, match):
    options = {"backbone": "lite", "fusion": "hadamard", **kwargs}
    with pytest.raises(error, match=match):
        HadaSmileNet(options.pop("backbone"), options.pop("fusion"), n_landmarks=N_LANDMARKS, **options)


def test_multitask_loss_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 2, generator=g)
    pred, target = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    y = torch.tensor([0, 1, 1, 0, 1])
    ce = torch.nn.functional.cross_entropy(logits, y)
    mse = ((pred - target) ** 2).mean()
    torch.testing.assert_close(multitask_loss(logits, pred, y, target, 0.3), 0.7 * ce + 0.3 * mse)
    torch.testing.assert_close(multitask_loss(logits, pred, y, target, 0.0), ce)
    torch.testing.assert_close(multitask_loss(logits, pred, y, target, 1.0), mse)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
        multitask_loss(logits, pred, y, target, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        multitask_loss(logits, pred, y, target[:, :3], 0.5)


@pytest.mark.slow
def test_lite_hadamard_learns_a_landmark_and_dmarker_rule():
    """A small net separates clips whose label depends on one landmark's motion and on a D-Marker."""
    torch.manual_seed(0)
    n = 64
    landmarks, dmarkers = _data(batch=n)
    landmarks = 0.1 * landmarks
    y = torch.arange(n) % 2
    landmarks[:, :, 3, 1] += (2 * y[:, None] - 1) * torch.linspace(0, 0.5, CLIP)  # lip corner rises or drops
    dmarkers[:, 0] = 2 * y - 1.0
    net = _net("lite", "hadamard", dropout=0.0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(landmarks, dmarkers), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


@pytest.mark.parametrize(("backbone", "fusion"), COMBOS)
def test_parallel_inference_matches_the_plain_forward(backbone, fusion, two_threads):
    net = _net(backbone, fusion).eval()
    plain = _net(backbone, fusion, parallel_inference=False).eval()
    landmarks, dmarkers = _data(batch=5)
    mask = torch.ones(5, CLIP, dtype=torch.bool)
    mask[0, 3:] = mask[3, 1:] = False
    for args in ((landmarks, dmarkers), (landmarks, dmarkers, mask)):
        with torch.inference_mode():
            expected = plain(*args)
            got = net(*args)
            assert net._splits_batch(*args) == net.uses_landmarks  # dmarker_only is never split
        for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
            assert a.shape == b.shape and a.is_inference()
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        assert not _logits(net(landmarks, dmarkers)).is_inference()  # no_grad stays no_grad in the threads


def test_parallel_inference_only_where_rows_are_independent(two_threads):
    net = _net("lite", "hadamard").eval()
    landmarks, dmarkers = _data(batch=4)
    with torch.no_grad():
        assert net._splits_batch(landmarks, dmarkers, None)
        assert not net._splits_batch(landmarks[:1], dmarkers[:1], None)  # one clip
        assert not net._splits_batch(landmarks, dmarkers[:3], None)  # sizes disagree: plain path raises
        net.backbone.space_time.train()
        assert not net._splits_batch(landmarks, dmarkers, None)  # any module training: batch statistics
        net.eval()
        torch.set_num_threads(1)
        assert not net._splits_batch(landmarks, dmarkers, None)
        torch.set_num_threads(2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not net._splits_batch(landmarks, dmarkers, None)
    assert not net._splits_batch(landmarks, dmarkers, None)  # autograd on
    assert not _net("lite", "hadamard", parallel_inference=False).eval()._splits_batch(landmarks, dmarkers, None)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.zeros(3, CLIP, N_LANDMARKS + 2, 3), torch.zeros(3, 225)), "built for 20 landm"),
        ((torch.zeros(3, CLIP, N_LANDMARKS, 3), torch.zeros(2, 225)), "batch size: 3 vs 2"),
        ((torch.full((3, CLIP, N_LANDMARKS, 3), float("nan")), torch.zeros(3, 225)), "NaN"),
        ((torch.zeros(3, CLIP, N_LANDMARKS, 3), torch.full((3, 225), float("inf"))), "NaN or infinite"),
    ],
)
def test_bad_inputs_raise_the_same_errors_under_parallel_inference(args, match, two_threads):
    with torch.inference_mode(), pytest.raises(ValueError, match=match):
        _net("lite", "hadamard").eval()(*args)
