"""Data shipping of a fusion grid search on a Dask cluster: scattered once vs sent with every task.

Starts a ``LocalCluster`` of worker processes on 127.0.0.1, warms the workers up (imports, first
fit) with an untimed search, then runs the same ``GridSearchCV(HadaSmileClassifier(), fusions)``
with and without ``joblib.parallel_backend("dask", scatter=[X, y])``, alternating, and also the
study runner behind ``hadasklearn benchmark --backend dask --scheduler ADDRESS``. For each run it
reports the wall time and the bytes that crossed the loopback interface (``psutil`` counters of
``lo``: scheduler, workers and client all talk over it; other programs' loopback traffic on the
machine adds noise, so the table also gives the pickled size of ``X`` times the number of tasks).

    python benchmarks/bench_dask.py                       # 30 subjects x 4 videos, 25 fps
    python benchmarks/bench_dask.py --n-subjects 60 --repeats 5
"""

import argparse
import os
import pickle
import statistics
import tempfile
import time
import warnings

import joblib
import numpy as np
import psutil


def _lo_bytes():
    counters = psutil.net_io_counters(pernic=True)
    return counters["lo"].bytes_sent if "lo" in counters else float("nan")


def _settings(max_epochs):
    from hadasklearn.study import PROFILES

    # The quick profile of ``hadasklearn benchmark``, one epoch, one test clip: the point is the
    # data traffic, so the compute per task is kept small.
    return {**PROFILES["quick"], "max_epochs": max_epochs, "n_test_clips": 1, "batch_size": 32,
            "early_stopping": False, "device": "cpu"}


def _classifier(max_epochs):
    from hadasklearn import HadaSmileClassifier

    return HadaSmileClassifier(**_settings(max_epochs), random_state=0)


def _search(fusions, n_folds, max_epochs):
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    return GridSearchCV(_classifier(max_epochs), {"fusion": fusions}, cv=StratifiedGroupKFold(n_folds),
                        n_jobs=-1, refit=False, error_score="raise")


def _timed(run):
    before, start = _lo_bytes(), time.perf_counter()
    out = run()
    return time.perf_counter() - start, _lo_bytes() - before, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=30)
    parser.add_argument("--videos-per-subject", type=int, default=4)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--fusions", nargs="+", default=["hadamard", "concat"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from dask.distributed import Client, LocalCluster

    from hadasklearn.datasets import make_smiles
    from hadasklearn.study import run_study

    data = make_smiles(args.n_subjects, args.videos_per_subject, fps=args.fps, random_state=0)
    X, y, groups = data.X, data.y, data.groups
    x_bytes = len(pickle.dumps(X, protocol=5))
    n_tasks = len(args.fusions) * args.folds
    print(f"data: {len(X)} videos, {sum(len(v) for v in X)} frames, pickled X = {x_bytes / 1e6:.1f} MB; "
          f"{n_tasks} tasks ({len(args.fusions)} fusions x {args.folds} folds), {args.workers} workers, "
          f"{os.cpu_count()} CPUs\n")

    rows = {"no scatter": [], "scatter=[X, y]": [], "run_study (benchmark --backend dask)": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            # Warm-up: imports and first-call costs on every worker, not part of any measurement.
            small = make_smiles(4, 2, fps=args.fps, random_state=1)
            with joblib.parallel_backend("dask", client=client):
                _search(args.fusions, 2, 1).fit(small.X, small.y, groups=small.groups)

            for _ in range(args.repeats):
                with joblib.parallel_backend("dask", client=client):
                    rows["no scatter"].append(
                        _timed(lambda: _search(args.fusions, args.folds, args.max_epochs).fit(X, y, groups=groups))[:2])
                # The scatter happens when the backend is entered: time and count it too.
                def scattered():
                    with joblib.parallel_backend("dask", client=client, scatter=[X, y]):
                        return _search(args.fusions, args.folds, args.max_epochs).fit(X, y, groups=groups)
                rows["scatter=[X, y]"].append(_timed(scattered)[:2])

                from hadasklearn.study import default_methods
                quick = {k: v for k, v in _settings(args.max_epochs).items() if k != "backbone"}
                methods = default_methods(args.fusions, baselines="none", **quick)
                with tempfile.TemporaryDirectory() as out:
                    rows["run_study (benchmark --backend dask)"].append(_timed(lambda: run_study(
                        methods, X, y, groups=groups, cv=args.folds, out_dir=out, n_jobs=-1, backend="dask",
                        scheduler=cluster.scheduler_address, progress=False, reports=False))[:2])

    print("| run | median wall time (s) | median loopback bytes (MB) | loopback / pickled X |")
    print("|---|---:|---:|---:|")
    for name, values in rows.items():
        seconds = statistics.median(v[0] for v in values)
        sent = statistics.median(v[1] for v in values)
        print(f"| {name} | {seconds:.1f} | {sent / 1e6:.0f} | {sent / x_bytes:.1f} |")
    print(f"\nrepeats: {args.repeats}; tasks per run: {n_tasks}; "
          f"X shipped with every task would be {n_tasks * x_bytes / 1e6:.0f} MB client->scheduler (x2 with "
          "scheduler->worker).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
