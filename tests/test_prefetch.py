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


def test_closing_early_does_not_wait_for_the_item_in_progress():
    """Stopping (Ctrl-C, an error, a break) returns at once: the item being prepared is left to finish on its
    own in the daemon thread, and nothing new starts."""
    release, busy, started = threading.Event(), threading.Event(), []

    def work(i):
        started.append(i)
        if i == 1:
            busy.set()
            release.wait(timeout=60)  # a long dense pass
        return i

    gen = prefetched(work, range(10), depth=1)
    assert next(gen) == (0, 0)
    assert busy.wait(timeout=30)  # item 1 is in progress
    closer = threading.Thread(target=gen.close)
    closer.start()
    closer.join(timeout=10)
    try:
        assert not closer.is_alive()
    finally:
        release.set()
    assert started == [0, 1]


def test_an_iterable_that_fails_fails_the_caller():
    def items():
        yield 1
        raise OSError("the listing broke")

    got = []
    with pytest.raises(OSError, match="the listing broke"):
        for item, res in prefetched(lambda i: i + 1, items(), depth=2):
            got.append((item, res))
    assert got == [(1, 2)]
