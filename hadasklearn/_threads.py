"""One way to run GIL-releasing work (numpy ufuncs, ``nogil`` numba kernels) on a few threads."""

from concurrent.futures import ThreadPoolExecutor

__all__ = ["map_ranges"]


def map_ranges(fn, edges, n_threads):
    """``[fn(edges[i], edges[i + 1]) for i ...]``, the ranges spread over up to ``n_threads`` threads.

    Each call must write only its own range of the output, so calls never race; results come back
    in range order. One range or one thread runs inline, without a pool.

    Examples
    --------
    >>> map_ranges(lambda a, b: list(range(a, b)), [0, 2, 5], n_threads=2)
    [[0, 1], [2, 3, 4]]
    """
    ranges = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    if n_threads <= 1 or len(ranges) <= 1:
        return [fn(a, b) for a, b in ranges]
    with ThreadPoolExecutor(min(n_threads, len(ranges))) as pool:
        return list(pool.map(lambda r: fn(*r), ranges))
