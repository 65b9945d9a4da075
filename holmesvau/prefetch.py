"""Work on the next items in one background thread while the caller uses the current one, at most `depth` ahead.

    for item, result in prefetched(load_video, videos, depth=8):     # result: load_video(item), or its exception
        ...

Used to decode the next videos' frames (CPU: decoder, resize) while the GPU answers the current batch. Results
come back in the order of `items`; an exception raised by `fn` is returned in place of its result, so one bad
item never stops the others. Memory stays bounded: at most `depth` results wait, however many items there are.
Video decoders and torch release the GIL, so the thread runs beside the main thread's GPU work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(fn: Callable[[T], R], items: Iterable[T], depth: int = 2) -> Iterator[tuple[T, R | Exception]]:
    """(item, fn(item) or the Exception it raised) for each item in order, computed up to `depth` items ahead in
    one worker thread (depth 0: in the caller's thread, nothing ahead)."""
    if depth < 1:
        for item in items:
            yield item, _call(fn, item)
        return
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holmesvau-prefetch")
    waiting: deque[tuple[T, Future]] = deque()
    try:

        def top_up() -> None:
            while len(waiting) < depth:
                item = next(source, _END)
                if item is _END:
                    return
                waiting.append((item, pool.submit(_call, fn, item)))

        top_up()
        while waiting:
            item, fut = waiting.popleft()
            result = fut.result()
            top_up()  # `depth` items are prepared while the caller holds this one
            yield item, result
    finally:  # the caller stopped early or failed: drop what has not started, let the running one finish
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()


def _call(fn, item):
    try:
        return fn(item)
    except Exception as e:  # noqa: BLE001 - handed to the caller in the item's place
        return e
