"""Keep the memory a CPU training step frees in the process, for the next step (glibc's malloc).

glibc's ``malloc`` serves blocks above its mmap threshold (at most 32 MiB by default) with fresh
``mmap`` mappings and gives them back on ``free``; blocks at the top of its heaps go back to the
operating system beyond the trim threshold. A training step allocates and frees the same large
activations every time, so each step maps them afresh and the kernel page-faults and zeroes every
4 KiB page on first touch (about 3 microseconds each on the 2-core development machine).
With both thresholds raised the freed blocks stay in the heap and the next step reuses them.
Measured for a ``curvenet`` training step of 16 clips (``benchmarks/bench_cpu_runtime.py``, one
process, settings alternating; ``docs/nn_table.md``): with long-lived helper threads
(:mod:`hadasklearn._threads`) 133 thousand page faults and 0.53 s of system time per step,
retained 20 thousand and 0.12 s. Wall time gains less than the system time saved, because heap
memory reused is not in cache as freshly zeroed pages are: 9.36 -> 9.34 s in that run, 8.43 ->
8.51 s and 9.58 -> 8.95 s in two earlier ones, and 9.06 -> 8.38 s (medians of 9 steps) across
fresh processes, whose heaps start cold. This is what preloading jemalloc or tcmalloc, as
PyTorch's CPU performance guide suggests, does for a whole process; here it is scoped to
training: :func:`release` returns the memory (``malloc_trim``) and sets the thresholds to
glibc's steady-state values.

The settings are process-wide. Other C libraries (musl, macOS, Windows) are left alone:
:func:`supported` is False there and both functions do nothing.
"""

import ctypes
import ctypes.util
import threading

__all__ = ["release", "retain", "retained", "supported"]

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# While retained: blocks up to 1 GiB come from the heap, and its top is never trimmed.
_RETAIN_MMAP, _RETAIN_TRIM = 1 << 30, 2**31 - 1
# Where glibc's dynamic thresholds settle once a process has freed a large block
# (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, and twice that): setting any threshold explicitly
# stops the dynamic adjustment, so release() sets these instead of the 128 KiB start values.
_STEADY_MMAP, _STEADY_TRIM = 32 << 20, 64 << 20

_lock = threading.Lock()
_state = {"retained": False}


def _load_glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_glibc()


def supported():
    """Whether this process runs on glibc's ``malloc``, whose thresholds :func:`retain` raises."""
    return _libc is not None


def retained():
    """Whether freed memory is currently kept in the process (:func:`retain` was last called)."""
    return _state["retained"]


def retain():
    """Keep freed memory in the process (raise glibc's mmap and trim thresholds); idempotent.

    Returns
    -------
    bool
        Whether memory is now retained (False where :func:`supported` is False, or if glibc
        refused the thresholds).
    """
    if _state["retained"] or _libc is None:
        return _state["retained"]
    with _lock:
        if not _state["retained"]:
            ok = _libc.mallopt(_M_MMAP_THRESHOLD, _RETAIN_MMAP) == 1
            ok = ok and _libc.mallopt(_M_TRIM_THRESHOLD, _RETAIN_TRIM) == 1
            if not ok:  # leave glibc as a plain process would have it
                _set_steady()
            _state["retained"] = ok
    return _state["retained"]


def release():
    """Return the kept memory to the operating system and restore steady-state thresholds.

    Does nothing unless :func:`retain` is in effect, so processes that never retained keep
    glibc's own (dynamic) thresholds.
    """
    if not _state["retained"]:
        return
    with _lock:
        if _state["retained"]:
            _set_steady()
            _libc.malloc_trim(0)
            _state["retained"] = False


def _set_steady():
    _libc.mallopt(_M_MMAP_THRESHOLD, _STEADY_MMAP)
    _libc.mallopt(_M_TRIM_THRESHOLD, _STEADY_TRIM)
