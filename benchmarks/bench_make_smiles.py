"""Speed and memory of ``make_smiles``: wall time, CPU time and peak resident memory per preset.

Each repeat runs in a fresh subprocess so that the peak RSS belongs to that call alone. The target
for ``preset="uvanemo"`` (about 1.4 GB of float32) is under 30 s and a peak of at most about
twice the output. Wall time on a shared machine includes waiting for a core; the CPU time is
what the call itself used.
"""

import argparse
import json
import statistics
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from hadasklearn.datasets import make_smiles
cfg = json.loads(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0, c0 = time.perf_counter(), time.process_time()
data = make_smiles(preset=cfg["preset"], fps=cfg["fps"], random_state=cfg["seed"])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": wall, "cpu": cpu, "peak_kib": peak, "base_kib": base,
                  "out_bytes": int(sum(x.nbytes for x in data.X)), "n": len(data.X),
                  "frames": int(sum(len(x) for x in data.X))}))
"""


def run_once(preset, fps, seed):
    cfg = json.dumps({"preset": preset, "fps": fps, "seed": seed})
    out = subprocess.run([sys.executable, "-c", _CHILD, cfg], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["uvanemo", "mmi", "spos", "bbc"])
    parser.add_argument("--fps", type=float, default=None, help="override the presets' frame rate")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        "| preset | videos | frames | output (GB) | wall (s) | CPU (s) | peak RSS (GB) | "
        "peak - import (GB) | (peak - import) / output |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        runs = [run_once(preset, args.fps, seed) for seed in range(args.repeats)]
        keys = ("wall", "cpu", "peak_kib", "base_kib", "out_bytes")
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        out_gb = med["out_bytes"] / 1e9
        peak_gb = med["peak_kib"] * 1024 / 1e9
        extra_gb = (med["peak_kib"] - med["base_kib"]) * 1024 / 1e9
        print(
            f"| {preset} | {runs[0]['n']} | {runs[0]['frames']} | {out_gb:.3f} | {med['wall']:.1f} | "
            f"{med['cpu']:.1f} | {peak_gb:.2f} | {extra_gb:.2f} | {extra_gb / out_gb:.2f} |"
        )
    print(f"\nmedians of {args.repeats} runs (seeds 0..{args.repeats - 1}), each in a fresh process")


if __name__ == "__main__":
    main()
