"""Video decoding: probe, frames at given indices, dense plans — one decoder (PyAV, a current FFmpeg), one forward
pass in batches, bounded in time and memory (docs/video.md).

Every path that reads a video goes through this module, so all see the same frames at the same timestamps:
- `check_file` refuses what is not a regular, readable, non-empty file, or is a playlist (a FIFO is never opened);
  `open_container` opens with the `file` protocol and a real-container demuxer only; `video_stream` takes the
  first video stream that is not an attached picture;
- rotation is applied as FFmpeg's player applies it (90° steps; a flip is ignored); a frame's time is its
  presentation time from the first frame; a frame whose size differs from the first one's is scaled to it;
- every decoded frame is checked against `DecodeLimits` (the decoder itself allocates no frame over the pixel
  limit); decoding runs on a worker thread, stopped after `stall_s` seconds without progress (`watched`);
- a few frames far apart are reached by seeking where that gives the same frames (holmesvau.video_seek).
Bad inputs raise one `VideoError` naming the file; broken timestamps: see `VideoReader._container_timing`.
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

import numpy as np

from holmesvau.video_seek import SeekIndex, SeekUnsafe, decode_groups, seek_index

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


@dataclass
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    backend: str


def uniform_indices(num_frames: int, n: int) -> list[int]:
    """Middles of `n` equal segments of [0, num_frames - 1]: the original's uniform plan (InternVL `get_index`)."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    seg = (num_frames - 1) / n if n > 0 else 0.0
    return [int(seg / 2 + np.round(seg * i)) for i in range(max(n, 0))]


def dense_indices(num_frames: int, stride: int = 16) -> list[int]:
    """Every `stride`-th frame from 0: the dense plan ATS scores."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    return list(range(0, max(num_frames, 0), stride))


def _rgb(frame, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame: scaled to `size` (w, h) if it differs, then rotated as the
    container says (np.rot90 by the display matrix's angle matches FFmpeg's autorotate)."""
    if size is not None and (frame.width, frame.height) != size:
        array = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
    else:
        array = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


class VideoReader:
    """Frames of one video. `with VideoReader(path) as r: r.get_frames([0, 16, 32])`. `times_s` holds the
    presentation time of every frame returned; `limits`: `DecodeLimits` (default: the process's)."""

    def __init__(
        self,
        path: str | Path,
        backend: str = "auto",
        num_threads: int = 0,
        limits: DecodeLimits | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} (PyAV), got {backend!r}")
        self.path = Path(path)
        self.num_threads = int(num_threads)
        self.limits = limits or _LIMITS
        self.times_s: dict[int, float] = {}
        self.on_frame: Callable[[int], object] | None = None  # called with each decoded frame's index
        self._av_options: dict[str, str] = {}
        self._seek: SeekIndex | bool | None = None  # holmesvau.video_seek's index once read (False: none)
        check_file(self.path)
        c = probe_container(self.path)
        frames, fps = c.frames, c.fps
        broken = not timing_consistent(c.frames, c.fps, c.duration_s) or c.fps > MAX_FPS
        if not broken and c.header_fps > 0 and not 0.5 <= c.fps / c.header_fps <= 2:
            # the average rate and the header's disagree: fine for VFR, broken if no timestamp ever moves
            # (all 0: 30 frames "in" one frame's 35 ms at 852 fps); only such files pay for this packet pass
            broken = c.frames > 2 and not self._packets()[2]
        if broken:
            fps = self._container_timing(c)
        self._broken = broken
        duration_s = frames / fps if fps > 0 else c.duration_s
        self.info = VideoInfo(str(self.path), frames, fps, duration_s, c.width, c.height, "pyav")

    def _container_timing(self, c: ContainerInfo) -> float:
        """The frame rate of a file whose timestamps contradict its own count and duration (a zero media
        timescale, zero frame durations, all timestamps 0). Its frames are then read in decoding order, ignoring
        the edit list (one in a broken timescale hides every frame but the first)."""
        name = shown(self.path)
        self._av_options = {"ignore_editlist": "1"}
        packets, _, timestamps_move = self._packets()  # no decoding
        # the count is all that is left to trust: check it against the packets there are
        if packets < c.frames - max(2, c.frames // 100):
            raise VideoError(
                f"{name}: truncated or corrupt: its index lists {c.frames} frames, it holds {packets}"
            )
        fps, how = broken_timing_fps(c.frames, c.duration_s, (c.header_fps,), timestamps_move)
        if fps is None:
            raise VideoError(
                f"{name}: broken timestamps: {c.frames} frames, {c.duration_s:g} s, {c.fps:g} fps claimed: "
                "cannot tell its frame rate"
            )
        warn_once(
            f"{name}: broken timestamps ({c.frames} frames in {c.duration_s:g} s at a claimed {c.fps:g} fps): "
            f"read as {c.frames} frames at {fps:g} fps ({how})"
        )
        return fps

    def _packets(self) -> tuple[int, float, bool]:
        try:
            with self._opened() as (container, stream):
                return count_packets(container, stream)
        except VideoError:
            raise
        except Exception as e:
            raise VideoError(f"{shown(self.path)}: cannot read its packets ({error_reason(e)})") from e

    def __len__(self) -> int:
        return self.info.num_frames

    def close(self) -> None:
        pass  # every pass opens and closes its own container

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _plan(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer) and not np.all(np.mod(idx, 1) == 0):
            raise ValueError(f"{self.path}: frame indices must be integers, got {idx[:5]}...")
        idx = idx.astype(np.int64).ravel()
        n = self.info.num_frames
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise VideoError(
                f"{shown(self.path)}: frame index {int(bad[0])} out of range (video has {n} frames)"
            )
        return idx

    def iter_frames(
        self, indices: Sequence[int] | np.ndarray, batch_size: int = 32, rgb: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (indices, frames (B, H, W, 3) uint8) over the sorted unique `indices`, in one forward pass.
        `rgb=False` yields the decoded frames unconverted, as a list for `frames_to_rgb` (on another thread)."""
        wanted = np.unique(self._plan(indices))
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if wanted.size == 0:
            return
        produce = lambda tick, stop: self._forward(wanted, batch_size, rgb, tick, stop)  # noqa: E731
        yield from watched(produce, self.limits.stall_s, shown(self.path))

    def _forward(self, wanted: np.ndarray, batch_size: int, rgb: bool, tick, stop) -> Iterator:
        """A forward read. A sparse plan (ATS: every 16th frame) leaves undecoded the frames it skips that no
        other frame refers to (FFmpeg's skip_frame=NONREF, set per packet; robbery.mp4: 1,258 of 2,730 frames),
        where the packet index tells which frame each packet is: the frames it gives are bit-identical, each one
        checked by its timestamp. At the first mismatch the rest of the plan is read decoding every frame."""
        index = self._packet_index(tick) if 2 * wanted.size <= int(wanted[-1]) + 1 else None
        if index:
            done = -1
            try:
                for idx, frames in self._decode(wanted, batch_size, rgb, tick, stop, index):
                    done = int(idx[-1])
                    yield idx, frames
                return
            except SeekUnsafe:
                wanted = wanted[wanted > done]
        yield from self._decode(wanted, batch_size, rgb, tick, stop)

    def _packet_index(self, tick) -> SeekIndex | None:
        """holmesvau.video_seek's packet index, read once per reader (None: not a file where it is safe)."""
        if self._seek is None:
            index = None
            if not self._broken and self.info.num_frames > 1:  # (broken timing: read in decoding order)
                with self._opened() as (container, stream):
                    index = seek_index(container, stream, self.info.num_frames, tick)
            self._seek = index or False
        return self._seek or None

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames (N, H, W, 3) uint8 in the order asked (duplicates allowed). Frames far apart are reached by
        seeking where that is known to give the same frames (holmesvau.video_seek), else by reading forward."""
        idx = self._plan(indices)
        uniq = np.unique(idx)
        try:
            return self._gather(idx, self._seeking(uniq))
        except SeekUnsafe:
            return self._gather(idx, self.iter_frames(uniq))

    def _seeking(self, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """get_frames by seeking, under the same stall watchdog as a forward read (the packet scan too)."""

        def produce(tick, stop):
            index = self._packet_index(tick)
            groups = index.groups(wanted) if index else []
            if not groups or (len(groups) == 1 and not index.far(int(wanted[0]))):
                raise SeekUnsafe("nothing to skip")
            yield from decode_groups(self, groups, index, 32, tick, stop, _rgb)

        yield from watched(produce, self.limits.stall_s, shown(self.path))

    def _gather(self, idx: np.ndarray, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """`idx`'s frames in its order from batches over its sorted unique indices."""
        uniq, inverse = np.unique(idx, return_inverse=True)
        order = np.argsort(inverse, kind="stable")  # rows of `idx` grouped by unique index
        bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
        out: np.ndarray | None = None
        u = 0
        for _, frames in batches:
            if out is None:
                out = np.empty((idx.size, *frames.shape[1:]), dtype=np.uint8)
            for f in frames:
                out[order[bounds[u] : bounds[u + 1]]] = f
                u += 1
        if out is None:
            return np.empty((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        return out

    def _check(self, frame, pos: int, first: tuple[int, int] | None, sizes: set) -> None:
        """The limits, on this decoded frame (not on what the container claimed)."""
        lim = self.limits
        if lim.max_frames and pos >= lim.max_frames:
            raise VideoError(f"{shown(self.path)}: more than {lim.max_frames} frames (the limit)")
        if lim.max_pixels and frame.width * frame.height > lim.max_pixels:
            raise VideoError(
                f"{shown(self.path)}: frame {pos} is {frame.width}x{frame.height}, over the limit of "
                f"{lim.max_pixels} pixels per frame"
            )
        if first is not None and (frame.width, frame.height) not in sizes:
            sizes.add((frame.width, frame.height))
            warn_once(
                f"{shown(self.path)}: frame size changes from {first[0]}x{first[1]} to "
                f"{frame.width}x{frame.height} at frame {pos}; such frames are scaled to {first[0]}x{first[1]}"
            )

    @contextmanager
    def _opened(self):
        """(container, stream) of one pass, the stream's decoder bounded by the pixel limit and threaded."""
        with open_container(self.path, self._av_options) as container:
            stream = video_stream(container, self.path)
            if self.limits.max_pixels:  # no frame much larger is allocated (the decoder's check counts the
                # width padded for alignment: twice the limit; `_check` then holds the exact one)
                stream.codec_context.options = {"max_pixels": str(2 * self.limits.max_pixels)}
            stream.thread_type = "AUTO"
            stream.thread_count = self.num_threads
            yield container, stream

    def _decode(
        self,
        wanted: np.ndarray,
        batch_size: int,
        rgb: bool,
        tick: Callable[[], None],
        stop: threading.Event,
        index: SeekIndex | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | list]]:
        """Decode every frame up to the last wanted one; convert to RGB only the wanted ones (if `rgb`).
        With the packet `index`: frames are placed by their timestamps, and unwanted non-reference frames are
        skipped (SeekUnsafe if a wanted frame is not there)."""
        skip = set(index.pts[wanted].tolist()) if index is not None else None
        last = int(wanted[-1])
        batch_idx: list[int] = []
        batch: list = []
        k, pos = 0, -1  # k: next wanted position in `wanted`, pos: index of the frame just decoded
        frame = item = None
        first: tuple[int, int] | None = None  # the first frame's size: every frame is given that size
        sizes: set = set()
        t0: float | None = None
        stream = None

        def converted(frame):  # RGB if asked, or when the frame must be scaled to the first one's size
            return _rgb(frame, first) if rgb or (frame.width, frame.height) != first else frame

        try:
            with self._opened() as (container, stream):
                if index is not None:
                    t0 = float(index.pts[0] * stream.time_base)
                for packet in container.demux(stream):
                    tick()
                    if stop.is_set():
                        return
                    if skip is not None and packet.size:
                        stream.codec_context.skip_frame = "DEFAULT" if packet.pts in skip else "NONREF"
                    for frame in packet.decode():
                        if index is None:
                            pos += 1
                        else:
                            pos = index.position(frame.pts)
                            if pos > wanted[k] or (first is None and pos != 0):
                                raise SeekUnsafe(f"frame {int(wanted[k])} was not decoded")
                        if self.on_frame is not None:
                            self.on_frame(pos)
                        self._check(frame, pos, first, sizes)
                        if first is None:
                            first = (frame.width, frame.height)
                            sizes = {first}
                        if t0 is None and frame.time is not None:
                            t0 = frame.time
                        if pos != wanted[k]:
                            continue
                        self.times_s[pos] = self._time(frame, pos, t0)
                        item = converted(frame)
                        while k < wanted.size and wanted[k] == pos:
                            batch_idx.append(pos)
                            batch.append(item)
                            k += 1
                        if len(batch) >= batch_size:
                            yield np.asarray(batch_idx, dtype=np.int64), np.stack(batch) if rgb else batch
                            batch_idx, batch = [], []
                        if pos >= last:
                            break
                    if pos >= last:
                        break
        except (VideoError, SeekUnsafe):
            raise
        except Exception as e:
            raise self._decode_error(e, stream, pos) from e
        missing = wanted[k:]
        if missing.size and index is not None:
            raise SeekUnsafe(f"frame {int(missing[0])} was not decoded")
        if missing.size:
            # The index promised more frames than the stream holds: tolerate a tiny shortfall (VFR, edit lists)
            # by repeating the last frame; a real shortfall means a truncated or corrupt file.
            if pos < 0 or missing.size > max(2, self.info.num_frames // 100):
                raise VideoError(
                    f"{shown(self.path)}: truncated or corrupt: decoded {pos + 1} of {self.info.num_frames} frames"
                )
            warnings.warn(
                f"{shown(self.path)}: stream ended at frame {pos}; repeating it for {missing.tolist()}",
                stacklevel=2,
            )
            fill = converted(frame)
            batch_idx.extend(int(m) for m in missing)
            batch.extend(fill for _ in missing)
            self.times_s.update({int(m): self.times_s.get(pos, pos / self.info.fps) for m in missing})
        if batch:
            yield np.asarray(batch_idx, dtype=np.int64), np.stack(batch) if rgb else batch

    def _time(self, frame, pos: int, t0: float | None) -> float:
        """Seconds from the first frame to this one's presentation; index / rate without usable timestamps."""
        if self._broken or frame.time is None or t0 is None:
            return pos / self.info.fps
        return float(frame.time - t0)

    def _decode_error(self, e: Exception, stream, pos: int) -> VideoError:
        name, lim = shown(self.path), self.limits
        cc = getattr(stream, "codec_context", None)
        w, h = (cc.width, cc.height) if cc is not None else (0, 0)
        if lim.max_pixels and w * h > 2 * lim.max_pixels:
            return VideoError(
                f"{name}: frame {pos + 1} is {w}x{h}, over the limit of {lim.max_pixels} pixels per frame"
            )
        return VideoError(f"{name}: decoding failed near frame {pos + 1} ({error_reason(e)})")


def frames_to_rgb(frames: np.ndarray | list) -> list[np.ndarray] | np.ndarray:
    """(H, W, 3) uint8 RGB frames of a batch from `iter_frames(..., rgb=False)`: an array passes, a list of PyAV
    frames becomes a list of arrays (not stacked: `frames_to_tiles` takes the list as it is)."""
    if isinstance(frames, np.ndarray):
        return frames
    return [f if isinstance(f, np.ndarray) else _rgb(f) for f in frames]


def probe(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Frame count, fps, duration and size of a video (raises VideoError naming the file if unreadable)."""
    return VideoReader(path, backend=backend).info  # (closing a reader is a no-op: each pass closes its own)


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, backend: str = "auto") -> np.ndarray:
    """Frames (N, H, W, 3) uint8 at `indices` (in the order given)."""
    return VideoReader(path, backend=backend).get_frames(indices)


def read_frames_timed(
    path: str | Path, indices: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, list[float]]:
    """(frames as `read_frames`, each one's presentation time in seconds from the first frame)."""
    reader = VideoReader(path)
    frames = reader.get_frames(indices)
    return frames, [reader.times_s[int(i)] for i in np.asarray(indices).ravel()]
