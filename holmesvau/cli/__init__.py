"""Command-line options shared by inference.py, tools/predict.py and app.py: one definition, one set of defaults,
validated by argparse before any work starts (a bad value is a one-line usage error, not a traceback minutes later).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from holmesvau.frame_plan import SamplingConfig

DEFAULT_MODEL = (
    "ppxin321/HolmesVAU-2B"  # = holmesvau.model.loading.DEFAULT_MODEL (kept light: no torch import)
)
DEFAULTS = SamplingConfig()  # the sampling defaults live in holmesvau.frame_plan.SamplingConfig only
DEFAULT_MAX_NEW_TOKENS = 1024
DTYPE_NAMES = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
}


def int_at_least(low: int):
    """argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def finite_float(low: float | None = None, high: float | None = None):
    """argparse type: a finite float in [low, high] (nan and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}")
        return value

    return parse


def dtype_name(text: str) -> str:
    """bf16 / fp16 / fp32, also spelled bfloat16 / float16 / float32 -> the short name."""
    key = text.lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DTYPE_NAMES)}, got {text!r}")
    return DTYPE_NAMES[key]


def output_file(text: str) -> Path:
    """A file to write: refused when it names a folder (an existing one, or a path ending in a separator)."""
    if text.endswith(("/", "\\")) or Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return Path(text)


def output_dir(text: str) -> Path:
    """A folder to write into: refused when it names an existing file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return Path(text)


def frame_indices(text: str) -> list[int]:
    """Comma-separated non-negative frame indices ("0,39,79")."""
    try:
        out = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("no frame index given")
    if any(i < 0 for i in out):
        raise argparse.ArgumentTypeError(f"frame indices must be >= 0, got {text!r}")
    return out


def add_model_options(p: argparse.ArgumentParser, no_ats: bool = True) -> None:
    """--model, --scorer, --no-ats (unless `no_ats` is False: tools that cannot run without the scorer),
    --device, --dtype, --cache-dir."""
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id, original or converted folder (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--scorer", default=None, help="anomaly scorer .pth path or URL (default: the released one)"
    )
    if no_ats:
        p.add_argument("--no-ats", action="store_true", help="uniform sampling only; no scorer is loaded")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    p.add_argument(
        "--dtype",
        type=dtype_name,
        default=None,
        help="bf16|fp16|fp32 (default: bf16/fp16 on GPU, fp32 on CPU)",
    )
    p.add_argument("--cache-dir", default=None, help="downloads and caches (default $HOLMESVAU_CACHE)")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """--select-frames, --dense-stride, --tau (holmesvau.frame_plan.SamplingConfig; `sampling_config` reads them)."""
    p.add_argument(
        "--select-frames", type=positive_int, default=DEFAULTS.select_frames, help="frames the MLLM sees"
    )
    p.add_argument(
        "--dense-stride", type=positive_int, default=DEFAULTS.dense_stride, help="ATS scores every k-th frame"
    )
    p.add_argument("--tau", type=finite_float(0.0), default=DEFAULTS.tau, help="ATS density offset (>= 0)")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    """The one SamplingConfig of a run, from add_sampling_options' flags plus --no-ats and --frame-indices where the
    tool has them (a tool without --no-ats always uses ATS when it can)."""
    return SamplingConfig(
        select_frames=args.select_frames,
        use_ats=not getattr(args, "no_ats", False),
        dense_stride=args.dense_stride,
        tau=args.tau,
        frame_indices=getattr(args, "frame_indices", None),
    )


def add_generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=positive_int, default=DEFAULT_MAX_NEW_TOKENS)
