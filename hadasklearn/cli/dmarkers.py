"""``hadasklearn dmarkers``: a landmark folder to a CSV table of the 225 named D-Marker features."""

import argparse
import csv
import io
import re
import sys
from pathlib import Path

import numpy as np

from .extract import VIDEO_EXTENSIONS, _atomic_write_text

__all__ = ["add_parser", "landmark_files", "run"]

_DESCRIPTION = """\
Compute the D-Markers of Dibeklioglu et al. (3 regions x 3 phases x 25 features) for every
landmark file LANDMARK_DIR/npy/<name>.mp4.npy (or <name>.npy) and write them as a CSV table:
one row per video, a 'name' column (the video name without extensions) and one named column
per feature.
"""


def add_parser(subparsers):
    """Register the ``dmarkers`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "dmarkers",
        help="landmark .npy files -> D-Marker CSV",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("landmark_dir", metavar="LANDMARK_DIR", type=Path, help="folder with an npy/ sub-folder")
    parser.add_argument("--fps", type=_positive_float, required=True, help="frame rate of the videos")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="CSV", help="output CSV file")
    parser.add_argument(
        "--scheme", default="mediapipe478", help="landmark scheme of the files (default: %(default)s)"
    )
    parser.add_argument(
        "--missing",
        choices=["interpolate", "raise"],
        default="interpolate",
        help="frames without a face (NaN rows): interpolate them, or stop with an error "
        "(default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(func=run)
    return parser


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive, finite number, got {text}")
    return value


def _video_name(path):
    name = path.name[: -len(".npy")]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in VIDEO_EXTENSIONS else name


def landmark_files(landmark_dir):
    """Map video name -> ``.npy`` path for ``landmark_dir/npy``, sorted by name.

    ``a.mp4.npy`` and ``a.npy`` both give the name ``"a"``; a name given by two files is an error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "npy").mkdir()
    >>> for n in ("s1.mp4.npy", "s2.npy", "s3.v2.npy"):
    ...     _ = (d / "npy" / n).write_bytes(b"")
    >>> list(landmark_files(d))
    ['s1', 's2', 's3.v2']
    """
    from ..exceptions import DataLayoutError

    folder = Path(landmark_dir) / "npy"
    if not folder.is_dir():
        raise DataLayoutError(
            f"expected the landmark files in '{folder}' (LANDMARK_DIR/npy/<name>.mp4.npy), "
            "but that folder does not exist."
        )
    files = {}
    for path in sorted(folder.glob("*.npy")):
        if path.name.startswith("."):
            continue
        name = _video_name(path)
        if name in files:
            raise DataLayoutError(
                f"two files give the video name {name!r}: '{files[name].name}' and '{path.name}'. Keep one."
            )
        files[name] = path
    if not files:
        raise DataLayoutError(f"no .npy landmark file in '{folder}'.")
    return dict(sorted(files.items()))


def _load(path):
    from ..exceptions import DataLayoutError

    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataLayoutError(f"cannot read '{path}' as a .npy array: {exc}") from None
    if array.ndim != 3 or array.shape[-1] not in (2, 3):
        raise DataLayoutError(
            f"'{path}' holds an array of shape {array.shape}; expected (n_frames, n_landmarks, 2 or 3)."
        )
    return array


def _name_videos(message, names):
    """Add the file's video name after each 'Video <i>' of a validator message, which counts from 0."""

    def named(match):
        i = int(match.group(2))
        return f"{match.group(0)} ('{names[i]}')" if i < len(names) else match.group(0)

    return re.sub(r"\b([Vv]ideo) (\d+)\b", named, message)


def _error(message):
    print(f"hadasklearn dmarkers: error: {message}", file=sys.stderr)


def run(args):
    """Execute ``hadasklearn dmarkers``; returns the exit status (0 ok, 2 bad input)."""
    from .._dmarker import DMarkerTransformer

    files = {}
    try:
        files = landmark_files(args.landmark_dir)
        X = [_load(path) for path in files.values()]
        transformer = DMarkerTransformer(scheme=args.scheme, fps=args.fps, missing=args.missing)
        features = np.asarray(transformer.fit_transform(X))
        columns = [str(c) for c in transformer.get_feature_names_out()]
    except ValueError as exc:  # our layout errors and the validator's errors specialise ValueError
        _error(_name_videos(str(exc), list(files)))
        return 2
    if features.shape != (len(files), len(columns)):
        raise RuntimeError(
            f"DMarkerTransformer returned shape {features.shape} for {len(files)} videos and "
            f"{len(columns)} feature names."
        )

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *columns])
    for name, row in zip(files, features):
        # repr keeps full float precision; NaN/inf are written as 'nan'/'inf', which pandas reads back.
        writer.writerow([name, *(repr(float(v)) for v in row)])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(args.output, buffer.getvalue())
    if not args.quiet:
        print(f"{len(files)} videos x {len(columns)} D-Markers -> {args.output}")
    return 0
