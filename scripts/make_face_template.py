"""Build the neutral 478-point face template of the synthetic generator from a real photo.

Runs MediaPipe Face Mesh (still-image mode, refined landmarks) through
:func:`hadasklearn.video.extract_landmarks_from_image` on scikit-image's astronaut photo
(Eileen Collins, NASA, public domain) and writes

- ``hadasklearn/datasets/data/face_template_mediapipe478.npy``: float32 ``(478, 3)`` in
  MediaPipe-normalised coordinates (``x``, ``y`` image fractions with ``y`` down, ``z`` the
  relative depth as MediaPipe returns it);
- ``hadasklearn/datasets/data/face_template_mediapipe478.json``: provenance.

Re-run with ``python scripts/make_face_template.py`` (needs the ``video`` extra and scikit-image).
"""

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "hadasklearn" / "datasets" / "data"
STEM = "face_template_mediapipe478"


def _atomic_write_text(path, text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_template():
    """Return the (478, 3) float32 template and its provenance dictionary."""
    import mediapipe
    import skimage
    from skimage.data import astronaut

    from hadasklearn.video import extract_landmarks_from_image

    image = astronaut()
    faces = extract_landmarks_from_image(image, refine=True, max_faces=1)
    if faces.shape[0] != 1:
        raise RuntimeError(f"Expected exactly one face in the astronaut photo, found {faces.shape[0]}.")
    template = faces[0].astype(np.float32)
    if not np.all(np.isfinite(template)):
        raise RuntimeError("The template contains non-finite values.")
    provenance = {
        "description": "Neutral MediaPipe Face Mesh template (478 landmarks, refined iris), "
        "normalised image coordinates: x, y in [0, 1] with y pointing down; z relative depth "
        "as returned by MediaPipe (same scale as x).",
        "image": "skimage.data.astronaut() (Eileen Collins, NASA, public domain)",
        "image_size": {"height": int(image.shape[0]), "width": int(image.shape[1])},
        "shape": list(template.shape),
        "dtype": str(template.dtype),
        "mediapipe_version": mediapipe.__version__,
        "scikit_image_version": skimage.__version__,
        "numpy_version": np.__version__,
        "face_mesh_options": {"static_image_mode": True, "refine_landmarks": True, "max_num_faces": 1},
        "date": datetime.date.today().isoformat(),
        "script": "scripts/make_face_template.py",
        "function": "hadasklearn.video.extract_landmarks_from_image",
    }
    return template, provenance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="destination folder")
    args = parser.parse_args(argv)

    from hadasklearn.video import write_landmark_npy

    template, provenance = make_template()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    npy = write_landmark_npy(args.out_dir / f"{STEM}.npy", template)
    _atomic_write_text(args.out_dir / f"{STEM}.json", json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {npy} {template.shape} {template.dtype}")
    print(f"x in [{template[:, 0].min():.4f}, {template[:, 0].max():.4f}], "
          f"y in [{template[:, 1].min():.4f}, {template[:, 1].max():.4f}], "
          f"z in [{template[:, 2].min():.4f}, {template[:, 2].max():.4f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
