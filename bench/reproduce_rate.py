"""How long a full reproduction takes: the rates of its two costs, measured on the real InternVL2-2B shapes (random
weights), and the totals they imply for the paper's test sets.

    python bench/reproduce_rate.py --full-size --frames 2            # CPU, float32 (minutes; 12 frames: much longer)
    python bench/reproduce_rate.py --full-size --device cuda          # one GPU, bf16
    python bench/reproduce_rate.py                                    # tiny shapes: checks this script runs

Costs: (1) the dense pass, InternViT CLS of every 16th frame (the anomaly scorer after it is negligible), for every
test video; (2) one answer per HIVAU-70k test row: a 12-frame prefill (~3.3k tokens) plus decoding. Workload: the
UCF-Crime frame count of the official list (exact), the HIVAU-70k rows and their mean reference-answer length in
words (answers taken as that many tokens: an approximation); the 12-frame prefill is 12 ViT tiles plus 3265 prompt
tokens at the measured rates; XD-Violence frame counts are not in the shared files,
so its dense pass is given per hour of 24 fps video. Decoding the videos and the batching of tools/reproduce.py
are not included. On the CPU every figure is in CPU seconds (process time summed over threads), which other jobs
on the machine do not inflate; an idle machine's wall time is about that divided by the cores used. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_full_size import _sync, build_model, prompt_ids  # noqa: E402


def once(fn) -> float:
    """Seconds of one call: CPU seconds of this process on the CPU (robust when other jobs share the machine;
    wall time on an idle machine is about CPU seconds / cores used), wall seconds on a GPU."""
    _sync()
    t, c = time.perf_counter(), time.process_time()
    fn()
    _sync()
    return time.perf_counter() - t if torch.cuda.is_available() else time.process_time() - c


def workload(shared: Path) -> dict:
    out = {}
    counts = shared / "data/UCF-Crime/test_annotation_with_frame_counts.txt"
    if counts.is_file():
        out["ucf_test_frames"] = sum(
            int(line.split()[1]) for line in counts.read_text().splitlines() if line.strip()
        )
    rows = shared / "data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl"
    if rows.is_file():
        answers = [json.loads(line)["anwser"] for line in rows.open(encoding="utf-8") if line.strip()]
        out["hivau_rows"] = len(answers)
        out["mean_answer_words"] = round(sum(len(a.split()) for a in answers) / len(answers), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-size", action="store_true", help="the real InternVL2-2B shapes (else tiny)")
    ap.add_argument("--vit-batch", type=int, default=None, help="tiles per ViT call (default 4 cpu, 64 cuda)")
    ap.add_argument(
        "--frames", type=int, default=12, help="frames of the measured question (rates scale to 12)"
    )
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("HOLMESVAU_SHARED", "../shared")))
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    vit_batch = args.vit_batch or (64 if cuda else 4)
    out: dict = {"device": torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()} threads",
                 "full_size": args.full_size, "dtype": str(dtype).split(".")[1],
                 "seconds": "wall" if cuda else "cpu (process time: sum over threads)"}  # fmt: skip
    model = build_model(args.device, dtype, smoke=not args.full_size)
    from holmesvau.model.chat import vit_cls_features
    from holmesvau.model.loading import LoadedModel

    lm = LoadedModel(model, None, None, torch.device(args.device), dtype, 256, "", 92542, 92546)
    with torch.inference_mode():
        # one call each, after a one-tile warm-up: a real-size CPU call takes minutes, its own warm-up is noise
        vit_cls_features(lm, torch.randn(1, 3, 448, 448, device=args.device, dtype=dtype))
        pv = torch.randn(vit_batch, 3, 448, 448, device=args.device, dtype=dtype)
        vit_s = once(lambda: vit_cls_features(lm, pv)) / vit_batch
        out["vit_tiles_per_s"] = round(1 / vit_s, 3)
        out["dense_pass_s_per_1000_frames"] = round(1000 / 16 * vit_s, 2)
        ids = prompt_ids(args.frames).to(args.device)
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=2,
                  pixel_values=torch.randn(args.frames, 3, 448, 448, device=args.device, dtype=dtype))  # fmt: skip
        prefill = once(lambda: model.generate(**kw, max_new_tokens=1, min_new_tokens=1))
        full = once(
            lambda: model.generate(**kw, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        )
        out["prompt_tokens"] = n = int(ids.shape[1])
        out["prefill_s"] = round(prefill, 3)
        llm_s = prefill - args.frames * vit_s  # tiny shapes: the ViT can cost more than the whole prefill
        out["llm_prefill_tokens_per_s"] = round(n / llm_s, 1) if llm_s > 0 else None  # None: below the noise
        gap = full - prefill  # tiny shapes: within noise
        out["decode_tokens_per_s"] = round((args.new_tokens - 1) / gap, 2) if gap > 0 else None
        # a 12-frame question (3265 prompt tokens) from the measured rates, when fewer frames were measured
        rate = out["llm_prefill_tokens_per_s"]
        out["prefill_12_frames_s"] = round(12 * vit_s + (3265 / rate if rate else 0.0), 2)
    w = workload(args.shared)
    out.update(w)
    if "ucf_test_frames" in w:
        out["ucf_dense_pass_h"] = round(
            w["ucf_test_frames"] / 1000 * out["dense_pass_s_per_1000_frames"] / 3600, 2
        )
    out["xd_dense_pass_h_per_video_hour"] = round(
        24 * 3600 / 1000 * out["dense_pass_s_per_1000_frames"] / 3600, 3
    )
    if "hivau_rows" in w and out["decode_tokens_per_s"]:
        per_row = out["prefill_12_frames_s"] + w["mean_answer_words"] / out["decode_tokens_per_s"]
        out["reasoning_s_per_row"] = round(per_row, 2)
        out["reasoning_h"] = round(w["hivau_rows"] * per_row / 3600, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
