"""hadasklearn: genuine vs posed smile recognition from facial-landmark videos, scikit-learn style."""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
