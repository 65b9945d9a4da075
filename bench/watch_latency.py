"""Live mode speed and memory: latency from a frame's arrival to its score, real-time factor, RSS over a long stream.

    python bench/watch_latency.py                                   # CPU, tiny random InternViT (64-d)
    python bench/watch_latency.py --device cuda --full-size         # InternVL2-2B's InternViT-300M shapes, bf16
    python bench/watch_latency.py --clip ../shared/videos/robbery.mp4 --latency-s 30 --long-minutes 30
    python bench/watch_latency.py --cameras 1,2,4,8,12 --seconds 30    # many cameras, one watcher

Three runs of the watcher (no MLLM: explanations run on their own thread and do not touch these figures):
1. latency: `--clip` played at its frame rate (--realtime, as a camera delivers it) for `--latency-s` seconds;
   per snippet, the time from its frame being decoded to its score being out (p50 / p95);
2. real-time factor: the same clip decoded as fast as it goes: stream seconds scored per wall second;
3. memory: a generated `--long-minutes` stream (160x120, 30 fps, a planted 20 s event every 2 minutes so events,
   clips and the explainer queue are exercised) watched by `--long-cameras` cameras (default 4) in one watcher,
   decoded as fast as it goes; the peak RSS in each 5 minutes of stream time, and its growth from the second
   window (the first holds the start-up) to the last.
The scorer is a random URDMU sized for the encoder (its weights change nothing here). Last line: one JSON object.

With `--cameras N1,N2,...` it measures many cameras in one watcher instead: for each N, N ffmpeg processes stream
the shared clips (pre-encoded once to h264 at `--width` px, sent with `-c copy` at their frame rate, looping) as
MPEG-TS over UDP on 127.0.0.1; one Watcher (shared ViT batches) watches them for `--seconds` after a warm-up. Per
N: real time kept (every camera decoded >= 90 % of the frames sent and its arrival -> score p95 < 1 s), p50 / p95
per camera, the ViT batch sizes, CPU % (process CPU time / wall; 100 % = one core), RSS; then the largest N kept.
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
from holmesvau.live.explain import per_event  # noqa: E402
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


def cameras_bench(args, encode, scorer, work: Path) -> dict:
    """Many cameras over UDP in one watcher (see the module docstring)."""
    import resource
    import socket
    import subprocess

    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    clips = sorted((Path(args.clip).parent).glob("*.mp4"))
    ts = []
    for c in clips:  # once: h264 at --width, keyframe every second, so the senders only copy packets
        out = work / f"{c.stem}_{args.width}.ts"
        if not out.exists():
            subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(c), "-vf",
                            f"scale={args.width}:-2", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-an",
                            "-f", "mpegts", str(out)], check=True)  # fmt: skip
        import av

        with av.open(str(out)) as f:
            ts.append((out, float(f.streams.video[0].average_rate)))
    rows, kept = [], 0
    for n in [int(x) for x in args.cameras.split(",")]:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        ports = [sk.getsockname()[1] for sk in socks]
        for sk in socks:
            sk.close()
        specs, fps = [], []
        for k, port in enumerate(ports):
            src = LiveSource(
                SourceConfig(f"udp://127.0.0.1:{port}", read_timeout_s=5, options={"fifo_size": "1000000"})
            )
            specs.append((f"cam{k:02d}", src, WatchConfig(out_dir=work / f"n{n}", sampling=SamplingConfig(select_frames=4),
                                                          batch_size=args.batch_size)))  # fmt: skip
            fps.append(ts[k % len(ts)][1])
        senders = [
            subprocess.Popen(
                [
                    ffmpeg,
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-re",
                    "-stream_loop",
                    "-1",
                    "-i",
                    str(ts[k % len(ts)][0]),
                    "-c",
                    "copy",
                    "-f",
                    "mpegts",
                    f"udp://127.0.0.1:{port}?pkt_size=1316",
                ]
            )  # fmt: skip
            for k, port in enumerate(ports)
        ]
        w = Watcher(specs, encode, scorer, specs[0][2], progress=False)
        stop = threading.Event()
        t = threading.Thread(target=w.run, args=(stop,), daemon=True)
        t.start()
        time.sleep(args.warmup_s)  # opening, first batches
        frames0 = [c.src.frames for c in w.cameras]
        lat0 = [len(c.latencies) for c in w.cameras]
        batches0 = dict(w.batch_sizes)
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0
        frames = [c.src.frames - f0 for c, f0 in zip(w.cameras, frames0)]
        lats = [np.asarray(list(c.latencies)[l0:]) for c, l0 in zip(w.cameras, lat0)]
        batches = {
            b: v - batches0.get(b, 0) for b, v in sorted(w.batch_sizes.items()) if v - batches0.get(b, 0)
        }
        stop.set()
        t.join(60)
        for p in senders:
            p.kill()
            p.wait()
        cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / wall * 100
        cams = []
        for c, f, lat, r in zip(w.cameras, frames, lats, fps):
            p50, p95 = (float(np.percentile(lat, q)) if lat.size else None for q in (50, 95))
            ok = f >= 0.9 * r * wall and p95 is not None and p95 < 1.0  # (a looped clip pauses at its seam)
            cams.append({"camera": c.name, "fps": round(r, 2), "frames": f, "expected": round(r * wall),
                         "p50_s": None if p50 is None else round(p50, 4), "p95_s": None if p95 is None else round(p95, 4),
                         "kept": ok})  # fmt: skip
        row = {"cameras": n, "realtime_kept": all(c["kept"] for c in cams), "cpu_percent": round(cpu, 1),
               "rss_mb": round(rss_mb(), 1), "vit_batches": batches, "per_camera": cams}  # fmt: skip
        rows.append(row)
        p95s = [c["p95_s"] for c in cams if c["p95_s"] is not None]
        print(f"N={n}: real time {'kept' if row['realtime_kept'] else 'NOT kept'}; arrival->score p95 max "
              f"{max(p95s, default=float('nan')) * 1e3:.0f} ms; frames {sum(frames)}/{sum(c['expected'] for c in cams)};"
              f" ViT batches {batches}; CPU {cpu:.0f} %; RSS {row['rss_mb']:.0f} MB", flush=True)  # fmt: skip
        if row["realtime_kept"]:
            kept = max(kept, n)
    load = os.getloadavg()
    return {"cameras_runs": rows, "largest_n_kept": kept, "loadavg": [round(x, 2) for x in load],
            "cpus": os.cpu_count()}  # fmt: skip


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
        "--long-cameras", type=int, default=4, help="cameras watching the long stream, one watcher"
    )
    ap.add_argument(
        "--cameras", default=None, help="N1,N2,...: many cameras in one watcher instead (see above)"
    )
    ap.add_argument("--seconds", type=float, default=30.0, help="--cameras: wall seconds measured per N")
    ap.add_argument("--warmup-s", type=float, default=8.0, help="--cameras: seconds before measuring")
    ap.add_argument("--width", type=int, default=640, help="--cameras: the streams' width in pixels")
    ap.add_argument("--batch-size", type=int, default=16, help="--cameras: most tiles per ViT call")
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
    if args.cameras:
        res.update(cameras_bench(args, encode, scorer, work))
        print(json.dumps(res))
        return

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
    mark_s = min(300.0, minutes * 60 / 6)  # windows of 5 min of stream time (a sixth of a shorter stream)
    peaks: dict[int, float] = {}  # window -> peak RSS while the cameras were in it

    def on_score(snip, score, latency):
        k = int(snip.t // mark_s)
        peaks[k] = max(peaks.get(k, 0.0), rss_mb())

    # --long-cameras copies of the stream in one watcher (shared ViT batches, one explainer), as fast as it goes
    rule, scorer_long = Hysteresis(0.5, 0.4, 1.0, 2.0), planted_scorer(encode, 160, 120)
    specs = [(f"cam{k}", LiveSource(SourceConfig(str(long_video))),
              WatchConfig(out_dir=work / "long", rule=rule, sampling=SamplingConfig(select_frames=4)))
             for k in range(args.long_cameras)]  # fmt: skip
    for _, src, _ in specs:
        src.open()
    w = Watcher(specs, encode, scorer_long, specs[0][2], on_score=on_score, progress=False,
                explain_fn=per_event(lambda tiles: {"judgement": "planted"}))  # fmt: skip
    long = w.run(threading.Event())
    cams = long["cameras"]
    # growth: the peak of the last window over the peak of the second (the first holds the start-up); the RSS
    # swings by tens of MB around each event (clip, explainer), so peaks are compared with peaks
    last = max(k for k in peaks if k >= 1)
    growth = peaks[last] - peaks[1]
    stream_min = min(c["stream_s"] for c in cams) / 60
    res.update(long_cameras=len(cams), long_stream_min=round(stream_min, 2), long_wall_s=long["wall_s"],
               long_events=[c["events"] for c in cams], long_planted=len(bright), long_explained=long["explained"],
               long_realtime_factor=long["realtime_factor"], rss_window_min=round(mark_s / 60, 2),
               rss_peak_mb_by_window=[round(peaks[k], 1) for k in sorted(peaks)], rss_growth_mb=round(growth, 1))  # fmt: skip
    print(f"long stream x {len(cams)} cameras: {stream_min:.1f} min each in {long['wall_s']:.0f} s, events "
          f"{[c['events'] for c in cams]} ({len(bright)} planted each), {long['explained']} explained; peak RSS per "
          f"{mark_s / 60:g} min of stream {[round(peaks[k]) for k in sorted(peaks)]} MB: +{growth:.1f} MB from the "
          "second window to the last")  # fmt: skip
    if args.device.startswith("cuda"):
        res["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
