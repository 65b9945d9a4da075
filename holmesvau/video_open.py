"""Opening a video, and nothing but the file: the checks before any decoding (a regular file, not a playlist),
FFmpeg's `file` protocol and real-container demuxers only, the one stream rule (the first video stream that is not
an attached picture), the container's claims and how far to trust them, the per-process `DecodeLimits`, and the
stall watchdog every decoding pass runs under (`watched`). holmesvau.video decodes what this opens (docs/video.md).
"""

from __future__ import annotations

import math
import os
import queue
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

BACKENDS = ("auto", "pyav")  # "auto" is PyAV: kept so that callers passing it go on working
MAX_FPS = 1000.0  # a faster rate, or a duration that short for its frames, is broken timing, not a camera

# Demuxers a local file may be read with: real containers and raw video streams. Everything that opens other
# files or URLs by itself (hls, dash, concat, playlists, image sequences, tee, data URIs...) is left out, so a
# file can only ever make FFmpeg read itself. FFmpeg refuses any other demuxer its probe picks.
ALLOWED_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "mpeg", "flv", "asf", "ogg", "ivf",
                   "h264", "hevc", "m4v", "mpegvideo")  # fmt: skip
# Heads of text files that FFmpeg would follow to other files: refused before any demuxer sees them.
_PLAYLIST_HEADS = (b"#EXTM3U", b"ffconcat", b"[playlist]", b"<?xml", b"<smil", b"#EXT")
# Codecs of still pictures: a track of one of these beside a real video track is a cover, not the video.
PICTURE_CODECS = frozenset({"png", "bmp", "tiff", "webp", "gif", "jpegls", "qoi", "mjpeg"})


class VideoError(RuntimeError):
    """A video that cannot be read: the message names the file and what is wrong."""


def shown(path: str | Path) -> str:
    """A path as error messages show it: on one line and encodable. Control characters are escaped, and so are
    the undecodable bytes of a non-UTF-8 name (Python keeps them as lone surrogates, which no UTF-8 writer takes)."""

    def char(ch: str) -> str:
        if ch.isprintable():
            return ch
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # os.fsdecode's surrogateescape: byte 0x80..0xff
            return f"\\x{ord(ch) - 0xDC00:02x}"
        return ascii(ch)[1:-1]

    return "".join(map(char, str(path)))


def error_reason(e: BaseException) -> str:
    """An exception as one line for a message that already names the file (FFmpeg's errors repeat the path)."""
    lines = str(e).strip().splitlines()
    text = getattr(e, "strerror", None) or (lines[-1] if lines else "")
    return shown(f"{type(e).__name__}: {text}" if text else type(e).__name__)


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """A warning about a file, once per process: a video is opened several times per question."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=4)


@dataclass(frozen=True)
class DecodeLimits:
    """Limits checked on every decoded frame, whatever the container claims. 0 means no limit."""

    max_pixels: int = 7680 * 4320  # per frame (8K UHD); the decoder allocates no frame above it
    max_frames: int = 0  # frames decoded in one pass
    stall_s: float = 30.0  # seconds without a decoded packet before decoding is stopped


_LIMITS = DecodeLimits()


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


def default_limits() -> DecodeLimits:
    """The limits readers made now use (read at each reader's creation: the two setters above rebind them)."""
    return _LIMITS


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

    def run() -> None:
        try:
            for item in produce(tick, stop):
                if not put_unless_stopped(items, item, stop):
                    return
            put_unless_stopped(items, _END, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which re-raises it
            put_unless_stopped(items, e, stop)

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


def check_file(path: Path) -> None:
    """Refuse what is not a readable regular file before any decoder sees it (a FIFO would block it forever)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        kind = "dangling symbolic link" if path.is_symlink() else "no such file"
        raise VideoError(f"{shown(path)}: {kind}") from None
    except OSError as e:  # a symlink loop, a path through a file, no permission on a folder ...
        raise VideoError(f"{shown(path)}: cannot access it ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoError(f"{shown(path)}: is a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        raise VideoError(f"{shown(path)}: not a regular file ({kind})")
    if st.st_size == 0:
        raise VideoError(f"{shown(path)}: empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise VideoError(f"{shown(path)}: cannot read it ({e.strerror})") from None
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_PLAYLIST_HEADS):
        raise VideoError(
            f"{shown(path)}: a playlist or text file, not a video (refused: it names other files)"
        )


def open_container(path: Path, options: dict[str, str] | None = None):
    """The one way a video file is opened: FFmpeg's `file` protocol only (a name is never taken for a URL), a
    demuxer of `ALLOWED_FORMATS` only. Raises what PyAV raises; callers turn it into a VideoError naming the file."""
    import av  # leave av.logging alone: its default (None) is silent and lock-free; a level adds a GIL callback

    opts = {**(options or {}), "protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_FORMATS)}
    return av.open("file:" + os.fspath(Path(path).absolute()), options=opts)


def video_stream(container, path: Path):
    """The stream every reader uses: the first video stream that is not an attached picture (a cover flagged
    as such, or a still-picture track such as an MKV's PNG cover, when the file has a video track besides)."""
    import av

    attached = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not s.disposition & attached]
    moving = [s for s in streams if s.codec_context.name not in PICTURE_CODECS]
    if moving or streams:
        return (moving or streams)[0]
    if container.streams.video:
        raise VideoError(
            f"{shown(path)}: its only video stream is an attached picture (a cover), not a video"
        )
    raise VideoError(f"{shown(path)}: no video stream")


@dataclass
class ContainerInfo:
    """What the container says about its first video stream, read without decoding."""

    frames: int  # the index's sample count (mp4), else the number of packets
    fps: float  # the stream's average rate (the header's rate for raw streams without durations)
    duration_s: float  # the stream's duration, else the container's; 0 when unknown
    width: int
    height: int
    header_fps: float = 0.0  # FFmpeg's r_frame_rate: the codec header's rate, or one that fits the timestamps


def timing_consistent(frames: int, fps: float, duration_s: float) -> bool:
    """Do `frames` frames at `fps` fill `duration_s` (within 20 %, or two frames of a short clip)? A zero media
    timescale or zero frame durations do not (1/512 fps or 15 fps for 120 frames over 4 s)."""
    if not (fps > 0 and math.isfinite(fps)):
        return False
    if frames <= 2 or not duration_s > 0:
        return True
    return abs(frames / (fps * duration_s) - 1) <= max(0.2, 2 / frames)


def count_packets(container, stream) -> tuple[int, float, bool]:
    """(video packets, seconds from the first timestamp to the end of the last packet (0 without timestamps),
    whether the timestamps move like a camera's: ones that stay (nearly) equal, e.g. all 0 and re-muxed one
    tick apart, say nothing about time)."""
    count, first, last, end = 0, None, None, None
    for packet in container.demux(stream):
        if not packet.size:
            continue
        count += 1
        if packet.pts is not None:
            first = packet.pts if first is None else min(first, packet.pts)
            last = packet.pts if last is None else max(last, packet.pts)
            stop = packet.pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    if first is None or end <= first or not stream.time_base:
        return count, 0.0, False
    moves = float((last - first) * stream.time_base) >= (count - 1) / MAX_FPS
    return count, float((end - first) * stream.time_base), moves


def broken_timing_fps(
    frames: int, duration_s: float, header_rates: Sequence[float], timestamps_move: bool = True
) -> tuple[float | None, str]:
    """(fps, why) for a file whose claimed rate does not fit its count and duration: a header rate that fits
    them; else, when the timestamps move (a zero timescale leaves the duration right), the count over the
    duration; else (all timestamps equal: the duration collapsed with them) the header's rate; None when
    nothing is plausible."""
    rates = [r for r in header_rates if 0 < r <= MAX_FPS]
    if duration_s > 0 and timestamps_move:
        fitting = [r for r in rates if timing_consistent(frames, r, duration_s)]
        if fitting:
            return fitting[0], "the stream header's rate, which fits the duration"
        if frames / duration_s <= MAX_FPS:
            return frames / duration_s, f"{frames} frames over the container's {duration_s:g} s"
    if rates:
        return rates[0], "the stream header's rate; the duration is broken too"
    return None, ""


def probe_container(path: Path) -> ContainerInfo:
    """Frame count (index or packets), fps, duration and size, no decoding; raises VideoError if unreadable."""
    try:
        with open_container(path) as container:
            stream = video_stream(container, path)
            width, height = stream.codec_context.width, stream.codec_context.height
            frames, duration = int(stream.frames or 0), 0.0
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            if frames <= 0:  # containers without a frame index (mkv, webm, raw): count packets, no decoding
                frames, span, _ = count_packets(container, stream)
                duration = duration or span  # the video's own span: the container's may be a longer audio's
            if not duration and container.duration:
                duration = float(container.duration) / 1e6
            # a raw stream (no durations) has only its header's rate: average_rate there is FFmpeg's 25 default
            rates = (stream.average_rate, stream.guessed_rate)
            rate = next((r for r in (rates if duration > 0 else rates[::-1]) if r), None)
            fps = float(rate) if rate else 0.0
            header = float(stream.guessed_rate) if stream.guessed_rate else 0.0
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(f"{shown(path)}: cannot open as a video ({error_reason(e)})") from e
    # (a still image, an HLS or concat list: its demuxer is not allowed, so the open above failed)
    if width <= 0 or height <= 0 or frames <= 0:
        raise VideoError(f"{shown(path)}: video stream has no frames or no size")
    return ContainerInfo(frames, fps, duration, width, height, header)
