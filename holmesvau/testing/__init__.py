"""Test and demo scaffolding (not the inference API): tiny random InternVL2 checkpoints, the inverse conversion
(native -> original layout) they are written with, generated videos, and random anomaly scorers. Outputs of a model
or scorer made here are meaningless; reports and the demo say so (`random_weights`)."""

from .planted import make_random_scorer
from .synthetic import make_video
from .tiny_model import (
    TinyConfig,
    internvl2_2b_sizes,
    make_tiny_checkpoint,
    original_config,
    to_original_state_dict,
)

__all__ = [
    "TinyConfig",
    "internvl2_2b_sizes",
    "make_random_scorer",
    "make_tiny_checkpoint",
    "make_video",
    "original_config",
    "to_original_state_dict",
]
