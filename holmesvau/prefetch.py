"""Work on the next items in one background thread while the caller uses the current one, at most `depth` ahead.

    for item, result in prefetched(load_video, videos, depth=8):     # result: load_video(item), or its exception

Decodes the next videos (releasing the GIL) while the GPU answers the current batch. Results come in order, an
exception of `fn` in place of its result (one bad item never stops the others); memory is bounded by `depth`
however many items there are. The thread is a daemon: Ctrl-C ends the program at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_END = object()


def prefetched(fn: Callable[[T], R], items: Iterable[T], depth: int = 2) -> Iterator[tuple[T, R | Exception]]:
    """(item, fn(item) or the Exception it raised) for each item in order, computed up to `depth` items ahead in
    one worker thread (depth 0: in the caller's thread, nothing ahead)."""
    if depth < 1:
        for item in items:
            yield item, _call(fn, item)
        return
    slots = threading.Semaphore(depth + 1)  # the item the caller holds + `depth` ahead
    done: queue.Queue = queue.Queue()  # holds at most depth + 1 results: the slots bound it
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                slots.acquire()
                if stop.is_set():
                    return
                done.put((item, _call(fn, item)))
            done.put(_END)
        except BaseException as e:  # noqa: BLE001 - the iterable itself failed: the caller raises it
            done.put(e)  # results are (item, result) tuples: a bare exception is the iterable's

    threading.Thread(target=work, name="holmesvau-prefetch", daemon=True).start()
    try:
        while True:
            got = done.get()
            if got is _END:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
            slots.release()  # the caller is done with this item: one more may start
    finally:  # the caller stopped early or failed: no new item starts (the one running finishes, unused)
        stop.set()
        slots.release()


def _call(fn, item):
    try:
        return fn(item)
    except Exception as e:  # noqa: BLE001 - handed to the caller in the item's place
        return e
