"""What made a video's dense anomaly scores: a fingerprint ("sha256:3f9c0a1b2c4d5e6f") stored in its score file, so
that a later run reuses the file only when the same scorer, vision encoder and preprocessing would give the same
scores. It hashes the scorer's whole state dict (names, dtypes, shapes, bytes), the resize, and, as a cheap guard
rather than a hash of 300 M parameters, the vision encoder's parameter count and first and last parameters (a new
checkpoint or a fine-tuned ViT changes its patch embedding or its last norm).
"""

from __future__ import annotations

import hashlib

import torch


def _feed(h, name: str, t: torch.Tensor) -> None:
    t = t.detach().to("cpu").contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def scores_source(scorer: torch.nn.Module, vision_tower: torch.nn.Module, resize: str) -> str:
    """The fingerprint of dense scores made by `scorer` on `vision_tower` CLS features of tiles resized by
    `resize` (see the module docstring)."""
    h = hashlib.sha256(b"holmesvau-dense-scores-v1|")
    for name, t in sorted(scorer.state_dict().items()):
        _feed(h, f"scorer.{name}", t)
    params = list(vision_tower.named_parameters())
    if params:
        for name, p in (params[0], params[-1]):
            _feed(h, f"vit.{name}", p)
    h.update(f"vit.count={sum(p.numel() for _, p in params)}|resize={resize}".encode())
    return "sha256:" + h.hexdigest()[:16]
