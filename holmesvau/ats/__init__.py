"""Anomaly-focused Temporal Sampler: anomaly scorer (URDMU), density-aware sampler, streaming dense features."""

from holmesvau.ats.sampler import ats_select, density_aware_sample, uniform_sample
from holmesvau.ats.scorer import (
    URDMU,
    ScorerCheckpointError,
    URDMUTrainOutput,
    load_anomaly_scorer,
    urdmu_loss,
)
from holmesvau.ats.streaming import DenseFeatures, extract_dense_features

__all__ = [
    "URDMU", "DenseFeatures", "ScorerCheckpointError", "URDMUTrainOutput", "ats_select", "density_aware_sample",
    "extract_dense_features", "load_anomaly_scorer", "uniform_sample", "urdmu_loss"
]  # fmt: skip
