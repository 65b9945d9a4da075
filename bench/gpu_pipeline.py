"""End to end on a GPU at real size: an ORIGINAL-format checkpoint with the InternVL2-2B shapes (random weights)
is converted on the fly, loaded in bf16, and the inference pipeline runs ATS + generation on a real video.

    python bench/gpu_pipeline.py ../shared/videos/robbery.mp4            # last line: one JSON object
    python bench/gpu_pipeline.py VIDEO --smoke                           # tiny sizes on the CPU (checks the script)

Proves the parts the CPU tests only see small: conversion of a 2.2 B-parameter original checkpoint, bf16 on CUDA,
streaming ATS with the 1024-d CLS into the released scorer layout, and reports per-stage timings and peak memory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    args = ap.parse_args()
    from holmesvau import HolmesVAU
    from holmesvau.testing import make_random_scorer
    from holmesvau.testing.tiny_model import TinyConfig, internvl2_2b_sizes, make_tiny_checkpoint

    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --smoke)")
    dev = "cpu" if args.smoke else "cuda"
    cfg = TinyConfig() if args.smoke else internvl2_2b_sizes()
    work = Path(args.work or tempfile.mkdtemp(prefix="holmesvau-gpu-"))
    out: dict = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu-smoke"}

    t = time.perf_counter()
    with torch.device(dev):  # random init on the GPU: seconds instead of minutes for 2.2 B parameters
        make_tiny_checkpoint(work / "original", "original", cfg)
    scorer = make_random_scorer(work / "anomaly_scorer.pth", input_dim=cfg.vit_hidden)
    out["make_original_checkpoint_s"] = round(time.perf_counter() - t, 1)
    out["original_checkpoint_gb"] = round(
        sum(f.stat().st_size for f in (work / "original").glob("*")) / 1e9, 2
    )

    t = time.perf_counter()
    vau = HolmesVAU.from_pretrained(work / "original", scorer=scorer, device=dev, cache_dir=work / "cache")
    out["convert_and_load_s"] = round(time.perf_counter() - t, 1)
    out["dtype"] = str(vau.lm.dtype)
    out["params_b"] = round(sum(p.numel() for p in vau.lm.model.parameters()) / 1e9, 3)

    prompt = "Could you specify the anomaly events present in the video?"
    for run in ("cold", "warm"):
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        r = vau.analyze(args.video, prompt, max_new_tokens=args.max_new_tokens, progress=False)
        out[f"analyze_{run}_s"] = round(time.perf_counter() - t, 2)
    out["timings"] = {k: round(v, 3) for k, v in r.timings.items()}
    out["sampling"], out["frame_indices"] = r.sampling, r.frame_indices
    out["dense_scores"] = len(r.dense_scores or [])
    out["video"] = {k: r.video[k] for k in ("num_frames", "fps")}
    out["answer_chars"] = len(r.answer)
    if dev == "cuda":
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
