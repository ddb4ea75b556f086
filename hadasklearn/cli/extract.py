"""``hadasklearn extract``: a folder of videos to a landmark folder (``npy/<name>.mp4.npy``), resumably."""

import argparse
import csv
import io
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "add_parser", "find_videos", "run"]

#: File extensions (lower case) treated as videos; anything else in VIDEO_DIR is ignored.
VIDEO_EXTENSIONS = frozenset(
    {".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv"}
)

_DESCRIPTION = """\
Run MediaPipe Face Mesh on every video of VIDEO_DIR (not recursive) and write one float32
array (n_frames, 478, 3) per video to OUT_DIR/npy/<file name>.npy, e.g. smile_1.mp4 ->
OUT_DIR/npy/smile_1.mp4.npy, the layout load_landmark_folder reads. Frames without a face
are NaN rows. Outputs that already exist are skipped, so an interrupted run can be resumed;
each file is written atomically. Needs the optional extra: pip install "hadasklearn[video]".
"""


def add_parser(subparsers):
    """Register the ``extract`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "extract",
        help="videos -> MediaPipe landmark .npy files",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video_dir", metavar="VIDEO_DIR", type=Path, help="folder holding the videos")
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="landmark folder to create or complete")
    parser.add_argument(
        "--labels",
        metavar="CSV",
        type=Path,
        help="CSV with columns name,label[,subject][,fps] (name = video file name without extension); "
        "copied to OUT_DIR/index.csv",
    )
    parser.add_argument("--n-jobs", metavar="N", type=_positive_int, default=1, help="videos processed in parallel")
    parser.add_argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="process every frame as a still image instead of tracking the face (slower)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.set_defaults(func=run)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def find_videos(video_dir):
    """Sorted video files directly inside ``video_dir`` (by extension, case-insensitive).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("b.MP4", "a.avi", "notes.txt", ".hidden.mp4"):
    ...     _ = (d / n).write_bytes(b"")
    >>> [p.name for p in find_videos(d)]
    ['a.avi', 'b.MP4']
    """
    return sorted(
        p
        for p in Path(video_dir).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS
    )


def _output_path(out_dir, video):
    return Path(out_dir) / "npy" / f"{video.name}.npy"


def _extract_one(video, out_path, tracking):
    """Worker: extract one video and write it; return (n_frames, n_without_face)."""
    from ..video import _read_landmarks, write_landmark_npy

    landmarks, _fps, n_missing = _read_landmarks(
        video, refine=True, tracking=tracking, max_faces=1, progress=False
    )
    write_landmark_npy(out_path, landmarks[:, 0])
    return len(landmarks), n_missing


def _error(message):
    print(f"hadasklearn extract: error: {message}", file=sys.stderr)


def _read_labels(path):
    """Check the labels CSV header; return (text, names)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read the labels file '{path}': {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    missing = [c for c in ("name", "label") if c not in fields]
    if missing:
        raise ValueError(
            f"the labels file '{path}' must have a header with columns name,label[,subject][,fps]; "
            f"missing {missing}, found {fields}."
        )
    reader.fieldnames = fields
    names = [row["name"].strip() for row in reader]
    return text, names


def _atomic_write_text(path, text):
    from ..video import _default_file_mode

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _preview(names, k=5):
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def run(args):
    """Execute ``hadasklearn extract``; returns the exit status (0 ok, 1 some video failed, 2 bad input)."""
    from ..video import _import_cv2, _import_mediapipe

    if not args.video_dir.is_dir():
        _error(f"VIDEO_DIR '{args.video_dir}' is not a directory.")
        return 2
    labels = None
    if args.labels is not None:
        try:
            labels = _read_labels(args.labels)
        except ValueError as exc:
            _error(str(exc))
            return 2
    try:
        _import_mediapipe()
        _import_cv2()
    except ImportError as exc:
        _error(str(exc))
        return 2

    videos = find_videos(args.video_dir)
    if not videos:
        _error(
            f"no video found in '{args.video_dir}' (looked for the extensions {', '.join(sorted(VIDEO_EXTENSIONS))})."
        )
        return 2
    stems = {}
    for v in videos:
        stems.setdefault(v.stem, []).append(v.name)
    clashes = [names for names in stems.values() if len(names) > 1]
    if clashes:
        # Labels and load_landmark_folder address videos by the name without extension.
        _error(f"several videos share a name once the extension is dropped: {clashes}. Rename them.")
        return 2

    out_npy = args.out_dir / "npy"
    out_npy.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        text, names = labels
        unknown = sorted(set(names) - set(stems))
        if unknown:
            print(
                f"hadasklearn extract: warning: {len(unknown)} labelled name(s) have no video in "
                f"'{args.video_dir}': {_preview(unknown)}.",
                file=sys.stderr,
            )
        _atomic_write_text(args.out_dir / "index.csv", text)

    todo = [v for v in videos if not _output_path(args.out_dir, v).exists()]
    n_skipped = len(videos) - len(todo)
    start = time.perf_counter()
    n_frames = n_missing = 0
    failures = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), unit="video", desc="extract", disable=args.quiet or not todo, file=sys.stderr)
    try:
        if args.n_jobs == 1 or len(todo) <= 1:
            results = ((v, _call(_extract_one, v, _output_path(args.out_dir, v), args.tracking)) for v in todo)
            for video, outcome in results:
                n_frames, n_missing = _account(video, outcome, n_frames, n_missing, failures, bar)
        else:
            # spawn: MediaPipe runs its own threads, which a forked child must not inherit.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(args.n_jobs, len(todo)), mp_context=context) as pool:
                futures = {
                    pool.submit(_extract_one, v, _output_path(args.out_dir, v), args.tracking): v for v in todo
                }
                for future in as_completed(futures):
                    outcome = _call(future.result)
                    n_frames, n_missing = _account(futures[future], outcome, n_frames, n_missing, failures, bar)
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    for video, message in failures:
        _error(f"{video.name}: {message}")
    if not args.quiet:
        n_done = len(todo) - len(failures)
        rate = f", {n_frames / seconds:.0f} frames/s" if n_frames and seconds > 0 else ""
        print(
            f"{n_done} videos extracted, {n_skipped} already done, {len(failures)} failed; "
            f"{n_frames} frames, {n_missing} frames without a face; {seconds:.1f} s{rate} -> {out_npy}"
        )
    return 1 if failures else 0


def _call(function, *args):
    """Run one job, turning an expected per-video failure into a message instead of aborting the batch."""
    try:
        return function(*args)
    except (OSError, ValueError) as exc:
        return exc


def _account(video, outcome, n_frames, n_missing, failures, bar):
    if isinstance(outcome, BaseException):
        failures.append((video, str(outcome)))
    else:
        n_frames += outcome[0]
        n_missing += outcome[1]
    bar.update(1)
    return n_frames, n_missing
