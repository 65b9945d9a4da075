"""Cutting annotated events and clips out of source videos: frame-accurate, resumable, parallel.

A `SegmentJob` asks for `num_frames` frames of `source` starting at frame `start_frame` (at the annotation's fps).
Each job is cut to a hidden temporary sibling (holmesvau.files.atomic_target) and renamed over `output` only after
the result has been re-opened and holds the expected frames, so an interrupted run never leaves a half file under the
final name.

An output is *complete* when it opens (holmesvau.video.probe) and has `num_frames` ± 1 frames; complete outputs are
skipped, so running again resumes. Anything else under the final name (truncated, empty, wrong length) is redone.

Cutting: re-encode with libx264 (CRF 18) through the ffmpeg binary of imageio-ffmpeg, seeking to half a frame before
the first frame and keeping exactly `num_frames` decoded frames; audio is dropped (the models read frames only).
Stream copy is used only when the cut starts on a keyframe and ends on a keyframe or at the end of the video, in a
stream without frame reordering (no B-frames) — then it is lossless and exact. Without imageio-ffmpeg, PyAV re-encodes.

Workers die with the process that started them (killed by SIGKILL or SIGTERM, or interrupted): on Linux the kernel
signals them (PR_SET_PDEATHSIG), elsewhere they notice within half a second; the ffmpeg they run dies with them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

from tqdm import tqdm

from holmesvau.files import atomic_target, stale_temporaries
from holmesvau.video import probe
from holmesvau.video_open import ALLOWED_FORMATS, VideoError, open_container, video_stream

FRAME_TOLERANCE = 1
METHODS = ("auto", "reencode", "pyav")


@dataclass(frozen=True)
class SegmentJob:
    source: str
    output: str
    start_frame: int
    num_frames: int
    fps: float  # the annotation's fps: frame k starts at k / fps seconds


@dataclass
class SegmentResult:
    output: str
    status: str  # "done" | "skipped" | "failed"
    reason: str = ""
    method: str = ""  # "reencode" | "copy" | "pyav"
    frames: int = 0
    seconds: float = 0.0


@dataclass
class CutSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    methods: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # {"output", "reason"}

    def add(self, r: SegmentResult) -> None:
        setattr(self, r.status, getattr(self, r.status) + 1)
        if r.status == "done":
            self.methods[r.method] = self.methods.get(r.method, 0) + 1
        if r.status == "failed":
            self.failures.append({"output": r.output, "reason": r.reason})

    def to_json(self) -> dict:
        return asdict(self)


def is_complete(path: str | Path, num_frames: int, tolerance: int = FRAME_TOLERANCE) -> bool:
    """The file opens and has num_frames ± tolerance frames."""
    try:
        return abs(probe(path).num_frames - num_frames) <= tolerance
    except (VideoError, OSError):
        return False


def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _seek_before(c, s, start_frame: int, fps: float) -> int:
    """Seek `c` to the keyframe before half a frame ahead of `start_frame`; returns the stream's start (pts)."""
    t0 = s.start_time or 0
    if start_frame > 0:
        c.seek(t0 + int((start_frame - 0.5) / fps / s.time_base), stream=s, backward=True)
    return t0


def keyframe_aligned(source: str, start_frame: int, stop_frame: int, fps: float) -> tuple[bool, float]:
    """(whether [start, stop) can be stream-copied, the first packet's time in s). Demuxes only, no decoding."""
    with open_container(Path(source)) as c:
        s = video_stream(c, Path(source))
        if s.codec_context.has_b_frames:
            return False, 0.0
        keys: set[int] = set()
        start_time, last = 0.0, -1
        t0 = _seek_before(c, s, start_frame, fps)
        for packet in c.demux(s):
            if packet.pts is None:
                continue
            t = float((packet.pts - t0) * s.time_base)
            idx = round(t * fps)
            if packet.is_keyframe:
                keys.add(idx)
                if idx == start_frame:
                    start_time = t
            last = max(last, idx)
            if idx > stop_frame:
                break
    at_end = last < stop_frame  # demux ran out: stop_frame is the end of the video
    return start_frame in keys and (stop_frame in keys or at_end), start_time


try:  # libc's prctl on Linux, resolved once (a forked child only calls it), else None
    import ctypes

    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None
_PR_SET_PDEATHSIG = 1
_CHILDREN: set[subprocess.Popen] = set()  # the ffmpeg processes this worker is running


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; a no-op elsewhere)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    for child in list(_CHILDREN):
        child.kill()
    os._exit(1)


def worker_init(main_pid: int) -> None:
    """Pool initializer: the worker dies with its parent (the kernel's signal on Linux, a watcher thread
    everywhere) and leaves Ctrl-C to the parent, which stops the pool. `main_pid`: the process running the pool
    (the worker's parent, or with the forkserver start method its grandparent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    die_with_parent()
    try:
        os.kill(main_pid, 0)
    except ProcessLookupError:  # it died before the signal was armed
        os._exit(1)
    except PermissionError:
        pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _run_ffmpeg(exe: str, args: list[str]) -> None:
    # ffmpeg dies with the worker running it, even when the worker is SIGKILLed
    proc = subprocess.Popen(
        [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent if _PRCTL is not None else None,  # noqa: PLW1509 - one libc call
    )
    _CHILDREN.add(proc)
    try:
        _, stderr = proc.communicate()
    finally:
        _CHILDREN.discard(proc)
        if proc.poll() is None:  # interrupted here: do not leave it running
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        msg = stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {msg[-1] if msg else 'no message'}")


def ffmpeg_input(source: str) -> list[str]:
    """The ffmpeg command line's input, opened as holmesvau.video opens files (`file` protocol, real containers
    only) and mapped to the stream every reader uses (the first video stream that is not a picture)."""
    with open_container(Path(source)) as c:
        index = video_stream(c, Path(source)).index
    whitelist = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(ALLOWED_FORMATS)]
    return [*whitelist, "-i", "file:" + os.fspath(Path(source).absolute()), "-map", f"0:{index}"]


def cut_ffmpeg(exe: str, job: SegmentJob, tmp: Path, copy_from: float | None = None) -> None:
    """copy_from: stream copy starting at that keyframe time; None: frame-accurate re-encode."""
    if copy_from is not None:
        # Seek exactly onto the keyframe (a later -ss would make the muxer write an edit list dropping a frame).
        seek, codec = f"{copy_from + 1e-6:.7f}", ["-c", "copy"]
    else:
        seek = f"{max(0.0, (job.start_frame - 0.5) / job.fps):.6f}"
        codec = ["-vf", "setpts=PTS-STARTPTS,scale=trunc(iw/2)*2:trunc(ih/2)*2", "-fps_mode", "passthrough",
                 "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]  # fmt: skip
    # No +faststart: with the index at the end, a truncated file does not open at all.
    args = ["-ss", seek, *ffmpeg_input(job.source), "-frames:v", str(job.num_frames), "-an", "-sn", "-dn"]
    _run_ffmpeg(exe, [*args, *codec, "-f", "mp4", str(tmp)])


def cut_pyav(job: SegmentJob, tmp: Path) -> None:
    """Re-encode with PyAV (no ffmpeg binary): decode from the keyframe before the cut, keep num_frames frames."""
    import av

    with open_container(Path(job.source)) as inp, av.open(str(tmp), mode="w", format="mp4") as out:
        s = video_stream(inp, Path(job.source))
        rate = s.average_rate or Fraction(job.fps).limit_denominator(1001)
        o = out.add_stream("libx264", rate=rate)
        o.width, o.height = s.codec_context.width // 2 * 2, s.codec_context.height // 2 * 2
        o.pix_fmt, o.options = "yuv420p", {"preset": "veryfast", "crf": "18"}
        t0 = _seek_before(inp, s, job.start_frame, job.fps)
        first_s = (job.start_frame - 0.5) / job.fps  # earlier frames are the seek's run-up
        written = 0
        for frame in inp.decode(s):
            if frame.pts is not None and float((frame.pts - t0) * s.time_base) < first_s:
                continue
            if written >= job.num_frames:
                break
            if written == 0 and frame.rotation:  # the orientation the source is read with
                o.set_display_rotation(frame.rotation)
            img = frame.reformat(width=o.width, height=o.height, format="yuv420p")
            img.pts, img.time_base = written, 1 / Fraction(rate)
            out.mux(o.encode(img))
            written += 1
        out.mux(o.encode())


def cut_segment(job: SegmentJob, method: str = "auto") -> SegmentResult:
    """Cut one job unless its output is already complete. method: auto | reencode | pyav (auto may stream copy)."""
    t = time.perf_counter()
    out = Path(job.output)
    res = SegmentResult(str(out), "failed")
    if out.exists() and is_complete(out, job.num_frames):
        res.status = "skipped"
        return res
    for stale in stale_temporaries(out):  # left by an interrupted run
        stale.unlink(missing_ok=True)
    exe, key_time = ffmpeg_exe(), 0.0
    try:
        if not Path(job.source).is_file():
            raise FileNotFoundError(f"source video missing: {job.source}")
        attempts = ["pyav"] if method == "pyav" or exe is None else ["reencode"]
        if method == "auto" and exe is not None:
            stop = job.start_frame + job.num_frames
            aligned, key_time = keyframe_aligned(job.source, job.start_frame, stop, job.fps)
            if aligned:
                attempts.insert(0, "copy")
        errors = []
        with atomic_target(out) as tmp:  # renamed over `out` only when a cut has the right frame count
            for attempt in attempts:
                try:
                    if attempt == "pyav":
                        cut_pyav(job, tmp)
                    else:
                        cut_ffmpeg(exe, job, tmp, key_time if attempt == "copy" else None)
                    frames = probe(tmp).num_frames
                except (VideoError, RuntimeError, OSError, ValueError) as e:
                    errors.append(f"{attempt}: {e}")
                    continue
                # Copies must be exact; a re-encode may differ by one frame at the very end of the source.
                tolerance = 0 if attempt == "copy" else FRAME_TOLERANCE
                if abs(frames - job.num_frames) <= tolerance:
                    res.method, res.frames = attempt, frames
                    break
                errors.append(f"{attempt}: wrote {frames} frames, expected {job.num_frames}")
            else:
                raise _NoCut("; ".join(errors))
        res.status = "done"
    except _NoCut as e:
        res.reason = str(e)
    except Exception as e:  # one bad video must not stop the batch: report it
        res.reason = f"{type(e).__name__}: {e}"
    finally:
        res.seconds = time.perf_counter() - t
    return res


class _NoCut(Exception):
    """Every attempt failed (the reasons joined): the temporary is dropped, `out` left as it was."""


def run_jobs(
    jobs: list[SegmentJob], workers: int | None = None, method: str = "auto", progress: bool = True
) -> tuple[CutSummary, list[SegmentResult]]:
    """Cut all jobs with a process pool (default os.cpu_count() workers); returns the summary and every result."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    summary, results = CutSummary(), []
    t = time.perf_counter()
    bar = tqdm(total=len(jobs), desc="cutting segments", unit="seg", disable=not progress)

    def record(_, r: SegmentResult) -> None:
        summary.add(r)
        results.append(r)
        bar.set_postfix(done=summary.done, skipped=summary.skipped, failed=summary.failed, refresh=False)
        bar.update(1)

    def died(output: str, e: BaseException) -> SegmentResult:
        return SegmentResult(output, "failed", f"worker died: {e}")

    try:
        in_workers(partial(cut_segment, method=method), [(j.output, j) for j in jobs], workers, record, died)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t
    return summary, results


def in_workers(fn, items, workers: int | None, record, died) -> None:
    """record(key, fn(arg)) for each (key, arg) of `items` as they finish, in a pool of `workers` processes (default
    os.cpu_count(); 1: in order, here) that die with this one; a worker that dies records died(key, error). Ctrl-C
    (the workers ignore it) or an error here stops the workers at once, not after every item."""
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1:
        for key, arg in items:
            record(key, fn(arg))
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=worker_init, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(fn, arg): key for key, arg in items}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool as e:  # a worker died (killed, out of memory, a crashing decoder)
                result = died(futures[fut], e)
            record(futures[fut], result)
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown()


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and kill the workers (their ffmpeg dies with them); leaves no process."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.kill()
    for p in procs:
        p.join(timeout=5)
