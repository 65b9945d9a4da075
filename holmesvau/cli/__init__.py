"""Command-line options shared by inference.py, tools/predict.py and app.py, validated by argparse before any work
starts (a bad value is a one-line usage error, not a traceback minutes later)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from holmesvau.frame_plan import SamplingConfig

DEFAULT_MODEL = "ppxin321/HolmesVAU-2B"  # = holmesvau.model.loading.DEFAULT_MODEL (no torch import here)
DEFAULTS = SamplingConfig()
DEFAULT_MAX_NEW_TOKENS = 1024
DEFAULT_PROMPT = "Could you specify the anomaly events present in the video?"
# Bounds checked at parse time: InternVL2-2B's context is 32768 tokens, 256 a frame (holmesvau.model.prompt)
MODEL_CONTEXT = 32768
TOKENS_PER_FRAME = 256
MAX_FRAMES = MODEL_CONTEXT // TOKENS_PER_FRAME - 1  # 127 frames leave room for the prompt and the answer
MAX_BATCH = 1024
MAX_DENSE_STRIDE = 100_000
DTYPE_NAMES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
               "fp32": "fp32", "float32": "fp32"}  # fmt: skip


def int_at_least(low: int, high: int | None = None, why: str = ""):
    """argparse type: an integer in [low, high]; `why` says where `high` comes from."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}]{why}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
max_new_tokens = int_at_least(1, MODEL_CONTEXT, f" (the model's context is {MODEL_CONTEXT} tokens)")
select_frames = int_at_least(
    1, MAX_FRAMES, f" ({TOKENS_PER_FRAME} tokens a frame must fit the model's {MODEL_CONTEXT}-token context)"
)
batch_size = int_at_least(1, MAX_BATCH)
dense_stride = int_at_least(1, MAX_DENSE_STRIDE)


def device_name(text: str) -> str:
    """cpu, cuda, cuda:N or mps, checked against this machine (a missing GPU is a usage error, not a traceback
    after the model has loaded)."""
    kind, _, index = text.strip().lower().partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (index and kind == "cpu"):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: expected cpu, cuda, cuda:N or mps")
    if kind != "cpu":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if kind == "cuda" and count == 0:
            raise argparse.ArgumentTypeError(
                f"{text}: no CUDA GPU is visible on this machine; use --device cpu"
            )
        if kind == "cuda" and index and int(index) >= count:
            count_range = f"cuda:0..cuda:{count - 1}"
            raise argparse.ArgumentTypeError(f"{text}: this machine has {count} CUDA GPU(s) ({count_range})")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(
                f"{text}: MPS is not available on this machine; use --device cpu"
            )
    return f"{kind}:{index}" if index else kind


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
    """A file to write: refused when it names a folder (existing, or ending in a separator)."""
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
    """--model, --scorer, --no-ats (unless `no_ats` is False: tools that need the scorer), --device, --dtype,
    --cache-dir."""
    add = p.add_argument
    add(
        "--model",
        default=DEFAULT_MODEL,
        help=f"hub id, original or converted folder (default {DEFAULT_MODEL})",
    )
    add("--scorer", default=None, help="anomaly scorer .pth path or URL (default: the released one)")
    if no_ats:
        add("--no-ats", action="store_true", help="uniform sampling only; no scorer is loaded")
    add("--device", type=device_name, default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    add(
        "--dtype",
        type=dtype_name,
        default=None,
        help="bf16|fp16|fp32 (default: bf16/fp16 on GPU, fp32 on CPU)",
    )
    add("--cache-dir", default=None, help="downloads and caches (default $HOLMESVAU_CACHE)")


def load_vau(args: argparse.Namespace, scorer: bool = True, device: str | None = None):
    """HolmesVAU.from_pretrained with add_model_options' flags; the scorer unless `scorer` is False or --no-ats."""
    from holmesvau.pipeline import HolmesVAU

    use_scorer = scorer and not getattr(args, "no_ats", False)
    return HolmesVAU.from_pretrained(
        args.model, scorer=args.scorer if use_scorer else False, device=device or args.device,
        dtype=args.dtype, cache_dir=args.cache_dir,
    )  # fmt: skip


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """--select-frames, --dense-stride, --tau (read by `sampling_config`)."""
    p.add_argument(
        "--select-frames", type=select_frames, default=DEFAULTS.select_frames,
        help=f"frames the MLLM sees (1..{MAX_FRAMES})",
    )  # fmt: skip
    p.add_argument(
        "--dense-stride", type=dense_stride, default=DEFAULTS.dense_stride, help="ATS scores every k-th frame"
    )
    p.add_argument("--tau", type=finite_float(0.0), default=DEFAULTS.tau, help="ATS density offset (>= 0)")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    """The one SamplingConfig of a run: add_sampling_options' flags, plus --no-ats and --frame-indices where the
    tool has them."""
    return SamplingConfig(
        select_frames=args.select_frames, use_ats=not getattr(args, "no_ats", False), dense_stride=args.dense_stride,
        tau=args.tau, frame_indices=getattr(args, "frame_indices", None),
    )  # fmt: skip


def add_generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-new-tokens", type=max_new_tokens, default=DEFAULT_MAX_NEW_TOKENS,
        help=f"longest answer in tokens (1..{MODEL_CONTEXT})",
    )  # fmt: skip
