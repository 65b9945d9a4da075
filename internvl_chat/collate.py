"""Batching: right-pad ids (pad id) and labels (-100), build the attention mask, concatenate every frame's tile."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .sft import IGNORE_INDEX


class SFTCollator:
    """`collator(features) -> {"input_ids", "attention_mask", "labels", "pixel_values", "problems"}`.

    `None` features (samples a dataset chose to drop) are left out; `problems` lists what was skipped on the way.
    """

    def __init__(self, pad_token_id: int, pixel_dtype: torch.dtype = torch.float32):
        self.pad_token_id = int(pad_token_id)
        self.pixel_dtype = pixel_dtype

    def __call__(self, features: Sequence[dict | None]) -> dict:
        problems = [p for f in features if f is not None for p in f.get("problems", ())]
        features = [f for f in features if f is not None]
        if not features:
            raise ValueError("empty batch: every sample of it was dropped")
        longest = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            mask[i, :n] = 1
        pixels = torch.cat([torch.as_tensor(f["pixel_values"]) for f in features]).to(self.pixel_dtype)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "pixel_values": pixels,
            "problems": problems,
        }
