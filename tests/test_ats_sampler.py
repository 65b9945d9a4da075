"""holmesvau.ats sampler: every case of the original's reference, and properties over random curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import naive_density_sampling
from hypothesis import given, settings
from hypothesis import strategies as st

from holmesvau.ats import ats_select, density_aware_sample, uniform_sample


def test_reproduces_every_reference_case(shared):
    cases = json.loads(shared("fixtures/ats-original/density_sampling_reference.json").read_text())["cases"]
    assert len(cases) >= 8
    for case in cases:
        got = density_aware_sample(case["scores"], case["select_frames"], tau=case["tau"])
        assert all(type(i) is int for i in got), case["name"]
        assert got == [int(i) for i in case["indices"]], case["name"]  # fallbacks were floats in the original


def _original_with_scipy(scores, num_frames, tau):
    """The original formulation (scipy interp1d, extrapolating), as an oracle."""
    interpolate = pytest.importorskip("scipy.interpolate")
    s = np.asarray(scores, dtype=np.float64)
    t = len(s)
    if t <= num_frames or sum(s) < 1:
        return [int(i) for i in np.rint(np.linspace(0, t - 1, num_frames))]
    cumsum = np.concatenate(([0.0], np.cumsum(s + tau)))
    f = interpolate.interp1d(cumsum, np.arange(t + 1), kind="linear", fill_value="extrapolate")
    positions = f(np.linspace(1, np.round(cumsum[-1]).astype(int), num_frames))
    return [min(t - 1, max(0, int(p))) for p in positions]


curves = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=400)


@settings(max_examples=300, deadline=None)
@given(scores=curves, num_frames=st.integers(1, 40), tau=st.floats(0.01, 1.0))
def test_properties(scores, num_frames, tau):
    got = density_aware_sample(scores, num_frames, tau)
    assert len(got) == num_frames
    assert all(type(i) is int and 0 <= i < len(scores) for i in got)
    assert got == sorted(got)
    if len(scores) <= num_frames or sum(scores) < 1:
        assert got == uniform_sample(len(scores), num_frames)
    assert got == _original_with_scipy(scores, num_frames, tau)


@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 5000), num=st.integers(0, 64))
def test_uniform_sample(length, num):
    got = uniform_sample(length, num)
    assert len(got) == num and got == sorted(got)
    assert all(type(i) is int and 0 <= i < length for i in got)
    if num >= 2:
        assert got[0] == 0 and got[-1] == length - 1


def test_high_scores_attract_samples():
    scores = np.full(300, 0.05)
    scores[200:230] = 1.0
    picked = density_aware_sample(scores, 12)
    inside = sum(200 <= i < 230 for i in picked)
    assert inside > 12 * 30 / 300 * 3  # far more than a uniform share


def test_ats_select_maps_to_frame_indices(shared):
    """ats_select's frames are the dense frames at the original's positions (every reference case) and at a naive
    re-statement's positions (helpers.naive_density_sampling, plain Python) on a ramp; dense frames sit at 16 i + 3 so
    a mapping that multiplies positions by the stride, or is off by one position, cannot pass."""
    cases = json.loads(shared("fixtures/ats-original/density_sampling_reference.json").read_text())["cases"]
    for case in cases:
        dense = [16 * i + 3 for i in range(len(case["scores"]))]
        got = ats_select(case["scores"], case["select_frames"], dense, tau=case["tau"])
        assert got == [16 * int(p) + 3 for p in case["indices"]], case["name"]
    scores = np.linspace(0, 1, 50)
    dense = [16 * i + 3 for i in range(50)]
    assert ats_select(scores, 12, dense, tau=0.3) == [
        16 * p + 3 for p in naive_density_sampling(scores, 12, 0.3)
    ]
    with pytest.raises(ValueError, match="dense frames"):
        ats_select(scores, 12, dense[:-1])


def test_rejects_bad_scores():
    with pytest.raises(ValueError):
        density_aware_sample([], 4)
    with pytest.raises(ValueError):
        density_aware_sample([0.5, float("nan"), 0.2], 2)
    assert density_aware_sample([0.5, 0.7], 0) == []
