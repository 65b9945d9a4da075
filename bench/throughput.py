"""Throughput of answering HIVAU-format questions: today's serial path against batched answering with vision reuse.

    python bench/throughput.py                                    # CPU, tiny random model (about a minute)
    python bench/throughput.py --device cuda --full-size          # InternVL2-2B shapes, random weights, bf16, batch 16
    python bench/throughput.py --rows 48 --batch-size 8 --max-new-tokens 16 --videos ../shared/videos

Rows: real test prompts from `--instructions` (HIVAU-70k merge_instruction_test_final.jsonl), whole source-video
groups (its video rows, events and clips) taken evenly across the file. Group g is mapped onto clip g % 3 of
`--videos`: video rows ask about the whole clip, event k about the k-th equal part of its middle half, clip j of
event k about the j-th part of the first 3/4 of that event; 12 frames spread uniformly in each (as
tools/predict.py does on the cut files). The rows of one cut file share a frame set, as in the real test set.
"serial" is today's path, row by row: decode its frames, preprocess them on the CPU, `chat()` (one generate, frames
re-encoded each time). "ours": the frames of each distinct frame set decoded once as uint8 tiles, every question
answered by `holmesvau.model.batch.answer_batch` (features once per frame set, batches of `--batch-size`).
Generate calls, ViT tiles and prefill tokens are counted by hooks on the vision tower and the language model,
not by the code measured. Random weights seldom stop at <|im_end|>: both paths use the same `--max-new-tokens`
and the tokens generated are printed. Then a hierarchical report on robbery.mp4 (`report_*`: generate calls and ViT
tiles before, i.e. one generate per question re-encoding its frames, and after). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HOLMESVAU_SHARED", REPO.parent / "shared"))
CLIPS = ("robbery.mp4", "earthquake.mp4", "car_accident.mp4")
HIVAU_TEST_ROWS = 3339


class Counter:
    """Counts through forward hooks: ViT tiles, prefill forwards and tokens, decode steps, and generation loops
    (a decode step right after a prefill starts one: serial `generate` makes one per row, batched answering one
    per batch)."""

    def __init__(self, lm, timed: bool = False):
        self.reset()
        inner = lm.model.model
        self.handles = [
            inner.vision_tower.register_forward_pre_hook(self._vit, with_kwargs=True),
            inner.language_model.register_forward_pre_hook(self._lang, with_kwargs=True),
        ]
        if timed:  # wall time per kind of forward, the device synchronised around each (--timing)
            self.device = lm.device
            for m, kind in ((inner.vision_tower, "vit"), (inner.language_model, "lang")):
                self.handles.append(m.register_forward_pre_hook(self._start, with_kwargs=True))
                self.handles.append(m.register_forward_hook(self._stop(kind), with_kwargs=True))

    def reset(self) -> None:
        self.vit_tiles = self.generate_calls = self.prefill_tokens = self.prefills = self.decode_steps = 0
        self.last_was_prefill = False
        self.seconds = {"vit": 0.0, "prefill": 0.0, "decode": 0.0}
        self._t0 = 0.0

    def _start(self, module, args, kwargs) -> None:
        _sync(str(self.device))
        self._t0 = time.perf_counter()

    def _stop(self, kind: str):
        def hook(module, args, kwargs, output) -> None:
            _sync(str(self.device))
            dt = time.perf_counter() - self._t0
            if kind == "lang":
                x = kwargs.get("inputs_embeds")
                x = x if x is not None else kwargs.get("input_ids", args[0] if args else None)
                kind_ = "prefill" if x.shape[1] > 1 else "decode"
            else:
                kind_ = kind
            self.seconds[kind_] += dt

        return hook

    def _vit(self, module, args, kwargs) -> None:
        pv = kwargs.get("pixel_values", args[0] if args else None)
        self.vit_tiles += int(pv.shape[0])

    def _lang(self, module, args, kwargs) -> None:
        x = kwargs.get("inputs_embeds")
        x = x if x is not None else kwargs.get("input_ids", args[0] if args else None)
        if x.shape[1] > 1:
            self.prefills += 1
            self.prefill_tokens += int(x.shape[0] * x.shape[1])
            self.last_was_prefill = True
        else:
            self.decode_steps += 1
            self.generate_calls += int(self.last_was_prefill)
            self.last_was_prefill = False

    def snapshot(self) -> dict:
        keys = ("generate_calls", "vit_tiles", "prefill_tokens", "prefills", "decode_steps")
        return {k: getattr(self, k) for k in keys}


def source_of(video: str) -> str:
    """`ucf-crime/clips/test/Arson016_x264_E1C0.mp4` -> `Arson016_x264`: the source video of a row."""
    stem = Path(video).stem
    return re.sub(r"_E\d+(C\d+)?$", "", stem)


def pick_rows(path: Path, n: int, seed: int = 0) -> list:
    """About `n` rows: whole source groups drawn at random (seeded) from the file, kept in file order."""
    import random

    from holmesvau.data.instructions import read_instructions

    rows = read_instructions(path, on_error="skip")
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        groups[source_of(r.video)].append(r)
    names = list(groups)
    chosen, total = set(), 0
    for name in random.Random(seed).sample(names, len(names)):
        if total >= n:
            break
        chosen.add(name)
        total += len(groups[name])
    return [r for name in names if name in chosen for r in groups[name]][:n]


def frame_plans(rows: list, videos: Path, frames: int) -> list[tuple[Path, tuple[int, ...]]]:
    """(clip file, frame indices) per row, mapped as the module docstring says."""
    from holmesvau.video import probe, uniform_indices

    lengths = {c: probe(videos / c).num_frames for c in CLIPS}
    groups = list(dict.fromkeys(source_of(r.video) for r in rows))
    events: dict[str, list[int]] = defaultdict(list)  # source -> its event numbers
    clips: dict[tuple[str, int], list[int]] = defaultdict(list)  # (source, event) -> its clip numbers
    for r in rows:
        m = re.search(r"_E(\d+)(?:C(\d+))?$", Path(r.video).stem)
        if m:
            src, e = source_of(r.video), int(m.group(1))
            events[src] = sorted(set(events[src]) | {e})
            if m.group(2) is not None:
                clips[(src, e)] = sorted(set(clips[(src, e)]) | {int(m.group(2))})
    plans = []
    for r in rows:
        src = source_of(r.video)
        g = groups.index(src)
        clip = CLIPS[g % len(CLIPS)]
        start, end = g // len(CLIPS), lengths[clip]  # groups sharing a clip start a frame apart
        m = re.search(r"_E(\d+)(?:C(\d+))?$", Path(r.video).stem)
        if m:  # events inside the middle half of the clip, clips inside the first 3/4 of their event:
            # never the same frames as the whole video or the event, as with the real cut files
            start, end = _part(
                start + end // 4, end - end // 4, events[src].index(int(m.group(1))), len(events[src])
            )
            if m.group(2) is not None:
                cl = clips[(src, int(m.group(1)))]
                start, end = _part(start, start + (end - start) * 3 // 4, cl.index(int(m.group(2))), len(cl))
        idx = tuple(start + i for i in uniform_indices(end - start, frames))
        plans.append((videos / clip, idx))
    return plans


def _part(start: int, end: int, k: int, n: int) -> tuple[int, int]:
    a, b = start + (end - start) * k // n, start + (end - start) * (k + 1) // n
    return a, max(b, a + 1)


def build_lm(device: str, full_size: bool, model: str | None, workdir: Path):
    """The tiny random model (or `--model`); with full_size, the InternVL2-2B shapes (random weights) behind the
    tiny tokenizer, built on the device."""
    from holmesvau.model import load_model
    from holmesvau.testing import make_tiny_checkpoint

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    path = model or make_tiny_checkpoint(workdir / "tiny", "native")
    lm = load_model(path, device=device, dtype=dtype)
    if full_size:
        from transformers import InternVLForConditionalGeneration

        from holmesvau.model.convert import native_config
        from holmesvau.testing import internvl2_2b_sizes, original_config

        cfg = internvl2_2b_sizes()
        config = native_config(original_config(cfg, cfg.vocab_size), lm.image_token_id, 1, 2, 2)
        torch.manual_seed(0)
        with torch.device(device):
            big = InternVLForConditionalGeneration._from_config(
                config, dtype=dtype, attn_implementation="sdpa"
            )
        lm = dataclasses.replace(lm, model=big.eval())
    return lm


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )  # process peak RSS (Linux: KiB)


FRAMES_S = [0.0]  # seconds spent decoding and preprocessing frames on the CPU (reset per measured path)


def run_serial(lm, rows, plans, max_new_tokens: int) -> list:
    """Today's path: per row, decode + preprocess on the CPU + one generate that re-encodes the frames."""
    from holmesvau.model import chat, video_question
    from holmesvau.preprocess import frames_to_pixel_values
    from holmesvau.video import read_frames

    outs = []
    for r, (video, idx) in zip(rows, plans):
        t = time.perf_counter()
        pv = frames_to_pixel_values(read_frames(video, list(idx)))
        FRAMES_S[0] += time.perf_counter() - t
        outs.append(chat(lm, pv, video_question(r.prompt, len(idx)), max_new_tokens=max_new_tokens))
    return outs


def run_batched(lm, rows, plans, max_new_tokens: int, batch_size: int, chunk: int | None) -> list:
    """Ours, as tools/predict.py runs: rows in chunks of whole frame sets (about `chunk` rows, default 2 x batch);
    each distinct frame set decoded once as uint8 tiles, the next chunk's in a background thread while this one
    is answered (holmesvau.prefetch); batched answering."""
    from holmesvau.model import video_question
    from holmesvau.model.batch import AnswerRequest, FrameSet, answer_batch
    from holmesvau.prefetch import prefetched
    from holmesvau.preprocess import frames_to_tiles
    from holmesvau.video import read_frames

    chunk = chunk or 2 * batch_size
    chunks: list[list[int]] = [[]]  # row indices; a frame set's rows never straddle two chunks
    seen: dict = {}
    for i, (video, idx) in enumerate(plans):
        k = (str(video), idx)
        if k not in seen and len(chunks[-1]) >= chunk:
            chunks.append([])
        seen.setdefault(k, len(chunks) - 1)
        chunks[seen[k]].append(i)

    def requests(members: list[int]) -> list:
        t, sets, reqs = time.perf_counter(), {}, []
        for i in members:
            video, idx = plans[i]
            k = (str(video), idx)
            if k not in sets:
                sets[k] = FrameSet(tiles=frames_to_tiles(read_frames(video, list(idx))), key=k)
            reqs.append(AnswerRequest(sets[k], video_question(rows[i].prompt, len(idx)), max_new_tokens))
        FRAMES_S[0] += time.perf_counter() - t
        return reqs

    outs: list = [None] * len(rows)
    for members, reqs in prefetched(requests, chunks, depth=1):
        if isinstance(reqs, Exception):
            raise reqs
        for i, o in zip(members, answer_batch(lm, reqs, batch_size)):
            outs[i] = o
    return outs


def report_counts(
    lm,
    counter: Counter,
    video: Path,
    new_tokens: int,
    workdir: Path,
    replay: bool,
    clip_frames: int | None = None,
) -> dict:
    """A hierarchical report on `video`: ViT tiles and generation loops of the batched report (hook-counted), and
    before: one generate per question, each re-encoding its frames (counted from the report's questions, or
    measured by replaying them through `chat()` with `replay`). Random weights give a meaningless curve, so the
    dense pass is real but its scores are planted high over two stretches (30-45 % and 60-80 % of the video)."""
    import numpy as np

    from holmesvau.ats.weights import load_scorer
    from holmesvau.model import chat, video_question
    from holmesvau.pipeline import DenseScores, HolmesVAU
    from holmesvau.preprocess import frames_to_pixel_values
    from holmesvau.report import ReportConfig, build_report
    from holmesvau.report.analysis import CLIP_CAPTION_PROMPT, TASK_PROMPTS, TASKS
    from holmesvau.testing import make_random_scorer
    from holmesvau.video import read_frames

    scorer = make_random_scorer(workdir / "scorer.pth", input_dim=lm.vision_hidden_size)
    vau = HolmesVAU(lm, load_scorer(scorer, device=lm.device))
    dense = vau.dense_scores(video, 16, progress=False)
    pos = dense.frame_indices / max(1, dense.info.num_frames)
    planted = np.where(((pos >= 0.3) & (pos < 0.45)) | ((pos >= 0.6) & (pos < 0.8)), 0.9, 0.1).astype("f4")
    dense = DenseScores(dense.frame_indices, planted, dense.info, dense.stride, dense.timings)
    counter.reset()
    t = time.perf_counter()
    cfg = ReportConfig(max_new_tokens=new_tokens)
    if clip_frames:
        cfg.clip_frames = clip_frames
    data = build_report(vau, video, cfg, progress=False, dense=dense).data
    after = {**counter.snapshot(), "s": round(time.perf_counter() - t, 3)}
    questions = [(data["video_sampling"]["frame_indices"], TASK_PROMPTS[k]) for k in TASKS]
    for ev in data["events"]:
        questions += [(ev["frame_indices"], TASK_PROMPTS[k]) for k in TASKS]
        questions += [(c["frame_indices"], CLIP_CAPTION_PROMPT) for c in ev["clips"]]
    out = {
        "report_events": len(data["events"]),
        "report_clip_frames": cfg.clip_frames,
        "report_questions": len(questions),
        "report_generate_calls_before": len(questions),
        "report_vit_tiles_before": sum(len(idx) for idx, _ in questions),
        "report_generate_calls_after": after["generate_calls"],
        "report_vit_tiles_after": after["vit_tiles"],
        "report_s_after": after["s"],
        "report_before": "counted from the report's questions",
    }
    out["report_vit_tiles_ratio"] = round(out["report_vit_tiles_after"] / out["report_vit_tiles_before"], 3)
    if replay:
        counter.reset()
        t = time.perf_counter()
        for idx, prompt in questions:
            pv = frames_to_pixel_values(read_frames(video, idx))
            chat(lm, pv, video_question(prompt, len(idx)), max_new_tokens=new_tokens)
        out["report_s_before"] = round(time.perf_counter() - t, 3)
        out["report_vit_tiles_counted"] = out["report_vit_tiles_before"]  # the counted figure, kept beside
        out["report_generate_calls_before"] = counter.generate_calls
        out["report_vit_tiles_before"] = counter.vit_tiles
        out["report_before"] = "measured: one chat() per question"
    print(
        f"report on {video.name}: {out['report_events']} events, {out['report_questions']} questions; generate "
        f"calls {out['report_generate_calls_before']} -> {out['report_generate_calls_after']}, ViT tiles "
        f"{out['report_vit_tiles_before']} -> {out['report_vit_tiles_after']}",
        file=sys.stderr,
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--full-size", action="store_true", help="InternVL2-2B shapes, random weights (for a GPU)"
    )
    ap.add_argument("--model", default=None, help="a model folder instead of the tiny random one")
    ap.add_argument("--rows", type=int, default=None, help="default 24 on the CPU, 64 on a GPU")
    ap.add_argument("--batch-size", type=int, default=None, help="default 4 on the CPU, 16 on a GPU")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 16 on the CPU, 128 on a GPU")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument(
        "--chunk", type=int, default=None, help="rows per answer_batch call (default 2 x batch size)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a crowded machine)")
    ap.add_argument("--seed", type=int, default=0, help="which source-video groups are drawn")
    ap.add_argument("--no-report", action="store_true", help="skip the report on robbery.mp4")
    ap.add_argument(
        "--timing",
        action="store_true",
        help="also time ViT, prefill and decode forwards (device synchronised around each) and frame decoding",
    )
    ap.add_argument("--report-replay", action="store_true", help="measure the report's serial path too")
    ap.add_argument(
        "--report-clip-frames", type=int, default=None, help="frames per clip caption (default 8)"
    )
    ap.add_argument("--videos", type=Path, default=SHARED / "videos")
    ap.add_argument(
        "--instructions",
        type=Path,
        default=SHARED / "data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl",
    )
    args = ap.parse_args(argv)
    from holmesvau.model.batch import default_batch_size

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    for p in (args.videos, args.instructions):
        if not p.exists():
            raise SystemExit(f"{p}: not found (set HOLMESVAU_SHARED or pass --videos / --instructions)")
    if args.threads:
        torch.set_num_threads(args.threads)
    n_rows = args.rows or (64 if cuda else 24)
    batch = args.batch_size or default_batch_size(args.device)
    new_tokens = args.max_new_tokens or (128 if cuda else 16)

    workdir = Path(tempfile.mkdtemp(prefix="holmesvau-bench-"))
    t = time.perf_counter()
    lm = build_lm(args.device, args.full_size, args.model, workdir)
    build_s = time.perf_counter() - t
    rows = pick_rows(args.instructions, n_rows, args.seed)
    plans = frame_plans(rows, args.videos, args.frames)
    counter = Counter(lm, timed=args.timing)
    run_serial(lm, rows[:1], plans[:1], 2)  # warm-up: kernels, the file cache of the clips
    run_batched(lm, rows[:2], plans[:2], 2, 2, 2)

    figures = {}
    for name, fn in (
        ("serial", lambda: run_serial(lm, rows, plans, new_tokens)),
        ("ours", lambda: run_batched(lm, rows, plans, new_tokens, batch, args.chunk)),
    ):
        counter.reset()
        FRAMES_S[0] = 0.0
        _reset_peak(args.device)
        _sync(args.device)
        t = time.perf_counter()
        outs = fn()
        _sync(args.device)
        figures[name] = {
            "s": time.perf_counter() - t,
            **counter.snapshot(),
            "new_tokens": sum(len(o.output_ids) for o in outs),
            "peak_mb": _peak_mb(args.device),
            "outs": outs,
            "seconds": {k: round(v, 3) for k, v in {**counter.seconds, "frames": FRAMES_S[0]}.items()},
        }
        print(f"{name}: {figures[name]['s']:.2f} s, {counter.snapshot()}", file=sys.stderr)
    s, o = figures["serial"], figures["ours"]
    same = sum(a.output_ids == b.output_ids for a, b in zip(s["outs"], o["outs"]))
    levels = defaultdict(int)
    for r in rows:
        levels[r.type] += 1
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": "internvl2-2b-shapes-random" if args.full_size else (args.model or "tiny-random"),
        "dtype": str(lm.dtype).replace("torch.", ""),
        "rows": len(rows),
        "levels": dict(levels),
        "frame_sets": len(set(plans)),
        "rows_per_frame_set_hivau_test": 2.44,  # 3339 rows over 1369 distinct cut files
        "batch_size": batch,
        "max_new_tokens": new_tokens,
        "serial_s": round(s["s"], 3),
        "ours_s": round(o["s"], 3),
        "speedup": round(s["s"] / o["s"], 2),
        "rows_per_s_serial": round(len(rows) / s["s"], 3),
        "rows_per_s_ours": round(len(rows) / o["s"], 3),
        "projected_hivau_test_s_serial": round(HIVAU_TEST_ROWS * s["s"] / len(rows), 1),
        "projected_hivau_test_s_ours": round(HIVAU_TEST_ROWS * o["s"] / len(rows), 1),
        "generate_calls_serial": s["generate_calls"],
        "generate_calls_ours": o["generate_calls"],
        "vit_tiles_serial": s["vit_tiles"],
        "vit_tiles_ours": o["vit_tiles"],
        "prefill_tokens_serial": s["prefill_tokens"],
        "prefill_tokens_ours": o["prefill_tokens"],
        "decode_steps_serial": s["decode_steps"],
        "decode_steps_ours": o["decode_steps"],
        "new_tokens_serial": s["new_tokens"],
        "new_tokens_ours": o["new_tokens"],
        "same_answers": same,
        "peak_mem_mb": o["peak_mb"],
        "peak_mem_mb_serial": s["peak_mb"],
        "peak_mem_kind": "cuda max allocated" if cuda else "process peak RSS",
        "build_s": round(build_s, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if (
        args.timing
    ):  # where the time goes (the forwards' own wall time, device synchronised; frames on the CPU)
        result["seconds_serial"], result["seconds_ours"] = s["seconds"], o["seconds"]
    import transformers

    result["transformers"] = transformers.__version__
    if not args.no_report:
        result.update(
            report_counts(
                lm,
                counter,
                args.videos / CLIPS[0],
                new_tokens,
                workdir,
                args.report_replay,
                args.report_clip_frames,
            )
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
