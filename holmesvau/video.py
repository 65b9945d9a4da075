"""Video decoding: probe, frames at given indices, dense plans — always one forward pass, in batches.

decord is the default backend (it decodes h264 and HEVC and seeks well); PyAV is the fallback when decord is
missing or cannot open a file, and the faster choice for dense plans (it converts to RGB only the frames asked for).
Every file is first checked (a regular, readable, non-empty file: a FIFO is never opened) and probed with PyAV
without decoding: bad inputs (missing, truncated, not a video, a still image) raise one `VideoError` naming the
file instead of reaching decord, which can crash on some of them. The frame count and rate come from the
container; when its rate does not fit its own count and duration (broken timestamps), or decord disagrees with it,
PyAV reads the file (see `VideoReader`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holmesvau.video_probe import (  # noqa: F401 - VideoError, shown ... are this module's API too
    MAX_FPS,
    ContainerInfo,
    VideoError,
    broken_timing_fps,
    check_file,
    count_packets,
    error_reason,
    probe_container,
    shown,
    timing_consistent,
    warn_once,
)

BACKENDS = ("auto", "decord", "pyav")


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


def _decord():
    try:
        import decord
    except Exception:  # not installed (e.g. non-x86 platforms)
        return None
    decord.logging.set_level(decord.logging.QUIET)
    return decord


class VideoReader:
    """Frames of one video. `with VideoReader(path) as r: r.get_frames([0, 16, 32])`.

    `get_frames` and `iter_frames` read sorted unique indices in one forward pass, batch by batch.
    """

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 0):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.path = Path(path)
        self.num_threads = int(num_threads)
        self._av_options: dict[str, str] = {}
        check_file(self.path)
        c = probe_container(self.path)
        frames, fps = c.frames, c.fps
        broken = not timing_consistent(c.frames, c.fps, c.duration_s) or c.fps > MAX_FPS
        if not broken and c.header_fps > 0 and not 0.5 <= c.fps / c.header_fps <= 2:
            # the average rate and the header's disagree: fine for VFR, broken if no timestamp ever moves
            # (all 0: 30 frames "in" one frame's 35 ms at 852 fps); only such files pay for this packet pass
            broken = c.frames > 2 and not self._packets()[2]
        if broken:
            fps = self._container_timing(c, backend)
        self._vr = None
        used = "pyav"
        if backend in ("auto", "decord") and not self._av_options:
            self._vr = self._open_decord(backend, frames, fps)
            if self._vr is not None:
                used = "decord"
                frames = min(frames, len(self._vr))  # an edit list may hide a frame or two: never index past
        duration_s = frames / fps if fps > 0 else c.duration_s
        self.info = VideoInfo(str(self.path), frames, fps, duration_s, c.width, c.height, used)

    def _container_timing(self, c: ContainerInfo, backend: str) -> float:
        """The frame rate of a file whose timestamps contradict its own count and duration (a zero media
        timescale, zero frame durations, all timestamps 0): decoders that index frames by time (decord) see
        one frame there, or a rate that puts frame 113 of a 4 s clip at 452 s. PyAV then reads in decoding
        order, ignoring the edit list (one in a broken timescale hides every frame but the first)."""
        name = shown(self.path)
        if backend == "decord":
            raise VideoError(f"{name}: broken timestamps ({c.fps:g} fps claimed): decord cannot index it")
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
        import av

        try:
            with av.open(str(self.path), options=self._av_options) as container:
                return count_packets(container, container.streams.video[0])
        except Exception as e:
            raise VideoError(f"{shown(self.path)}: cannot read its packets ({error_reason(e)})") from e

    def _open_decord(self, backend: str, frames: int, fps: float):
        """decord's reader, or None (PyAV then) when it is missing, fails, or disagrees with the container."""
        decord = _decord()
        name = shown(self.path)
        if decord is None:
            if backend == "decord":
                raise VideoError(f"{name}: backend 'decord' asked for but decord is not installed")
            return None
        try:
            vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=self.num_threads)
            n, rate = len(vr), float(vr.get_avg_fps())
        except Exception as e:
            if backend == "decord":
                raise VideoError(f"{name}: decord cannot open it ({error_reason(e)})") from e
            return None
        if abs(n - frames) <= max(2, frames // 100) and rate > 0 and abs(rate / fps - 1) <= 0.05:
            return vr
        why = f"decord reads {n} frames at {rate:g} fps, the container has {frames} at {fps:g} fps"
        if backend == "decord":
            raise VideoError(f"{name}: {why}")
        warn_once(f"{name}: {why}; reading it with PyAV")
        return None

    @property
    def backend(self) -> str:
        return self.info.backend

    def __len__(self) -> int:
        return self.info.num_frames

    def close(self) -> None:
        self._vr = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _plan(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            if not np.all(np.mod(idx, 1) == 0):
                raise ValueError(f"{self.path}: frame indices must be integers, got {idx[:5]}...")
            idx = idx.astype(np.int64)
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

        `rgb=False` (PyAV) yields the decoded frames unconverted, as a list for `frames_to_rgb`: the RGB
        conversion can then run on another thread while decoding goes on.
        """
        wanted = np.unique(self._plan(indices))
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if wanted.size == 0:
            return
        if self._vr is not None:
            yield from self._iter_decord(wanted, batch_size)
        else:
            yield from self._iter_pyav(wanted, batch_size, rgb)

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames (N, H, W, 3) uint8 in the order asked (duplicates allowed)."""
        idx = self._plan(indices)
        uniq, inverse = np.unique(idx, return_inverse=True)
        order = np.argsort(inverse, kind="stable")  # rows of `idx` grouped by unique index
        bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
        out: np.ndarray | None = None
        u = 0
        for _, frames in self.iter_frames(uniq):
            if out is None:
                out = np.empty((idx.size, *frames.shape[1:]), dtype=np.uint8)
            for f in frames:
                out[order[bounds[u] : bounds[u + 1]]] = f
                u += 1
        if out is None:
            return np.empty((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        return out

    def _iter_decord(self, wanted: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for s in range(0, wanted.size, batch_size):
            chunk = wanted[s : s + batch_size]
            try:
                frames = self._vr.get_batch(chunk.tolist()).asnumpy()
            except Exception as e:
                raise VideoError(
                    f"{shown(self.path)}: decoding failed near frame {int(chunk[0])} ({error_reason(e)})"
                ) from e
            yield chunk, frames

    def _iter_pyav(
        self, wanted: np.ndarray, batch_size: int, rgb: bool = True
    ) -> Iterator[tuple[np.ndarray, np.ndarray | list]]:
        """Decode every frame up to the last wanted one; convert to RGB only the wanted ones (if `rgb`)."""
        import av

        last = int(wanted[-1])
        batch_idx: list[int] = []
        batch: list[np.ndarray] = []
        k, pos = 0, -1  # k: next wanted position in `wanted`, pos: index of the frame just decoded
        frame = None
        try:
            with av.open(str(self.path), options=self._av_options) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.thread_count = self.num_threads
                for frame in container.decode(stream):
                    pos += 1
                    if pos != wanted[k]:
                        continue
                    item = frame.to_ndarray(format="rgb24") if rgb else frame
                    while k < wanted.size and wanted[k] == pos:
                        batch_idx.append(pos)
                        batch.append(item)
                        k += 1
                    if len(batch) >= batch_size:
                        yield np.asarray(batch_idx, dtype=np.int64), np.stack(batch) if rgb else batch
                        batch_idx, batch = [], []
                    if pos >= last:
                        break
        except VideoError:
            raise
        except Exception as e:
            raise VideoError(
                f"{shown(self.path)}: decoding failed near frame {pos + 1} ({error_reason(e)})"
            ) from e
        missing = wanted[k:]
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
            fill = frame.to_ndarray(format="rgb24") if rgb else frame
            batch_idx.extend(int(m) for m in missing)
            batch.extend(fill for _ in missing)
        if batch:
            yield np.asarray(batch_idx, dtype=np.int64), np.stack(batch) if rgb else batch


def frames_to_rgb(frames: np.ndarray | list) -> np.ndarray:
    """(B, H, W, 3) uint8 of a batch from `iter_frames(..., rgb=False)`: arrays pass, PyAV frames convert."""
    if isinstance(frames, np.ndarray):
        return frames
    return np.stack([f.to_ndarray(format="rgb24") for f in frames])


def probe(path: str | Path, backend: str = "auto") -> VideoInfo:
    """Frame count, fps, duration and size of a video (raises VideoError naming the file if unreadable)."""
    with VideoReader(path, backend=backend) as reader:
        return reader.info


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, backend: str = "auto") -> np.ndarray:
    """Frames (N, H, W, 3) uint8 at `indices` (in the order given)."""
    with VideoReader(path, backend=backend) as reader:
        return reader.get_frames(indices)
