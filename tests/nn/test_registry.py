"""Tests of the fusion and backbone registries of hadasklearn.nn and of the package surface."""

import pytest
import torch

import hadasklearn.nn as hnn
from hadasklearn.exceptions import UnknownNameError
from hadasklearn.nn import (
    Fusion,
    HadaSmileNet,
    LandmarkBackbone,
    create_backbone,
    create_fusion,
    get_backbone,
    get_fusion,
    list_backbones,
    list_fusions,
    register_fusion,
)
from hadasklearn.nn._registry import FUSIONS

# The 15 strategies of the HadaSmileNet study, in the paper's (and the issue's) order.
PAPER_FUSIONS = [
    "concat",
    "gated_concat",
    "additive",
    "hadamard",
    "attention",
    "mh_attention",
    "cross_attention",
    "mh_cross_attention",
    "film",
    "film_hadamard",
    "bilinear",
    "bilinear_hadamard",
    "factorized_bilinear",
    "factorized_bilinear_hadamard",
    "hadamard_gated_concat",
]


def test_fusions_listed_in_paper_order_then_baselines():
    assert list_fusions() == PAPER_FUSIONS
    assert list_fusions(include_baselines=True) == PAPER_FUSIONS + ["none", "dmarker_only", "multitask"]


def test_backbones_listed():
    assert list_backbones() == ["lite", "curvenet"]


@pytest.mark.parametrize("name", list_fusions(include_baselines=True))
def test_every_fusion_declares_what_it_needs(name):
    cls = get_fusion(name)
    assert issubclass(cls, Fusion)
    for attribute in ("uses_landmarks", "uses_dmarkers", "needs_tokens", "needs_vectors"):
        assert isinstance(getattr(cls, attribute), bool)
    # Only the baselines drop a stream; every study fusion reads both.
    two_streams = cls.uses_landmarks and cls.uses_dmarkers
    assert two_streams == (name in PAPER_FUSIONS)


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_is_a_landmark_backbone(name):
    assert issubclass(get_backbone(name), LandmarkBackbone)


@pytest.mark.parametrize(
    ("lookup", "typo", "suggestion"),
    [
        (get_fusion, "hadamart", "hadamard"),
        (get_fusion, "film_hadamar", "film_hadamard"),
        (get_backbone, "curvnet", "curvenet"),
        (lambda name: HadaSmileNet("lite", name), "concatt", "concat"),
        (lambda name: HadaSmileNet(name, "hadamard"), "lit", "lite"),
    ],
)
def test_unknown_name_suggests_and_lists_valid_names(lookup, typo, suggestion):
    with pytest.raises(UnknownNameError, match=f"Did you mean '{suggestion}'") as info:
        lookup(typo)
    assert isinstance(info.value, ValueError)
    assert "Valid" in str(info.value) and repr(suggestion) in str(info.value).split("Valid")[1]


def test_unknown_name_without_close_match_still_lists_names():
    with pytest.raises(UnknownNameError, match="Valid fusion names") as info:
        get_fusion("zzzzzzzz")
    assert "Did you mean" not in str(info.value)
    for name in list_fusions(include_baselines=True):
        assert repr(name) in str(info.value)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_fusion("hadamard")(type("Other", (Fusion,), {}))


def test_register_new_fusion_is_usable_by_the_model():
    @register_fusion("test_sum")
    class SumFusion(Fusion):
        def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
            return x + z

    try:
        assert "test_sum" in list_fusions()
        net = HadaSmileNet(
            "lite", "test_sum", n_landmarks=10, clip_length=2, dim=8,
            backbone_kwargs=dict(embed_dim=4, n_tokens=2, num_heads=2),
        )
        assert net(torch.randn(2, 2, 10, 3), torch.randn(2, 225)).shape == (2, 2)
    finally:
        FUSIONS.unregister("test_sum")
    assert "test_sum" not in list_fusions()


def test_register_fusion_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be"):
        register_fusion("x", kind="other")


def test_create_helpers():
    fusion = create_fusion("hadamard", dim=8)
    assert isinstance(fusion, get_fusion("hadamard")) and fusion.out_dim == 8
    backbone = create_backbone(
        "lite", n_landmarks=10, clip_length=2, dim=8, embed_dim=4, n_tokens=2, num_heads=2
    )
    assert backbone.out_dim == 8


def test_all_is_sorted_and_exists():
    assert hnn.__all__ == sorted(hnn.__all__)
    for name in hnn.__all__:
        assert hasattr(hnn, name), name
