"""Stand-in scorers and encoders for tests, benchmarks and live-mode demos: `PlantedScorer` is high exactly on the
"bright" scenes of holmesvau.testing.synthetic whatever encoder makes the features; `vision_encoder` is a random
InternViT (tiny or InternVL2-2B's shapes); `make_random_scorer` a random URDMU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def make_random_scorer(path: str | Path, input_dim: int = 1024, seed: int = 0) -> Path:
    """A randomly initialised URDMU saved in the released key layout (never for real use: tests, demos with the
    tiny model, whose ViT gives `input_dim`-d features)."""
    from holmesvau.ats import URDMU

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(URDMU(input_size=input_dim).state_dict(), path)
    return path


class PlantedScorer(torch.nn.Module):
    """sigmoid(sharpness * projection onto the normal -> bright direction, centred between the two scenes)."""

    def __init__(self, normal: torch.Tensor, bright: torch.Tensor, sharpness: float = 20.0):
        super().__init__()
        d = (bright - normal).float()
        self.w = torch.nn.Parameter(d / d.norm() ** 2, requires_grad=False)
        self.mid = torch.nn.Parameter(((normal + bright) / 2).float(), requires_grad=False)
        self.sharpness = sharpness

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T)
        return torch.sigmoid(self.sharpness * ((x.float() - self.mid) @ self.w))


@torch.inference_mode()
def planted_scorer(encode, width: int = 64, height: int = 48) -> PlantedScorer:
    """Calibrated on one normal and one bright synthetic frame through `encode` (uint8 tiles -> features)."""
    from holmesvau.preprocess import frames_to_tiles
    from holmesvau.testing.synthetic import synthetic_frame

    frames = np.stack([synthetic_frame(0, width, height), synthetic_frame(0, width, height, bright=True)])
    f = encode(frames_to_tiles(frames)).float().cpu()
    return PlantedScorer(f[0].clone(), f[1].clone())


def vision_encoder(
    full_size: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
):
    """(encode_fn, feature size): a random InternViT, tiny (64-d) or InternVL2-2B's (InternViT-300M, 1024-d)."""
    from transformers import InternVLVisionModel

    from holmesvau.model.convert import native_config
    from holmesvau.preprocess import normalize_tiles
    from holmesvau.testing.tiny_model import TinyConfig, internvl2_2b_sizes, original_config

    cfg = internvl2_2b_sizes(seed) if full_size else TinyConfig(seed=seed)
    config = native_config(original_config(cfg, 92553), 92546, 1, 2, 2)
    torch.manual_seed(seed)
    with torch.device(device):
        vit = InternVLVisionModel._from_config(
            config.vision_config, dtype=dtype, attn_implementation="sdpa"
        ).eval()

    @torch.inference_mode()
    def encode(tiles: torch.Tensor) -> torch.Tensor:
        pv = normalize_tiles(tiles, device).to(dtype)
        return vit(pixel_values=pv).last_hidden_state[:, 0].float()

    return encode, cfg.vit_hidden
