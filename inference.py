"""Ask HolmesVAU about a video: anomaly-focused frame sampling (ATS), then the MLLM's answer.

    # HolmesVAU-2B from the hub + the released anomaly scorer (both fetched once and cached)
    python inference.py --video examples/robbery.mp4 \
        --prompt "Could you specify the anomaly events present in the video?" \
        --output result.json --plot curve.png

    # offline / local files
    python inference.py --video clip.mp4 --prompt "..." --model path/to/HolmesVAU-2B \
        --scorer path/to/anomaly_scorer.pth

    # the hierarchical report: events on the anomaly curve, each described (judgement, description, analysis,
    # clip captions), plus the video-level answers -> report_dir/report.json and a self-contained report.html
    python inference.py --video examples/robbery.mp4 --report report_dir/

    # uniform sampling only (no scorer needed), or explicit frames
    python inference.py --video clip.mp4 --prompt "..." --no-ats --select-frames 8
    python inference.py --video clip.mp4 --prompt "..." --frame-indices 0,39,79,119

    # a tiny random model to try the pipeline on CPU in seconds (answers are noise)
    python tools/make_tiny_model.py /tmp/tiny && python inference.py --video clip.mp4 --prompt "hi" \
        --model /tmp/tiny --no-ats --max-new-tokens 8

ATS runs when the video has more than dense_stride x select_frames frames (as the original); otherwise frames are
sampled uniformly. Prints the answer; --output writes the full result as JSON (frame indices, timestamps, dense
anomaly scores, timings); --plot saves the anomaly curve with the sampled frames marked and a strip of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_PROMPT = "Could you specify the anomaly events present in the video?"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="question about the video")
    p.add_argument("--model", default=None, help="hub id or local folder (default ppxin321/HolmesVAU-2B)")
    p.add_argument(
        "--scorer", default=None, help="anomaly scorer .pth path or URL (default: the released one)"
    )
    p.add_argument("--no-ats", action="store_true", help="uniform sampling; no scorer is loaded")
    p.add_argument("--select-frames", type=int, default=12, help="frames given to the MLLM")
    p.add_argument("--dense-stride", type=int, default=16, help="ATS scores every k-th frame")
    p.add_argument("--tau", type=float, default=0.1, help="ATS density offset")
    p.add_argument("--frame-indices", default=None, help="comma-separated frame indices (skips sampling)")
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["bf16", "fp16", "fp32"],
        help="default: bf16/fp16 on GPU, fp32 on CPU",
    )
    p.add_argument("--cache-dir", default=None, help="where downloads and converted checkpoints go")
    p.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="save the anomaly curve + sampled frames (png)")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write the hierarchical report (events, clip/event/video answers) as report.json + report.html into this folder",
    )
    p.add_argument(
        "--report-threshold",
        type=float,
        default=None,
        help="event threshold on the anomaly scores (default: from the curve)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def parse_indices(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise SystemExit(f"--frame-indices must be comma-separated integers, got {text!r}") from None


def load_pipeline(args: argparse.Namespace):
    from holmesvau.model import DEFAULT_MODEL
    from holmesvau.pipeline import HolmesVAU

    return HolmesVAU.from_pretrained(
        args.model or DEFAULT_MODEL,
        scorer=False if args.no_ats else args.scorer,
        device=args.device,
        dtype=args.dtype,
        cache_dir=args.cache_dir,
    )


def run(args: argparse.Namespace, vau=None):
    """Analyze the video, print the answer, write --output / --plot. Returns (pipeline, AnalysisResult)."""
    from holmesvau.video import probe

    probe(args.video)  # a bad video fails before minutes of model loading
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    vau = vau or load_pipeline(args)
    report = None
    if args.report is not None:  # holmesvau.report; its dense pass is reused by analyze below
        from holmesvau.report import report_from_args

        report = report_from_args(vau, args)
    result = vau.analyze(
        args.video,
        args.prompt,
        select_frames=args.select_frames,
        use_ats=not args.no_ats,
        dense_stride=args.dense_stride,
        frame_indices=parse_indices(args.frame_indices),
        max_new_tokens=args.max_new_tokens,
        tau=args.tau,
        progress=not args.quiet,
        dense=getattr(report, "dense", None),
    )
    print(f"sampling: {result.sampling}, frames: {result.frame_indices}", file=sys.stderr)
    print(f"User: {args.prompt}\nHolmesVAU: {result.answer}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.dumps(result.to_dict(), indent=2, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a non-UTF-8 file name: escaped, not a crash leaving an empty file
            data = json.dumps(result.to_dict(), indent=2).encode("ascii")
        args.output.write_bytes(data)
        print(f"result: {args.output}", file=sys.stderr)
    if args.plot is not None:
        from holmesvau.plots import save_anomaly_curve

        save_anomaly_curve(result, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return vau, result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from holmesvau.ats.weights import ScorerError
    from holmesvau.model import CheckpointError
    from holmesvau.video import VideoError

    try:
        run(args)
    except (VideoError, CheckpointError, ScorerError, ValueError) as e:
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 2
    return 0


def error_text(e: Exception) -> str:
    from holmesvau.model import CheckpointError

    if isinstance(e, CheckpointError) and "--model" not in str(e):
        return f"{e} (pass --model with a hub id like ppxin321/HolmesVAU-2B or a local model folder)"
    return str(e)


if __name__ == "__main__":
    sys.exit(main())
