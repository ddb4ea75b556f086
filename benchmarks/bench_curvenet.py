"""Benchmark of the CurveNet encoder: parameters, training-step time, inference time, peak memory.

Each measurement of peak memory runs in a fresh subprocess (``ru_maxrss``), because torch's
allocations are invisible to ``tracemalloc``. Run: ``python benchmarks/bench_curvenet.py``.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

_CHILD = r"""
import json, resource, sys, time, torch
from hadasklearn.nn import _edge_kernels
from hadasklearn.nn.curvenet import CurveNetEncoder
cfg = json.loads(sys.argv[1])
if not cfg["fused"]:
    _edge_kernels.fused_available = lambda *tensors: False
torch.manual_seed(0)
torch.set_num_threads(cfg["threads"])
enc = CurveNetEncoder(in_coords=cfg["coords"], n_points=cfg["points"], checkpoint=cfg["checkpoint"])
x = torch.randn(cfg["clouds"], cfg["points"], cfg["coords"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
train, train_cpu, infer = [], [], []
for _ in range(cfg["repeats"]):
    enc.train()
    enc.zero_grad(set_to_none=True)
    t0, c0 = time.perf_counter(), time.process_time()
    enc(x).square().mean().backward()
    train.append(time.perf_counter() - t0)
    train_cpu.append(time.process_time() - c0)
enc.eval()
clip = x[: cfg["clip_frames"]]
with torch.inference_mode():
    enc(clip)
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        enc(clip)
        infer.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"params": sum(p.numel() for p in enc.parameters()), "train": train, "train_cpu": train_cpu, "infer": infer,
                  "peak_kib": peak, "base_kib": base}))
"""


def _measure(cfg):
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=int, default=256, help="clouds per training step (16 clips x 16 frames)")
    parser.add_argument("--clip-frames", type=int, default=16, help="clouds per clip at inference")
    parser.add_argument("--points", type=int, default=478)
    parser.add_argument("--coords", type=int, default=3, choices=(2, 3))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", nargs="+", choices=("all", "last_stage", "off"), default=["last_stage"],
                        help="which CIC blocks are recomputed in backward (CurveNetEncoder(checkpoint=...))")
    parser.add_argument("--edges", choices=("fused", "torch", "both"), default="both",
                        help="k-NN edge operations: fused numba kernels or the torch composition")
    args = parser.parse_args(argv)
    print("| edges | checkpoint | params | train fwd+bwd (s) | train CPU (s) | inference (ms/clip) | peak RSS (GiB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for fused in {"both": (True, False), "fused": (True,), "torch": (False,)}[args.edges]:
      for ckpt in [{"all": True, "last_stage": "last_stage", "off": False}[c] for c in args.checkpoint]:
        cfg = {"clouds": args.clouds, "clip_frames": args.clip_frames, "points": args.points, "coords": args.coords,
               "repeats": args.repeats, "threads": args.threads, "checkpoint": ckpt, "fused": fused}
        r = _measure(cfg)
        print(f"| {'fused' if fused else 'torch'} | {ckpt} | {r['params']:,} | {statistics.median(r['train']):.2f} | "
              f"{statistics.median(r['train_cpu']):.2f} | "
              f"{1e3 * statistics.median(r['infer']):.1f} | {r['peak_kib'] / 2**20:.2f} |")


if __name__ == "__main__":
    main()
