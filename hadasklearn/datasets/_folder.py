"""Landmark folders on disk (``npy/`` + ``labels/<k>/{train,test}.json`` or an index CSV): load and save."""

import csv
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ..exceptions import DataLayoutError
from ..model_selection import PredefinedFolds, subject_independent_folds

__all__ = ["load_landmark_folder", "save_landmark_folder"]

INDEX_FILE = "index.csv"
_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".webm", ".flv", ".m4v")
_DEFAULT_SUBJECT = r"^[^_]+"


def _few(names, limit=5):
    names = list(names)
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class LandmarkFiles(Sequence):
    """Lazy per-video landmark arrays: item ``i`` is ``np.load(paths[i], mmap_mode="r")``.

    Nothing is read until an item is accessed, and then only the pages used, so a set of
    thousands of videos need not fit in memory. Works wherever a list of per-video arrays does
    (``check_landmarks``, scikit-learn's CV indexing).

    Parameters
    ----------
    paths : sequence of path-like
        One ``.npy`` file per video.
    shapes : sequence of tuple, optional
        The arrays' shapes, if already known (from their headers).
    """

    def __init__(self, paths, shapes=None):
        self.paths = [Path(p) for p in paths]
        self.shapes = None if shapes is None else [tuple(s) for s in shapes]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if isinstance(index, (np.ndarray, list)):
            return [self[int(i)] for i in np.asarray(index).reshape(-1)]
        return np.load(self.paths[index], mmap_mode="r", allow_pickle=False)

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} files)"


def _read_header(path):
    """(shape, dtype) of a .npy file from its header, checking the file is complete."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(f, version)
            offset = f.tell()
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
        raise DataLayoutError(f"Landmark file {path} is not a readable .npy array ({exc}).") from None
    if dtype.hasobject:
        raise DataLayoutError(f"Landmark file {path} holds Python objects (dtype {dtype}); expected numbers.")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = os.path.getsize(path)
    if size != expected:
        raise DataLayoutError(
            f"Landmark file {path} is corrupt: its header declares shape {tuple(shape)} of {dtype} "
            f"({expected} bytes with the header) but the file has {size} bytes (truncated or "
            "partially written?)."
        )
    return tuple(shape), dtype


def _check_shapes(paths, shapes, dtypes):
    first = None
    for path, shape, dtype in zip(paths, shapes, dtypes):
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise DataLayoutError(
                f"Landmark file {path} has dtype {dtype}; expected float landmark coordinates."
            )
        if len(shape) != 3 or shape[0] < 1 or shape[2] not in (2, 3):
            raise DataLayoutError(
                f"Landmark file {path} has shape {shape}; expected (n_frames, n_landmarks, 3) (or 2 "
                "coordinates), e.g. (120, 478, 3) for MediaPipe Face Mesh."
            )
        if first is None:
            first = (path, shape)
        elif shape[1:] != first[1][1:]:
            raise DataLayoutError(
                f"Landmark file {path} has shape {shape}, but {first[0]} has shape {first[1]}: all "
                "videos need the same number of landmarks and coordinates."
            )


def _load_json_labels(file):
    try:
        with open(file, encoding="utf-8") as f:
            labels = json.load(f)
    except FileNotFoundError:
        raise DataLayoutError(
            f"Missing fold file {file}; every fold folder needs train.json and test.json."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataLayoutError(f"Fold file {file} is not valid JSON ({exc}).") from None
    if not isinstance(labels, dict):
        raise DataLayoutError(
            f"Fold file {file} must hold a JSON object mapping video name to label 0/1; got a "
            f"{type(labels).__name__}."
        )
    bad = [(k, v) for k, v in labels.items() if type(v) is not int or v not in (0, 1)]
    if bad:
        raise DataLayoutError(
            f"Fold file {file}: labels must be 0 (posed/deliberate) or 1 (genuine/spontaneous); got "
            + ", ".join(f"{k!r}: {v!r}" for k, v in bad[:5])
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            + "."
        )
    return labels


def _read_folds(labels_path):
    """Fold files -> (labels dict, list of (train names, test names))."""
    entries = sorted(p for p in labels_path.iterdir() if p.is_dir())
    not_numbered = [p.name for p in entries if not re.fullmatch(r"[1-9][0-9]*", p.name)]
    if not_numbered:
        raise DataLayoutError(
            f"Fold folders in {labels_path} must be numbered 1..K; found {_few(not_numbered)}."
        )
    numbers = sorted(int(p.name) for p in entries)
    if not numbers:
        raise DataLayoutError(f"No fold folders (1, 2, ...) in {labels_path}.")
    if numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        raise DataLayoutError(
            f"Fold folders in {labels_path} must be numbered 1..K without gaps; missing {missing}."
        )
    labels, folds, source = {}, [], {}
    for k in numbers:
        train = _load_json_labels(labels_path / str(k) / "train.json")
        test = _load_json_labels(labels_path / str(k) / "test.json")
        overlap = sorted(set(train) & set(test))
        if overlap:
            raise DataLayoutError(
                f"Fold {k}: {len(overlap)} video(s) are in both train.json and test.json: {_few(overlap)}."
            )
        for split, file in ((train, "train.json"), (test, "test.json")):
            for name, label in split.items():
                if labels.setdefault(name, label) != label:
                    raise DataLayoutError(
                        f"Video {name!r} is labelled {label} in fold {k}/{file} but {labels[name]} in "
                        f"{source[name]}."
                    )
                source.setdefault(name, f"fold {k}/{file}")
        folds.append((list(train), list(test)))
    test_of = {}
    for k, (_, test) in enumerate(folds, start=1):
        for name in test:
            test_of.setdefault(name, []).append(k)
    twice = sorted(n for n, ks in test_of.items() if len(ks) > 1)
    if twice:
        raise DataLayoutError(
            f"{len(twice)} video(s) are in more than one test fold, e.g. {twice[0]!r} in folds "
            f"{test_of[twice[0]]}: {_few(twice)}. Each video must be tested exactly once."
        )
    never = sorted(set(labels) - set(test_of))
    if never:
        raise DataLayoutError(
            f"{len(never)} video(s) are in no test fold: {_few(never)}. Each video must be in exactly "
            "one labels/<k>/test.json."
        )
    return labels, folds


def _read_index(file):
    try:
        with open(file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = set(reader.fieldnames or ())
    except FileNotFoundError:
        raise DataLayoutError(f"Index file {file} does not exist.") from None
    if not {"name", "label"} <= columns:
        raise DataLayoutError(
            f"Index file {file} needs a header with columns name,label[,subject][,fps]; got "
            f"{sorted(columns) if columns else 'an empty file'}."
        )
    if not rows:
        raise DataLayoutError(f"Index file {file} lists no videos.")
    names = [r["name"] for r in rows]
    duplicated = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) < len(names) else []
    if duplicated:
        raise DataLayoutError(f"Index file {file} lists video(s) more than once: {_few(duplicated)}.")
    bad = [(r["name"], r["label"]) for r in rows if r["label"] not in ("0", "1")]
    if bad:
        raise DataLayoutError(
            f"Index file {file}: labels must be 0 (posed/deliberate) or 1 (genuine/spontaneous); got "
            + ", ".join(f"{n!r}: {v!r}" for n, v in bad[:5])
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            + "."
        )
    out = {"name": names, "label": {r["name"]: int(r["label"]) for r in rows}}
    if "subject" in columns:
        subjects = [r["subject"] for r in rows]
        # Integers written by save_landmark_folder come back as integers; ids like "017" stay text.
        if all(re.fullmatch(r"-?(0|[1-9][0-9]*)", s) for s in subjects):
            out["subject"] = np.array([int(s) for s in subjects], dtype=np.int64)
        else:
            out["subject"] = np.array(subjects)
    if "fps" in columns:
        try:
            fps = np.array([float(r["fps"]) for r in rows])
        except ValueError:
            raise DataLayoutError(f"Index file {file}: the fps column must hold numbers.") from None
        if not (np.isfinite(fps).all() and (fps > 0).all()):
            raise DataLayoutError(f"Index file {file}: frame rates must be positive; got {fps.min()}.")
        out["fps"] = fps
    return out


def _subjects(names, subject):
    if callable(subject):
        return np.array([subject(n) for n in names])
    pattern = re.compile(subject)
    out = []
    for n in names:
        m = pattern.search(n)
        if m is None:
            raise DataLayoutError(
                f"Cannot read a subject id from video name {n!r} with the pattern {subject!r}; pass "
                "subject= a regular expression (its first group, or whole match, is the id) or a callable."
            )
        out.append(m.group(1) if m.groups() else m.group(0))
    return np.array(out)


def _match_files(npy_path, names):
    """Map each labelled name to its file; warn about files without a label."""
    by_key = {}
    for entry in os.scandir(npy_path):
        if not entry.name.endswith(".npy") or not entry.is_file():
            continue
        stem = entry.name[: -len(".npy")]
        base, ext = os.path.splitext(stem)
        keys = {stem} | ({base} if ext.lower() in _VIDEO_EXTENSIONS else set())
        for key in keys:
            by_key.setdefault(key, []).append(entry.name)
    wanted = set(names)
    missing = [n for n in names if n not in by_key]
    if missing:
        raise DataLayoutError(
            f"{len(missing)} labelled video(s) have no landmark file in {npy_path}: {_few(missing)}. "
            "Expected npy/<name>.npy or npy/<name>.mp4.npy for every labelled name."
        )
    ambiguous = [n for n in names if len(by_key[n]) > 1]
    if ambiguous:
        raise DataLayoutError(
            f"Video {ambiguous[0]!r} matches several files: {sorted(by_key[ambiguous[0]])}; keep one."
        )
    used = {by_key[n][0] for n in names}
    unlabelled = sorted(
        {f for key, files in by_key.items() if key not in wanted for f in files} - used
    )
    if unlabelled:
        warnings.warn(
            f"{len(unlabelled)} landmark file(s) in {npy_path} have no label and are ignored: "
            f"{_few(unlabelled)}.",
            UserWarning,
            stacklevel=3,
        )
    return [npy_path / by_key[n][0] for n in names]


def load_landmark_folder(
    path, *, npy_dir="npy", labels_dir="labels", subject=_DEFAULT_SUBJECT, mmap=True, index=None
):
    """Load a folder of per-video landmark files with their labels, subjects and folds.

    The layout is the one of the published HadaSmileNet / DeepMarkerNet / MeshSmileNet code::

        path/npy/<name>.mp4.npy          (or <name>.npy) one (n_frames, 478, 3) array per video
        path/labels/<k>/train.json       {"<name>": 0 or 1, ...}, k = 1..K
        path/labels/<k>/test.json        every video in exactly one test fold

    Instead of fold files, a plain CSV index with columns ``name,label[,subject][,fps]`` can give
    the labels (then ``cv`` is ``None``). :func:`save_landmark_folder` writes both.

    Parameters
    ----------
    path : path-like
        The folder.
    npy_dir : str, default="npy"
        Sub-folder of the landmark files.
    labels_dir : str, default="labels"
        Sub-folder of the fold folders ``1..K``.
    subject : str or callable, default=r"^[^_]+"
        How to read a video's subject id from its name when the index has no ``subject`` column:
        a regular expression (its first group, or the whole match; the default takes the prefix
        before the first ``_``, e.g. ``"057"`` from ``"057_deliberate_smile_1"``) or a callable
        ``name -> id``.
    mmap : bool, default=True
        Memory-map the files lazily (``X`` reads a video only when it is accessed); ``False``
        reads every array into memory now.
    index : path-like, optional
        A CSV index (relative to ``path`` or absolute). Default: ``path/index.csv`` if it exists.
        With fold files present, its labels must agree with theirs; it then only adds subjects,
        frame rates and the video order.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``X``: the videos, a lazy sequence of memory maps (``mmap=True``) or a list of arrays.
        - ``y``: int array, 1 = genuine/spontaneous, 0 = posed/deliberate.
        - ``names``: video names, in the index's order or sorted.
        - ``groups``: subject ids.
        - ``cv``: :class:`~hadasklearn.model_selection.PredefinedFolds` reproducing the fold files
          exactly (usable as ``cv=``), or ``None`` without fold files.
        - ``cv_folds``: number of folds (``None`` without fold files).
        - ``fps``: frame rate(s) from the index (a float if all equal), else ``None``.
        - ``paths``: the landmark file of each video.
        - ``target_names``: ``array(["posed", "genuine"])``.

    Raises
    ------
    DataLayoutError
        A labelled video without its file (up to five names and the count), labels other than 0/1,
        a video in two test folds or in none, train and test of a fold overlapping, a corrupt or
        wrongly shaped ``.npy`` (naming the file and its shape), or a folder that does not follow
        the layout. Files without a label only give a ``UserWarning``.

    See Also
    --------
    save_landmark_folder : Write data in this layout.

    Examples
    --------
    >>> import tempfile
    >>> from hadasklearn.datasets import load_landmark_folder, make_smiles, save_landmark_folder
    >>> data = make_smiles(n_subjects=4, videos_per_subject=2, fps=10, random_state=0)
    >>> folder = save_landmark_folder(data, tempfile.mkdtemp() + "/smiles", n_folds=2, random_state=0)
    >>> loaded = load_landmark_folder(folder)
    >>> len(loaded.X), loaded.cv.get_n_splits(), loaded.y.tolist() == data.y.tolist()
    (8, 2, True)
    """
    path = Path(path)
    if not path.is_dir():
        raise DataLayoutError(f"{path} is not a folder; expected one holding {npy_dir}/ and {labels_dir}/.")
    npy_path = path / npy_dir
    if not npy_path.is_dir():
        raise DataLayoutError(
            f"{path} has no {npy_dir}/ folder of landmark files (<name>.npy or <name>.mp4.npy)."
        )
    if not (isinstance(subject, str) or callable(subject)):
        raise TypeError(f"subject must be a regular expression or a callable; got {type(subject).__name__}.")
    index_path = None
    if index is not None:
        index_path = Path(index) if Path(index).is_absolute() else path / index
    elif (path / INDEX_FILE).is_file():
        index_path = path / INDEX_FILE
    table = _read_index(index_path) if index_path is not None else None

    labels_path = path / labels_dir
    folds = None
    if labels_path.is_dir():
        labels, folds = _read_folds(labels_path)
        if table is not None:
            disagree = sorted(
                n for n in set(labels) | set(table["label"]) if labels.get(n) != table["label"].get(n)
            )
            if disagree:
                raise DataLayoutError(
                    f"Index {index_path} and the fold files in {labels_path} disagree on {len(disagree)} "
                    f"video(s) (missing from one or labelled differently): {_few(disagree)}."
                )
    elif table is not None:
        labels = table["label"]
    else:
        raise DataLayoutError(
            f"{path} has neither fold files ({labels_dir}/<k>/train.json, test.json) nor an index CSV "
            f"({INDEX_FILE} with columns name,label[,subject][,fps]); nothing gives the labels."
        )
    names = table["name"] if table is not None else sorted(labels)
    files = _match_files(npy_path, names)
    headers = [_read_header(f) for f in files]
    shapes = [h[0] for h in headers]
    _check_shapes(files, shapes, [h[1] for h in headers])

    if mmap:
        X = LandmarkFiles(files, shapes)
    else:
        X = [np.load(f, allow_pickle=False) for f in files]
    y = np.array([labels[n] for n in names], dtype=np.int64)
    groups = table["subject"] if table is not None and "subject" in table else _subjects(names, subject)
    fps = None
    if table is not None and "fps" in table:
        fps = float(table["fps"][0]) if np.all(table["fps"] == table["fps"][0]) else table["fps"]

    cv = None
    if folds is not None:
        position = {n: i for i, n in enumerate(names)}
        test_fold = np.full(len(names), -1, dtype=np.int64)
        masks = np.zeros((len(folds), len(names)), dtype=bool)
        for k, (train, test) in enumerate(folds):
            test_fold[[position[n] for n in test]] = k
            masks[k, [position[n] for n in train]] = True
        complement = all((masks[k] == (test_fold != k)).all() for k in range(len(folds)))
        cv = PredefinedFolds(test_fold, train_masks=None if complement else masks)
    return Bunch(
        X=X,
        y=y,
        names=np.array(names),
        groups=groups,
        cv=cv,
        cv_folds=None if folds is None else len(folds),
        fps=fps,
        paths=files,
        target_names=np.array(["posed", "genuine"]),
    )


def _field(bunch, key, required=True):
    if isinstance(bunch, dict) and key in bunch:
        return bunch[key]
    if hasattr(bunch, key):
        return getattr(bunch, key)
    if required:
        raise ValueError(
            "save_landmark_folder needs a Bunch/dict with 'X', 'y', 'names' and 'groups'; "
            f"{key!r} is missing."
        )
    return None


def _write_json(file, mapping):
    with open(file, "w", encoding="utf-8") as f:
        json.dump(mapping, f, indent=1)
        f.write("\n")


def save_landmark_folder(bunch, path, *, n_folds=None, random_state=None, overwrite=False, suffix=".mp4.npy"):
    """Write videos, labels and subject-independent folds in the layout of :func:`load_landmark_folder`.

    Writes ``npy/<name><suffix>``, ``labels/<k>/{train,test}.json`` (k = 1..K) and ``index.csv``
    (``name,label,subject[,fps]``, which keeps subject ids, frame rates and the order exactly).
    Everything is written into a temporary folder next to ``path`` and moved into place at the
    end, so an interrupted call leaves no half-written data set.

    Parameters
    ----------
    bunch : Bunch or dict
        With ``X`` (per-video arrays ``(n_frames_i, n_landmarks, n_coords)``), ``y`` (0/1),
        ``names`` (unique, usable as file names) and ``groups`` (subject ids); optionally ``fps``
        and ``cv`` (folds to reuse, e.g. from :func:`load_landmark_folder`).
    path : path-like
        Destination folder. It must not exist or be empty, unless ``overwrite=True``.
    n_folds : int, optional
        Number of subject-independent, class-stratified folds
        (:func:`~hadasklearn.model_selection.subject_independent_folds`). Default: reuse
        ``bunch.cv`` if it is given, else ``bunch.cv_folds``, else 10.
    random_state : int, RandomState instance or None, default=None
        Seed of the fold assignment.
    overwrite : bool, default=False
        Replace an existing non-empty folder.
    suffix : str, default=".mp4.npy"
        File name ending of the landmark files (``".npy"`` for the MMI/SPOS naming).

    Returns
    -------
    path : pathlib.Path
        The written folder.

    Raises
    ------
    FileExistsError
        If ``path`` is a non-empty folder (or a file) and ``overwrite`` is false.
    ValueError
        Inconsistent lengths, labels other than 0/1, duplicate or unusable names, or fewer subjects
        than folds.

    Examples
    --------
    >>> import tempfile
    >>> from hadasklearn.datasets import make_smiles, save_landmark_folder
    >>> data = make_smiles(n_subjects=4, videos_per_subject=2, fps=10, random_state=0)
    >>> folder = save_landmark_folder(data, tempfile.mkdtemp() + "/smiles", n_folds=2, random_state=0)
    >>> sorted(p.name for p in folder.iterdir())
    ['index.csv', 'labels', 'npy']
    """
    X = _field(bunch, "X")
    y = np.asarray(_field(bunch, "y"))
    names = [str(n) for n in _field(bunch, "names")]
    groups = np.asarray(_field(bunch, "groups"))
    fps = _field(bunch, "fps", required=False)
    cv = _field(bunch, "cv", required=False)
    n = len(y)
    if not (len(X) == n == len(names) == len(groups)):
        raise ValueError(
            f"X, y, names and groups must have one entry per video; got lengths {len(X)}, {n}, "
            f"{len(names)} and {len(groups)}."
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold 0 (posed) and 1 (genuine) only; got values {np.unique(y).tolist()}.")
    if len(set(names)) != n:
        raise ValueError("Video names must be unique; found duplicates.")
    bad = [nm for nm in names if not nm or nm.startswith(".") or re.search(r"[/\\\x00]", nm)]
    if bad:
        raise ValueError(f"Video names must be usable as file names; got {_few(bad)}.")
    if not suffix.endswith(".npy"):
        raise ValueError(f"suffix must end with '.npy'; got {suffix!r}.")

    if n_folds is None and cv is not None:
        splits = list(cv.split(np.zeros(n)))
    else:
        if n_folds is None:
            n_folds = _field(bunch, "cv_folds", required=False) or 10
        test_fold = subject_independent_folds(y, groups, n_splits=n_folds, random_state=random_state)
        splits = [(np.flatnonzero(test_fold != k), np.flatnonzero(test_fold == k)) for k in range(n_folds)]

    path = Path(path)
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists and is not empty; pass overwrite=True to replace it or choose "
                "another folder."
            )
        if path.is_file():
            raise FileExistsError(f"{path} is a file; save_landmark_folder writes a folder.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        (tmp / "npy").mkdir()
        for name, video in zip(names, X):
            video = np.asarray(video)
            if video.ndim != 3:
                raise ValueError(
                    f"Video {name!r} must be an array (n_frames, n_landmarks, n_coords); got shape "
                    f"{video.shape}."
                )
            np.save(tmp / "npy" / f"{name}{suffix}", video, allow_pickle=False)
        for k, (train, test) in enumerate(splits, start=1):
            (tmp / "labels" / str(k)).mkdir(parents=True)
            _write_json(tmp / "labels" / str(k) / "train.json", {names[i]: int(y[i]) for i in train})
            _write_json(tmp / "labels" / str(k) / "test.json", {names[i]: int(y[i]) for i in test})
        fps_column = None if fps is None else np.broadcast_to(np.asarray(fps, dtype=float), (n,))
        with open(tmp / INDEX_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["name", "label", "subject"] + (["fps"] if fps_column is not None else []))
            for i in range(n):
                row = [names[i], int(y[i]), groups[i]]
                writer.writerow(row + ([repr(float(fps_column[i]))] if fps_column is not None else []))
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "data")
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "data", path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
