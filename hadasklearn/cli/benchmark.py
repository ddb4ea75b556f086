"""``hadasklearn benchmark``: the fusion study (every fusion and the baselines on the same folds), resumable."""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "load_benchmark_data", "run"]

_DESCRIPTION = """\
Cross-validate the fusion strategies of HadaSmileNet and the baselines (dmarker_svm, landmarks_only,
dmarker_only, multitask) on the same subject-grouped folds, then write to --out:

  folds.csv         one row per method x fold: accuracy, balanced accuracy, ROC AUC, F1,
                    fit seconds, predict ms per video, parameter count, fold sizes
  predictions.csv   every test prediction (for McNemar's test and your own analyses)
  summary.csv/.md   mean ± std per method, sorted by accuracy
  significance.csv  each method against the reference (hadamard): corrected resampled t-test,
                    Wilcoxon signed-rank, McNemar, Holm-corrected p-values, effect size
  folds.png         per-fold accuracy of each method
  run.json          versions, seed, arguments, machine, time
  units/            one file per finished (method, fold): rerunning the same command resumes

The D-Markers are computed once per video for the whole dataset (they have no fitted state).
"""

_EPILOG = """\
examples:
  hadasklearn benchmark                                     # quick profile on the uvanemo preset
  hadasklearn benchmark --fusions all --out results/all      # all 15 fusions
  hadasklearn benchmark --dataset data/uvanemo --profile paper --device cuda
  hadasklearn benchmark --n-jobs 2                           # two units at a time (loky)
  hadasklearn benchmark --backend dask --scheduler tcp://10.0.0.5:8786
"""


def add_parser(subparsers):
    """Register the ``benchmark`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "benchmark",
        help="the fusion study: every fusion and the baselines, cross-validated, with tests",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        default="uvanemo",
        metavar="PRESET|DIR",
        help="a synthetic preset (uvanemo, mmi, spos, bbc) or a landmark folder in the layout of "
        "hadasklearn.datasets.load_landmark_folder (default: %(default)s)",
    )
    parser.add_argument(
        "--fusions",
        default=None,
        metavar="LIST",
        help="comma-separated fusion names, or 'all' (default: all registered fusions; the quick "
        "profile's default is hadamard,concat,gated_concat,film,cross_attention)",
    )
    parser.add_argument(
        "--baselines",
        default="all",
        metavar="LIST",
        help="comma-separated among dmarker_svm, landmarks_only, dmarker_only, multitask; 'all' "
        "or 'none' (default: %(default)s)",
    )
    parser.add_argument(
        "--cv",
        type=_int_at_least(2),
        default=None,
        metavar="K",
        help="K subject-grouped stratified folds (default: the dataset's protocol: the preset's "
        "folds or the folder's fold files)",
    )
    parser.add_argument(
        "--profile",
        choices=("quick", "paper"),
        default="quick",
        help="quick: small lite network, few epochs (a laptop CPU); paper: curvenet backbone, 300 "
        "epochs, batch 16, AdamW lr 5e-4 (a GPU) (default: %(default)s)",
    )
    parser.add_argument("--max-epochs", type=_int_at_least(1), default=None, metavar="N",
                        help="override the profile's number of epochs")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="(method, fold) units run in parallel, each with its share of the cores; "
                        "-1: one per core (default: quick profile one per core up to 4, paper 1)")
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky",
                        help="parallel backend for --n-jobs (default: %(default)s)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="dask scheduler address (--backend dask); default: a local cluster")
    parser.add_argument("--reference", default="hadamard",
                        help="method every other method is tested against (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("benchmark_results"), metavar="DIR",
                        help="output folder; rerunning with the same folder resumes (default: %(default)s)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="study seed (default: %(default)s)")
    parser.add_argument("--data-seed", type=_int_at_least(0), default=0,
                        help="seed of the synthetic preset's data (default: %(default)s)")
    parser.add_argument("--max-videos", type=_int_at_least(4), default=None, metavar="N",
                        help="keep a stratified random subset of N videos (smoke runs; recorded in run.json)")
    parser.add_argument("--quiet", action="store_true", help="print only errors (no progress bar, no table)")
    parser.set_defaults(func=run)
    return parser


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _split_list(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _object_array(videos):
    out = np.empty(len(videos), dtype=object)
    for i in range(len(videos)):
        out[i] = videos[i]
    return out


def load_benchmark_data(dataset, *, data_seed=0, max_videos=None, cv=None):
    """Load a preset or a landmark folder and precompute what every method shares.

    Parameters
    ----------
    dataset : str or path-like
        A preset of :func:`~hadasklearn.datasets.make_smiles` or a folder for
        :func:`~hadasklearn.datasets.load_landmark_folder`.
    data_seed : int, default=0
        ``random_state`` of the preset.
    max_videos : int or None, default=None
        Keep a stratified random subset of this many videos; the folds are those of the full
        dataset restricted to the subset, so the protocol is unchanged.
    cv : int or None, default=None
        Number of :class:`~sklearn.model_selection.StratifiedGroupKFold` folds; ``None`` uses the
        dataset's protocol (the preset's ``cv_folds``, the folder's fold files, or 10 folds).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X`` (a :class:`skorch.helper.SliceDict` with ``landmarks``, ``dmarkers`` and ``fps``),
        ``y``, ``groups``, ``names``, ``splits`` (list of (train, test) index arrays),
        ``protocol`` (text) and ``context`` (a JSON-able description for resuming).

    Raises
    ------
    hadasklearn.exceptions.UnknownNameError
        If ``dataset`` is neither a preset nor an existing folder.

    Examples
    --------
    >>> data = load_benchmark_data("bbc", max_videos=8, cv=2)
    >>> len(data.y), data.X["dmarkers"].shape, len(data.splits)
    (8, (8, 225), 2)
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split
    from sklearn.utils import Bunch
    from skorch.helper import SliceDict

    from .. import dmarker_features
    from ..datasets import SMILE_PRESETS, make_smiles
    from ..exceptions import UnknownNameError

    name = str(dataset)
    if name in SMILE_PRESETS:
        raw = make_smiles(preset=name, random_state=data_seed)
        context = {"dataset": name, "data_seed": int(data_seed)}
        protocol_cv, protocol = raw.cv_folds, f"{raw.cv_folds} StratifiedGroupKFold folds (preset protocol)"
    elif Path(name).is_dir():
        from ..datasets import load_landmark_folder

        raw = load_landmark_folder(name)
        context = {"dataset": str(Path(name).resolve())}
        protocol_cv = raw.cv if raw.cv is not None else 10
        protocol = (
            f"the folder's {raw.cv.get_n_splits()} fold files"
            if raw.cv is not None
            else "10 StratifiedGroupKFold folds (the folder has no fold files)"
        )
    else:
        raise UnknownNameError(
            f"--dataset {name!r} is neither a synthetic preset ({sorted(SMILE_PRESETS)}) nor an "
            "existing folder. Give a preset name or the path of a landmark folder "
            "(path/npy/<name>.mp4.npy and path/labels/<k>/{train,test}.json)."
        )
    y = np.asarray(raw.y)
    groups = np.asarray(raw.groups)
    names = np.asarray(raw.names)
    n = len(y)
    fps = raw.get("fps")
    if fps is None:
        fps = np.full(n, 50.0)
        fps_note = "50 fps assumed (the dataset gives no frame rate)"
    else:
        fps = np.broadcast_to(np.asarray(fps, dtype=float), (n,)).copy()
        fps_note = None

    if cv is not None:
        protocol_cv, protocol = cv, f"{cv} StratifiedGroupKFold folds (--cv)"
    if isinstance(protocol_cv, int):
        protocol_cv = StratifiedGroupKFold(n_splits=protocol_cv)
    dummy = np.zeros((n, 1))
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in protocol_cv.split(dummy, y, groups)]

    keep = np.arange(n)
    if max_videos is not None and max_videos < n:
        keep, _ = train_test_split(keep, train_size=max_videos, stratify=y, random_state=data_seed)
        keep = np.sort(keep)
        position = np.full(n, -1)
        position[keep] = np.arange(len(keep))
        splits = [(position[tr][position[tr] >= 0], position[te][position[te] >= 0]) for tr, te in splits]
        protocol += f", restricted to a stratified subset of {len(keep)} of {n} videos"
    context.update({"max_videos": max_videos, "cv": cv, "n_videos": int(len(keep))})

    videos = _object_array([raw.X[i] for i in keep])
    fps = fps[keep]
    dmarkers = dmarker_features(list(videos), fps=fps)
    X = SliceDict(landmarks=videos, dmarkers=dmarkers, fps=fps)
    return Bunch(
        X=X,
        y=y[keep],
        groups=groups[keep],
        names=names[keep],
        n_total=n,
        splits=splits,
        protocol=protocol,
        fps_note=fps_note,
        context=context,
    )


def run(args):
    """Run the benchmark described by parsed ``args``; returns the exit status."""
    from ..study import default_methods, run_study

    started = time.perf_counter()
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    if args.scheduler is not None and args.backend != "dask":
        print("error: --scheduler needs --backend dask", file=sys.stderr)
        return 2

    fusions = None
    if args.fusions is not None:
        fusions = "all" if args.fusions.strip() == "all" else _split_list(args.fusions)
    baselines = args.baselines.strip()
    baselines = baselines if baselines in ("all", "none") else _split_list(baselines)
    overrides = {"device": args.device, "verbose": 0}
    if args.max_epochs is not None:
        overrides["max_epochs"] = args.max_epochs
    try:
        methods = default_methods(fusions, baselines, profile=args.profile, **overrides)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    say(f"hadasklearn benchmark: loading {args.dataset} ...")
    try:
        data = load_benchmark_data(args.dataset, data_seed=args.data_seed, max_videos=args.max_videos, cv=args.cv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    n_subjects = len(np.unique(data.groups))
    say(
        f"{len(data.y)} videos of {n_subjects} subjects, {data.protocol}; "
        f"{len(methods)} methods ({', '.join(methods)}), profile {args.profile}; "
        f"{len(methods) * len(data.splits)} units -> {args.out}"
    )
    if data.fps_note:
        say(f"note: {data.fps_note}")

    from ..study import PROFILES

    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    metadata = {
        "command": "hadasklearn benchmark " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["benchmark"] else None,
        "arguments": arguments,
        "profile": {"name": args.profile, **PROFILES[args.profile], **overrides},
        "protocol": data.protocol,
        "subsampled": (
            f"yes: --max-videos {args.max_videos} kept {len(data.y)} of {data.n_total} videos "
            "(a smoke run, not the full dataset)"
            if len(data.y) < data.n_total
            else "no"
        ),
        "data_loading_seconds": round(time.perf_counter() - started, 2),
    }
    if data.fps_note:
        metadata["fps_note"] = data.fps_note
    n_jobs = args.n_jobs
    if n_jobs is None:
        # Small networks use cores better side by side (one thread each) than one fit on all.
        n_jobs = min(os.cpu_count() or 1, 4) if args.profile == "quick" else 1
    try:
        result = run_study(
            methods,
            data.X,
            data.y,
            groups=data.groups,
            cv=data.splits,
            out_dir=args.out,
            seed=args.seed,
            reference=args.reference,
            names=data.names,
            context=data.context,
            metadata=metadata,
            n_jobs=n_jobs,
            backend=args.backend,
            scheduler=args.scheduler,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished units are kept in {args.out / 'units'}; rerun the same "
            "command to resume.",
            file=sys.stderr,
        )
        return 130
    except ValueError as error:  # includes StudyResumeError
        notes = "".join(f"\n{note}" for note in getattr(error, "__notes__", ()))
        print(f"error: {error}{notes}", file=sys.stderr)
        return 2

    if not args.quiet:
        print((args.out / "summary.md").read_text(encoding="utf-8"))
        say(
            f"{result.n_run} units run, {result.n_reused} reused; total "
            f"{time.perf_counter() - started:.0f} s. Results in {args.out}/ "
            "(folds.csv, summary.md, significance.csv, folds.png, run.json)."
        )
    return 0
