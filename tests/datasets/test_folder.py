import json
import shutil
import warnings

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import cross_validate

from hadasklearn.datasets import load_landmark_folder, make_smiles, save_landmark_folder
from hadasklearn.datasets._folder import LandmarkFiles
from hadasklearn.exceptions import DataLayoutError
from hadasklearn.model_selection import PredefinedFolds, subject_independent_folds

# A miniature of the published UvA-NEMO layout (structure copied from its fold files): names
# "<subject>_<deliberate|spontaneous>_smile_<k>", 3 folds, whole subjects per test fold.
_SUBJECTS = {"001": 0, "002": 1, "057": 2}


def _names():
    kinds = ("deliberate", "spontaneous")
    return [f"{s}_{kind}_smile_{k}" for s in _SUBJECTS for kind in kinds for k in (1, 2)]


def _label(name):
    return int("spontaneous" in name)


def _write_layout(root, *, suffix=".mp4.npy", folds=None, names=None):
    names = _names() if names is None else names
    (root / "npy").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        np.save(root / "npy" / f"{name}{suffix}", rng.random((5 + i, 478, 3), dtype=np.float32))
    if folds is None:
        folds = []
        for s, k in _SUBJECTS.items():
            test = {n: _label(n) for n in names if n.startswith(s)}
            train = {n: _label(n) for n in names if not n.startswith(s)}
            folds.append((train, test))
    for k, (train, test) in enumerate(folds, start=1):
        (root / "labels" / str(k)).mkdir(parents=True)
        (root / "labels" / str(k) / "train.json").write_text(json.dumps(train))
        (root / "labels" / str(k) / "test.json").write_text(json.dumps(test))
    return root


@pytest.fixture
def layout(tmp_path):
    return _write_layout(tmp_path / "uvanemo")


def _folds(root):
    return [
        (json.loads((root / "labels" / str(k) / "train.json").read_text()),
         json.loads((root / "labels" / str(k) / "test.json").read_text()))
        for k in range(1, len(list((root / "labels").iterdir())) + 1)
    ]


def test_load_published_layout(layout):
    data = load_landmark_folder(layout)
    assert data.names.tolist() == sorted(_names())
    assert data.y.tolist() == [_label(n) for n in data.names]
    assert data.groups.tolist() == [n.split("_")[0] for n in data.names]
    assert isinstance(data.X, LandmarkFiles) and len(data.X) == 12
    assert isinstance(data.X[0], np.memmap) and data.X[0].shape[1:] == (478, 3)
    assert data.cv_folds == 3 and data.fps is None
    # The splitter reproduces the fold files exactly, fold by fold and in order.
    splits = data.cv.split(data.X, data.y, data.groups)
    for (train, test), (train_file, test_file) in zip(splits, _folds(layout)):
        assert set(data.names[test]) == set(test_file)
        assert set(data.names[train]) == set(train_file)


def test_plain_npy_naming_and_eager_loading(tmp_path):
    root = _write_layout(tmp_path / "mmi", suffix=".npy")
    lazy, eager = load_landmark_folder(root), load_landmark_folder(root, mmap=False)
    assert isinstance(eager.X, list) and type(eager.X[0]) is np.ndarray
    assert all(np.array_equal(a, b) for a, b in zip(lazy.X, eager.X))


def test_cv_works_in_cross_validate(layout):
    data = load_landmark_folder(layout)
    Xf = np.array([[len(v)] for v in data.X], dtype=float)
    result = cross_validate(DummyClassifier(), Xf, data.y, groups=data.groups, cv=data.cv)
    assert len(result["test_score"]) == 3


def test_subject_regex_and_callable(layout):
    data = load_landmark_folder(layout, subject=r"_(\w+?)_smile")
    assert set(data.groups.tolist()) == {"deliberate", "spontaneous"}
    data = load_landmark_folder(layout, subject=lambda name: int(name[:3]))
    assert set(data.groups.tolist()) == {1, 2, 57}
    with pytest.raises(DataLayoutError, match="Cannot read a subject id from video name"):
        load_landmark_folder(layout, subject=r"^subject\d+")


def test_training_sets_smaller_than_the_complement_are_reproduced(tmp_path):
    names = _names()
    folds = []
    for s in _SUBJECTS:
        test = {n: _label(n) for n in names if n.startswith(s)}
        train = {n: _label(n) for n in names if not n.startswith(s) and not n.endswith("_2")}
        folds.append((train, test))
    root = _write_layout(tmp_path / "partial", folds=folds)
    data = load_landmark_folder(root)
    assert data.cv.train_masks is not None
    for (train, test), (train_file, test_file) in zip(data.cv.split(), folds):
        assert set(data.names[train]) == set(train_file) and set(data.names[test]) == set(test_file)


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize(
    "preset_kwargs", [dict(n_subjects=6, videos_per_subject=3, fps=10), dict(preset="mmi", fps=5)]
)
def test_round_trip_make_save_load(tmp_path, preset_kwargs):
    data = make_smiles(random_state=0, **preset_kwargs)
    n_folds = 3
    folder = save_landmark_folder(data, tmp_path / "synthetic", n_folds=n_folds, random_state=7)
    loaded = load_landmark_folder(folder)
    assert loaded.names.tolist() == data.names.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.X, data.X))
    assert all(a.dtype == b.dtype for a, b in zip(loaded.X, data.X))
    assert np.array_equal(loaded.y, data.y) and np.array_equal(loaded.groups, data.groups)
    assert loaded.groups.dtype.kind == data.groups.dtype.kind
    np.testing.assert_array_equal(loaded.fps, data.fps)
    expected = subject_independent_folds(data.y, data.groups, n_splits=n_folds, random_state=7)
    got = list(loaded.cv.split())
    assert len(got) == n_folds
    for k, (train, test) in enumerate(got):
        assert np.array_equal(test, np.flatnonzero(expected == k))
        assert np.array_equal(train, np.flatnonzero(expected != k))
        # Subject-independent: no subject on both sides.
        assert not set(data.groups[train]) & set(data.groups[test])


def test_save_reuses_loaded_folds_and_string_subjects(layout, tmp_path):
    data = load_landmark_folder(layout)
    again = load_landmark_folder(save_landmark_folder(data, tmp_path / "copy", suffix=".npy"))
    assert again.groups.tolist() == data.groups.tolist()  # "001" stays "001"
    assert [t.tolist() for _, t in again.cv.split()] == [t.tolist() for _, t in data.cv.split()]


def test_save_refuses_to_overwrite_then_overwrites(tmp_path):
    data = make_smiles(n_subjects=4, videos_per_subject=2, fps=10, random_state=0)
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass overwrite=True"):
        save_landmark_folder(data, target, n_folds=2)
    assert (target / "keep.txt").exists()
    save_landmark_folder(data, target, n_folds=2, overwrite=True)
    assert not (target / "keep.txt").exists() and len(load_landmark_folder(target).X) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left


def test_save_is_atomic_on_failure(tmp_path):
    data = make_smiles(n_subjects=4, videos_per_subject=2, fps=10, random_state=0)
    data.X[-1] = data.X[-1][0]  # 2-D: fails after the other videos were written
    with pytest.raises(ValueError, match="must be an array \\(n_frames, n_landmarks, n_coords\\)"):
        save_landmark_folder(data, tmp_path / "out", n_folds=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.update(y=np.full(len(d["y"]), 2)), "y must hold 0 \\(posed\\) and 1"),
        (lambda d: d.update(names=["a"] * len(d["y"])), "names must be unique"),
        (lambda d: d.update(groups=d["groups"][:-1]), "one entry per video"),
        (lambda d: d.pop("groups"), "'groups' is missing"),
    ],
)
def test_save_validates_its_input(tmp_path, change, match):
    data = dict(make_smiles(n_subjects=4, videos_per_subject=2, fps=10, random_state=0))
    change(data)
    with pytest.raises(ValueError, match=match):
        save_landmark_folder(data, tmp_path / "out", n_folds=2)


# ----------------------------------------------------------------------------- index CSV


def test_index_csv_instead_of_fold_files(tmp_path):
    root = _write_layout(tmp_path / "spos", suffix=".npy", folds=[])
    rows = ["name,label,subject,fps"] + [f"{n},{_label(n)},{n[:3]},25" for n in _names()[::-1]]
    (root / "my_index.csv").write_text("\n".join(rows) + "\n")
    data = load_landmark_folder(root, index="my_index.csv")
    assert data.names.tolist() == _names()[::-1]  # the index's order
    assert data.cv is None and data.cv_folds is None and data.fps == 25.0
    assert data.groups.tolist() == [n[:3] for n in _names()[::-1]]


def test_index_with_bad_label(tmp_path):
    root = _write_layout(tmp_path / "x", folds=[])
    (root / "index.csv").write_text("name,label\n001_deliberate_smile_1,posed\n")
    with pytest.raises(DataLayoutError, match="labels must be 0 .* got '001_deliberate_smile_1': 'posed'"):
        load_landmark_folder(root)


def test_index_disagreeing_with_fold_files(layout):
    rows = ["name,label"] + [f"{n},{1 - _label(n) if i == 0 else _label(n)}" for i, n in enumerate(_names())]
    (layout / "index.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataLayoutError, match="disagree on 1 video"):
        load_landmark_folder(layout)


# ----------------------------------------------------------------------------- errors of §2


def test_labelled_videos_without_files_lists_five_and_the_count(layout):
    for name in _names()[:7]:
        (layout / "npy" / f"{name}.mp4.npy").unlink()
    match = r"7 labelled video\(s\) have no landmark file .* and 2 more"
    with pytest.raises(DataLayoutError, match=match) as err:
        load_landmark_folder(layout)
    assert str(err.value).count("_smile_") == 5


def test_file_without_label_warns(layout):
    np.save(layout / "npy" / "099_deliberate_smile_1.mp4.npy", np.zeros((4, 478, 3), np.float32))
    match = r"1 landmark file\(s\) .* have no label and are ignored: '099_deliberate"
    with pytest.warns(UserWarning, match=match):
        data = load_landmark_folder(layout)
    assert "099_deliberate_smile_1" not in data.names


@pytest.mark.parametrize("bad", [2, "1", 1.0, True, None])
def test_labels_other_than_zero_and_one(layout, bad):
    file = layout / "labels" / "2" / "test.json"
    content = json.loads(file.read_text())
    content[next(iter(content))] = bad
    file.write_text(json.dumps(content))
    with pytest.raises(DataLayoutError, match=r"labels/2/test.json: labels must be 0 .* or 1"):
        load_landmark_folder(layout)


def test_video_in_two_test_folds(layout):
    folds = _folds(layout)
    moved = next(iter(folds[0][1]))
    second = json.loads((layout / "labels" / "2" / "test.json").read_text())
    second[moved] = _label(moved)
    (layout / "labels" / "2" / "test.json").write_text(json.dumps(second))
    train = json.loads((layout / "labels" / "2" / "train.json").read_text())
    train.pop(moved)
    (layout / "labels" / "2" / "train.json").write_text(json.dumps(train))
    match = rf"in more than one test fold, e.g. '{moved}' in folds \[1, 2\]"
    with pytest.raises(DataLayoutError, match=match):
        load_landmark_folder(layout)


def test_video_in_no_test_fold(layout):
    test = json.loads((layout / "labels" / "3" / "test.json").read_text())
    dropped = sorted(test)[0]
    test.pop(dropped)
    (layout / "labels" / "3" / "test.json").write_text(json.dumps(test))
    with pytest.raises(DataLayoutError, match=rf"1 video\(s\) are in no test fold: '{dropped}'"):
        load_landmark_folder(layout)


def test_train_and_test_overlap(layout):
    train = json.loads((layout / "labels" / "1" / "train.json").read_text())
    test = json.loads((layout / "labels" / "1" / "test.json").read_text())
    name = next(iter(test))
    train[name] = test[name]
    (layout / "labels" / "1" / "train.json").write_text(json.dumps(train))
    match = rf"Fold 1: 1 video\(s\) are in both train.json and test.json: '{name}'"
    with pytest.raises(DataLayoutError, match=match):
        load_landmark_folder(layout)


def test_inconsistent_labels_across_folds(layout):
    train = json.loads((layout / "labels" / "2" / "train.json").read_text())
    name = sorted(train)[0]
    train[name] = 1 - train[name]
    (layout / "labels" / "2" / "train.json").write_text(json.dumps(train))
    with pytest.raises(DataLayoutError, match=rf"Video '{name}' is labelled"):
        load_landmark_folder(layout)


def test_corrupt_npy_names_the_file(layout):
    file = layout / "npy" / "002_deliberate_smile_1.mp4.npy"
    file.write_bytes(file.read_bytes()[:-100])
    match = r"002_deliberate_smile_1.mp4.npy is corrupt: .*shape \(\d+, 478, 3\)"
    with pytest.raises(DataLayoutError, match=match):
        load_landmark_folder(layout)
    file.write_bytes(b"not an array")
    with pytest.raises(DataLayoutError, match=r"002_deliberate_smile_1.mp4.npy is not a readable .npy"):
        load_landmark_folder(layout)


@pytest.mark.parametrize("shape", [(5, 478), (5, 478, 4), (0, 478, 3)])
def test_wrongly_shaped_npy_names_the_file_and_shape(layout, shape):
    np.save(layout / "npy" / "057_spontaneous_smile_2.mp4.npy", np.zeros(shape, np.float32))
    match = rf"057_spontaneous_smile_2.mp4.npy has shape \({shape[0]}, {shape[1]}"
    with pytest.raises(DataLayoutError, match=match):
        load_landmark_folder(layout)


def test_landmark_count_mismatch_between_files(layout):
    np.save(layout / "npy" / "057_spontaneous_smile_2.mp4.npy", np.zeros((5, 68, 3), np.float32))
    with pytest.raises(DataLayoutError, match=r"has shape \(5, 68, 3\), but .* has shape"):
        load_landmark_folder(layout)


def test_both_namings_for_one_video_are_ambiguous(layout):
    np.save(layout / "npy" / "001_deliberate_smile_1.npy", np.zeros((5, 478, 3), np.float32))
    with pytest.raises(DataLayoutError, match="matches several files"):
        load_landmark_folder(layout)


def test_layout_errors(tmp_path, layout):
    with pytest.raises(DataLayoutError, match="is not a folder"):
        load_landmark_folder(tmp_path / "nowhere")
    (layout / "labels" / "3" / "test.json").unlink()
    with pytest.raises(DataLayoutError, match="Missing fold file .*3/test.json"):
        load_landmark_folder(layout)
    (layout / "labels" / "3" / "test.json").write_text("{not json")
    with pytest.raises(DataLayoutError, match="is not valid JSON"):
        load_landmark_folder(layout)
    (layout / "labels" / "3").rename(layout / "labels" / "4")
    with pytest.raises(DataLayoutError, match=r"numbered 1..K without gaps; missing \[3\]"):
        load_landmark_folder(layout)
    (layout / "labels" / "4").rename(layout / "labels" / "fold3")
    with pytest.raises(DataLayoutError, match="must be numbered 1..K; found 'fold3'"):
        load_landmark_folder(layout)
    shutil.rmtree(layout / "labels")
    with pytest.raises(DataLayoutError, match="neither fold files .* nor an index CSV"):
        load_landmark_folder(layout)


def test_data_layout_error_is_a_value_error():
    assert issubclass(DataLayoutError, ValueError)


def test_lazy_files_support_indexing(layout):
    data = load_landmark_folder(layout)
    assert len(data.X[1:3]) == 2 and len(data.X[np.array([0, 2, 4])]) == 3
    assert isinstance(PredefinedFolds([0, 1]), PredefinedFolds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repr(data.X) == "LandmarkFiles(12 files)"
