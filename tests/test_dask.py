"""A grid search of HadaSmileClassifier on a local Dask cluster equals the serial one, even if a worker dies."""

import os
import signal
import threading
import time

import joblib
import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")
torch = pytest.importorskip("torch")

from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold  # noqa: E402

from hadasklearn import HadaSmileClassifier  # noqa: E402
from hadasklearn._dask import dask_parallel  # noqa: E402
from hadasklearn.datasets import make_smiles  # noqa: E402

FUSIONS = ["hadamard", "concat"]
SCORE_KEYS = ["split0_test_score", "split1_test_score", "mean_test_score"]


@pytest.fixture(scope="module")
def client():
    # Loopback only, no dashboard; the fixture closes the workers even when a test fails.
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


@pytest.fixture(scope="module")
def data():
    return make_smiles(n_subjects=6, videos_per_subject=2, fps=12.5, random_state=0)


def _search(max_epochs=1):
    clf = HadaSmileClassifier(
        dim=8, depth=1, clip_length=4, n_test_clips=1, max_epochs=max_epochs, batch_size=8,
        early_stopping=False, device="cpu", random_state=0,
    )
    # refit=False: the refit runs in the calling process and would not exercise the cluster.
    return GridSearchCV(
        clf, {"fusion": FUSIONS}, cv=StratifiedGroupKFold(n_splits=2), n_jobs=-1, refit=False,
        error_score="raise",
    )


@pytest.fixture(scope="module")
def serial_results(data):
    # Dask workers run with one intra-op thread; pin the reference to one thread too, so that both
    # runs do the same floating-point reductions.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        search = _search()
        search.set_params(n_jobs=1)
        search.fit(data.X, data.y, groups=data.groups)
    finally:
        torch.set_num_threads(threads)
    return search.cv_results_


def _assert_same_scores(results, reference):
    assert [p["fusion"] for p in results["params"]] == [p["fusion"] for p in reference["params"]]
    for key in SCORE_KEYS:
        np.testing.assert_array_equal(results[key], reference[key], err_msg=key)


def test_grid_search_on_dask_equals_serial(client, data, serial_results):
    assert len(client.scheduler_info()["workers"]) == 2
    with joblib.parallel_backend("dask", client=client, scatter=[data.X, data.y]):
        search = _search().fit(data.X, data.y, groups=data.groups)
    _assert_same_scores(search.cv_results_, serial_results)
    # Every (fusion, fold) unit produced a finite score: nothing was dropped or replaced by NaN.
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # The tasks really ran on the workers: each worker process imported the classifier module.
    imported = client.run(lambda: "hadasklearn._classifier" in __import__("sys").modules)
    assert any(imported.values())


def test_dask_parallel_helper_rejects_bad_scatter():
    with pytest.raises(TypeError, match="scatter must be a list or tuple"):
        with dask_parallel(scatter=np.zeros(3)):
            pass


def _kill_first_busy_worker(client, pids, stop, killed):
    """Wait until a worker is running a task, let it work a moment, then SIGKILL its process."""
    while not stop.is_set():
        busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
        if busy:
            time.sleep(0.5)
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_is_retried_and_results_stay_complete(client, data):
    # Longer fits than the default test so that the kill lands inside a task.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = _search(max_epochs=4).set_params(n_jobs=1).fit(data.X, data.y, groups=data.groups)
    finally:
        torch.set_num_threads(threads)

    pids = client.run(os.getpid)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_busy_worker, args=(client, pids, stop, killed), daemon=True)
    killer.start()
    try:
        with joblib.parallel_backend("dask", client=client, scatter=[data.X, data.y]):
            search = _search(max_epochs=4).fit(data.X, data.y, groups=data.groups)
    finally:
        stop.set()
        killer.join(timeout=10)

    assert killed, "no worker was busy during the search, so none was killed"
    _assert_same_scores(search.cv_results_, reference.cv_results_)
    # The nanny restarted the killed worker under a new address.
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.scheduler_info()["workers"]
