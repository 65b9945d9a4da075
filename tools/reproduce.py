"""Reproduce the paper's Table 1 (detection) and Table 2 (reasoning) in one command (docs/evaluation.md).

    # everything the data allows: UCF-Crime (official 290 videos), XD-Violence (800), HIVAU-70k reasoning (3339 rows)
    python tools/reproduce.py --data-root HIVAU-70k --output-dir repro/
    # rerun the same command after a crash or kill: finished rows and score files are kept
    python tools/reproduce.py --data-root HIVAU-70k --output-dir repro/ --tasks detection-ucf,detection-xd
    python tools/reproduce.py --data-root HIVAU-70k --output-dir smoke/ --limit 3     # a quick smoke run
    torchrun --nproc_per_node 8 tools/reproduce.py --data-root HIVAU-70k --output-dir repro/   # rank 0 evaluates
    python tools/reproduce.py ... --model path/to/HolmesVAU-2B --scorer path/to/anomaly_scorer.pth   # offline

Layout under --data-root: HIVAU-70k/README.md (instruction/, raw_annotations/, videos/{ucf-crime,xd-violence}/
videos/test/ and the cut events/clips), plus UCF-Crime/ (the two official annotation files) and XD-Violence/
(annotations.txt, test_videos.txt); every folder can be given on its own. Missing data is reported (how many, the
first names) before any model loads; --allow-partial evaluates what is there and says so. Writes
OUTPUT/results.json and OUTPUT/results.md (paper | ours | delta), per-task reports, predictions.jsonl, scores/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from holmesvau.cli import (
    add_generation_options,
    add_sampling_options,
    batch_size,
    device_name,
    dtype_name,
    positive_int,
    sampling_config,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data-root", type=Path, default=Path("HIVAU-70k"), help="HIVAU-70k folder (default HIVAU-70k)"
    )
    p.add_argument("--output-dir", type=Path, default=Path("repro"), help="results, predictions, scores")
    p.add_argument("--tasks", help="comma-separated: detection-ucf,detection-xd,reasoning "
                   "(default: every task the data allows)")  # fmt: skip
    p.add_argument("--model", help="hub id or local folder (default ppxin321/HolmesVAU-2B)")
    p.add_argument("--scorer", help="anomaly scorer .pth path or URL (default: the released one)")
    p.add_argument("--ucf-protocol", default="ucf-crime", choices=["ucf-crime", "ucf-crime-hivau"],
                   help="official 290-video annotation (default) or HIVAU's 251-video database")  # fmt: skip
    p.add_argument("--ucf-annotations", type=Path, help="default DATA_ROOT/UCF-Crime "
                   "(ucf-crime-hivau: DATA_ROOT/raw_annotations)")  # fmt: skip
    p.add_argument("--xd-annotations", type=Path, help="default DATA_ROOT/XD-Violence")
    p.add_argument("--ucf-videos", type=Path, help="default DATA_ROOT/videos/ucf-crime/videos/test")
    p.add_argument("--xd-videos", type=Path, help="default DATA_ROOT/videos/xd-violence/videos/test")
    p.add_argument("--instructions", type=Path,
                   help="default DATA_ROOT/instruction/merge_instruction_test_final.jsonl")  # fmt: skip
    p.add_argument("--limit", type=positive_int,
                   help="smoke run: first N videos per detection set and first N rows per reasoning level")  # fmt: skip
    p.add_argument("--allow-partial", "--allow-missing", dest="allow_partial", action="store_true",
                   help="evaluate what is there when videos are missing")  # fmt: skip
    add_sampling_options(p)  # holmesvau.cli: inference.py's flags, checks and defaults
    add_generation_options(p)  # --max-new-tokens, bounded by the model's context
    p.add_argument("--batch-size", type=batch_size, help="rows per generate() call (if supported)")
    p.add_argument("--device", type=device_name, help="default: cuda:LOCAL_RANK if available, else cpu")
    p.add_argument("--dtype", type=dtype_name, help="bf16|fp16|fp32 (also bfloat16|float16|float32)")
    p.add_argument("--cache-dir")
    p.add_argument("--retry-failed", action="store_true", help="redo rows and videos recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # light import: the data check runs before torch is imported
    from holmesvau.reproduce import DataError, ReproduceConfig, reproduce

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    cfg = ReproduceConfig(
        data_root=args.data_root, output_dir=args.output_dir, tasks=tasks, model=args.model, scorer=args.scorer,
        ucf_protocol=args.ucf_protocol, ucf_annotations=args.ucf_annotations, xd_annotations=args.xd_annotations,
        ucf_videos=args.ucf_videos, xd_videos=args.xd_videos, instructions=args.instructions, limit=args.limit,
        allow_partial=args.allow_partial, sampling=sampling_config(args), max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir,
        retry_failed=args.retry_failed, progress=not args.quiet,
    )  # fmt: skip
    try:
        results = reproduce(cfg)
    except Exception as e:
        from holmesvau.ats.weights import ScorerError
        from holmesvau.model import CheckpointError

        if not isinstance(e, (DataError, CheckpointError, ScorerError, FileNotFoundError, ValueError)):
            raise
        print(f"error: {e}", file=sys.stderr)  # bad input: one clear line, no traceback
        return 2
    if results is None:
        return 0  # a rank other than 0
    for w in results["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print((args.output_dir / "results.md").read_text(encoding="utf-8"))  # a partial result says so first
    summary = {"results": str(args.output_dir / "results.json"), "partial": results["partial"],
               "partial_reasons": results["partial_reasons"], "tasks": results["tasks"],
               "skipped_tasks": results["skipped_tasks"]}  # fmt: skip
    for name, r in results.get("detection", {}).items():
        summary[name] = {"ours": r["comparison"]["ours"], "paper": r["comparison"]["paper"],
                         "videos": r["n_videos"], "frames": r["n_frames"], "partial": r["partial"]}  # fmt: skip
    if "reasoning" in results:
        summary["reasoning_rows"] = results["reasoning"]["rows"]["scored"]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
