"""Fixtures shared by the tests of hadasklearn.nn."""

import pytest
import torch


@pytest.fixture
def two_threads():
    """torch runs on two threads during the test (the parallel paths need more than one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
