"""Registries of fusion strategies and landmark backbones (timm style: ``register_*``, ``list_*``...)."""

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
    """Register a fusion module class under ``name`` (class decorator); extra keywords are stored as tags.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"hadamard"``; a duplicate raises ``ValueError``.
    kind : {"fusion", "baseline"}, default="fusion"
        ``"fusion"`` for the two-stream strategies compared in the study, ``"baseline"`` for the
        single-stream / multitask entries (``none``, ``dmarker_only``, ``multitask``).

    Returns
    -------
    callable
        The decorator, which returns the class unchanged.

    Examples
    --------
    >>> from hadasklearn.nn import Fusion, list_fusions, register_fusion
    >>> from hadasklearn.nn._registry import FUSIONS
    >>> @register_fusion("doc_sum")
    ... class SumFusion(Fusion):
    ...     def forward(self, x, z, x_tokens=None, z_tokens=None, x_mask=None):
    ...         return x + z
    >>> "doc_sum" in list_fusions()
    True
    >>> FUSIONS.unregister("doc_sum")
    """
    if kind not in ("fusion", "baseline"):
        raise ValueError(f"kind must be 'fusion' or 'baseline', got {kind!r}.")
    return FUSIONS.register(name, kind=kind, **tags)


def list_fusions(*, include_baselines=False):
    """Names of the registered fusions, in registration order.

    Parameters
    ----------
    include_baselines : bool, default=False
        Append the baselines (``none``, ``dmarker_only``, ``multitask``) after the fusions.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from hadasklearn.nn import list_fusions
    >>> list_fusions()[:4]
    ['concat', 'gated_concat', 'additive', 'hadamard']
    >>> list_fusions(include_baselines=True)[-3:]
    ['none', 'dmarker_only', 'multitask']
    """
    names = FUSIONS.list(kind="fusion")
    if include_baselines:
        names += FUSIONS.list(kind="baseline")
    return names


def get_fusion(name):
    """Return the fusion class registered under ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_fusions` (``include_baselines=True``).

    Returns
    -------
    type

    Raises
    ------
    hadasklearn.exceptions.UnknownNameError
        For an unknown name, with the closest valid name and the list of valid names.

    Examples
    --------
    >>> from hadasklearn.nn import get_fusion
    >>> get_fusion("hadamard").__name__
    'HadamardFusion'
    """
    return FUSIONS.get(name)


def create_fusion(name, /, **kwargs):
    """Instantiate the fusion registered under ``name`` with the keyword arguments (``dim=`` required).

    Parameters
    ----------
    name : str
        A name from :func:`list_fusions` (``include_baselines=True``).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> from hadasklearn.nn import create_fusion
    >>> create_fusion("hadamard", dim=8).out_dim
    8
    """
    return FUSIONS.create(name, **kwargs)


def register_backbone(name, **tags):
    """Register a landmark backbone class under ``name`` (class decorator); extra keywords are stored as tags.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"lite"``; a duplicate raises ``ValueError``.

    Returns
    -------
    callable
        The decorator, which returns the class unchanged.
    """
    return BACKBONES.register(name, **tags)


def list_backbones():
    """Names of the registered backbones, in registration order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from hadasklearn.nn import list_backbones
    >>> list_backbones()
    ['lite', 'curvenet']
    """
    return BACKBONES.list()


def get_backbone(name):
    """Return the backbone class registered under ``name``.

    Parameters
    ----------
    name : str
        A name from :func:`list_backbones`.

    Returns
    -------
    type

    Raises
    ------
    hadasklearn.exceptions.UnknownNameError
        For an unknown name, with the closest valid name and the list of valid names.

    Examples
    --------
    >>> from hadasklearn.nn import get_backbone
    >>> get_backbone("lite").__name__
    'LiteBackbone'
    """
    return BACKBONES.get(name)


def create_backbone(name, /, **kwargs):
    """Instantiate the backbone registered under ``name`` with the keyword arguments.

    Parameters
    ----------
    name : str
        A name from :func:`list_backbones`.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> from hadasklearn.nn import create_backbone
    >>> create_backbone("lite", n_landmarks=20, dim=16, embed_dim=8, n_tokens=4).out_dim
    16
    """
    return BACKBONES.create(name, **kwargs)
