"""Limits on decoding and its watchdog: `DecodeLimits` (checked by holmesvau.video on every decoded frame), the
process default and a block's own (`decode_limits`), and `watched`, which runs a decoding generator on a worker
thread and stops it when it makes no progress. holmesvau.video re-exports all of it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from holmesvau.video_probe import VideoError


@dataclass(frozen=True)
class DecodeLimits:
    """Limits checked on every decoded frame, whatever the container claims. 0 means no limit."""

    max_pixels: int = 7680 * 4320  # per frame (8K UHD); the decoder allocates no frame above it
    max_frames: int = 0  # frames decoded in one pass
    stall_s: float = 30.0  # seconds without a decoded packet before decoding is stopped


_LIMITS = DecodeLimits()


def default_limits() -> DecodeLimits:
    return _LIMITS


def set_default_limits(**changes) -> DecodeLimits:
    """Change the limits every reader of this process uses unless given its own; returns the previous ones."""
    global _LIMITS
    before, _LIMITS = _LIMITS, replace(_LIMITS, **changes)
    return before


@contextmanager
def decode_limits(limits: DecodeLimits) -> Iterator[DecodeLimits]:
    """`with decode_limits(DecodeLimits(...)):` every reader made inside uses them (e.g. one demo request)."""
    global _LIMITS
    before, _LIMITS = _LIMITS, limits
    try:
        yield limits
    finally:
        _LIMITS = before


_END = object()


def put_unless_stopped(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item` into a bounded queue, waiting while it is full, unless `stop` is set first (then False)."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def watched(produce: Callable[[Callable[[], None], threading.Event], Iterator], stall_s: float, name: str):
    """Items of `produce(tick, stop)`, made on a worker thread. `tick()` marks progress; while the caller waits
    for an item and no tick came for `stall_s` seconds, decoding is stopped and a VideoError raised (a decoder
    stuck inside FFmpeg cannot be interrupted: its daemon thread is left behind, the caller goes on)."""
    items: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    last = [time.monotonic()]

    def tick() -> None:
        last[0] = time.monotonic()

    def put(item) -> bool:
        return put_unless_stopped(items, item, stop)

    def run() -> None:
        try:
            for item in produce(tick, stop):
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which re-raises it
            put(e)

    threading.Thread(target=run, name="holmesvau-decode", daemon=True).start()
    try:
        while True:
            waiting = time.monotonic()
            while True:
                try:
                    item = items.get(timeout=min(0.25, stall_s) if stall_s > 0 else None)
                    break
                except queue.Empty:
                    if time.monotonic() - max(last[0], waiting) > stall_s:
                        raise VideoError(
                            f"{name}: decoding made no progress for {stall_s:g} s; stopped"
                        ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
