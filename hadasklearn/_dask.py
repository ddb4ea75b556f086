"""Run joblib-parallel work (grid searches, cross-validation, the fusion study) on a Dask cluster.

Optional: needs ``dask.distributed`` (``pip install "hadasklearn[dask]"``).
"""

import contextlib

__all__ = ["dask_parallel"]


def _import_distributed():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Running on a Dask cluster needs dask.distributed, an optional dependency of "
            'hadasklearn. Install it with: pip install "hadasklearn[dask]"'
        ) from exc
    return Client, LocalCluster


@contextlib.contextmanager
def dask_parallel(scheduler=None, *, scatter=None, n_workers=2, threads_per_worker=1):
    """Route joblib work (``n_jobs``) to a Dask cluster, shipping the data set to the workers once.

    Inside the ``with`` block every joblib call with ``n_jobs != 1`` -- scikit-learn's
    ``GridSearchCV``, ``cross_validate``, ``hadasklearn.study.run_study`` -- runs its tasks on the
    cluster. Objects listed in ``scatter`` are broadcast to every worker once, when the block is
    entered, and tasks refer to those copies instead of carrying the data with them (joblib's
    ``parallel_backend("dask", scatter=...)``). Broadcasting (rather than placing one copy) also
    keeps the data available when a worker dies and Dask retries its tasks elsewhere.

    Parameters
    ----------
    scheduler : str, dask.distributed.Client or None, default=None
        Address of a running scheduler (``"tcp://10.0.0.5:8786"``), an existing client, or
        ``None`` to start a :class:`~dask.distributed.LocalCluster` of worker processes on the
        loopback interface for the duration of the block.
    scatter : list or None, default=None
        Objects passed *by identity* to the parallel calls made inside the block, typically
        ``[X, y]``. Pass the very objects you then give to ``fit``: joblib matches them by
        ``id``, so a copy (e.g. ``np.asarray(X)`` on a list) is shipped with every task again.
    n_workers : int, default=2
        Worker processes of the local cluster (``scheduler=None`` only).
    threads_per_worker : int, default=1
        Threads per worker of the local cluster. One thread per process suits PyTorch training,
        which uses its own intra-op threads.

    Yields
    ------
    client : dask.distributed.Client
        The connected client.

    Raises
    ------
    ImportError
        If ``dask.distributed`` is not installed.
    TypeError
        If ``scatter`` is not a list or tuple.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from hadasklearn import HadaSmileClassifier
    >>> with dask_parallel(scatter=[X, y]) as client:  # doctest: +SKIP
    ...     GridSearchCV(HadaSmileClassifier(), {"fusion": ["hadamard", "concat"]}, n_jobs=-1).fit(X, y)
    """
    if scatter is not None and not isinstance(scatter, (list, tuple)):
        raise TypeError(
            f"scatter must be a list or tuple of the objects passed to fit, e.g. [X, y]; got "
            f"{type(scatter).__name__}."
        )
    import joblib

    Client, LocalCluster = _import_distributed()
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=threads_per_worker,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster, set_as_default=False))
        elif isinstance(scheduler, str):
            client = stack.enter_context(Client(scheduler, set_as_default=False))
        else:
            client = scheduler
        stack.enter_context(joblib.parallel_backend("dask", client=client, scatter=list(scatter or [])))
        yield client
