"""Decode a whole video in a child process, under limits it cannot escape, before a server decodes it itself.

    python -m holmesvau.video_guard VIDEO [--max-pixels N] [--max-frames N] [--stall-s S] [--memory-mb 4096]

The demo runs this on every upload before its own (in-process) decoding: whatever the file does to FFmpeg —
crash it, loop inside it, grow memory — happens in the child. The child's address space is capped
(`memory_mb`, RLIMIT_AS), it reports progress as it decodes, and it is killed when no progress comes for
`stall_s` seconds; the caller gets a `VideoError` naming the file in every case. The child decodes every frame the
container lists (no RGB conversion) with the same reader and limits the server then uses, so a file that passes
here is one the server's decoding has already been through.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from holmesvau.video import VideoInfo, VideoReader
from holmesvau.video_open import DecodeLimits, VideoError, shown

PROGRESS_EVERY = 16  # frames between two progress lines


def check_in_child(
    path: str | Path,
    limits: DecodeLimits,
    memory_mb: int = 4096,
    threads: int = 2,
    on_probe: Callable[[VideoInfo], object] | None = None,
) -> VideoInfo:
    """The file's VideoInfo once a child process has decoded all of it within `limits` and `memory_mb`;
    VideoError naming the file otherwise (refused, crashed, out of memory, or no progress for limits.stall_s).
    `on_probe(info)` sees what the container claims before the decoding; what it raises stops the child."""
    name = shown(path)
    cmd = [sys.executable, "-m", "holmesvau.video_guard", os.fspath(path), "--max-pixels", str(limits.max_pixels),
           "--max-frames", str(limits.max_frames), "--stall-s", str(limits.stall_s), "--threads", str(threads),
           "--memory-mb", str(memory_mb)]  # fmt: skip
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONWARNINGS": "ignore"}  # arenas reserve address space
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    final = b""  # the child's last line
    stall = max(limits.stall_s, 1.0) + 10.0  # the child's own watchdog fires first; this covers a stuck child
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            last = time.monotonic()
            while True:
                if not sel.select(timeout=1.0):
                    if time.monotonic() - last > stall:
                        raise VideoError(f"{name}: decoding made no progress for {stall:g} s; stopped")
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                last = time.monotonic()
                if line.startswith(b'{"probe"') and on_probe is not None:
                    on_probe(VideoInfo(**json.loads(line)["probe"]))
                final = line
        code = proc.wait(timeout=stall)
    except subprocess.TimeoutExpired:
        raise VideoError(f"{name}: the decoding check did not finish; stopped") from None
    finally:  # also when on_probe refused it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    try:  # a result, else a progress count or nothing: the child died
        result = json.loads(final) if final.startswith(b"{") else {}
    except ValueError:  # cut short
        result = {}
    if "error" in result:
        raise VideoError(result["error"])
    if code != 0 or "info" not in result:
        why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise VideoError(f"{name}: the decoder failed on it ({why}; memory cap {memory_mb} MB)")
    return VideoInfo(**result["info"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="decode a whole video within limits; one JSON line")
    ap.add_argument("video")
    ap.add_argument("--max-pixels", type=int, default=DecodeLimits.max_pixels)
    ap.add_argument("--max-frames", type=int, default=0)
    ap.add_argument("--stall-s", type=float, default=DecodeLimits.stall_s)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space cap of this process (0: none)")
    args = ap.parse_args(argv)
    if args.memory_mb > 0:  # capped by the child itself, first thing: no preexec_fn in a threaded server
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (args.memory_mb * 2**20, args.memory_mb * 2**20))
    limits = DecodeLimits(args.max_pixels, args.max_frames, args.stall_s)
    try:
        import av  # noqa: F401 - loaded under the cap: a cap too small for the decoder itself is said so

        # every listed frame decoded (limits checked on each), the frame count printed every PROGRESS_EVERY
        reader = VideoReader(args.video, num_threads=args.threads, limits=limits)
        print(json.dumps({"probe": asdict(reader.info)}), flush=True)
        reader.on_frame = lambda pos: pos % PROGRESS_EVERY or print(pos, flush=True)
        for _ in reader.iter_frames([reader.info.num_frames - 1], rgb=False):
            pass
        out = {"info": asdict(reader.info)}
    except (VideoError, ValueError) as e:
        out = {"error": str(e)}
    except (MemoryError, ImportError):
        out = {
            "error": f"{shown(args.video)}: decoding it needs more than the memory cap of {args.memory_mb} MB"
        }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
