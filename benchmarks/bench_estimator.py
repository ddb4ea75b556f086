"""Speed of HadaSmileClassifier with its default configuration: fit seconds per epoch, predict ms per video.

Run ``python benchmarks/bench_estimator.py`` for the full ``make_smiles(preset="uvanemo")`` set
(1240 videos, 50 fps), or ``--subjects N`` for a set generated the same way (50 fps, 3 videos per
subject) but smaller. Prints a markdown table of medians over the epochs of one run.
"""

import argparse
import platform
import time

import numpy as np
import torch

from hadasklearn import HadaSmileClassifier
from hadasklearn.datasets import make_smiles


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=None,
                        help="generate N subjects x 3 videos at 50 fps instead of the full uvanemo preset")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to time (default config otherwise)")
    parser.add_argument("--fusion", default="hadamard")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    if args.subjects is None:
        data, label = make_smiles(preset="uvanemo", random_state=0), "uvanemo preset (all 1240 videos)"
    else:
        data = make_smiles(args.subjects, 3, fps=50.0, random_state=0)
        label = f"uvanemo-like: {args.subjects} subjects x 3 videos, 50 fps (subsampled)"
    generate_s = time.perf_counter() - t0
    frames = np.array([len(v) for v in data.X])

    clf = HadaSmileClassifier(args.fusion, max_epochs=args.epochs, early_stopping=False, random_state=0)
    t0 = time.perf_counter()
    clf.fit(data.X, data.y)
    fit_s = time.perf_counter() - t0
    epoch_s = np.median(clf.net_.history[:, "dur"])

    t0 = time.perf_counter()
    clf.predict_proba(data.X)
    predict_s = time.perf_counter() - t0

    print(f"Data: {label}; {len(data.X)} videos, median {int(np.median(frames))} frames "
          f"(generated in {generate_s:.1f} s)")
    print(f"Machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, device {clf.device_}\n")
    print("| fusion | videos | epochs | fit s/epoch (median) | fit total s (incl. D-Markers) "
          "| predict ms/video |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.fusion} | {len(data.X)} | {clf.n_epochs_} | {epoch_s:.2f} | {fit_s:.1f} "
          f"| {1000 * predict_s / len(data.X):.1f} |")


if __name__ == "__main__":
    main()
