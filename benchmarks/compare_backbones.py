"""Does the ``lite`` backbone learn the synthetic benchmark as well as ``curvenet``? (issue 4)

Runs one fusion with both backbones under the quick profile of ``hadasklearn benchmark`` (same
head width, clips, epochs, folds and unit seeds; only the backbone differs: ``lite`` with the
profile's small widths, ``curvenet`` with the published encoder and transformers) on a synthetic
preset, through :func:`hadasklearn.study.run_study`, so the run is resumable and the reports
(per-fold scores, paired tests) land in ``--out``. ``--folds K`` runs only the first K folds of the
protocol (the full comparison costs about ten minutes of CPU per curvenet fold).

Run: ``python benchmarks/compare_backbones.py --fusion hadamard --folds 10``.
"""

import argparse
import time

import numpy as np
import pandas as pd

from hadasklearn.cli.benchmark import load_benchmark_data
from hadasklearn.stats import corrected_resampled_ttest
from hadasklearn.study import BASELINES, default_methods, run_study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", default="hadamard",
                        help="a fusion, or a neural baseline of the study (landmarks_only, dmarker_only, multitask)")
    parser.add_argument("--dataset", default="uvanemo")
    parser.add_argument("--folds", type=int, default=None, help="first K folds only (default: all)")
    parser.add_argument("--n-jobs", type=int, default=2, help="units in parallel (one torch thread each)")
    parser.add_argument("--out", default="backbone_comparison")
    args = parser.parse_args(argv)

    data = load_benchmark_data(args.dataset)
    splits = data.splits[: args.folds] if args.folds else data.splits
    which = {"fusions": [], "baselines": [args.fusion]} if args.fusion in BASELINES else {"fusions": [args.fusion], "baselines": "none"}
    lite = default_methods(**which, profile="quick", verbose=0)[args.fusion]
    curvenet = default_methods(**which, profile="quick", verbose=0, backbone="curvenet", backbone_kwargs={})[args.fusion]
    names = (f"{args.fusion}.lite", f"{args.fusion}.curvenet")
    start = time.perf_counter()
    run_study(
        dict(zip(names, (lite, curvenet))), data.X, data.y, groups=data.groups, cv=splits,
        out_dir=args.out, reference=names[0], names=data.names, context=data.context,
        n_jobs=args.n_jobs, progress=False,
    )
    elapsed = time.perf_counter() - start
    folds = pd.read_csv(f"{args.out}/folds.csv")
    acc = folds.pivot(index="fold", columns="method", values="accuracy")[list(names)]
    diff = acc[names[0]] - acc[names[1]]
    n_test = np.mean([len(test) for _, test in splits])
    n_train = len(data.y) - n_test
    test = corrected_resampled_ttest(acc[names[0]], acc[names[1]], n_train=n_train, n_test=n_test) if len(acc) > 1 else None
    fit = folds.pivot(index="fold", columns="method", values="fit_seconds")[list(names)].mean()
    print(f"{args.dataset}, quick profile, fusion {args.fusion}, {len(acc)} of {len(data.splits)} folds; "
          f"study time {elapsed / 60:.1f} min (resumed units count as zero)")
    print()
    print("| fold | " + " | ".join(names) + " | lite - curvenet |")
    print("|---:|---:|---:|---:|")
    for fold, row in acc.iterrows():
        print(f"| {fold} | {row[names[0]]:.3f} | {row[names[1]]:.3f} | {row[names[0]] - row[names[1]]:+.3f} |")
    print(f"| mean | {acc[names[0]].mean():.3f} | {acc[names[1]].mean():.3f} | {diff.mean():+.3f} |")
    print()
    print(f"mean fit time per fold: lite {fit[names[0]]:.0f} s, curvenet {fit[names[1]]:.0f} s")
    if test is not None:
        print(f"corrected resampled t-test (Nadeau & Bengio): p = {test.pvalue:.3f}")


if __name__ == "__main__":
    main()
