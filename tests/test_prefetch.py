"""holmesvau.prefetch: results in order (oracle: a plain loop), exceptions in their item's place, the work done
in another thread while the caller holds the previous item, and never more than `depth` items ahead."""

from __future__ import annotations

import threading

import pytest

from holmesvau.prefetch import prefetched


def _square_or_fail(i: int) -> int:
    if i % 7 == 3:
        raise ValueError(f"bad item {i}")
    return i * i


@pytest.mark.parametrize("depth", [0, 1, 4, 50])
def test_results_in_order_with_exceptions_in_place(depth):
    got = list(prefetched(_square_or_fail, range(30), depth=depth))
    assert [item for item, _ in got] == list(range(30))
    for i, res in got:
        if i % 7 == 3:
            assert isinstance(res, ValueError) and str(res) == f"bad item {i}"
        else:
            assert res == i * i


def test_next_item_is_prepared_while_the_caller_holds_this_one():
    main, started_1 = threading.get_ident(), threading.Event()
    threads = []

    def work(i):
        threads.append(threading.get_ident())
        if i == 1:
            started_1.set()
        return i

    for i, _ in prefetched(work, range(3), depth=1):
        if i == 0:  # item 1 is being prepared now, in the worker, before the caller asks for it
            assert started_1.wait(timeout=30)
    assert main not in threads and len(set(threads)) == 1


@pytest.mark.parametrize("depth", [1, 3])
def test_never_more_than_depth_ahead_and_stops_with_the_caller(depth):
    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        return i

    for i, _ in prefetched(work, range(1000), depth=depth):
        with lock:
            assert max(started) <= i + depth  # item i handed over; at most `depth` more submitted
        if i == 5:
            break
    assert len(started) <= 6 + depth
