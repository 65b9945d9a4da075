"""Video decoding: probe, frames at given indices, dense plans — one decoder (PyAV, a current FFmpeg), one forward
pass in batches, bounded in time and memory (docs/video.md).

Every path that reads a video goes through this module (opening the file: holmesvau.video_open), so all see the
same frames at the same timestamps:
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

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holmesvau.video_open import (
    BACKENDS,
    MAX_FPS,
    ContainerInfo,
    DecodeLimits,
    VideoError,
    broken_timing_fps,
    check_file,
    count_packets,
    default_limits,
    error_reason,
    open_container,
    probe_container,
    shown,
    timing_consistent,
    video_stream,
    warn_once,
    watched,
)
from holmesvau.video_seek import SeekIndex, SeekUnsafe, decode_groups, seek_index


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
        self.limits = limits or default_limits()
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
        planned = index.pts[wanted] if index is not None else None  # sorted: 8 bytes a planned frame
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
                    # Left with the chain of reference frames, frame threads mostly wait on each other (2 cores,
                    # robbery.mp4: 1 thread 1.33 s, 2 threads 1.45 s and 1.76 CPU s): half of them, the other
                    # cores to the caller's RGB conversion and resize.
                    stream.thread_count = max(1, (self.num_threads or os.cpu_count() or 2) // 2)
                for packet in container.demux(stream):
                    tick()
                    if stop.is_set():
                        return
                    if planned is not None and packet.size:
                        at = (
                            int(np.searchsorted(planned, packet.pts))
                            if packet.pts is not None
                            else len(planned)
                        )
                        keep = at < len(planned) and planned[at] == packet.pts
                        stream.codec_context.skip_frame = "DEFAULT" if keep else "NONREF"
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
