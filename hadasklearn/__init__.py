"""hadasklearn: genuine vs posed smile recognition from facial-landmark videos, scikit-learn style.

The estimators are imported lazily so that ``import hadasklearn`` (and the pure-numpy D-Marker
path) does not pay for importing torch.
"""

import importlib

__version__ = "0.1.0.dev0"

__all__ = [
    "DMarkerTransformer",
    "HadaSmileClassifier",
    "__version__",
    "amplitude_signals",
    "dmarker_features",
    "smile_phases",
]

_LAZY = {
    "DMarkerTransformer": "._dmarker",
    "dmarker_features": "._dmarker",
    "amplitude_signals": "._dmarker",
    "smile_phases": "._dmarker",
    "HadaSmileClassifier": "._classifier",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
