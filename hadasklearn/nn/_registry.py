"""Registries of fusion strategies and landmark backbones (timm-style ``register_*``/``list_*``/``get_*``/``create_*``)."""

from .._registry import Registry

__all__ = [
    "BACKBONES",
    "FUSIONS",
    "create_backbone",
    "create_fusion",
    "get_backbone",
    "get_fusion",
    "list_backbones",
    "list_fusions",
    "register_backbone",
    "register_fusion",
]

FUSIONS = Registry("fusion")
BACKBONES = Registry("backbone")


def register_fusion(name, *, kind="fusion", **tags):
    """Register a fusion module class under ``name``.

    ``kind`` is ``"fusion"`` for the two-stream strategies compared in the study and ``"baseline"``
    for the single-stream / multitask entries (``none``, ``dmarker_only``, ``multitask``).
    """
    if kind not in ("fusion", "baseline"):
        raise ValueError(f"kind must be 'fusion' or 'baseline', got {kind!r}.")
    return FUSIONS.register(name, kind=kind, **tags)


def list_fusions(*, include_baselines=False):
    """Names of the registered fusions, in registration order (baselines appended if asked)."""
    names = FUSIONS.list(kind="fusion")
    if include_baselines:
        names += FUSIONS.list(kind="baseline")
    return names


def get_fusion(name):
    """Return the fusion class registered under ``name``."""
    return FUSIONS.get(name)


def create_fusion(name, /, **kwargs):
    """Instantiate the fusion registered under ``name``."""
    return FUSIONS.create(name, **kwargs)


def register_backbone(name, **tags):
    """Register a landmark backbone class under ``name``."""
    return BACKBONES.register(name, **tags)


def list_backbones():
    """Names of the registered backbones, in registration order."""
    return BACKBONES.list()


def get_backbone(name):
    """Return the backbone class registered under ``name``."""
    return BACKBONES.get(name)


def create_backbone(name, /, **kwargs):
    """Instantiate the backbone registered under ``name``."""
    return BACKBONES.create(name, **kwargs)
