"""Parameters, training-step time and inference time of every backbone x fusion of HadaSmileNet (CPU).

Prints a markdown table: per backbone x fusion the parameter count, the median time of one training
step (forward + backward + AdamW step) on ``--batch`` clips, the median inference time per clip
(eval mode, ``--infer-batch`` clips at once), and the ratios of these to the ``multitask`` entry of
the same backbone (measured and printed first). Rows are printed as they are measured. Example::

    python benchmarks/bench_nets.py --threads 2 --repeats 7
    python benchmarks/bench_nets.py --backbones curvenet --fusions hadamard multitask --repeats 3
"""

import argparse
import os
import statistics
import time

import torch

from hadasklearn.nn import HadaSmileNet, list_backbones, list_fusions, multitask_loss


def _inputs(batch, args, generator):
    landmarks = torch.randn(batch, args.clip_length, args.n_landmarks, 3, generator=generator) * 0.5
    dmarkers = torch.randn(batch, 225, generator=generator)
    labels = torch.randint(0, 2, (batch,), generator=generator)
    return landmarks, dmarkers, labels


def _median_time(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_step(backbone, fusion, args, **net_kwargs):
    """A seeded ``HadaSmileNet`` and a function running one training step (forward, backward, AdamW)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = HadaSmileNet(backbone, fusion, n_landmarks=args.n_landmarks, clip_length=args.clip_length, **net_kwargs)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    landmarks, dmarkers, labels = _inputs(args.batch, args, generator)

    def train_step():
        net.train()
        optimizer.zero_grad(set_to_none=True)
        out = net(landmarks, dmarkers)
        if net.predicts_dmarkers:
            loss = multitask_loss(out[0], out[1], labels, dmarkers, weight=0.5)
        else:
            loss = torch.nn.functional.cross_entropy(out, labels)
        loss.backward()
        optimizer.step()

    return net, train_step, generator


def measure(backbone, fusion, args):
    """Return ``(n_parameters, train_step_seconds, inference_seconds_per_clip)``."""
    net, train_step, generator = training_step(backbone, fusion, args)
    n_params = sum(p.numel() for p in net.parameters())
    train = _median_time(train_step, args.repeats, warmup=1)

    infer_landmarks, infer_dmarkers, _ = _inputs(args.infer_batch, args, generator)

    def infer():
        net.eval()
        with torch.inference_mode():
            net(infer_landmarks, infer_dmarkers)

    infer_time = _median_time(infer, args.repeats, warmup=1) / args.infer_batch
    return n_params, train, infer_time


def add_step_arguments(parser):
    """The options that shape a training step (read by :func:`training_step`) and the thread count."""
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=16, help="clips per training step")
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--n-landmarks", type=int, default=478)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list_backbones())
    parser.add_argument("--fusions", nargs="+", default=list_fusions(include_baselines=True))
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--infer-batch", type=int, default=32, help="clips per inference call")
    add_step_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    # multitask is the reference of the ratio columns: measured (and printed) first.
    fusions = ["multitask"] + [fusion for fusion in args.fusions if fusion != "multitask"]
    print(
        f"torch {torch.__version__}, {args.threads} threads, training step = {args.batch} clips x "
        f"{args.clip_length} frames x {args.n_landmarks} landmarks x 3, inference batch "
        f"{args.infer_batch}, median of {args.repeats}; load average at start "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print(
        "| backbone | fusion | parameters | train step (s) | inference (ms/clip) "
        "| params / multitask | train / multitask | inference / multitask |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backbone in args.backbones:
        ref = None
        for fusion in fusions:
            try:
                params, train, infer = measure(backbone, fusion, args)
            except ImportError as error:
                print(f"| {backbone} | (skipped: {error}) | | | | | | |")
                break
            ref = ref or (params, train, infer)
            print(
                f"| {backbone} | {fusion} | {params:,} | {train:.3f} | {infer * 1e3:.2f} "
                f"| {params / ref[0]:.2f} | {train / ref[1]:.2f} | {infer / ref[2]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
