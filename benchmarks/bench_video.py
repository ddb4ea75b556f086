"""Throughput of the MediaPipe front end: frames per second on CPU for a 640x360 video.

The video is made from scikit-image's astronaut photo (a 16:9 window around the head scaled
to 640x360, so the face is about 150 px wide as in a smile recording, panning a few pixels
per frame so that tracking has something to follow), written
with OpenCV to a temporary folder and read back by :func:`hadasklearn.video.extract_landmarks`.
Times include decoding and the conversion to arrays; the model is loaded once beforehand.

    python benchmarks/bench_video.py --frames 200 --repeats 5
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 360


def make_video(path, n_frames, fps=30.0):
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError("OpenCV could not open an mp4v video writer.")
    for k in range(n_frames):
        # A 384x216 window around the head, panning +-12 px, scaled to 640x360: a face ~150 px wide.
        left = 64 + int(round(12 * np.sin(2 * np.pi * k / 60)))
        window = photo[8 : 8 + 216, left : left + 384]
        frame = cv2.resize(window, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def decode_only(path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    capture.release()
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames in the test video")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["tracking", "static"],
        choices=["tracking", "static", "tracking-468"],
        help="settings to time",
    )
    args = parser.parse_args(argv)

    import mediapipe

    from hadasklearn.video import extract_landmarks

    settings = {
        "tracking": {"tracking": True, "refine": True},
        "static": {"tracking": False, "refine": True},
        "tracking-468": {"tracking": True, "refine": False},
    }
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "astronaut_640x360.mp4", args.frames)
        extract_landmarks(video)  # warm-up: lazy imports and the first model load
        rows = []
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            decode_only(video)
            times.append(time.perf_counter() - start)
        rows.append(("decode only (OpenCV)", "-", statistics.median(times), 0))
        for mode in args.modes:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                landmarks, _ = extract_landmarks(video, **settings[mode])
                times.append(time.perf_counter() - start)
            n_lost = int(np.isnan(landmarks).all(axis=(1, 2)).sum())
            rows.append((mode, landmarks.shape[1], statistics.median(times), n_lost))

    print(
        f"MediaPipe {mediapipe.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.frames} frames of {WIDTH}x{HEIGHT}, median of {args.repeats} runs\n"
    )
    print("| mode | landmarks | frames/s | ms/frame | frames without face |")
    print("|---|---|---|---|---|")
    for mode, n_landmarks, seconds, n_lost in rows:
        print(
            f"| {mode} | {n_landmarks} | {args.frames / seconds:.0f} | {1000 * seconds / args.frames:.2f} | {n_lost} |"
        )


if __name__ == "__main__":
    main()
