"""ATS end to end with the tiny model (64-d ViT CLS): the frames chosen are exactly density-aware sampling of the
reported dense scores (a naive re-implementation as oracle), and a planted anomalous stretch draws most of them."""

import json

import numpy as np
import pytest
import torch
from helpers import expected_ats_frames, make_planted_scorer, naive_density_sampling
from PIL import Image

from holmesvau.anomaly_curve import save_anomaly_curve
from holmesvau.ats.weights import ScorerError, load_scorer
from holmesvau.frame_plan import SamplingConfig
from holmesvau.pipeline import HolmesVAU
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video
from holmesvau.video import uniform_indices

BRIGHT = (90, 150)  # the planted anomalous stretch of `long_video`


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    # longer than 16 x 12 frames, with a planted "anomalous" stretch
    return make_video(tmp_path_factory.mktemp("v") / "long.mp4", 16 * 12 + 40, bright_ranges=[BRIGHT])


@pytest.fixture(scope="module")
def scorer_file(tmp_path_factory):
    return make_random_scorer(tmp_path_factory.mktemp("s") / "tiny_scorer.pth", input_dim=64)


@pytest.fixture
def vau(tiny_lm, scorer_file):
    return HolmesVAU(tiny_lm, load_scorer(scorer_file))


@pytest.fixture(scope="module")
def planted_scorer(tiny_lm, tmp_path_factory):
    """A scorer whose curve is high exactly on bright (planted) frames."""
    return make_planted_scorer(tiny_lm, tmp_path_factory.mktemp("s") / "planted.pth")


def test_oracle_reproduces_the_original_sampler(shared):
    """The test's own naive sampler agrees with every case the original code computed."""
    cases = json.loads(shared("fixtures/ats-original/density_sampling_reference.json").read_text())["cases"]
    assert len(cases) >= 8
    for case in cases:
        got = naive_density_sampling(case["scores"], case["select_frames"], case["tau"])
        assert got == [int(i) for i in case["indices"]], case["name"]


def test_scorer_file_has_released_key_layout(shared, scorer_file):
    released = torch.load(
        shared("fixtures/ats-original/urdmu_random.pth"), map_location="cpu", weights_only=True
    )
    ours = torch.load(scorer_file, map_location="cpu", weights_only=True)
    assert list(ours) == list(released)
    for k, v in released.items():
        want = (v.shape[0], 64, *v.shape[2:]) if k == "embedding.conv_1.0.weight" else v.shape
        assert ours[k].shape == want, k


def test_ats_end_to_end(vau, long_video, tmp_path):
    r = vau.analyze(
        long_video, "What happens?", SamplingConfig(select_frames=12), max_new_tokens=4, progress=False
    )
    n = r.video["num_frames"]
    assert n == 16 * 12 + 40 and r.sampling == "ats"
    assert r.dense_frame_indices == list(range(0, 232, 16))
    assert len(r.dense_scores) == 15 and all(0.0 <= s <= 1.0 for s in r.dense_scores)
    assert r.frame_indices == expected_ats_frames(r.to_dict(), 12)
    assert all(type(i) is int for i in r.frame_indices)
    assert r.timestamps_s == [round(i / 30.0, 3) for i in r.frame_indices]
    assert r.prompt.count("<image>") == 12 and r.prompt.endswith("What happens?")
    assert {"vit", "scorer", "generate"} <= set(r.timings)
    # the result round-trips through JSON and plots from either form
    data = json.loads(json.dumps(r.to_dict()))
    assert data["frame_indices"] == expected_ats_frames(data, 12)
    with_strip = save_anomaly_curve(r, tmp_path / "curve.png")
    without = save_anomaly_curve(data, tmp_path / "curve_nostrip.png", frames=False)
    h1, h2 = Image.open(with_strip).size[1], Image.open(without).size[1]
    assert h1 > h2 > 100


def test_planted_stretch_draws_most_frames(tiny_lm, planted_scorer, long_video):
    r = HolmesVAU(tiny_lm, load_scorer(planted_scorer)).analyze(
        long_video, "What happens?", SamplingConfig(select_frames=12), max_new_tokens=2, progress=False
    )
    assert r.sampling == "ats" and r.frame_indices == expected_ats_frames(r.to_dict(), 12)
    inside = [BRIGHT[0] <= i < BRIGHT[1] for i in r.dense_frame_indices]
    assert inside == [i in (96, 112, 128, 144) for i in range(0, 232, 16)]
    # the plant worked: the curve is high on the stretch and low elsewhere
    assert all((s > 0.9) == hit for s, hit in zip(r.dense_scores, inside, strict=True)), r.dense_scores
    drawn = sum(BRIGHT[0] <= i < BRIGHT[1] for i in r.frame_indices)
    assert drawn == 9, r.frame_indices  # 9 of 12 on 26% of the video (uniform sampling would put 3 there)
    assert sum(BRIGHT[0] <= i < BRIGHT[1] for i in uniform_indices(232, 12)) == 3


def test_dense_scores_are_reused_and_deterministic(vau, long_video):
    dense = vau.dense_scores(long_video, dense_stride=16, progress=False)
    assert dense.scores.dtype == np.float32 and dense.frame_indices.dtype == np.int64
    a = vau.analyze(long_video, "q", max_new_tokens=2, progress=False)
    b = vau.analyze(long_video, "q", max_new_tokens=2, progress=False, dense=dense)
    assert a.frame_indices == b.frame_indices
    np.testing.assert_allclose(a.dense_scores, dense.scores, atol=1e-6)


@pytest.mark.parametrize("frames,expected", [(16, "uniform"), (17, "ats")])
def test_ats_only_when_longer_than_stride_times_n(vau, tmp_path, frames, expected):
    video = make_video(tmp_path / "v.mp4", frames)
    r = vau.analyze(
        video, "q", SamplingConfig(select_frames=4, dense_stride=4), max_new_tokens=2, progress=False
    )
    assert r.sampling == expected
    if expected == "uniform":
        # InternVL's get_index: int(3.75 / 2 + round(3.75 * k)) for k < 4 (segments of [0, 15])
        assert r.frame_indices == [1, 5, 9, 12] and r.dense_scores is None
    else:
        assert r.dense_frame_indices == [0, 4, 8, 12, 16]
        assert r.frame_indices == expected_ats_frames(r.to_dict(), 4)


def test_no_ats_or_no_scorer_means_uniform(tiny_lm, vau, long_video):
    for r in (
        vau.analyze(long_video, "q", SamplingConfig(use_ats=False), max_new_tokens=2, progress=False),
        HolmesVAU(tiny_lm, None).analyze(long_video, "q", max_new_tokens=2, progress=False),
    ):
        # InternVL's get_index over [0, 231]: int(19.25 / 2 + round(19.25 * k)), k < 12
        assert r.sampling == "uniform" and r.frame_indices == [
            9,
            28,
            47,
            67,
            86,
            105,
            125,
            144,
            163,
            182,
            201,
            221,
        ]


def test_from_pretrained_with_scorer_path_and_disabled(tiny_model_dir, scorer_file):
    v = HolmesVAU.from_pretrained(tiny_model_dir, scorer=scorer_file, device="cpu")
    assert v.scorer is not None and not v.scorer.training
    assert HolmesVAU.from_pretrained(tiny_model_dir, scorer=False, device="cpu").scorer is None


def test_scorer_for_another_encoder_is_refused(shared, tiny_lm):
    released_layout = load_scorer(shared("fixtures/ats-original/urdmu_random.pth"))  # 1024-d input
    with pytest.raises(ScorerError, match="1024-d features .* 64-d"):
        HolmesVAU(tiny_lm, released_layout)
