"""A/B/C of the CPU runtime around a training step: helper threads and ``HadaSmileNet(retain_memory=...)``.

Three settings: ``fresh threads`` (the previous ``map_ranges``: a new thread pool per call, the
caller waiting, memory returned), ``long-lived threads`` (the shared pool of
:mod:`hadasklearn._threads`, memory returned: ``retain_memory=False``) and ``+ retain_memory``
(the default). One process, one model per backbone; the settings rotate step by step (one
settling step after each switch), so all see the same machine state. Prints, per backbone and
setting, the medians of the step's wall time, user and system CPU time and minor page faults,
then the process's peak resident memory. Example::

    python benchmarks/bench_cpu_runtime.py --backbones curvenet lite --repeats 6
"""

import argparse
import os
import resource
import statistics
import sys
import time

from concurrent.futures import ThreadPoolExecutor

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_nets import add_step_arguments, training_step  # noqa: E402

from hadasklearn import _threads  # noqa: E402
from hadasklearn.nn import _edge_kernels, _memory, _parallel  # noqa: E402

SETTINGS = ("fresh threads", "long-lived threads", "+ retain_memory")


def _fresh_pool_map_ranges(fn, edges, n_threads):
    """The previous ``map_ranges``: a new pool per call, the calling thread only waiting."""
    ranges = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    if n_threads <= 1 or len(ranges) <= 1:
        return [fn(a, b) for a, b in ranges]
    with ThreadPoolExecutor(min(n_threads, len(ranges))) as pool:
        return list(pool.map(lambda r: fn(*r), ranges))


def _use(setting, net):
    implementation = _fresh_pool_map_ranges if setting == SETTINGS[0] else _threads.map_ranges
    for module in (_edge_kernels, _parallel):
        module.map_ranges = implementation
    net.retain_memory = setting == SETTINGS[2]
    if not net.retain_memory:
        _memory.release()


def _timed(step):
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def compare(backbone, fusion, args):
    """``{setting: [(wall, user, sys, faults), ...]}`` over ``args.repeats`` steps per setting."""
    net, step, _ = training_step(backbone, fusion, args)
    step()
    results = {setting: [] for setting in SETTINGS}
    original = _threads.map_ranges
    try:
        for rep in range(args.repeats):
            for setting in SETTINGS[rep % 3 :] + SETTINGS[: rep % 3]:
                _use(setting, net)
                step()  # settle into this setting (the first step after a release maps memory again)
                results[setting].append(_timed(step))
    finally:
        _use(SETTINGS[1], net)
        for module in (_edge_kernels, _parallel):
            module.map_ranges = original
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["curvenet", "lite"])
    parser.add_argument("--fusion", default="hadamard")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per setting (median reported)")
    add_step_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not _memory.supported():
        print("This C library is not glibc: retain_memory changes nothing here (its rows measure the same).")
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.fusion} fusion, training step = "
        f"{args.batch} clips x {args.clip_length} frames x {args.n_landmarks} landmarks x 3, median of "
        f"{args.repeats} steps per setting; load average at start {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| backbone | setting | step (s) | / fresh threads | user CPU (s) | system CPU (s) | page faults | steps (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for backbone in args.backbones:
        results = compare(backbone, args.fusion, args)
        base = statistics.median(row[0] for row in results[SETTINGS[0]])
        for setting in SETTINGS:
            rows = results[setting]
            med = [statistics.median(column) for column in zip(*rows)]
            steps = ", ".join(f"{row[0]:.2f}" for row in rows)
            print(
                f"| {backbone} | {setting} | {med[0]:.3f} | {med[0] / base:.2f} | {med[1]:.2f} | {med[2]:.2f} "
                f"| {med[3]:,.0f} | {steps} |",
                flush=True,
            )
    print(f"\nprocess peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
