"""A/B of ``HadaSmileNet(retain_memory=...)``: CPU training steps with freed memory kept or returned.

One process, one model per backbone; the two settings alternate step by step (ABBA order, one
settling step after each switch), so both see the same machine state. Prints, per backbone and
setting, the medians of the step's wall time, user and system CPU time and minor page faults,
then the process's peak resident memory. Example::

    python benchmarks/bench_memory.py --backbones curvenet lite --repeats 6
"""

import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_nets import training_step  # noqa: E402

from hadasklearn.nn import _memory  # noqa: E402


def _timed(step):
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


def compare(backbone, fusion, args):
    """``{retain: [(wall, user, sys, faults), ...]}`` over ``args.repeats`` steps per setting."""
    net, step, _ = training_step(backbone, fusion, args)
    step()
    results = {False: [], True: []}
    for rep in range(args.repeats):
        for retain in (False, True) if rep % 2 == 0 else (True, False):
            net.retain_memory = retain
            if not retain:
                _memory.release()
            step()  # settle into this setting (the first step after a release maps memory again)
            results[retain].append(_timed(step))
    _memory.release()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["curvenet", "lite"])
    parser.add_argument("--fusion", default="hadamard")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per setting (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=16, help="clips per training step")
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--n-landmarks", type=int, default=478)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not _memory.supported():
        print("This C library is not glibc: retain_memory changes nothing here.")
        return
    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.fusion} fusion, training step = "
        f"{args.batch} clips x {args.clip_length} frames x {args.n_landmarks} landmarks x 3, median of "
        f"{args.repeats} steps per setting; load average at start {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs\n"
    )
    print("| backbone | retain_memory | step (s) | user CPU (s) | system CPU (s) | page faults | steps (s) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for backbone in args.backbones:
        results = compare(backbone, args.fusion, args)
        for retain in (False, True):
            rows = results[retain]
            med = [statistics.median(column) for column in zip(*rows)]
            steps = ", ".join(f"{row[0]:.2f}" for row in rows)
            print(f"| {backbone} | {retain} | {med[0]:.3f} | {med[1]:.2f} | {med[2]:.2f} | {med[3]:,.0f} | {steps} |", flush=True)
        ratio = statistics.median(r[0] for r in results[True]) / statistics.median(r[0] for r in results[False])
        print(f"| {backbone} | ratio True / False | {ratio:.2f} | | | | |", flush=True)
    print(f"\nprocess peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
