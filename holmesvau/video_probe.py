"""What a video file is, before any decoding: checks (a regular, readable, non-empty file: a FIFO is never
opened; a playlist is refused), the one way a file is opened (`open_container`: the `file` protocol only, real
containers only) and the one stream read from it (`video_stream`), a PyAV probe of the container (count, rate,
duration, size), and the rules that decide the frame rate when the timestamps are broken. holmesvau.video builds
its readers on these; `VideoError` is re-exported there.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_FPS = 1000.0  # a faster rate, or a duration that short for its frames, is broken timing, not a camera

# Demuxers a local file may be read with: real containers and raw video streams. Everything that opens other
# files or URLs by itself (hls, dash, concat, playlists, image sequences, tee, data URIs...) is left out, so a
# file can only ever make FFmpeg read itself. FFmpeg refuses any other demuxer its probe picks.
ALLOWED_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "asf",
    "ogg",
    "ivf",
    "h264",
    "hevc",
    "m4v",
    "mpegvideo",
)
# Heads of text files that FFmpeg would follow to other files: refused before any demuxer sees them.
_PLAYLIST_HEADS = (b"#EXTM3U", b"ffconcat", b"[playlist]", b"<?xml", b"<smil", b"#EXT")


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
    """The one way a video file is opened for reading: through FFmpeg's `file` protocol only (a name is never
    taken for a URL or protocol), by a demuxer of `ALLOWED_FORMATS` only (none that opens other files). Raises
    what PyAV raises; callers turn it into a VideoError naming the file."""
    import av  # leave av.logging alone: its default (None) is silent and lock-free; a level adds a GIL callback

    opts = {**(options or {}), "protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_FORMATS)}
    return av.open("file:" + os.fspath(Path(path).absolute()), options=opts)


# Codecs of still pictures: a track of one of these beside a real video track is a cover, not the video.
PICTURE_CODECS = frozenset({"png", "bmp", "tiff", "webp", "gif", "jpegls", "qoi", "mjpeg"})


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
    """Do `frames` frames at `fps` fill `duration_s` (within 20 %, or two frames of a short clip)?

    A zero media timescale or zero frame durations leave a rate that does not (1/512 fps or 15 fps for
    120 frames over 4 s); a file that gives no duration has nothing to check against.
    """
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


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """A warning about a file, once per process: a video is opened several times per question."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=4)
