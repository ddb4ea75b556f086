"""Speed report of HadaSmileNet: parameters, training step, one-clip latency and batch throughput per fusion.

For every backbone x fusion (the 15 fusions and the baselines ``none``, ``dmarker_only`` and
``multitask``) this measures, in one run, on the CPU (and on CUDA in bf16 autocast when a GPU is
present):

- the number of parameters;
- the median time of one training step (forward, loss, backward, AdamW step) on a batch of
  ``--batch`` clips of ``--clip-length`` frames (the ``multitask`` loss for ``multitask``);
- the median inference latency for one clip (batch 1, eval mode, no autograd);
- the inference throughput in clips per second at batch ``--throughput-batch``;

and the ratio of each to the ``multitask`` model (DeepMarkerNet) of the same backbone and
device. The published claim is 26 % fewer parameters and 42.3 % less training time than the
multitask model; the table reports what this implementation measures. Examples::

    python benchmarks/bench_speed.py --backbones lite --threads 1
    python benchmarks/bench_speed.py --backbones curvenet --fusions hadamard concat --repeats 3
"""

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from hadasklearn.nn import HadaSmileNet, list_backbones, list_fusions, multitask_loss


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, repeats, warmup, device):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _inputs(batch, args, device, generator):
    landmarks = torch.randn(batch, args.clip_length, args.n_landmarks, 3, generator=generator) * 0.5
    dmarkers = torch.randn(batch, 225, generator=generator)
    labels = torch.randint(0, 2, (batch,), generator=generator)
    return landmarks.to(device), dmarkers.to(device), labels.to(device)


def measure(backbone, fusion, device, args):
    """``(n_params, train_step_s, latency_s, throughput_clips_per_s)`` of one model on one device."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = HadaSmileNet(backbone, fusion, n_landmarks=args.n_landmarks, clip_length=args.clip_length).to(device)
    n_params = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.AdamW(net.parameters(), lr=5e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _nullcontext()
    landmarks, dmarkers, labels = _inputs(args.batch, args, device, generator)

    def train_step():
        net.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = net(landmarks, dmarkers)
        if net.predicts_dmarkers:
            loss = multitask_loss(out[0].float(), out[1].float(), labels, dmarkers, weight=0.5)
        else:
            loss = F.cross_entropy(out.float(), labels)
        loss.backward()
        optimizer.step()

    train = _median_seconds(train_step, args.repeats, args.warmup, device)

    def inference(landmarks, dmarkers):
        def run():
            net.eval()
            with torch.inference_mode(), autocast:
                net(landmarks, dmarkers)

        return run

    one = _inputs(1, args, device, generator)
    latency = _median_seconds(inference(*one[:2]), args.repeats, args.warmup, device)
    many = _inputs(args.throughput_batch, args, device, generator)
    batch_seconds = _median_seconds(inference(*many[:2]), args.repeats, args.warmup, device)
    return n_params, train, latency, args.throughput_batch / batch_seconds


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=list_backbones())
    parser.add_argument("--fusions", nargs="+", default=list_fusions(include_baselines=True))
    parser.add_argument("--devices", nargs="+", default=None,
                        help="cpu and/or cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=16, help="clips per training step")
    parser.add_argument("--throughput-batch", type=int, default=64, help="clips per inference call for throughput")
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--n-landmarks", type=int, default=478)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    fusions = list(dict.fromkeys([*args.fusions, "multitask"]))  # multitask: the ratios' reference

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} CPU thread(s); training step = {args.batch} clips x "
        f"{args.clip_length} frames x {args.n_landmarks} landmarks (AdamW); latency = 1 clip; "
        f"throughput at batch {args.throughput_batch}; CUDA in bf16 autocast; median of {args.repeats}.\n"
    )
    print(
        "| device | backbone | fusion | parameters | train step (ms) | latency (ms/clip) | throughput (clips/s) "
        "| params / multitask | train / multitask | latency / multitask | throughput / multitask |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for device_name in devices:
        device = torch.device(device_name)
        for backbone in args.backbones:
            results = {}
            for fusion in fusions:
                try:
                    results[fusion] = measure(backbone, fusion, device, args)
                except (ImportError, RuntimeError) as error:  # e.g. out of memory
                    print(f"| {device_name} | {backbone} | {fusion} | skipped: {str(error)[:80]} | | | | | | | |")
            ref = results.get("multitask")
            for fusion, (params, train, latency, throughput) in results.items():
                ratios = (
                    f"{params / ref[0]:.2f} | {train / ref[1]:.2f} | {latency / ref[2]:.2f} | {throughput / ref[3]:.2f}"
                    if ref else "n/a | n/a | n/a | n/a"
                )
                print(
                    f"| {device_name} | {backbone} | {fusion} | {params:,} | {train * 1e3:.1f} | "
                    f"{latency * 1e3:.2f} | {throughput:.1f} | {ratios} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
