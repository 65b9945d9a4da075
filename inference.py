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
import sys

from holmesvau.cli import (
    add_generation_options,
    add_model_options,
    add_sampling_options,
    finite_float,
    frame_indices,
    output_dir,
    output_file,
)

DEFAULT_PROMPT = "Could you specify the anomaly events present in the video?"
NEEDS_VIDEO = """inference.py needs a video to look at: --video path/to/video.mp4
  python inference.py --video clip.mp4 --prompt "What happens in this video?"
  python inference.py --video clip.mp4 --report report_dir/      # the hierarchical report
The first run fetches HolmesVAU-2B and the anomaly scorer (cached); offline, pass local files with --model and
--scorer. `python inference.py --help` lists every option."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--video", default=None, help="video file (required)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="question about the video")
    add_model_options(p)
    add_sampling_options(p)
    p.add_argument(
        "--frame-indices",
        type=frame_indices,
        default=None,
        help="comma-separated frame indices (no sampling)",
    )
    add_generation_options(p)
    p.add_argument("--output", type=output_file, default=None, help="write the result as JSON here")
    p.add_argument(
        "--plot", type=output_file, default=None, help="save the anomaly curve + sampled frames (png)"
    )
    p.add_argument(
        "--report",
        type=output_dir,
        default=None,
        help="also write the hierarchical report (events, clip/event/video answers) as report.json + report.html "
        "into this folder",
    )
    p.add_argument(
        "--report-threshold",
        type=finite_float(0.0, 1.0),
        default=None,
        help="event threshold on the anomaly scores, in [0, 1] (default: from the curve)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def needs_scorer(args: argparse.Namespace) -> bool:
    """The scorer is resolved (and fetched) only when something will use it: ATS sampling or the report."""
    return not args.no_ats and (args.frame_indices is None or args.report is not None)


def load_pipeline(args: argparse.Namespace):
    from holmesvau.pipeline import HolmesVAU

    return HolmesVAU.from_pretrained(
        args.model,
        scorer=args.scorer if needs_scorer(args) else False,
        device=args.device,
        dtype=args.dtype,
        cache_dir=args.cache_dir,
    )


def report_from_args(vau, args: argparse.Namespace):
    """--report DIR: build the report with the CLI's options and write it (each file atomically)."""
    from holmesvau.report import ReportConfig, build_report, write_report

    config = ReportConfig(
        video_frames=args.select_frames,
        dense_stride=args.dense_stride,
        tau=args.tau,
        use_ats=not args.no_ats,
        threshold=args.report_threshold,
        max_new_tokens=args.max_new_tokens,
    )
    report = build_report(vau, args.video, config, progress=not args.quiet)
    json_path, html_path = write_report(report, args.report)
    print(f"report: {json_path} {html_path} ({len(report.data['events'])} event(s))", file=sys.stderr)
    return report


def run(args: argparse.Namespace, vau=None):
    """Analyze the video, print the answer, write --output / --plot. Returns (pipeline, AnalysisResult)."""
    from holmesvau.files import atomic_target, atomic_write_json
    from holmesvau.video import probe

    probe(args.video)  # a bad video fails before minutes of model loading
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    vau = vau or load_pipeline(args)
    report = report_from_args(vau, args) if args.report is not None else None  # its dense pass is reused
    result = vau.analyze(
        args.video,
        args.prompt,
        select_frames=args.select_frames,
        use_ats=not args.no_ats,
        dense_stride=args.dense_stride,
        frame_indices=args.frame_indices,
        max_new_tokens=args.max_new_tokens,
        tau=args.tau,
        progress=not args.quiet,
        dense=getattr(report, "dense", None),
    )
    print(f"sampling: {result.sampling}, frames: {result.frame_indices}", file=sys.stderr)
    print(f"User: {args.prompt}\nHolmesVAU: {result.answer}")
    if args.output is not None:
        atomic_write_json(args.output, result.to_dict())
        print(f"result: {args.output}", file=sys.stderr)
    if args.plot is not None:
        from holmesvau.plots import save_anomaly_curve

        with atomic_target(args.plot) as tmp:
            save_anomaly_curve(result, tmp)
        print(f"plot: {args.plot}", file=sys.stderr)
    return vau, result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.video is None:
        print(NEEDS_VIDEO, file=sys.stderr)
        return 2
    from holmesvau.ats.weights import ScorerError
    from holmesvau.model import CheckpointError
    from holmesvau.video import VideoError

    try:
        run(args)
    except (VideoError, CheckpointError, ScorerError, ValueError, OSError) as e:
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
