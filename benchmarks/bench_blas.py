"""Matrix products on one thread, torch's BLAS (MKL in the CPU wheels) against numpy's OpenBLAS.

Part one times single-threaded products of the shapes a transformer block multiplies in the
training split (forward ``x @ W.T``, input gradient ``g @ W``, weight gradient ``g.T @ x``) for
the ``curvenet`` transformers (width 256, 4,096 rows per thread) and ``lite`` (width 64, 2,048
rows), as :func:`torch.mm` and as :func:`hadasklearn.nn._blas.mm` (OpenBLAS held to one thread;
the size threshold :data:`~hadasklearn.nn._blas.MIN_MACS` is lifted here so that every shape
goes through it). Part two alternates training steps of the ``curvenet`` space-time transformer
alone, then whole training steps and inference batches of the model
with and without the OpenBLAS path in one process (``_blas.torch_only``), so both see the same
machine state. Prints markdown tables. Example::

    python benchmarks/bench_blas.py --backbones curvenet lite --repeats 6
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

from hadasklearn.nn import _blas  # noqa: E402
from hadasklearn.nn._parallel import row_parallel  # noqa: E402
from hadasklearn.nn.layers import FactorizedSpaceTimeTransformer  # noqa: E402

# (backbone, rows per thread in the training split, transformer width)
_BLOCKS = (("curvenet", 4096, 256), ("lite", 2048, 64))


def product_table(repeats):
    """Rows ``(backbone, form, m x k x n, torch ms, OpenBLAS ms)`` on one thread."""
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved, _blas.MIN_MACS = _blas.MIN_MACS, 0
    try:
        for backbone, m, d in _BLOCKS:
            for n_out, n_in in ((3 * d, d), (d, d), (2 * d, d), (d, 2 * d)):  # qkv, proj, fc1, fc2
                x, w, g = torch.randn(m, n_in), torch.randn(n_out, n_in), torch.randn(m, n_out)
                for form, a, b in (("x @ W.T", x, w.T), ("g @ W", g, w), ("g.T @ x", g.T, x)):
                    t_torch = _median_time(lambda: torch.mm(a, b), repeats, 1)
                    t_blas = _median_time(lambda: _blas.mm(a, b), repeats, 1)
                    rows.append((backbone, form, f"{a.shape[0]} x {a.shape[1]} x {b.shape[1]}", t_torch * 1e3, t_blas * 1e3))
    finally:
        _blas.MIN_MACS = saved
        torch.set_num_threads(threads)
    return rows


def transformer_table(args):
    """``{arm: step times}`` of the ``curvenet`` space-time transformer alone (training split)."""
    torch.manual_seed(0)
    layer = FactorizedSpaceTimeTransformer(256, 6, num_heads=4, mlp_ratio=2.0, dropout=0.1).train()
    x = torch.randn(args.batch, args.clip_length, 32, 256, requires_grad=True)
    weight = torch.randn(args.batch, args.clip_length, 32, 256)

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (row_parallel(layer, x) * weight).sum().backward()

    results = {"torch BLAS": [], "OpenBLAS": []}
    step()
    for rep in range(2 * args.repeats):
        for arm in list(results)[:: 1 if rep % 2 == 0 else -1]:
            with _blas.torch_only() if arm == "torch BLAS" else contextlib.nullcontext():
                start = time.perf_counter()
                step()
                results[arm].append(time.perf_counter() - start)
    return results


def step_table(backbone, args):
    """``{arm: (train step times, inference ms per clip)}``, arms alternating in one process."""
    net, train_step, generator = training_step(backbone, "hadamard", args)
    clips = _inputs(32, args, generator)[:2]

    def infer():
        net.eval()
        with torch.inference_mode():
            net(*clips)

    results = {"torch BLAS": ([], []), "OpenBLAS": ([], [])}
    train_step()
    infer()
    for rep in range(args.repeats):
        for arm in list(results)[:: 1 if rep % 2 == 0 else -1]:
            with _blas.torch_only() if arm == "torch BLAS" else contextlib.nullcontext():
                start = time.perf_counter()
                train_step()
                results[arm][0].append(time.perf_counter() - start)
                start = time.perf_counter()
                infer()
                results[arm][1].append((time.perf_counter() - start) / 32 * 1e3)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["curvenet"], choices=["curvenet", "lite"])
    parser.add_argument("--repeats", type=int, default=6, help="whole steps per arm (median reported)")
    parser.add_argument("--product-repeats", type=int, default=15)
    add_step_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not _blas.available():
        sys.exit("numpy's BLAS is not an OpenBLAS with per-thread thread counts: nothing to compare.")
    print(f"torch {torch.__version__}, load average at start {os.getloadavg()[0]:.1f}\n")
    print("| backbone | product | m x k x n | torch (ms) | OpenBLAS (ms) | torch / OpenBLAS |")
    print("|---|---|---|---:|---:|---:|")
    for backbone, form, shape, t_torch, t_blas in product_table(args.product_repeats):
        print(f"| {backbone} | `{form}` | {shape} | {t_torch:.2f} | {t_blas:.2f} | {t_torch / t_blas:.2f} |")
    print(f"\nThe curvenet space-time transformer alone (6 blocks of width 256 on {args.batch} x {args.clip_length} x 32 "
          f"tokens), forward and backward split over {args.threads} threads, arms alternating, median of {2 * args.repeats}:\n")
    print("| products | step (s) | / torch BLAS | steps (s) |")
    print("|---|---:|---:|---|")
    results = transformer_table(args)
    base = statistics.median(results["torch BLAS"])
    for arm, times in results.items():
        print(f"| {arm} | {statistics.median(times):.3f} | {statistics.median(times) / base:.2f} | {', '.join(f'{t:.2f}' for t in times)} |")
    print(f"\nWhole steps ({args.threads} threads, {args.batch} clips per training step, inference batch 32, "
          f"arms alternating, median of {args.repeats}):\n")
    print("| backbone | products | train step (s) | / torch BLAS | inference (ms/clip) | / torch BLAS | steps (s) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for backbone in args.backbones:
        results = step_table(backbone, args)
        base_train = statistics.median(results["torch BLAS"][0])
        base_infer = statistics.median(results["torch BLAS"][1])
        for arm, (train, infer) in results.items():
            t, i = statistics.median(train), statistics.median(infer)
            steps = ", ".join(f"{s:.2f}" for s in train)
            print(f"| {backbone} | {arm} | {t:.3f} | {t / base_train:.2f} | {i:.1f} | {i / base_infer:.2f} | {steps} |")


if __name__ == "__main__":
    main()
