"""Streaming dense features for ATS: decode -> preprocess -> encode every `stride`-th frame in bounded batches.

Three stages run at once: a thread decodes batch i+2, a second thread preprocesses batch i+1 (resize + normalise
release the GIL), and the caller's thread encodes batch i. The queues between them hold at most `queue_size`
batches each, and only the (T, D) features stay in memory (plus the pixel values of frames named in
`keep_indices`), so memory does not grow with the video's length.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from holmesvau.preprocess import INPUT_SIZE, frames_to_tiles, normalize_tiles
from holmesvau.video import VideoInfo, VideoReader, dense_indices, frames_to_rgb
from holmesvau.video_open import put_unless_stopped as _put

EncodeFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DenseFeatures:
    frame_indices: np.ndarray  # (T,) int64 frame index of each feature
    features: torch.Tensor  # (T, D) float32 on CPU
    info: VideoInfo
    # seconds: decode, preprocess (busy time of the two threads), encode, wait, total
    timings: dict[str, float]
    pixel_values: dict[int, torch.Tensor] = field(default_factory=dict)  # frame index -> (3, S, S), if kept
    times_s: np.ndarray | None = None  # (T,) presentation time of each feature's frame, from the first frame


_DONE = object()


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim, or a no-op elsewhere. Buffers made on the worker threads and freed on this one
    fragment glibc's per-thread arenas: without trimming, RSS creeps up by a few MB per batch on long videos."""
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0) and None


_TRIM_EVERY = 2  # batches; one trim costs a few ms


def default_decode_threads() -> int:
    """Decoder threads for streaming: one per core. Measured on 2 cores (bench/ats_pipeline.py, robbery.mp4):
    1.41 s against 1.62 s leaving a core to the preprocessing and 1.49 s with FFmpeg's own choice (cores + 1)."""
    return max(1, os.cpu_count() or 1)


def _drain(src: queue.Queue, stop: threading.Event) -> Iterator:
    """Items of `src` until _DONE; re-raises an exception passed down by the stage before."""
    while not stop.is_set():
        try:
            item = src.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _stage(
    items: Callable[[], Iterable], out: queue.Queue, stop: threading.Event, busy: dict, key: str | None
) -> None:
    """Thread body: put every item of `items()` into `out` (time spent making them in busy[key] unless key is
    None), then _DONE. An exception is put in place of the next item, so that the consumer re-raises it."""
    try:
        it = iter(items())
        while True:
            t0 = time.perf_counter()
            item = next(it, _DONE)
            if key is not None:
                busy[key] += time.perf_counter() - t0
            if not _put(out, item, stop) or item is _DONE:
                return
    except BaseException as e:
        _put(out, e, stop)


def extract_dense_features(
    video: str | Path | VideoReader,
    encode_fn: EncodeFn,
    stride: int = 16,
    batch_size: int | None = None,
    *,
    backend: str = "pyav",
    num_threads: int = 0,
    keep_indices: Iterable[int] | None = None,
    queue_size: int = 2,
    size: int = INPUT_SIZE,
    resize: str = "torch",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> DenseFeatures:
    """Features of every `stride`-th frame: `encode_fn(pixel_values (B, 3, S, S)) -> (B, D)` per batch.

    `backend`: kept for old callers; PyAV is the one decoder (holmesvau.video): a dense plan decodes every frame
    but those no other frame refers to, converted to RGB only when kept, on the preprocessing thread.
    `num_threads`: decoder threads, 0 = one per core.
    `batch_size` (frames) / `device` / `dtype` (of the pixel values): default the encoder's attributes of those
    names (holmesvau.model.vit_encoder: 64 on a GPU, 16 on the CPU; uint8 tiles cross to the GPU and are
    normalised there), else 16 / CPU / float32.
    `keep_indices`: frame indices whose preprocessed pixel values to keep (CPU float32), e.g. to reuse them.
    """
    start = time.perf_counter()
    batch_size = int(batch_size or getattr(encode_fn, "batch_size", 16))
    device = device if device is not None else getattr(encode_fn, "device", None)
    dtype = dtype if dtype is not None else getattr(encode_fn, "dtype", None)
    own_reader = not isinstance(video, VideoReader)
    threads = num_threads or default_decode_threads()
    reader = VideoReader(video, backend=backend, num_threads=threads) if own_reader else video
    plan = dense_indices(reader.info.num_frames, stride)
    keep = set(int(i) for i in keep_indices) if keep_indices is not None else set()
    timings = {"decode": 0.0, "preprocess": 0.0, "encode": 0.0, "wait": 0.0}
    frames_q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    pixels_q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    stop = threading.Event()

    def preprocessed() -> Iterator:
        # Torch's thread count is per thread here: give this stage half the cores, leaving the rest to the
        # decoder (and the caller's encoder); new threads inherit the last value set, so restore it after.
        prev = torch.get_num_threads()
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        try:
            for idx, frames in _drain(frames_q, stop):
                t0 = time.perf_counter()
                pixel_values = frames_to_tiles(frames_to_rgb(frames), size=size, resize=resize)  # uint8
                timings["preprocess"] += time.perf_counter() - t0
                yield idx, pixel_values
        finally:
            torch.set_num_threads(prev)

    def decoded() -> Iterator:
        return reader.iter_frames(plan, batch_size=batch_size, rgb=False)

    stages = (("decode", decoded, frames_q, "decode"), ("preprocess", preprocessed, pixels_q, None))
    workers = [
        threading.Thread(
            target=_stage, args=(items, out, stop, timings, key), name=f"holmesvau-{name}", daemon=True
        )
        for name, items, out, key in stages
    ]
    features: list[torch.Tensor] = []
    trim = _malloc_trim()
    buffer: torch.Tensor | None = None  # float32 pixel values, reused batch after batch
    kept: dict[int, torch.Tensor] = {}
    bar = tqdm(total=len(plan), desc="ATS dense features", unit="frame", disable=not progress)
    for w in workers:
        w.start()
    try:
        with torch.no_grad():
            batches = _drain(pixels_q, stop)
            while True:
                t0 = time.perf_counter()
                item = next(batches, None)
                t1 = time.perf_counter()
                timings["wait"] += t1 - t0
                if item is None:
                    break
                idx, tiles = item
                for j, i in enumerate(idx.tolist()):
                    if i in keep:
                        kept[i] = normalize_tiles(tiles[j : j + 1])[0]
                if buffer is None or buffer.shape[0] < len(idx):
                    buffer = torch.empty(tiles.shape, dtype=torch.float32, device=device or "cpu")
                x = normalize_tiles(tiles, device, dtype or torch.float32, out=buffer[: len(idx)])
                feats = encode_fn(x)
                if feats.dim() != 2 or feats.shape[0] != len(idx):
                    raise ValueError(
                        f"encode_fn must return (B, D) for B={len(idx)}, got {tuple(feats.shape)}"
                    )
                # clone: a view (e.g. last_hidden_state[:, 0]) would keep the whole batch's storage alive
                features.append(feats.detach().to("cpu", torch.float32).clone())
                del item, tiles, x, feats
                if len(features) % _TRIM_EVERY == 0:
                    trim()
                timings["encode"] += time.perf_counter() - t1
                bar.update(len(idx))
    finally:
        stop.set()
        for w in workers:
            w.join()
        bar.close()
        if own_reader:
            reader.close()
    if not features:
        raise ValueError(f"{reader.info.path}: no dense frames to encode")
    timings["total"] = time.perf_counter() - start
    fps = reader.info.fps or 1.0
    times_s = np.asarray([reader.times_s.get(i, i / fps) for i in plan], dtype=np.float64)
    return DenseFeatures(
        np.asarray(plan, dtype=np.int64), torch.cat(features), reader.info, timings, kept, times_s
    )
