"""Data: the embedded synthetic smile generator and loaders for landmark folders on disk."""

from ._folder import load_landmark_folder, save_landmark_folder
from ._synthetic import SMILE_PRESETS, make_smiles

__all__ = ["SMILE_PRESETS", "load_landmark_folder", "make_smiles", "save_landmark_folder"]
