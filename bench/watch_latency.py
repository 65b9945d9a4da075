"""Live mode speed and memory: latency from a frame's arrival to its score, real-time factor, RSS over a long stream.

    python bench/watch_latency.py                                   # CPU, tiny random InternViT (64-d)
    python bench/watch_latency.py --device cuda --full-size         # InternVL2-2B's InternViT-300M shapes, bf16
    python bench/watch_latency.py --clip ../shared/videos/robbery.mp4 --latency-s 30 --long-minutes 30

Three runs of the watcher (no MLLM: explanations run on their own thread and do not touch these figures):
1. latency: `--clip` played at its frame rate (--realtime, as a camera delivers it) for `--latency-s` seconds;
   per snippet, the time from its frame being decoded to its score being out (p50 / p95);
2. real-time factor: the same clip decoded as fast as it goes: stream seconds scored per wall second;
3. memory: a generated `--long-minutes` stream (160x120, 30 fps, a planted 20 s event every 2 minutes so events,
   clips and the explainer queue are exercised) decoded as fast as it goes; RSS when stream time passes 5 minutes,
   and the peak after that until the end.
The scorer is a random URDMU sized for the encoder (its weights change nothing here). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from holmesvau.ats import URDMU  # noqa: E402
from holmesvau.frame_plan import SamplingConfig  # noqa: E402
from holmesvau.live import LiveSource, SourceConfig, WatchConfig, Watcher  # noqa: E402
from holmesvau.live.events import Hysteresis  # noqa: E402
from holmesvau.testing.planted import planted_scorer, vision_encoder  # noqa: E402


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def watch(source: str, encode, scorer, out: Path, realtime: bool = False, stop_after_s: float | None = None,
          on_score=None, explain=None, rule: Hysteresis | None = None) -> dict:  # fmt: skip
    stop = threading.Event()

    def hook(snip, score, latency):
        if on_score is not None:
            on_score(snip, score, latency)
        if stop_after_s is not None and snip.t >= stop_after_s:
            stop.set()

    src = LiveSource(SourceConfig(source, realtime=realtime))
    src.open()
    cfg = WatchConfig(out_dir=out, rule=rule or Hysteresis(), sampling=SamplingConfig(select_frames=4))
    return Watcher(src, encode, scorer, cfg, explain_fn=explain, on_score=hook, progress=False).run(stop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--clip", default=str(Path(__file__).resolve().parents[2] / "shared" / "videos" / "robbery.mp4")
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--full-size", action="store_true", help="InternVL2-2B's vision encoder shapes (random weights)"
    )
    ap.add_argument("--latency-s", type=float, default=30.0, help="stream seconds played in real time")
    ap.add_argument("--long-minutes", type=float, default=30.0)
    ap.add_argument(
        "--work-dir", default=None, help="where the generated stream and outputs go (default: a temp dir)"
    )
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    encode, dim = vision_encoder(args.full_size, args.device, dtype)
    torch.manual_seed(0)
    scorer = URDMU(input_size=dim).to(args.device).eval()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="watch_latency_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "device": args.device,
        "full_size": args.full_size,
        "vit_dim": dim,
        "clip": Path(args.clip).name,
    }

    watch(args.clip, encode, scorer, work / "warmup", stop_after_s=3.0)  # first calls allocate; not measured
    lat = watch(args.clip, encode, scorer, work / "latency", realtime=True, stop_after_s=args.latency_s)
    res.update(
        latency_p50_s=lat["latency_p50_s"],
        latency_p95_s=lat["latency_p95_s"],
        latency_snippets=lat["snippets"],
    )
    print(f"latency (real-time play, {lat['stream_s']:.0f} s): p50 {lat['latency_p50_s'] * 1e3:.1f} ms, "
          f"p95 {lat['latency_p95_s'] * 1e3:.1f} ms over {lat['snippets']} snippets")  # fmt: skip
    fast = watch(args.clip, encode, scorer, work / "fast")
    res.update(
        realtime_factor=fast["realtime_factor"], fast_stream_s=fast["stream_s"], fast_wall_s=fast["wall_s"]
    )
    print(
        f"real-time factor: {fast['realtime_factor']:.2f}x ({fast['stream_s']:.1f} s of stream in {fast['wall_s']:.1f} s)"
    )

    from holmesvau.testing.synthetic import make_video

    fps, minutes = 30.0, args.long_minutes
    n = int(minutes * 60 * fps)
    bright = [(int(s * fps), int((s + 20) * fps)) for s in np.arange(60, minutes * 60 - 30, 120)]
    t0 = time.perf_counter()
    long_video = make_video(work / "long.mp4", n, fps=fps, width=160, height=120, bright_ranges=bright)
    print(f"generated {minutes:g} min ({n} frames) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    mem: dict[str, float] = {}

    def on_score(snip, score, latency):
        if snip.t >= 300 and "at_5min" not in mem:
            mem["at_5min"] = rss_mb()
        elif "at_5min" in mem:
            mem["peak_after"] = max(mem.get("peak_after", 0.0), rss_mb())

    long = watch(str(long_video), encode, planted_scorer(encode, 160, 120), work / "long", on_score=on_score,
                 explain=lambda tiles: {"judgement": "planted"}, rule=Hysteresis(0.5, 0.4, 1.0, 2.0))  # fmt: skip
    mem["end"] = rss_mb()
    growth = mem["peak_after"] - mem["at_5min"]
    res.update(long_stream_min=round(long["stream_s"] / 60, 2), long_wall_s=long["wall_s"], long_events=long["events"],
               long_explained=long["explained"], long_realtime_factor=long["realtime_factor"],
               rss_mb_at_5min=round(mem["at_5min"], 1), rss_mb_peak_after_5min=round(mem["peak_after"], 1),
               rss_growth_mb=round(growth, 1))  # fmt: skip
    print(f"long stream: {long['stream_s'] / 60:.1f} min in {long['wall_s']:.0f} s ({long['realtime_factor']:.1f}x), "
          f"{long['events']} events ({len(bright)} planted), {long['explained']} explained; RSS {mem['at_5min']:.0f} MB "
          f"at 5 min, peak {mem['peak_after']:.0f} MB after (+{growth:.1f} MB)")  # fmt: skip
    if args.device.startswith("cuda"):
        res["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
