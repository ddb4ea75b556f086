"""Tests of hadasklearn.nn._memory: freed memory kept in the process during CPU training."""

import resource

import pytest
import torch

from hadasklearn.nn import HadaSmileNet, _memory

glibc_only = pytest.mark.skipif(not _memory.supported(), reason="memory retention needs glibc's malloc")

_FLOATS = 24 << 20  # 96 MiB: above glibc's steady-state mmap threshold (32 MiB)


@pytest.fixture(autouse=True)
def _released():
    _memory.release()
    yield
    _memory.release()


def _faults_of_fresh_block():
    """Page faults taken by allocating and writing a 92 MiB tensor right after freeing a 96 MiB one."""
    block = torch.ones(_FLOATS)
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    # A little smaller: torch asks for 64-byte aligned blocks, and glibc's aligned allocation needs
    # a free chunk somewhat larger than the block itself.
    block = torch.ones(_FLOATS - (1 << 20))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
    return faults


@glibc_only
def test_retained_blocks_are_reused_without_page_faults():
    pages = _FLOATS * 4 // 4096
    assert _memory.retain() and _memory.retained()
    # Without retention this block (above glibc's 32 MiB mmap threshold) would be a fresh mapping
    # with a fault on every page, unless an earlier free chunk happened to fit it.
    assert _faults_of_fresh_block() < pages // 20


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@glibc_only
def test_release_returns_the_kept_memory():
    assert _memory.retain()
    block = torch.ones(64 << 20)  # 256 MiB, kept in the heap once freed
    del block
    kept = _resident_bytes()
    _memory.release()
    assert not _memory.retained()
    assert kept - _resident_bytes() > 192 << 20


@glibc_only
def test_retain_and_release_are_idempotent():
    assert _memory.retain() and _memory.retain()
    _memory.release()
    _memory.release()
    assert not _memory.retained()


def test_without_glibc_nothing_changes(monkeypatch):
    monkeypatch.setattr(_memory, "_libc", None)
    assert not _memory.supported()
    assert _memory.retain() is False
    assert not _memory.retained()
    _memory.release()  # no error


@glibc_only
def test_refused_thresholds_leave_memory_released(monkeypatch):
    class Refusing:
        def __init__(self):
            self.calls = []

        def mallopt(self, param, value):
            self.calls.append((param, value))
            return 0 if value == _memory._RETAIN_MMAP else 1

        def malloc_trim(self, pad):
            return 0

    fake = Refusing()
    monkeypatch.setattr(_memory, "_libc", fake)
    assert _memory.retain() is False
    assert not _memory.retained()
    # the steady-state thresholds were set again after the refusal
    assert fake.calls[-2:] == [(_memory._M_MMAP_THRESHOLD, _memory._STEADY_MMAP), (_memory._M_TRIM_THRESHOLD, _memory._STEADY_TRIM)]


def _tiny_net(**kwargs):
    return HadaSmileNet("lite", "hadamard", n_landmarks=12, clip_length=4, dim=8,
                        backbone_kwargs=dict(embed_dim=8, n_tokens=2, depth=1), **kwargs)


@glibc_only
def test_model_retains_while_training_and_releases_in_eval():
    net = _tiny_net()
    lm, dm = torch.randn(2, 4, 12, 3), torch.randn(2, 225)
    with torch.no_grad():
        net(lm, dm)  # training mode without autograd: not a training step
    assert not _memory.retained()
    net(lm, dm).sum().backward()
    assert _memory.retained()
    net.eval()
    assert not _memory.retained()
    net.train()
    assert not _memory.retained()  # only a training forward retains
    net(lm, dm)
    assert _memory.retained()
    net.train(False)
    assert not _memory.retained()


def test_model_can_opt_out():
    net = _tiny_net(retain_memory=False)
    net(torch.randn(2, 4, 12, 3), torch.randn(2, 225)).sum().backward()
    assert not _memory.retained()
    _memory.retain()
    net.eval()  # an opted-out model leaves the process setting alone
    assert _memory.retained() == _memory.supported()
