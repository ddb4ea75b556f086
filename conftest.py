"""Test-session settings shared by every test module and doctest."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    # Tests use tiny networks: one intra-op thread avoids oversubscribing small CI machines
    # (and the worker processes of n_jobs=2 tests) and makes results independent of core count.
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(1)
