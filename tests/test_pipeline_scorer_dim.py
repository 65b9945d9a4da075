"""The scorer's feature size is an attribute of the scorer (`input_dim`), checked against the vision encoder."""

import pytest
import torch

from holmesvau.ats import URDMU
from holmesvau.ats.weights import ScorerError
from holmesvau.pipeline import HolmesVAU


class _NoDim(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(64, 1)  # a first weight that once let the size be guessed


def test_scorer_must_declare_its_input_size(tiny_lm):
    assert URDMU(input_size=64).input_dim == 64
    HolmesVAU(tiny_lm, URDMU(input_size=64))  # matches the tiny ViT's 64-d CLS
    with pytest.raises(ScorerError, match="takes 1024-d features but this model's vision encoder gives 64-d"):
        HolmesVAU(tiny_lm, URDMU(input_size=1024))
    with pytest.raises(ScorerError, match="input_dim"):
        HolmesVAU(tiny_lm, _NoDim())
