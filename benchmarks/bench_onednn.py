"""The CurveNet encoder's point-wise products through torch's BLAS (MKL) and through oneDNN.

Part one records the products that :func:`hadasklearn.nn._onednn.mm` takes in one training step
of the default encoder (by default 16 clips x 16 frames = 256 clouds of 478 points: 122,368 rows) and times
each distinct shape as :func:`torch.mm` and through oneDNN, alternating, on ``--threads``
threads. Part two alternates whole encoder training steps (forward and backward) with and
without the oneDNN path (``_onednn.torch_only``) in one process, part three whole ``curvenet``
model training steps and inference batches, so the arms see the same machine state. Prints
markdown tables. Example::

    python benchmarks/bench_onednn.py --repeats 6
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_nets import _inputs, _median_time, add_step_arguments, training_step  # noqa: E402

from hadasklearn.nn import _memory, _onednn  # noqa: E402
from hadasklearn.nn.curvenet import CurveNetEncoder  # noqa: E402

_ARMS = ("torch BLAS", "oneDNN")


def _arm(name):
    return _onednn.torch_only() if name == "torch BLAS" else contextlib.nullcontext()


def _encoder_step(clouds, n_points):
    torch.manual_seed(0)
    encoder = CurveNetEncoder(n_points=n_points).train()
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(clouds, n_points, 3, generator=generator) * 0.5
    upstream = torch.randn(clouds, n_points, encoder.out_dim, generator=generator)

    def step():
        encoder.zero_grad(set_to_none=True)
        encoder(points).backward(upstream)

    return step


def product_table(step, repeats):
    """Rows ``(m x k x n, calls per step, torch ms, oneDNN ms)`` for the products one step routes."""
    seen = {}
    original = _onednn.mm

    def recording(a, b):
        if _onednn.eligible(a, b):
            key = (a.shape[0], a.shape[1], b.shape[1])
            seen[key] = seen.get(key, 0) + 1
        return original(a, b)

    _onednn.mm = recording
    try:
        step()
    finally:
        _onednn.mm = original
    rows = []
    for (m, k, n), calls in sorted(seen.items(), key=lambda kv: (kv[0][1] * kv[0][2], kv[0])):
        a, w = torch.randn(m, k), torch.randn(n, k)
        t_torch = _median_time(lambda: torch.mm(a, w.T), repeats, 1)
        t_dnn = _median_time(lambda: _onednn.mm(a, w.T), repeats, 1)
        rows.append((f"{m} x {k} x {n}", calls, t_torch * 1e3, t_dnn * 1e3))
    return rows


def alternate(fn, repeats):
    """``{arm: [fn() results]}`` with the arms alternating (order reversed every other round)."""
    results = {arm: [] for arm in _ARMS}
    for rep in range(repeats):
        for arm in _ARMS[:: 1 if rep % 2 == 0 else -1]:
            with _arm(arm):
                results[arm].append(fn())
    return results


def _timed(fn):
    def run():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="whole steps per arm (median reported)")
    parser.add_argument("--product-repeats", type=int, default=9)
    add_step_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not _onednn.available():
        sys.exit("torch was built without oneDNN (or it is disabled): nothing to compare.")
    _memory.retain()  # as in a training step of HadaSmileNet (retain_memory=True)
    clouds = args.batch * args.clip_length
    step = _encoder_step(clouds, args.n_landmarks)
    print(f"torch {torch.__version__}, {args.threads} threads, load average at start {os.getloadavg()[0]:.1f}\n")
    print(f"Products routed through oneDNN in one encoder training step ({clouds} clouds), medians of {args.product_repeats}:\n")
    print("| m x k x n | calls per step | torch (ms) | oneDNN (ms) | torch / oneDNN |")
    print("|---|---:|---:|---:|---:|")
    total_torch = total_dnn = 0.0
    for shape, calls, t_torch, t_dnn in product_table(step, args.product_repeats):
        total_torch, total_dnn = total_torch + calls * t_torch, total_dnn + calls * t_dnn
        print(f"| {shape} | {calls} | {t_torch:.2f} | {t_dnn:.2f} | {t_torch / t_dnn:.2f} |")
    print(f"| per step (calls x time) | | {total_torch:.0f} | {total_dnn:.0f} | {total_torch / total_dnn:.2f} |")

    step()
    results = alternate(_timed(step), 2 * args.repeats)
    print(f"\nEncoder training steps ({clouds} clouds, forward + backward), arms alternating, median of {2 * args.repeats}:\n")
    print("| products | step (s) | / torch BLAS | steps (s) |")
    print("|---|---:|---:|---|")
    base = statistics.median(results["torch BLAS"])
    for arm, times in results.items():
        print(f"| {arm} | {statistics.median(times):.3f} | {statistics.median(times) / base:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")

    net, train_step, generator = training_step("curvenet", "hadamard", args)
    clips = _inputs(32, args, generator)[:2]

    def infer():
        net.eval()
        with torch.inference_mode():
            start = time.perf_counter()
            net(*clips)
            return (time.perf_counter() - start) / 32 * 1e3

    def both():
        start = time.perf_counter()
        train_step()
        return time.perf_counter() - start, infer()

    train_step()
    infer()
    results = alternate(both, args.repeats)
    print(f"\nWhole `curvenet` / `hadamard` model ({args.batch} clips per training step, inference batch 32), "
          f"arms alternating, median of {args.repeats}:\n")
    print("| products | train step (s) | / torch BLAS | inference (ms/clip) | / torch BLAS | steps (s) |")
    print("|---|---:|---:|---:|---:|---|")
    base_train = statistics.median(t for t, _ in results["torch BLAS"])
    base_infer = statistics.median(i for _, i in results["torch BLAS"])
    for arm, pairs in results.items():
        t, i = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        steps = ", ".join(f"{p[0]:.2f}" for p in pairs)
        print(f"| {arm} | {t:.3f} | {t / base_train:.2f} | {i:.1f} | {i / base_infer:.2f} | {steps} |")


if __name__ == "__main__":
    main()
