"""Tests of the ``hadasklearn extract`` and ``hadasklearn dmarkers`` sub-commands on small real videos."""

import argparse
import csv
import re
import shutil

import numpy as np
import pytest

from hadasklearn.cli import dmarkers, extract

MISSING = "MediaPipe (the optional extra hadasklearn[video]) is not installed"
SIZE = 192
N_FRAMES = 10


def cli(argv):
    """Parse and run one sub-command with a parser holding only this file's sub-commands."""
    parser = argparse.ArgumentParser(prog="hadasklearn")
    subparsers = parser.add_subparsers()
    extract.add_parser(subparsers)
    dmarkers.add_parser(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def cv2():
    pytest.importorskip("mediapipe", reason=MISSING)
    import cv2

    return cv2


def _write(cv2, path, frames):
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (SIZE, SIZE))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope="module")
def video_dir(cv2, tmp_path_factory):
    """Two face videos panning in opposite directions, one video without a face, and a text file."""
    from skimage.data import astronaut

    image = astronaut()
    folder = tmp_path_factory.mktemp("videos")
    for name, dx in (("001_spontaneous_smile_1.mp4", 1), ("002_deliberate_smile_1.avi", -1)):
        frames = [image[40 : 40 + SIZE, 130 + dx * k : 130 + dx * k + SIZE] for k in range(N_FRAMES)]
        _write(cv2, folder / name, frames)
    ramp = np.linspace(0, 255, SIZE).astype(np.uint8)
    empty = [np.dstack([np.roll(ramp, k)[None].repeat(SIZE, 0)] * 3) for k in range(N_FRAMES)]
    _write(cv2, folder / "003_empty.mp4", empty)
    (folder / "notes.txt").write_text("not a video")
    return folder


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "name,label,subject\n001_spontaneous_smile_1,1,001\n002_deliberate_smile_1,0,002\n003_empty,1,003\n"
    )
    return path


def test_extract_end_to_end_then_resume(video_dir, labels, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["extract", video_dir, out, "--labels", labels]) == 0
    summary = capsys.readouterr().out
    assert "3 videos extracted, 0 already done, 0 failed" in summary
    assert f"{3 * N_FRAMES} frames, {N_FRAMES} frames without a face" in summary
    files = sorted(p.name for p in (out / "npy").iterdir())
    assert files == ["001_spontaneous_smile_1.mp4.npy", "002_deliberate_smile_1.avi.npy", "003_empty.mp4.npy"]
    for name in files[:2]:
        landmarks = np.load(out / "npy" / name)
        assert landmarks.shape == (N_FRAMES, 478, 3) and landmarks.dtype == np.float32
        assert np.all(np.isfinite(landmarks))
    # The two videos pan the crop in opposite directions: the face drifts left in one, right in the other.
    drift = [np.load(out / "npy" / n)[[0, -1], :, 0].mean(1) for n in files[:2]]
    assert drift[0][1] < drift[0][0] and drift[1][1] > drift[1][0]
    assert np.all(np.isnan(np.load(out / "npy" / files[2])))
    assert (out / "index.csv").read_bytes() == labels.read_bytes()

    mtime = (out / "npy" / files[0]).stat().st_mtime_ns
    assert cli(["extract", video_dir, out]) == 0
    assert "0 videos extracted, 3 already done, 0 failed; 0 frames" in capsys.readouterr().out
    assert (out / "npy" / files[0]).stat().st_mtime_ns == mtime  # not rewritten


def test_extract_resume_completes_a_partial_run(video_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "npy").mkdir(parents=True)
    done = out / "npy" / "001_spontaneous_smile_1.mp4.npy"
    np.save(done, np.zeros((1, 478, 3), np.float32))
    # A temporary file left by an interrupted atomic write does not count as done.
    (out / "npy" / ".002_deliberate_smile_1.avi.npy.abc.tmp").write_bytes(b"partial")
    assert cli(["extract", video_dir, out, "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert np.load(done).shape == (1, 478, 3)  # the existing output was kept
    assert np.load(out / "npy" / "002_deliberate_smile_1.avi.npy").shape == (N_FRAMES, 478, 3)


def test_extract_reports_a_broken_video_and_continues(video_dir, tmp_path, capsys):
    videos = tmp_path / "videos"
    shutil.copytree(video_dir, videos)
    (videos / "000_broken.mp4").write_bytes(b"garbage" * 50)
    (videos / "003_empty.mp4").unlink()
    out = tmp_path / "out"
    assert cli(["extract", videos, out]) == 1
    captured = capsys.readouterr()
    assert "000_broken.mp4" in captured.err and "error" in captured.err
    assert "2 videos extracted, 0 already done, 1 failed" in captured.out
    assert not (out / "npy" / "000_broken.mp4.npy").exists()
    assert (out / "npy" / "002_deliberate_smile_1.avi.npy").exists()


@pytest.mark.slow  # spawned workers re-import numpy/mediapipe: about 10 s on 2 cores
def test_extract_in_parallel_matches_serial(video_dir, tmp_path):
    assert cli(["extract", video_dir, tmp_path / "serial", "--quiet"]) == 0
    assert cli(["extract", video_dir, tmp_path / "parallel", "--n-jobs", "2", "--quiet"]) == 0
    for path in (tmp_path / "serial" / "npy").iterdir():
        np.testing.assert_array_equal(np.load(path), np.load(tmp_path / "parallel" / "npy" / path.name))


def test_extract_warns_about_labels_without_video(video_dir, tmp_path, capsys):
    table = tmp_path / "labels.csv"
    table.write_text("name,label\n001_spontaneous_smile_1,1\n999_ghost,0\n")
    out = tmp_path / "out"
    (out / "npy").mkdir(parents=True)
    for video in extract.find_videos(video_dir):  # pretend everything is done: only the labels are checked
        np.save(out / "npy" / f"{video.name}.npy", np.zeros(1))
    assert cli(["extract", video_dir, out, "--labels", table]) == 0
    err = capsys.readouterr().err
    assert "1 labelled name(s) have no video" in err and "'999_ghost'" in err


@pytest.mark.parametrize(
    "setup, match",
    [
        ("missing_dir", "is not a directory"),
        ("empty_dir", "no video found"),
        ("clash", "share a name"),
        ("bad_labels", "missing \\['label'\\]"),
    ],
)
def test_extract_input_errors_exit_2(tmp_path, capsys, setup, match):
    videos = tmp_path / "videos"
    argv = ["extract", videos, tmp_path / "out"]
    if setup != "missing_dir":
        videos.mkdir()
    if setup == "clash":
        (videos / "a.mp4").write_bytes(b"")
        (videos / "a.avi").write_bytes(b"")
    if setup == "bad_labels":
        (videos / "a.mp4").write_bytes(b"")
        (tmp_path / "l.csv").write_text("name,class\na,1\n")
        argv += ["--labels", tmp_path / "l.csv"]
    if setup in ("empty_dir", "clash"):
        pytest.importorskip("mediapipe", reason=MISSING)
    assert cli(argv) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # nothing is created before the input is known good


def test_extract_without_mediapipe_tells_how_to_install(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    (tmp_path / "a.mp4").write_bytes(b"")
    assert cli(["extract", tmp_path, tmp_path / "out"]) == 2
    assert 'pip install "hadasklearn[video]"' in capsys.readouterr().err


def test_extract_rejects_bad_n_jobs(tmp_path):
    with pytest.raises(SystemExit):
        cli(["extract", tmp_path, tmp_path / "out", "--n-jobs", "0"])


def test_find_videos_filters_by_extension(tmp_path):
    for name in ("b.MOV", "a.mp4", "c.txt", ".d.mp4", "e.npy"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "f.mp4").mkdir()
    assert [p.name for p in extract.find_videos(tmp_path)] == ["a.mp4", "b.MOV"]


# ---------------------------------------------------------------- dmarkers


@pytest.fixture
def dmarker_transformer():
    module = pytest.importorskip("hadasklearn._dmarker", reason="DMarkerTransformer is not available yet")
    return module.DMarkerTransformer


def _smile_landmarks(n_frames, amplitude, seed):
    """A template face whose lip corners move apart and up over a smooth smile; small jitter."""
    from importlib.resources import files

    template = np.load(files("hadasklearn.datasets") / "data" / "face_template_mediapipe478.npy")
    t = np.linspace(0, 1, n_frames)
    course = amplitude * np.sin(np.pi * t) ** 2
    frames = np.repeat(template[None], n_frames, 0).astype(np.float32)
    frames[:, 61, 0] -= course
    frames[:, 291, 0] += course
    frames[:, 61, 1] -= course / 2
    frames[:, 291, 1] -= course / 2
    frames[:, 62, 0] -= course
    frames[:, 308, 0] += course
    rng = np.random.default_rng(seed)
    return frames + rng.normal(0, 1e-5, frames.shape).astype(np.float32)


def test_dmarkers_writes_named_table(dmarker_transformer, tmp_path, capsys):
    npy = tmp_path / "lm" / "npy"
    npy.mkdir(parents=True)
    arrays = {"a": _smile_landmarks(60, 0.01, 0), "b": _smile_landmarks(80, 0.02, 1)}
    np.save(npy / "a.mp4.npy", arrays["a"])
    np.save(npy / "b.npy", arrays["b"])
    out = tmp_path / "table.csv"
    assert cli(["dmarkers", tmp_path / "lm", "--fps", "50", "-o", out]) == 0
    assert "2 videos" in capsys.readouterr().out
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    expected = dmarker_transformer(scheme="mediapipe478", fps=50.0)
    values = expected.fit_transform([arrays["a"], arrays["b"]])
    assert rows[0] == ["name", *map(str, expected.get_feature_names_out())]
    assert [r[0] for r in rows[1:]] == ["a", "b"]
    np.testing.assert_array_equal(np.array([r[1:] for r in rows[1:]], dtype=np.float64), values)


def test_dmarkers_errors_name_the_problem(dmarker_transformer, tmp_path, capsys):
    assert cli(["dmarkers", tmp_path, "--fps", "25", "-o", tmp_path / "t.csv"]) == 2
    assert "npy" in capsys.readouterr().err
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "x.mp4.npy", np.zeros((5, 478)))
    assert cli(["dmarkers", tmp_path, "--fps", "25", "-o", tmp_path / "t.csv"]) == 2
    err = capsys.readouterr().err
    assert "x.mp4.npy" in err and "(5, 478)" in err
    np.save(tmp_path / "npy" / "x.npy", np.zeros((5, 478, 3)))
    assert cli(["dmarkers", tmp_path, "--fps", "25", "-o", tmp_path / "t.csv"]) == 2
    assert "two files give the video name 'x'" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_dmarkers_rejects_bad_fps(tmp_path):
    for fps in ("0", "-3", "nan", "fast"):
        with pytest.raises(SystemExit):
            cli(["dmarkers", tmp_path, "--fps", fps, "-o", tmp_path / "t.csv"])


def test_landmark_names_strip_video_extension_only():
    from pathlib import Path

    assert dmarkers._video_name(Path("a_1.mp4.npy")) == "a_1"
    assert dmarkers._video_name(Path("a_1.AVI.npy")) == "a_1"
    assert dmarkers._video_name(Path("a.b.npy")) == "a.b"
    assert dmarkers._video_name(Path("a.npy")) == "a"


def test_extract_then_dmarkers_on_real_landmarks(dmarker_transformer, video_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["extract", video_dir, out, "--quiet"]) == 0
    # The video without a face cannot give D-Markers: the error names its file.
    assert cli(["dmarkers", out, "--fps", "25", "-o", tmp_path / "d.csv"]) == 2
    err = capsys.readouterr().err
    assert "'003_empty'" in err and "no frame with a face" in err
    assert not (tmp_path / "d.csv").exists()

    (out / "npy" / "003_empty.mp4.npy").unlink()
    assert cli(["dmarkers", out, "--fps", "25", "-o", tmp_path / "d.csv", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    with open(tmp_path / "d.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == ["001_spontaneous_smile_1", "002_deliberate_smile_1"]
    assert len(rows[0]) == 226
    assert np.all(np.isfinite(np.array([r[1:] for r in rows[1:]], dtype=np.float64)))


def test_dmarkers_missing_frame_policy(dmarker_transformer, tmp_path, capsys):
    from hadasklearn.exceptions import MissingFramesWarning

    npy = tmp_path / "npy"
    npy.mkdir()
    gappy = _smile_landmarks(60, 0.01, 0)
    gappy[10:12] = np.nan
    np.save(npy / "a.mp4.npy", _smile_landmarks(60, 0.01, 1))
    np.save(npy / "gappy.mp4.npy", gappy)
    assert cli(["dmarkers", tmp_path, "--fps", "50", "-o", tmp_path / "t.csv", "--missing", "raise"]) == 2
    err = capsys.readouterr().err
    assert "'gappy'" in err and "frame 10" in err
    with pytest.warns(MissingFramesWarning, match="interpolated"):
        assert cli(["dmarkers", tmp_path, "--fps", "50", "-o", tmp_path / "t.csv"]) == 0
    assert (tmp_path / "t.csv").read_text().count("\n") == 3
