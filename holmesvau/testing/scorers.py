"""Random anomaly scorers for tests and demos (never for real use)."""

from __future__ import annotations

from pathlib import Path


def make_random_scorer(path: str | Path, input_dim: int = 1024, seed: int = 0) -> Path:
    """A randomly initialised URDMU saved in the released key layout (tests, demos with the tiny model, whose
    ViT gives `input_dim`-d features)."""
    import torch

    from holmesvau.ats import URDMU

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(URDMU(input_size=input_dim).state_dict(), path)
    return path
