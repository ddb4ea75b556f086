"""Frames per second of the D-Marker engines (compiled numba, vectorised numpy) against a plain
per-video loop of the same formulas, in one run.

Run: ``python benchmarks/bench_dmarkers.py`` (prints a markdown table; ``--quick`` for a smoke run).
"""

import argparse
import os
import platform
import time

import numba
import numpy as np

from hadasklearn._dmarker import (
    STEADY_TOL,
    _features,
    _raw_signals,
    _smooth,
    dmarker_features,
)
from hadasklearn.landmarks import get_scheme


def make_videos(n_videos, n_frames, seed=0):
    """Random-walk landmark videos, float32 (n_videos, n_frames, 478, 3), around a plausible face."""
    rng = np.random.default_rng(seed)
    face = rng.uniform(0.2, 0.8, size=(478, 3)).astype(np.float32)
    idx = [p[0] for p in get_scheme("mediapipe478").points]
    face[idx] = [[0.3, 0.4, 0], [0.35, 0.38, 0], [0.4, 0.4, 0], [0.6, 0.4, 0], [0.65, 0.38, 0],
                 [0.7, 0.4, 0], [0.32, 0.55, 0], [0.68, 0.55, 0], [0.5, 0.55, 0.1], [0.4, 0.7, 0],
                 [0.6, 0.7, 0]]
    X = np.empty((n_videos, n_frames, 478, 3), dtype=np.float32)
    X[:] = face
    # Only the D-Marker points need motion for realistic phases; the rest stays static (cheap).
    X[:, :, idx] += np.cumsum(rng.normal(scale=2e-3, size=(n_videos, n_frames, len(idx), 3)), axis=1)
    return X


def loop_dmarkers(X, fps=50.0, smoothing="median5"):
    """The same pipeline, one video at a time (what a straightforward implementation does)."""
    idx = [p[0] for p in get_scheme("mediapipe478").points]
    out = np.empty((len(X), 225))
    for i, video in enumerate(X):
        pts = np.asarray(video[:, idx, :], dtype=np.float64)  # (T, 11, C)
        if not np.isfinite(pts).all():
            raise ValueError("the loop baseline handles finite input only")
        P = np.ascontiguousarray(np.moveaxis(pts, (1, 2), (0, 1)))[:, :, None, :]
        signals = _smooth(_raw_signals(P, "paper"), smoothing)
        out[i] = _features(signals, np.array([len(video)]), np.array([fps]))[0]
    return out


def timeit(fn, repeats):
    """(min, median) wall-clock seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (min and median reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    cases = [("(a) clips", 1024, 16), ("(b) videos", 256, 300)]
    if args.quick:
        cases = [("(a) clips", 64, 16), ("(b) videos", 8, 300)]
    load_start = os.getloadavg()[0]
    loop_repeats = max(1, args.repeats // 2)
    rows = []
    for label, n, t in cases:
        X = make_videos(n, t)
        ref = loop_dmarkers(X)
        _, l_med = timeit(lambda: loop_dmarkers(X), loop_repeats)
        frames = n * t
        for engine in ("numba", "numpy"):
            out = dmarker_features(X, engine=engine)  # also compiles / loads the numba cache
            assert np.allclose(out, ref, rtol=1e-9, atol=1e-12), f"{engine} and loop results differ"
            v_min, v_med = timeit(lambda: dmarker_features(X, engine=engine), args.repeats)
            rows.append((label, engine, n, t, frames / v_min, frames / v_med, frames / l_med,
                         l_med / v_med, v_min * 1e3, v_med * 1e3))
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"numpy {np.__version__}, numba {numba.__version__}; load average (1 min) {load_start:.1f} "
          f"at start, {os.getloadavg()[0]:.1f} at end; {args.repeats} runs (loop: {loop_repeats}); "
          f"steady tolerance {STEADY_TOL}.")
    print()
    print("| case | engine | videos | frames/video | frames/s (best) | frames/s (median) "
          "| per-video loop frames/s (median) | speed-up over loop (medians) | ms (best / median) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, engine, n, t, f_best, f_med, f_loop, ratio, ms_min, ms_med in rows:
        print(f"| {label} | {engine} | {n} | {t} | {f_best:,.0f} | {f_med:,.0f} | {f_loop:,.0f} "
              f"| {ratio:.1f}x | {ms_min:.1f} / {ms_med:.1f} |")


if __name__ == "__main__":
    main()
