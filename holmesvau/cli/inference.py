"""`inference.py`'s parser, `run(args)` and `main(argv)` (the script's docstring lists the commands): one video, one
question -> the answer, and optionally the result JSON, the anomaly curve plot and the hierarchical report."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from holmesvau.cli import (
    DEFAULT_PROMPT,
    add_generation_options,
    add_model_options,
    add_sampling_options,
    finite_float,
    frame_indices,
    load_vau,
    output_dir,
    output_file,
    sampling_config,
)

PLOT_MARKER = b"HolmesVAU anomaly curve"  # in the PNG's Software text chunk (holmesvau.anomaly_curve)
EXAMPLE_NOTE = "video: {path} (the original repository's example {name}; pass your own with --video)"


def build_parser() -> argparse.ArgumentParser:
    about = "Ask HolmesVAU about a video: anomaly-focused frame sampling (ATS), then the MLLM's answer."
    p = argparse.ArgumentParser(description=about, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--video", default=None,
        help="video file (default: the original repository's example robbery.mp4, fetched once and verified)",
    )  # fmt: skip
    add("--prompt", default=DEFAULT_PROMPT, help="question about the video")
    add_model_options(p)
    add_sampling_options(p)
    add(
        "--frame-indices",
        type=frame_indices,
        default=None,
        help="comma-separated frame indices (no sampling)",
    )
    add_generation_options(p)
    add("--output", type=output_file, default=None, help="write the result as JSON here")
    add("--plot", type=output_file, default=None, help="save the anomaly curve + sampled frames (png)")
    add("--report", type=output_dir, default=None,
        help="also write the hierarchical report (events, clip/event/video answers) as report.json + report.html "
        "into this folder")  # fmt: skip
    add("--report-threshold", type=finite_float(0.0, 1.0), default=None,
        help="event threshold on the anomaly scores, in [0, 1] (default: from the curve)")  # fmt: skip
    add("--quiet", action="store_true", help="no progress bars")
    return p


def needs_scorer(args: argparse.Namespace) -> bool:
    """The scorer is resolved (and fetched) only when something will use it: ATS sampling or the report."""
    return not args.no_ats and (args.frame_indices is None or args.report is not None)


def load_pipeline(args: argparse.Namespace):
    return load_vau(args, scorer=needs_scorer(args))


def report_from_args(vau, args: argparse.Namespace):
    """--report DIR: build the report with the CLI's options and write it (each file atomically)."""
    from holmesvau.report import ReportConfig, build_report, write_report

    sampling = replace(sampling_config(args), frame_indices=None)  # --frame-indices: for the answer only
    config = ReportConfig(sampling, threshold=args.report_threshold, max_new_tokens=args.max_new_tokens)
    report = build_report(vau, args.video, config, progress=not args.quiet)
    json_path, html_path = write_report(report, args.report)
    print(f"report: {json_path} {html_path} ({len(report.data['events'])} event(s))", file=sys.stderr)
    return report


def run(args: argparse.Namespace, vau=None):
    """Analyze the video, print the answer, write --output / --plot. Returns (pipeline, AnalysisResult)."""
    from holmesvau.files import atomic_write_json
    from holmesvau.video import probe

    if args.video is not None:
        probe(args.video)  # a bad video fails before any download and minutes of model loading
    if args.video is None or vau is None:  # no --video: the example; ATS, no --scorer: the released one
        fetch_released(args, scorer=vau is None)
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    vau = vau or load_pipeline(args)
    report = report_from_args(vau, args) if args.report is not None else None  # its dense pass is reused
    result = vau.analyze(
        args.video, args.prompt, sampling_config(args), max_new_tokens=args.max_new_tokens,
        progress=not args.quiet, dense=getattr(report, "dense", None),
    )  # fmt: skip
    print(f"sampling: {result.sampling}, frames: {result.frame_indices}", file=sys.stderr)
    print(f"User: {args.prompt}\nHolmesVAU: {result.answer}")
    if args.output is not None:
        atomic_write_json(args.output, result.to_dict())
        print(f"result: {args.output}", file=sys.stderr)
    if args.plot is not None:
        from holmesvau.anomaly_curve import save_anomaly_curve

        save_anomaly_curve(result, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return vau, result


def fetch_released(args: argparse.Namespace, scorer: bool = True) -> None:
    """Fetch (once, verified) what was not given: no --video, the original's example video; ATS without --scorer,
    the released scorer. Every file that cannot be fetched is named in one error, with what to pass instead."""
    from holmesvau import released
    from holmesvau.ats.weights import INSTEAD

    wanted = {}
    if args.video is None:
        wanted[released.DEFAULT_EXAMPLE] = "--video path/to/video.mp4"
    if scorer and args.scorer is None and needs_scorer(args):
        wanted[released.SCORER] = INSTEAD
    if not wanted:
        return
    try:
        paths = released.fetch_all(wanted, args.cache_dir, progress=False if args.quiet else None)
    except released.Unreachable as e:
        raise released.Unreachable(str(e) + model_not_cached(args)) from None
    if args.video is None:
        args.video = str(paths[released.DEFAULT_EXAMPLE])
        print(EXAMPLE_NOTE.format(path=args.video, name=released.DEFAULT_EXAMPLE), file=sys.stderr)
    args.scorer = paths.get(released.SCORER, args.scorer)


def model_not_cached(args: argparse.Namespace) -> str:
    """For the offline message: the hub model too, when it is not in the local cache yet."""
    if Path(args.model).expanduser().exists() or args.model.count("/") != 1:
        return ""
    from huggingface_hub import try_to_load_from_cache

    hub = None if args.cache_dir is None else str(Path(args.cache_dir) / "hub")
    if isinstance(try_to_load_from_cache(args.model, "config.json", cache_dir=hub), str):
        return ""
    return f"\nand {args.model} (Hugging Face hub) is not cached yet: give a local copy with --model path/to/HolmesVAU-2B"


def check_outputs(args: argparse.Namespace) -> None:
    """--output, --plot and --report, before any work (holmesvau.output_guard): none may be the video, and an
    existing file is replaced only when it is one of ours."""
    from holmesvau.output_guard import check_output_file, has_marker, json_object_with

    video = [args.video]
    if args.output is not None:
        check_output_file(args.output, video, json_object_with("answer", "frame_indices", "sampling"), "--output",
                          "result")  # fmt: skip
    if args.plot is not None:
        check_output_file(args.plot, video, has_marker(PLOT_MARKER), "--plot", "plot")
    if args.report is not None:
        check_output_file(args.report / "report.json", video, json_object_with("schema_version", "events"),
                          "--report", "report")  # fmt: skip
        check_output_file(args.report / "report.html", video, has_marker(b"<h1>HolmesVAU anomaly report</h1>"),
                          "--report", "report")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from holmesvau.ats.weights import ScorerError
    from holmesvau.model import CheckpointError
    from holmesvau.video_open import VideoError

    try:
        check_outputs(args)
        run(args)
    except (VideoError, ScorerError, ValueError, OSError) as e:  # CheckpointError is a ValueError
        hint = ""
        if isinstance(e, CheckpointError) and "--model" not in str(e):
            hint = " (pass --model with a hub id like ppxin321/HolmesVAU-2B or a local model folder)"
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    return 0
