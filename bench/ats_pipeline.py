"""Benchmark of the ATS front end: time and memory of dense decoding + preprocessing, against a plain decode and
against a naive reimplementation of the original Holmes-VAU path; memory of full ATS on a short and a 4x longer
generated video. Each measurement runs in a fresh subprocess, so peak RSS figures are comparable.

    python bench/ats_pipeline.py ../shared/videos/robbery.mp4
    python bench/ats_pipeline.py VIDEO --threads 0 --stride 16 --repeat 3
    python bench/ats_pipeline.py VIDEO --skip-ats          # only the timings
    python bench/ats_pipeline.py VIDEO --skip-ats --skip-naive   # only ours against the plain decode

(a) floor: decode every frame with PyAV and the same threads, nothing else (no RGB conversion, no limits, no
    watchdog: plain `av.open` + `decode`). Threads: what `extract_dense_features` uses by default (one per
    core), or --threads N for both. `floor_auto` always decodes with the
    decoder's own choice, reported as `ours_over_floor_auto`.
(b) ours: `extract_dense_features` with a no-op encoder: decode every frame up to the last planned one except
    those no other frame refers to (skip_frame NONREF, holmesvau/video.py), convert + resize + normalise every
    stride-th (`ours_decoded_frames`: how many the decoder gave).
(c) naive: as the original: decord (1 thread; the `parity` extra), `vr[idx]` per dense frame, PIL bicubic
    resize, ToTensor+Normalize per frame, all pixel values kept.
`*_cpu_s`: CPU seconds of all the stage's threads (`ours_over_floor_cpu`: the extra work, which on a loaded machine is
what the wall-time ratio shows). Targets: ours_over_floor <= 1.15, naive_over_ours >= 3, rss_long_mb - rss_short_mb < 100. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def stage_floor(video: str, backend: str, threads: int) -> dict:
    import av

    from holmesvau.video import VideoReader

    used = VideoReader(video, backend=backend, num_threads=threads).info.backend
    t0, c0 = time.perf_counter(), cpu_s()
    n = 0
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "AUTO", threads
        for _ in container.decode(stream):
            n += 1
    return {"seconds": time.perf_counter() - t0, "cpu_s": cpu_s() - c0, "frames": n, "backend": used}


def stage_ours(video: str, backend: str, threads: int, stride: int, batch: int) -> dict:
    import av  # noqa: F401 - imported before the clock starts, as in stage_floor

    from holmesvau.ats import extract_dense_features
    from holmesvau.video import VideoReader

    t0, c0 = time.perf_counter(), cpu_s()
    reader = VideoReader(video, backend=backend, num_threads=threads)
    decoded = []
    reader.on_frame = (
        decoded.append
    )  # frames the decoder gave (unreferenced ones between planned are skipped)
    dense = extract_dense_features(
        reader, lambda pv: pv[:, 0, 0, :1], stride=stride, batch_size=batch, progress=False
    )
    return {"seconds": time.perf_counter() - t0, "cpu_s": cpu_s() - c0, "frames": len(dense.frame_indices),
            "decoded": len(decoded), "backend": dense.info.backend, "timings": dense.timings}  # fmt: skip


def stage_naive(video: str, stride: int) -> dict:
    """The original's path, reimplemented: one random-access read and one PIL resize per dense frame."""
    import decord
    import numpy as np
    import torch
    from PIL import Image

    mean = torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)
    t0 = time.perf_counter()
    vr = decord.VideoReader(video, ctx=decord.cpu(0), num_threads=1)
    pixel_values = []
    for idx in list(range(len(vr)))[::stride]:
        img = Image.fromarray(vr[idx].asnumpy()).convert("RGB").resize((448, 448), Image.BICUBIC)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous().float().div(255)
        pixel_values.append(x.sub_(mean).div_(std))
    stacked = torch.stack(pixel_values)
    return {"seconds": time.perf_counter() - t0, "frames": int(stacked.shape[0]), "backend": "decord"}


def stage_ats(video: str, backend: str, stride: int, select: int) -> dict:
    """Full ATS with a tiny random InternViT and a random URDMU: dense features -> scores -> sampled frames."""
    import torch
    from transformers import InternVLVisionConfig, InternVLVisionModel

    from holmesvau.ats import URDMU, ats_select, extract_dense_features

    torch.manual_seed(0)
    cfg = InternVLVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                               image_size=448, patch_size=14)  # fmt: skip
    vit = InternVLVisionModel(cfg).eval()
    scorer = URDMU(input_size=64).eval()
    base = peak_rss_mb()
    t0 = time.perf_counter()
    dense = extract_dense_features(video, lambda pv: vit(pixel_values=pv).last_hidden_state[:, 0], stride=stride,
                                   backend=backend, progress=False)  # fmt: skip
    with torch.no_grad():
        scores = scorer(dense.features[None])[0].numpy()
    picked = ats_select(scores, select, dense.frame_indices)
    return {"seconds": time.perf_counter() - t0, "frames": dense.info.num_frames, "dense": len(scores),
            "selected": picked, "rss_after_setup_mb": base}  # fmt: skip


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", nargs="?", help="real clip to time (e.g. ../shared/videos/robbery.mp4)")
    ap.add_argument("--backend", default="pyav", choices=["auto", "pyav"])
    ap.add_argument("--threads", type=int, default=0, help="decoder threads (0 = one per core, as streaming)")
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per stage; the median is reported")
    ap.add_argument("--ats-frames", type=int, default=16 * 12 * 4, help="frames of the short generated video")
    ap.add_argument("--skip-ats", action="store_true")
    ap.add_argument("--skip-naive", action="store_true", help="leave out the original's path (decord, slow)")
    ap.add_argument("--stage", choices=["floor", "ours", "naive", "ats"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.stage:  # child process: one measurement, one JSON line
        stages = {
            "floor": lambda: stage_floor(args.video, args.backend, args.threads),
            "ours": lambda: stage_ours(args.video, args.backend, args.threads, args.stride, args.batch),
            "naive": lambda: stage_naive(args.video, args.stride),
            "ats": lambda: stage_ats(args.video, args.backend, args.stride, 12),
        }
        result = stages[args.stage]()
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    if not args.video:
        ap.error("VIDEO is required")
    from holmesvau.ats.streaming import default_decode_threads

    threads = args.threads or default_decode_threads()  # what `extract_dense_features` uses; the floor too
    common = ["--backend", args.backend, "--threads", str(threads), "--stride", str(args.stride),
              "--batch", str(args.batch)]  # fmt: skip
    auto = ["--backend", args.backend, "--threads", "0"]
    out: dict = {"video": str(args.video), "stride": args.stride, "threads": threads}
    runs: dict[str, list[dict]] = {"floor": [], "ours": [], "naive": [], "floor_auto": []}
    if args.skip_naive:
        del runs["naive"]
    for _ in range(args.repeat):  # interleaved, so that load changes hit every stage alike
        for stage in runs:
            argv = (
                [args.video, "--stage", "floor", *auto]
                if stage == "floor_auto"
                else [args.video, "--stage", stage, *common]
            )
            runs[stage].append(run_child(argv))
    for stage, results in runs.items():
        secs = sorted(r["seconds"] for r in results)
        median = secs[len(secs) // 2]
        out[f"{stage}_s"] = round(median, 3)
        if "cpu_s" in results[0]:  # CPU seconds of all threads over the same span: the work done
            out[f"{stage}_cpu_s"] = round(sorted(r["cpu_s"] for r in results)[len(results) // 2], 3)
        out[f"{stage}_all_s"] = [round(s, 3) for s in secs]
        out[f"{stage}_peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in results), 1)
        out[f"{stage}_backend"] = results[0]["backend"]
        print(f"{stage:>6}: {median:.3f} s (runs {out[f'{stage}_all_s']}), {results[0]['frames']} frames, "
              f"{results[0]['backend']}, peak RSS {out[f'{stage}_peak_rss_mb']} MB", file=sys.stderr)  # fmt: skip
    out["ours_decoded_frames"] = runs["ours"][0]["decoded"]
    out["ours_over_floor"] = round(out["ours_s"] / out["floor_s"], 3)
    out["ours_over_floor_cpu"] = round(out["ours_cpu_s"] / out["floor_cpu_s"], 3)  # work, not wall time
    if "naive_s" in out:
        out["naive_over_ours"] = round(out["naive_s"] / out["ours_s"], 3)
    out["ours_over_floor_auto"] = round(
        out["ours_s"] / out["floor_auto_s"], 3
    )  # vs. the decoder's own threads

    if not args.skip_ats:
        from holmesvau.testing.synthetic import make_video

        with tempfile.TemporaryDirectory() as tmp:
            for name, n in (("short", args.ats_frames), ("long", 4 * args.ats_frames)):
                path = make_video(Path(tmp) / f"{name}.mp4", n, width=320, height=240,
                                  bright_ranges=[(n // 2, n // 2 + n // 10)])  # fmt: skip
                r = run_child([str(path), "--stage", "ats", *common])
                out[f"rss_{name}_mb"] = round(r["peak_rss_mb"], 1)
                out[f"ats_{name}_frames"], out[f"ats_{name}_s"] = n, round(r["seconds"], 3)
                print(f"ATS {name}: {n} frames, {r['dense']} dense, {r['seconds']:.2f} s, peak RSS "
                      f"{r['peak_rss_mb']:.1f} MB, selected {r['selected']}", file=sys.stderr)  # fmt: skip
        out["rss_growth_mb"] = round(out["rss_long_mb"] - out["rss_short_mb"], 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
