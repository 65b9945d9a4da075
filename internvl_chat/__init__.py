"""LoRA fine-tuning of InternVL2 / HolmesVAU-2B on HIVAU-70k: data, SFT tokenisation, batching, training."""

from .collate import SFTCollator
from .data import (
    DatasetSpec,
    FrameConfig,
    MetaError,
    Row,
    frame_plan,
    load_meta,
    num_frames_for,
    read_rows,
    segment_indices,
)
from .sft import IGNORE_INDEX, SFTError, SFTExample, expand_video, tokenize_conversation

__all__ = [
    "IGNORE_INDEX",
    "DatasetSpec",
    "FrameConfig",
    "MetaError",
    "Row",
    "SFTCollator",
    "SFTError",
    "SFTExample",
    "expand_video",
    "frame_plan",
    "load_meta",
    "num_frames_for",
    "read_rows",
    "segment_indices",
    "tokenize_conversation",
]
