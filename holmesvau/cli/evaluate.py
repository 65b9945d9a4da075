"""`tools/evaluate.py`: reasoning text metrics, or frame-level detection AUC/AP, from the command line.

The script is a thin entry point (its docstring lists the commands); the subcommands and `main(argv)` live here
so tests call them as a library function. The metrics themselves are holmesvau.eval.reasoning / .detection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau.files import atomic_write_json, json_safe

DESCRIPTION = "Evaluate HolmesVAU outputs: reasoning text metrics, or frame-level detection AUC/AP."


def reasoning(args: argparse.Namespace) -> int:
    from holmesvau.data.instructions import read_instructions
    from holmesvau.eval.reasoning import evaluate_reasoning, markdown_tables, read_predictions

    preds, problems = read_predictions(args.predictions)
    for p in problems[:10]:
        print(f"skipped malformed prediction line: {p}", file=sys.stderr)
    instructions = read_instructions(args.annotations, on_error="skip")
    report = evaluate_reasoning(preds, instructions, progress=not args.no_progress)
    report["inputs"] = {"predictions": str(args.predictions), "annotations": str(args.annotations)}
    report["rows"]["malformed_lines"] = len(problems)
    atomic_write_json(args.output, json_safe(report))
    print(markdown_tables(report, include_paper=not args.no_paper_row))
    print(f"\nrows: {json.dumps(report['rows'])}\nreport: {args.output}")
    return 0 if report["rows"]["scored"] else 1


def detection(args: argparse.Namespace) -> int:
    from holmesvau.eval.detection import run_detection
    from holmesvau.eval.protocols import get_protocol

    gt = args.annotations
    if args.protocol is not None:
        if args.frame_counts or args.test_list:
            raise ValueError("--protocol picks its own files; drop --frame-counts / --test-list")
        gt = get_protocol(args.protocol).load(args.annotations)
    report, frame_scores, frame_labels = run_detection(
        args.scores, gt, args.stride, args.allow_missing, args.frame_counts, args.test_list
    )
    unmatched = report["unmatched_scores"]
    if args.protocol is not None:
        report["protocol"] = args.protocol
    elif unmatched and args.test_list is None and not args.allow_missing:
        # a bare temporal annotation (XD-Violence's annotations.txt) lists only the anomalous videos: score
        # files without a line would silently drop the normal videos from the metric
        raise ValueError(
            f"{len(unmatched)} score file(s) in {args.scores} have no line in {args.annotations} "
            f"(e.g. {', '.join(unmatched[:3])}); an annotation that lists only anomalous videos needs the "
            "test list: pass --protocol xd-violence (with the folder as --annotations) or --test-list, or "
            "--allow-missing to evaluate only the annotated videos"
        )
    report["inputs"] = {"scores": str(args.scores), "annotations": str(args.annotations)}
    if args.plot_dir is not None:
        from holmesvau.eval.plots import plot_detection

        report["plots"] = [str(p) for p in plot_detection(frame_scores, frame_labels, report, args.plot_dir)]
    atomic_write_json(args.output, json_safe(report))
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    evaluated = f"evaluated {report['n_videos']} of {report['n_videos_listed']} videos"
    if report["partial"]:
        evaluated += f" (PARTIAL: {len(report['missing_scores'])} without scores, see report)"
    print(
        f"{evaluated} ({report['n_anomalous_videos']} anomalous), {report['n_frames']} frames "
        f"({report['n_anomalous_frames']} anomalous)\n"
        f"AUC {fmt(report['auc'])}  AP {fmt(report['ap'])}  AP (trapezoidal PR area) {fmt(report['ap_trapezoid'])}  "
        f"AUC (anomalous videos) {fmt(report['auc_anomalous_videos'])}"
    )
    for key in ("unmatched_scores", "bad_score_files", "warnings"):
        if report[key]:
            print(f"{key}: {len(report[key])} (see report)", file=sys.stderr)
    print(f"report: {args.output}")
    return 0 if report["n_videos"] else 1


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Run `tools/evaluate.py ARGV`; `description`: the --help text (the script passes its docstring of
    commands). Returns the exit status: 0 done, 1 nothing scored, 2 bad input (one `error:` line)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=description or DESCRIPTION, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reasoning", help="BLEU/METEOR/ROUGE-L/CIDEr + judgement accuracy per level and task")
    r.add_argument(
        "--predictions", type=Path, required=True, help="jsonl: {id, prediction, status, ...} per row"
    )
    r.add_argument("--annotations", type=Path, required=True, help="test instruction jsonl")
    r.add_argument("--output", type=Path, default=Path("outputs/reasoning_report.json"))
    r.add_argument(
        "--no-paper-row", action="store_true", help="leave the paper's Holmes-VAU row out of the table"
    )
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=reasoning)
    d = sub.add_parser("detection", help="frame-level ROC-AUC / AP of dense anomaly scores")
    d.add_argument("--scores", type=Path, required=True, help="folder of <video>.npz/.json/.npy score files")
    d.add_argument(
        "--annotations",
        type=Path,
        required=True,
        help="raw database .json or temporal .txt; with --protocol: the folder holding its files",
    )
    d.add_argument(
        "--protocol",
        choices=["ucf-crime", "ucf-crime-hivau", "xd-violence"],
        help="a named test set (docs/evaluation.md, Protocols); --annotations is then its folder",
    )
    d.add_argument("--frame-counts", type=Path, help="UCF-Crime frame-count list for a txt")
    d.add_argument("--test-list", type=Path, help="all test videos (unannotated ones are normal)")
    d.add_argument("--allow-missing", "--allow-partial", dest="allow_missing", action="store_true",
                   help="evaluate the videos that have scores; report the rest")  # fmt: skip
    d.add_argument("--output", type=Path, default=Path("outputs/detection_report.json"))
    d.add_argument(
        "--stride", type=int, default=16, help="frames per score when a file does not say (default 16)"
    )
    d.add_argument("--plot-dir", type=Path, help="write curves.png and worst_videos.png here")
    d.set_defaults(func=detection)
    args = parser.parse_args(argv)
    try:
        from holmesvau.output_guard import check_output_file, json_object_with

        inputs = [getattr(args, k, None) for k in ("predictions", "annotations", "scores")]
        check_output_file(args.output, inputs, json_object_with("inputs"), what="report")  # before any work
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # bad input: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
