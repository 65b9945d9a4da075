"""Video decoding: probe, frames at given indices, dense plans — always one forward pass, in batches.

decord is the default backend (it decodes h264 and HEVC and seeks well); PyAV is the fallback when decord is
missing or cannot open a file, and the faster choice for dense plans (it converts to RGB only the frames asked for).
Every file is first opened with a cheap PyAV probe: bad inputs (missing, empty, truncated, not a video) then raise
one `VideoError` naming the file instead of reaching decord, which can crash on some of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("auto", "decord", "pyav")


class VideoError(RuntimeError):
    """A video that cannot be read: the message names the file and what is wrong."""


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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")


def _pyav_probe(path: Path) -> tuple[int, float, int, int, float]:
    """(frame count from the container index, fps, width, height, duration) — raises VideoError if unreadable."""
    import av  # leave av.logging alone: its default (None) is silent and lock-free; a level adds a GIL callback

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            frames = int(stream.frames or 0)
            if frames <= 0:  # containers without a frame index (mkv, webm): count packets, no decoding
                frames = sum(1 for p in container.demux(stream) if p.size)
            duration = float(container.duration) / 1e6 if container.duration else 0.0
    except VideoError:
        raise
    except Exception as e:
        raise VideoError(f"{path}: cannot open as a video ({type(e).__name__}: {e})") from e
    if width <= 0 or height <= 0 or frames <= 0:
        raise VideoError(f"{path}: video stream has no frames or no size")
    return frames, fps, width, height, duration


class VideoReader:
    """Frames of one video. `with VideoReader(path) as r: r.get_frames([0, 16, 32])`.

    `get_frames` and `iter_frames` read sorted unique indices in one forward pass, batch by batch.
    """

    def __init__(self, path: str | Path, backend: str = "auto", num_threads: int = 0):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.path = Path(path)
        self.num_threads = int(num_threads)
        _check_file(self.path)
        frames, fps, width, height, duration = _pyav_probe(self.path)
        self._vr = None
        used = "pyav"
        if backend in ("auto", "decord"):
            decord = _decord()
            if decord is None and backend == "decord":
                raise VideoError(f"{self.path}: backend 'decord' asked for but decord is not installed")
            if decord is not None:
                try:
                    self._vr = decord.VideoReader(
                        str(self.path), ctx=decord.cpu(0), num_threads=self.num_threads
                    )
                    used = "decord"
                    # decord's count and PyAV's index can disagree on odd files: never index past either end.
                    frames = min(frames, len(self._vr))
                    fps = float(self._vr.get_avg_fps()) or fps
                except Exception as e:
                    if backend == "decord":
                        raise VideoError(f"{self.path}: decord cannot open it ({e})") from e
                    self._vr = None
        duration_s = frames / fps if fps > 0 else duration
        self.info = VideoInfo(str(self.path), frames, fps, duration_s, width, height, used)

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
            raise VideoError(f"{self.path}: frame index {int(bad[0])} out of range (video has {n} frames)")
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
                raise VideoError(f"{self.path}: decoding failed near frame {int(chunk[0])} ({e})") from e
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
            with av.open(str(self.path)) as container:
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
                f"{self.path}: decoding failed near frame {pos + 1} ({type(e).__name__}: {e})"
            ) from e
        missing = wanted[k:]
        if missing.size:
            # The index promised more frames than the stream holds: tolerate a tiny shortfall (VFR, edit lists)
            # by repeating the last frame; a real shortfall means a truncated or corrupt file.
            if pos < 0 or missing.size > max(2, self.info.num_frames // 100):
                raise VideoError(
                    f"{self.path}: truncated or corrupt: decoded {pos + 1} of {self.info.num_frames} frames"
                )
            warnings.warn(
                f"{self.path}: stream ended at frame {pos}; repeating it for {missing.tolist()}", stacklevel=2
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
