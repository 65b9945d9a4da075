"""Live video sources: anything PyAV opens (rtsp/rtmp/udp/tcp/http(s)/srt URLs, a V4L2 device, a file), decoded
frame by frame with a stream time and the wall-clock time each frame arrived.

A dropped stream (read error or timeout, end of a network stream) is reopened with exponential backoff, forever;
a `Gap` is yielded when it is back and stream time skips the gap's wall-clock length (it stays monotonic). A
corrupt packet is skipped and counted. A file is read once, as fast as it decodes or, with `realtime`, at its
frame rate. `open` raises `SourceError` naming a source it cannot open in `open_attempts` tries; `items` keeps
retrying a stream never reached, as a dropped one (a camera still booting must not be lost for the run).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from holmesvau.video_open import VideoError, open_container, video_stream

log = logging.getLogger("holmesvau.live")

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "http", "https", "srt", "rtp", "rist")


class SourceError(RuntimeError):
    """A source that cannot be opened or read: the message names it."""


class SourceUnavailable(SourceError):
    """Not reachable in `open_attempts` tries (refused, timed out, not there yet): `items` keeps retrying a stream
    source, as after a drop; a refused source (a policy, a file that is not a video) is a plain SourceError."""


@dataclass
class SourceConfig:
    source: str
    realtime: bool = False  # files: pace at the frame rate (streams and devices arrive in real time anyway)
    reconnect: bool | None = None  # reopen after a drop; None: yes for streams and devices, no for files
    open_attempts: int = 5  # first open only; once opened, a dropped stream is retried forever
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    backoff_s: float = 0.5  # first retry delay, doubled each failure up to backoff_max_s
    backoff_max_s: float = 10.0
    decode_threads: int = 0  # 0: FFmpeg's choice
    options: dict[str, str] = field(default_factory=dict)  # extra demuxer/protocol options (rtsp_transport)
    max_corrupt_in_row: int = 500  # this many undecodable packets in a row count as a drop

    @property
    def kind(self) -> str:
        return source_kind(self.source)


@dataclass
class Frame:
    index: int  # frames delivered since the start, over all connections
    t: float  # stream time (s), monotonic over reconnections
    wall: float  # time.time() when it was decoded
    mono: float  # time.monotonic() when it was decoded (for latencies)
    fps: float  # the stream's nominal frame rate (0 if unknown)
    frame: object  # av.VideoFrame


@dataclass
class Gap:
    """The stream was down between two frames: from the last frame before the drop to the first after."""

    start_t: float
    end_t: float | None  # None: still down when the watcher stopped
    start_wall: float
    end_wall: float | None
    reason: str
    attempts: int

    def to_dict(self) -> dict:
        ended = self.end_wall is not None
        return {
            "start_s": round(self.start_t, 3),
            "end_s": round(self.end_t, 3) if ended else None,
            "start_wall": round(self.start_wall, 3),
            "end_wall": round(self.end_wall, 3) if ended else None,
            "duration_s": round(self.end_wall - self.start_wall, 3) if ended else None,
            "reason": self.reason,
            "reconnect_attempts": self.attempts,
        }


def source_kind(source: str) -> str:
    """ "stream" (URL), "device" (/dev/video*), or "file"."""
    s = str(source)
    if "://" in s and s.split("://", 1)[0].lower() in STREAM_SCHEMES:
        return "stream"
    if s.startswith("/dev/video"):
        return "device"
    return "file"


_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:'\"]*):[^\s'\"]*@")


def url_secrets(source: str) -> tuple[str, ...]:
    """The password of a URL as written and percent-decoded (what redact() hides wherever it shows up)."""
    try:
        pw = urlsplit(str(source)).password
    except ValueError:
        pw = None
    if not pw:
        return ()
    return tuple(dict.fromkeys(s for s in (pw, unquote(pw)) if len(s) >= 2))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Every message built from a source goes through here: `scheme://user:PASSWORD@` -> `scheme://user:***@`
    anywhere in `text` (URLs quoted in FFmpeg's errors too), and any of `secrets` (a source's password, as
    written or decoded) wherever it still appears."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", str(text))
    for s in secrets:
        text = text.replace(s, "***")
    return text


class LiveSource:
    """`for item in LiveSource(cfg).items(stop)`: `Frame`s, and a `Gap` after each reconnection."""

    def __init__(self, config: SourceConfig):
        self.cfg = config
        self.secrets = url_secrets(config.source)
        self.name = redact(config.source, self.secrets)
        self.reconnect = config.reconnect if config.reconnect is not None else config.kind != "file"
        self.corrupt_packets = self.reconnections = self.frames = 0
        self.fps = 0.0
        self._container = None
        self._last_t = 0.0
        self._last_wall = 0.0  # arrival of the newest frame
        self._lead = float("inf")
        self._dt = 0.0
        self.down: Gap | None = None  # while reconnecting: the gap so far (end None)
        self.waiting = False  # never opened yet, retrying (no frame so far: no gap either)

    # -- opening -------------------------------------------------------------------------------------------
    def _open_once(self):
        import av

        cfg, options = self.cfg, dict(self.cfg.options)
        # a file as every file is opened (holmesvau.video): `file` protocol, real containers only
        if cfg.kind == "file":
            if not Path(cfg.source).is_file():
                raise SourceError(f"{self.name}: no such file")
            container = open_container(Path(cfg.source), options)
        else:
            # a UDP burst the reader cannot take loses packets, not the stream
            if cfg.source.startswith("udp://"):
                options.setdefault("overrun_nonfatal", "1")
            elif cfg.source.startswith(("rtsp://", "rtsps://")):
                options.setdefault("rtsp_transport", "tcp")
            fmt = "v4l2" if cfg.kind == "device" else None
            timeout = (cfg.open_timeout_s, cfg.read_timeout_s)
            container = av.open(cfg.source, format=fmt, options=options, timeout=timeout)
        try:
            stream = video_stream(container, self.name)  # the stream every reader of a file uses
        except VideoError:
            container.close()
            raise SourceError(f"{self.name}: no video stream") from None
        stream.thread_type = "AUTO"
        if cfg.decode_threads:
            stream.thread_count = cfg.decode_threads
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps
        return container

    def why(self, e: BaseException, opening: bool = False) -> str:
        """A failure in words, without credentials (FFmpeg's interrupt on a timeout is "no data for N s")."""
        import av

        if isinstance(e, av.error.ExitError):  # our open / read timeout interrupted FFmpeg
            if opening:
                return f"no answer for {self.cfg.open_timeout_s:g} s"
            return f"no data for {self.cfg.read_timeout_s:g} s"
        return redact(f"{type(e).__name__}: {e}", self.secrets)

    def open(self) -> None:
        """First open, `open_attempts` tries with backoff; raises SourceError naming the source."""
        delay, last = self.cfg.backoff_s, None
        for attempt in range(1, max(1, self.cfg.open_attempts) + 1):
            try:
                self._container = self._open_once()
                return
            except SourceError:
                raise
            except Exception as e:  # noqa: BLE001 - refused, timeout, DNS, not a video: retried, then reported
                last = self.why(e, opening=True)
                log.warning("%s: open attempt %d failed (%s)", self.name, attempt, last)
                if self.cfg.kind == "file":
                    break
            if attempt < self.cfg.open_attempts:
                time.sleep(delay)
                delay = min(delay * 2, self.cfg.backoff_max_s)
        raise SourceUnavailable(f"{self.name}: cannot open the source ({last})")

    def _reopen(self, stop: threading.Event) -> tuple[object | None, int]:
        delay, attempts = self.cfg.backoff_s, 0
        while not stop.is_set():
            attempts += 1
            try:
                return self._open_once(), attempts
            except Exception as e:  # noqa: BLE001
                log.warning("%s: reconnect attempt %d failed (%s)", self.name, attempts, self.why(e, True))
            stop.wait(delay)
            delay = min(delay * 2, self.cfg.backoff_max_s)
        return None, attempts

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken stream
                pass
            self._container = None

    # -- reading -------------------------------------------------------------------------------------------
    def _decode(self, container, stop: threading.Event) -> Iterator[Frame | Gap]:
        import av

        stream = video_stream(container, self.name)
        first = None  # raw time of this connection's first frame
        offset = 0.0  # stream time of this connection's first frame
        in_row = n_here = 0
        start_mono = time.monotonic()
        self._lead = float("inf")  # this connection's smallest (arrival wall time - stream time)
        for packet in container.demux(stream):
            if stop.is_set():
                return
            try:
                decoded = packet.decode()
                in_row = 0
            except (av.error.InvalidDataError, av.error.UndefinedError, ValueError) as e:
                self.corrupt_packets += 1
                in_row += 1
                log.debug("%s: corrupt packet skipped (%s)", self.name, self.why(e))
                if in_row >= self.cfg.max_corrupt_in_row:
                    raise SourceError(f"{self.name}: {in_row} undecodable packets in a row") from e
                continue
            for f in decoded:
                wall, mono = time.time(), time.monotonic()
                raw = f.time
                fresh = n_here == 0  # first frame of this connection
                step = self._dt or (1.0 / self.fps if self.fps else 0.04)
                if fresh and self.down is not None:
                    # back after a drop: the gap runs from the last frame before it to this one, and stream
                    # time skips the outage's wall-clock length
                    gap = self.down
                    offset = gap.start_t + step + (wall - gap.start_wall)
                    gap.end_t, gap.end_wall = offset, wall
                    self.down = None
                    self.reconnections += 1
                    log.warning("%s: back after %.1f s", self.name, wall - gap.start_wall)
                    yield gap
                elif fresh and self.frames:
                    offset = self._last_t + step
                if raw is None:
                    t = offset if fresh else self._last_t + step
                else:
                    first = raw if first is None else first
                    t = offset + (raw - first)
                if self.frames and not fresh and not (self._last_t < t < self._last_t + 60.0):
                    # timestamps jumped (wrap, discontinuity, restarted encoder): continue the clock instead
                    t = self._last_t + step
                    first, offset = raw, t
                if self.frames and not fresh:
                    self._dt = min(max(t - self._last_t, 1e-3), 1.0)
                if self.cfg.realtime and self.cfg.kind == "file":
                    wait = (t - offset) - (time.monotonic() - start_mono)
                    if wait > 0 and stop.wait(wait):
                        return
                    wall, mono = time.time(), time.monotonic()
                self._last_t, self._last_wall = t, wall
                self._lead = min(self._lead, wall - t)
                yield Frame(self.frames, t, wall, mono, self.fps, f)
                self.frames += 1
                n_here += 1

    def _last_arrival(self) -> float:
        """When the last frame before a drop arrived. Not when it was decoded: the demuxer and decoder give up
        what they still hold only when the drop is noticed (a read timeout later); a live stream arrives at its
        frame rate, so its arrival is its stream time on the connection's earliest clock."""
        if not self._last_wall:
            return time.time()
        return min(self._last_wall, self._last_t + self._lead)

    def items(self, stop: threading.Event) -> Iterator[Frame | Gap]:
        """Frames until the end of a file, or until `stop` is set; a Gap before the first frame after a drop."""
        if self._container is None:
            try:
                self.open()
            except SourceUnavailable as e:
                if not self.reconnect:
                    raise
                log.warning("%s; retrying until it answers", e)
                self.waiting = True
                self._container, _ = self._reopen(stop)
                self.waiting = False
                if self._container is None:  # stopped before it ever answered
                    return
        try:
            while not stop.is_set():
                reason = "end of stream"
                try:
                    yield from self._decode(self._container, stop)
                except Exception as e:  # noqa: BLE001 - any read error is a drop
                    reason = self.why(e)
                self.close()
                if stop.is_set():
                    return
                if not self.reconnect:
                    if reason != "end of stream":
                        log.warning("%s: stopped reading (%s)", self.name, reason)
                    return
                log.warning("%s: stream lost (%s); reconnecting", self.name, reason)
                if self.down is None:  # (still down from a connection that gave no frame: the same gap)
                    self.down = Gap(self._last_t, None, self._last_arrival(), None, reason, 0)
                self._container, attempts = self._reopen(stop)
                self.down.attempts += attempts
                if self._container is None:  # stopped while down: the watcher records self.down
                    return
        finally:
            self.close()
