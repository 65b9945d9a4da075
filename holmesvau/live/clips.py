"""Event clips from a bounded ring buffer of recent frames.

The reader thread pushes every decoded frame (downscaled to `width`, yuv420p) into a ring that keeps the last
`keep_s` seconds of stream time and at most `max_bytes`. When an event opens, a recorder is registered; the next
push writes the ring's frames from `start - pre_roll_s` on, then every new frame, until `post_roll_s` after the
event's end. Clips (h264, else mpeg4) are written to a hidden `.part` and renamed to `<event>.mp4` when complete
(holmesvau.files.atomic_target), so a finished-looking file is always a whole clip; `on_clip` is told then (not
before). All encoding happens on the reader thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

from holmesvau.files import atomic_target

log = logging.getLogger("holmesvau.live")


def _frame_bytes(frame) -> int:
    return sum(p.buffer_size for p in frame.planes)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


class _Recorder:
    def __init__(self, path: Path, start_t: float, fps: float, post_roll_s: float):
        self.path, self.start_t, self.post_roll_s = path, start_t, post_roll_s
        self.target = ExitStack()  # the temporary file: renamed onto `path` when closed, removed if dropped
        self.end_t: float | None = None
        self.fps = fps if fps and fps > 0 else 25.0
        self.container = self.stream = None
        self.frames, self.last_t, self.first_t = 0, None, None
        self.backfilled = False

    def _open(self, frame) -> None:
        import av

        part = self.target.enter_context(atomic_target(self.path))
        self.container = av.open(str(part), mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        except Exception:  # noqa: BLE001 - no libx264 in this FFmpeg build
            self.stream = self.container.add_stream("mpeg4", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = frame.width, frame.height, "yuv420p"
        self._tb = Fraction(1, 1) / rate

    def write(self, t: float, frame) -> None:
        if t < self.start_t or (self.last_t is not None and t <= self.last_t):
            return
        if self.container is None:
            self._open(frame)
            self.first_t = t
        frame.pts, frame.time_base = self.frames, self._tb
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1
        self.last_t = t

    def backfill(self, ring) -> None:
        for t, frame, _ in ring:
            self.write(t, frame)
        self.backfilled = True

    def done(self, t: float) -> bool:
        return self.end_t is not None and t > self.end_t + self.post_roll_s

    def finish(self) -> Path | None:
        if self.container is None:
            return None
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None
        self.target.close()
        return self.path


class ClipRing:
    """Ring buffer of recent frames + clip recorders (see module doc). Thread-safe."""

    def __init__(self, clips_dir: Path, pre_roll_s: float = 3.0, post_roll_s: float = 3.0, keep_s: float = 20.0,
                 max_bytes: int = 96 << 20, width: int = 480, on_clip=None):  # fmt: skip
        self.dir, self.pre, self.post = Path(clips_dir), pre_roll_s, post_roll_s
        self.keep_s, self.max_bytes, self.width = max(keep_s, pre_roll_s), max_bytes, width
        self.ring: deque = deque()  # (t, frame, bytes)
        self.bytes = self.peak_bytes = 0
        self.recorders: dict[str, _Recorder] = {}
        self.clips_written = 0
        self.lock = threading.Lock()
        self.fps = 0.0
        self.on_clip = on_clip  # (event, path, first_t, last_t, frames) once a clip is complete and in place

    def _small(self, frame):
        w = min(self.width, frame.width)
        h = _even(frame.height * w / frame.width)
        return frame.reformat(width=_even(w), height=h, format="yuv420p")

    def push(self, t: float, frame, fps: float = 0.0) -> None:
        """Reader thread: add a decoded frame (av.VideoFrame) at stream time `t`."""
        small = self._small(frame)
        size = _frame_bytes(small)
        with self.lock:
            self.fps = fps or self.fps
            self.ring.append((t, small, size))
            self.bytes += size
            while self.ring and (t - self.ring[0][0] > self.keep_s or self.bytes > self.max_bytes):
                self.bytes -= self.ring.popleft()[2]
            self.peak_bytes = max(self.peak_bytes, self.bytes)
            for ev, rec in list(self.recorders.items()):
                try:
                    if not rec.backfilled:
                        rec.backfill(self.ring)
                    else:
                        rec.write(t, small)
                    if rec.done(t):
                        self._finish(ev)
                except Exception as e:  # noqa: BLE001 - a clip that cannot be written must not stop the watcher
                    log.error("clip %s: cannot encode (%s: %s); dropped", ev, type(e).__name__, e)
                    self.recorders.pop(ev, None)

    def start(self, event: str, start_t: float) -> None:
        with self.lock:
            self.recorders[event] = _Recorder(
                self.dir / f"{event}.mp4", start_t - self.pre, self.fps, self.post
            )

    def stop(self, event: str, end_t: float) -> None:
        with self.lock:
            if event in self.recorders:
                self.recorders[event].end_t = end_t

    def _finish(self, event: str) -> None:
        rec = self.recorders.pop(event)
        try:
            path = rec.finish()
        except Exception as e:  # noqa: BLE001
            log.error("clip %s: cannot finish (%s: %s)", event, type(e).__name__, e)
            return
        if path is not None:
            self.clips_written += 1
            log.info("clip %s: %d frames, %.2f-%.2f s", path, rec.frames, rec.first_t, rec.last_t)
            if self.on_clip is not None:
                self.on_clip(event, path, rec.first_t, rec.last_t, rec.frames)

    def close(self) -> None:
        """Finish every clip with what it has (end of stream, shutdown)."""
        with self.lock:
            for ev, rec in list(self.recorders.items()):
                try:
                    if not rec.backfilled:  # opened after the last frame arrived: the ring has all it gets
                        rec.backfill(self.ring)
                except Exception as e:  # noqa: BLE001
                    log.error("clip %s: cannot encode (%s: %s)", ev, type(e).__name__, e)
                self._finish(ev)
            self.ring.clear()
            self.bytes = 0
