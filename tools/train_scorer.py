"""Train the ATS anomaly scorer (URDMU) on dense features + event boundaries; export it in the released layout.

    python tools/train_scorer.py --features feats_train/ \
        --annotations HIVAU-70k/raw_annotations/ucf_database_train.json \
        --val-features feats_test/ --val-annotations HIVAU-70k/raw_annotations/ucf_database_test.json \
        --output scorer/anomaly_scorer.pth [--steps 3000] [--seed 0] [--batch-size 16] [--snippets 200] \
        [--lr 1e-4] [--losses bce,mil,memory,triplet,kl,distance] [--label-rule majority] [--device cuda] \
        [--loss-weights memory=0.1,kl=0.001] \
        [--init anomaly_scorer.pth]          # fine-tune the released scorer instead of starting from scratch

Features come from tools/extract_features.py (FEATDIR/<video>.npz); the annotation database (captions optional)
and the snippet labels (--label-rule) are described in docs/training.md and holmesvau/ats/training_data.py. The
best checkpoint (by validation --select-metric; the last one without validation) goes to --output as a plain state
dict that inference loads unchanged (--scorer PATH), with train_log.jsonl and best_metrics.json next to it unless
--log / --metrics say otherwise, each written all or nothing. Prints one JSON summary line. Arguments, --init and
the output paths are checked before any data is read: every problem is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    from holmesvau.ats.scorer import LossWeights
    from holmesvau.ats.training import LOSSES, SELECT_METRICS, TrainConfig
    from holmesvau.ats.training_data import LABEL_RULES, POOLING

    d = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, help="training feature folder")
    ap.add_argument("--annotations", required=True, help="training videos' raw annotation database (.json)")
    ap.add_argument("--val-features", help="validation feature folder")
    ap.add_argument("--val-annotations", help="raw annotation database of the validation videos")
    ap.add_argument("--output", required=True, help="scorer checkpoint to write (.pth)")
    ap.add_argument("--log", help="train log (default: train_log.jsonl next to --output)")
    ap.add_argument("--metrics", help="best validation metrics (default: best_metrics.json next to --output)")
    ap.add_argument(
        "--init",
        help="start from this scorer checkpoint (e.g. the released anomaly_scorer.pth; a plain state dict or "
        '{"state_dict": ...}, as inference loads)',
    )
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--batch-size", type=int, default=d.batch_size, help="videos per class per step")
    ap.add_argument("--snippets", type=int, default=d.snippets, help="fixed training length in snippets")
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--weight-decay", type=float, default=d.weight_decay)
    ap.add_argument("--losses", default=",".join(LOSSES), help=f"comma list of {', '.join(LOSSES)}, or all")
    ap.add_argument(
        "--loss-weights",
        help="NAME=NUMBER,... to change loss weights (default: "
        + ", ".join(f"{k}={v:g}" for k, v in asdict(LossWeights()).items())
        + ", UR-DMU's for its terms)",
    )
    ap.add_argument("--label-rule", choices=LABEL_RULES, default="majority")
    ap.add_argument("--pooling", choices=POOLING, default=d.pooling)
    ap.add_argument("--stride", type=int, default=16, help="snippet stride for files that do not store one")
    ap.add_argument("--val-every", type=int, default=d.val_every)
    ap.add_argument("--select-metric", choices=SELECT_METRICS, default=d.select_metric)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def _is_scorer_checkpoint(path: Path) -> bool:
    """`ours` for --output: a scorer state dict (read with weights_only: nothing in it runs). A scorer is ~30 MB:
    a file over 1 GB (a video, another model) is not one, and is never loaded to find out."""
    from holmesvau.ats.scorer import ScorerCheckpointError, read_scorer_state

    if path.stat().st_size > 2**30:
        return False
    try:
        return "embedding.conv_1.0.weight" in read_scorer_state(path)
    except ScorerCheckpointError:
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from holmesvau.ats.scorer import ScorerCheckpointError, read_scorer_state, scorer_from_state
    from holmesvau.ats.training import (
        TrainConfig,
        export_scorer,
        parse_loss_weights,
        parse_losses,
        train_scorer,
    )
    from holmesvau.ats.training_data import load_scorer_videos
    from holmesvau.files import atomic_write_json, json_safe

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    if bool(args.val_features) != bool(args.val_annotations):
        return fail("--val-features and --val-annotations go together")
    out = Path(args.output)
    log = Path(args.log) if args.log else out.parent / "train_log.jsonl"
    metrics_path = Path(args.metrics) if args.metrics else out.parent / "best_metrics.json"
    # Everything that can be checked cheaply is checked before the features are read and the minutes of training.
    try:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here")
        as_given = ("steps", "batch_size", "snippets", "lr", "weight_decay", "seed", "pooling", "val_every")
        cfg = TrainConfig(
            **{k: getattr(args, k) for k in (*as_given, "select_metric")},
            losses=parse_losses(args.losses),
            weights=parse_loss_weights(args.loss_weights),
            device=device,
        )
        if args.stride < 1:
            raise ValueError(f"--stride must be >= 1, got {args.stride}")
        from holmesvau.output_guard import check_output_file, json_object_with, jsonl_rows_with

        inputs = [args.annotations, args.val_annotations, args.init]
        for path, flag, ours in (
            (out, "--output", _is_scorer_checkpoint),
            (log, "--log", jsonl_rows_with("config")),
            (metrics_path, "--metrics", json_object_with("best_step", "select_metric")),
        ):
            if path.is_dir():  # (a file where its folder should be: check_output_file refuses it)
                raise ValueError(
                    f"{flag} {path}: is a folder; give a file path (e.g. {path / 'anomaly_scorer.pth'})"
                )
            check_output_file(path, inputs, ours, flag)  # not an input, replacing only a file of ours
        if len({out.resolve(), log.resolve(), metrics_path.resolve()}) < 3:
            raise ValueError("--output, --log and --metrics must be three different files")
        for folder, flag in ((args.features, "--features"), (args.val_features, "--val-features")):
            if folder and not Path(folder).is_dir():
                raise ValueError(f"{flag} {folder}: not a folder")
        init = None
        if args.init:  # read and checked (keys, shapes) now, not after the features are loaded
            init = read_scorer_state(args.init)
            sizes = {"hidden": cfg.hidden, "a_slots": cfg.memory_slots, "n_slots": cfg.memory_slots}
            init_dim = scorer_from_state(init, args.init, **sizes).input_dim
        train, skipped = load_scorer_videos(args.features, args.annotations, args.stride, args.label_rule)
        dim = int(train[0].features.shape[1]) if train else None
        if init is not None and dim is not None and dim != init_dim:
            raise ValueError(
                f"--init {args.init}: the initial weights take {init_dim}-d features but the training features "
                f"are {dim}-d ({args.features})"
            )
        val, val_skipped = [], {}
        if args.val_features:
            val, val_skipped = load_scorer_videos(
                args.val_features, args.val_annotations, args.stride, args.label_rule
            )
    except (OSError, ValueError, RuntimeError, ScorerCheckpointError) as e:
        return fail(str(e))
    for name, why in list(skipped.items())[:10] + list(val_skipped.items())[:10]:
        print(f"skipped {name}: {why}", file=sys.stderr)
    try:
        result = train_scorer(
            train, val or None, cfg, log_path=log, progress=not args.no_progress, init_state=init
        )
    except ValueError as e:  # initial weights for other dims, no normal / no anomalous training video, ...
        return fail(str(e))
    summary = {
        "output": str(out),
        "best_step": result.best_step,
        "best_metrics": result.best_metrics,
        "select_metric": cfg.select_metric,
        "n_train": len(train),
        "n_val": len(val),
        "n_train_anomalous": sum(v.anomalous for v in train),
        "skipped_train": len(skipped),
        "skipped_val": len(val_skipped),
        "input_dim": result.model.input_dim,
        "loss_weights": asdict(cfg.weights),
        "seconds": round(result.seconds, 2),
        "log": str(log),
    }
    summary = json_safe(summary)
    export_scorer(result.model, out)
    atomic_write_json(metrics_path, summary)
    print(json.dumps(summary, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
