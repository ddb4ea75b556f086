"""Errors and warnings raised by hadasklearn; each specialises the builtin or scikit-learn type it refines."""

__all__ = [
    "DataLayoutError",
    "LandmarkValidationError",
    "MissingFramesWarning",
    "UnknownNameError",
]


class LandmarkValidationError(ValueError):
    """Landmark input ``X`` does not have the expected form, shape or values."""


class UnknownNameError(ValueError):
    """A name looked up in a registry (fusion, backbone, scheme, ...) is not registered."""


class DataLayoutError(ValueError):
    """A landmark folder on disk does not follow the documented layout."""


class MissingFramesWarning(UserWarning):
    """Frames without a face (all-NaN rows) were found and handled by the missing-frame policy."""
