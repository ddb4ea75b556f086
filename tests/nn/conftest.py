"""Fixtures shared by the tests of hadasklearn.nn."""

import pytest
import torch


def _torch_threads(n):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def two_threads():
    """torch runs on two threads during the test (the parallel paths need more than one)."""
    yield from _torch_threads(2)


@pytest.fixture
def one_thread():
    """torch runs on one thread during the test (the single-threaded paths)."""
    yield from _torch_threads(1)
