"""HolmesVAU: hierarchical video anomaly understanding (InternVL2-2B + the anomaly-focused temporal sampler).

`from holmesvau import HolmesVAU` is resolved lazily, so `import holmesvau` stays light (no torch/transformers).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["AnalysisResult", "HolmesVAU", "SamplingConfig", "__version__"]


def __getattr__(name: str):
    if name in ("HolmesVAU", "AnalysisResult"):
        from holmesvau import pipeline

        return getattr(pipeline, name)
    if name == "SamplingConfig":  # every frame-sampling option, one frozen dataclass (holmesvau.frame_plan)
        from holmesvau.frame_plan import SamplingConfig

        return SamplingConfig
    raise AttributeError(f"module 'holmesvau' has no attribute {name!r}")
