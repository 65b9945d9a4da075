"""ATS end to end with the tiny model (64-d ViT CLS) and a random scorer file in the released key layout."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from holmesvau.ats.weights import ScorerError, load_scorer
from holmesvau.pipeline import HolmesVAU
from holmesvau.plots import save_anomaly_curve
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video
from holmesvau.video import dense_indices, uniform_indices


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    # longer than 16 x 12 frames, with a planted "anomalous" stretch
    return make_video(tmp_path_factory.mktemp("v") / "long.mp4", 16 * 12 + 40, bright_ranges=[(90, 150)])


@pytest.fixture(scope="module")
def scorer_file(tmp_path_factory):
    return make_random_scorer(tmp_path_factory.mktemp("s") / "tiny_scorer.pth", input_dim=64)


@pytest.fixture
def vau(tiny_lm, scorer_file):
    return HolmesVAU(tiny_lm, load_scorer(scorer_file))


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
    r = vau.analyze(long_video, "What happens?", select_frames=12, max_new_tokens=4, progress=False)
    n = r.video["num_frames"]
    assert n == 16 * 12 + 40 and r.sampling == "ats"
    assert len(r.frame_indices) == 12
    assert all(type(i) is int for i in r.frame_indices)
    assert r.frame_indices == sorted(r.frame_indices)
    assert all(0 <= i < n for i in r.frame_indices)
    assert r.dense_frame_indices == dense_indices(n, 16)
    assert set(r.frame_indices) <= set(r.dense_frame_indices)
    assert len(r.dense_scores) == len(r.dense_frame_indices)
    assert all(0.0 <= s <= 1.0 for s in r.dense_scores)
    assert r.timestamps_s == [round(i / r.video["fps"], 3) for i in r.frame_indices]
    assert r.prompt.count("<image>") == 12 and r.prompt.endswith("What happens?")
    assert {"vit", "scorer", "generate"} <= set(r.timings)
    # the result round-trips through JSON and plots from either form
    data = json.loads(json.dumps(r.to_dict()))
    with_strip = save_anomaly_curve(r, tmp_path / "curve.png")
    without = save_anomaly_curve(data, tmp_path / "curve_nostrip.png", frames=False)
    h1, h2 = Image.open(with_strip).size[1], Image.open(without).size[1]
    assert h1 > h2 > 100


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
    r = vau.analyze(video, "q", select_frames=4, dense_stride=4, max_new_tokens=2, progress=False)
    assert r.sampling == expected
    assert len(r.frame_indices) == 4 and r.frame_indices == sorted(r.frame_indices)
    if expected == "uniform":
        assert r.frame_indices == uniform_indices(frames, 4) and r.dense_scores is None


def test_no_ats_or_no_scorer_means_uniform(tiny_lm, vau, long_video):
    n = 16 * 12 + 40
    for r in (
        vau.analyze(long_video, "q", use_ats=False, max_new_tokens=2, progress=False),
        HolmesVAU(tiny_lm, None).analyze(long_video, "q", max_new_tokens=2, progress=False),
    ):
        assert r.sampling == "uniform" and r.frame_indices == uniform_indices(n, 12)


def test_from_pretrained_with_scorer_path_and_disabled(tiny_model_dir, scorer_file):
    v = HolmesVAU.from_pretrained(tiny_model_dir, scorer=scorer_file, device="cpu")
    assert v.scorer is not None and not v.scorer.training
    assert HolmesVAU.from_pretrained(tiny_model_dir, scorer=False, device="cpu").scorer is None


def test_scorer_for_another_encoder_is_refused(shared, tiny_lm):
    released_layout = load_scorer(shared("fixtures/ats-original/urdmu_random.pth"))  # 1024-d input
    with pytest.raises(ScorerError, match="1024-d features .* 64-d"):
        HolmesVAU(tiny_lm, released_layout)
