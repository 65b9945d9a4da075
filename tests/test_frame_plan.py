"""holmesvau.frame_plan: the one frame-planning rule, against the original sampler's outputs and hand-computed plans."""

import json

import numpy as np
import pytest

from holmesvau.frame_plan import FramePlanError, SamplingConfig, ats_eligible, needs_dense_scores, plan_frames

STRIDE = 16


def cfg(select_frames=12, **kw) -> SamplingConfig:
    return SamplingConfig(select_frames=select_frames, **kw)


def test_ats_plans_map_the_original_sampler_positions_to_dense_frames(shared):
    """Every case of the original's density-aware sampler: the plan's frames are the dense frames at the positions
    the original returned. Dense frames are offset by 3 so a plan that multiplies positions by the stride (or is
    off by one position) cannot pass."""
    cases = json.loads(shared("fixtures/ats-original/density_sampling_reference.json").read_text())["cases"]
    assert len(cases) >= 8
    for case in cases:
        t, k = len(case["scores"]), case["select_frames"]
        dense = [STRIDE * i + 3 for i in range(t)]
        num_frames = STRIDE * t + 5
        plan = plan_frames(num_frames, cfg(k, tau=case["tau"], dense_stride=STRIDE), case["scores"], dense)
        if num_frames > STRIDE * k:  # the original's rule: ATS only for videos longer than stride x frames
            assert plan.sampling == "ats", case["name"]
            assert list(plan.indices) == [STRIDE * int(p) + 3 for p in case["indices"]], case["name"]
        else:
            assert plan.sampling == "uniform", case["name"]
        assert all(type(i) is int for i in plan.indices) and plan.num_frames == num_frames


# InternVL's get_index by hand: seg = (n - 1) / k; frame i = int(seg / 2 + round_half_even(seg * i))
@pytest.mark.parametrize(
    "num_frames,k,want",
    [
        (100, 4, [12, 37, 62, 86]),  # seg 24.75: 12.375 + {0, 25, 50 (49.5 -> 50), 74}
        (3, 12, [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]),  # shorter than k: frames repeat
        (1, 3, [0, 0, 0]),
        (192, 12, [7, 23, 39, 55, 71, 87, 103, 118, 134, 150, 166, 182]),  # = 16 x 12: not yet ATS
    ],
)
def test_uniform_plans_by_hand(num_frames, k, want):
    plan = plan_frames(num_frames, cfg(k, dense_stride=STRIDE), scores=None)  # no scorer
    assert plan.sampling == "uniform" and list(plan.indices) == want
    if num_frames <= STRIDE * k:  # too short for ATS even with scores
        with_scores = plan_frames(num_frames, cfg(k, dense_stride=STRIDE), np.ones(-(-num_frames // STRIDE)))
        assert with_scores == plan


def test_eligibility_boundary_and_switches():
    scores = np.linspace(0, 1, 13)
    assert plan_frames(192, cfg(), scores[:12]).sampling == "uniform"
    assert plan_frames(193, cfg(), scores).sampling == "ats"
    assert plan_frames(193, cfg(), None).sampling == "uniform"  # no scorer
    assert plan_frames(193, cfg(use_ats=False), scores).sampling == "uniform"
    assert plan_frames(193, cfg(dense_stride=17), scores).sampling == "uniform"  # 193 <= 17 x 12
    assert ats_eligible(193, cfg()) and not ats_eligible(192, cfg()) and not ats_eligible(193, cfg(), False)
    assert needs_dense_scores(193, cfg()) and not needs_dense_scores(193, cfg(frame_indices=[0]))
    assert not needs_dense_scores(193, cfg(use_ats=False)) and not needs_dense_scores(64, cfg(4))


def test_planted_stretch_draws_most_frames():
    scores = np.full(100, 0.01)
    scores[40:60] = 0.99  # one fifth of the video
    plan = plan_frames(1600, cfg(), scores, np.arange(0, 1600, 16))
    inside = [i for i in plan.indices if 640 <= i < 960]
    assert plan.sampling == "ats" and len(inside) >= 8, plan.indices  # 71 % of the (score + tau) mass


def test_explicit_frames_are_used_as_given():
    plan = plan_frames(50, cfg(frame_indices=[30, 2, 2, 49.0]), np.ones(4))
    assert plan.sampling == "given" and plan.indices == (30, 2, 2, 49)
    for bad, words in (([0, 50], "out of range"), ([-1], "out of range"), ([], "empty"), ([1.5], "integers"),
                       ([True], "integers"), (["3"], "integers")):  # fmt: skip
        with pytest.raises(FramePlanError, match=words):
            plan_frames(50, cfg(frame_indices=bad))


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"select_frames": 0}, "select_frames"),
        ({"num_frames": 0}, "num_frames"),
        ({"dense_stride": 0}, "dense_stride"),
        ({"tau": float("inf")}, "tau"),
        ({"tau": float("nan")}, "tau"),
        ({"tau": -0.1}, "tau"),
        ({"dense_indices": [0, 16]}, "dense"),
        ({"dense_indices": np.arange(13) * 1000}, "outside"),
    ],
)
def test_bad_arguments(kwargs, words):
    args = {"num_frames": 300, "select_frames": 12, "scores": np.ones(13) * 0.5} | kwargs
    sampling = {k: args.pop(k) for k in ("select_frames", "dense_stride", "tau") if k in args}
    with pytest.raises(FramePlanError, match=words):
        plan_frames(sampling=SamplingConfig(**sampling), **args)


def test_the_sampling_defaults_are_the_originals_and_the_cli_reads_them():
    """One place for the defaults: SamplingConfig() is the original's setting (12 frames, stride 16, tau 0.1, ATS
    on), and the command lines' flags parse into the same config."""
    import argparse

    from holmesvau.cli import add_sampling_options, sampling_config

    assert SamplingConfig() == SamplingConfig(12, True, 16, 0.1, None)
    p = argparse.ArgumentParser()
    add_sampling_options(p)
    assert sampling_config(p.parse_args([])) == SamplingConfig()
    p.add_argument("--no-ats", action="store_true")
    got = sampling_config(
        p.parse_args(["--select-frames", "4", "--dense-stride", "8", "--tau", "0.5", "--no-ats"])
    )
    assert got == SamplingConfig(select_frames=4, use_ats=False, dense_stride=8, tau=0.5)
    assert SamplingConfig(frame_indices=[3, 1]).frame_indices == (3, 1)  # frozen, hashable
