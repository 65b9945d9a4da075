"""holmesvau.ats streaming: dense features of a generated video with a tiny InternViT, bounded memory, errors."""

from __future__ import annotations

import os
import weakref

import numpy as np
import pytest
import torch

from holmesvau.ats import extract_dense_features
from holmesvau.preprocess import frames_to_pixel_values
from holmesvau.testing.synthetic import make_video
from holmesvau.video import dense_indices, read_frames
from holmesvau.video_open import VideoError

NUM_FRAMES = 16 * 12 + 21  # longer than stride x 12, not a multiple of the stride


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("stream") / "gen.mp4", NUM_FRAMES, bright_ranges=[(100, 140)])


@pytest.fixture(scope="module")
def vit():
    from transformers import InternVLVisionConfig, InternVLVisionModel

    torch.manual_seed(0)
    cfg = InternVLVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                               image_size=448, patch_size=14)  # fmt: skip
    return InternVLVisionModel(cfg).eval()


def _cls(vit):
    return lambda pv: vit(pixel_values=pv).last_hidden_state[:, 0]


def test_features_equal_a_non_streamed_computation(video, vit):
    dense = extract_dense_features(video, _cls(vit), stride=16, batch_size=5, progress=False,
                                   keep_indices=[16, 112, 999])  # fmt: skip
    plan = dense_indices(NUM_FRAMES, 16)
    assert dense.frame_indices.dtype == np.int64 and dense.frame_indices.tolist() == plan
    assert dense.features.shape == (len(plan), 64) and dense.features.dtype == torch.float32
    assert dense.info.num_frames == NUM_FRAMES and dense.info.backend == "pyav"
    pixel_values = frames_to_pixel_values(read_frames(video, plan))
    with torch.no_grad():
        expected = _cls(vit)(pixel_values)
    torch.testing.assert_close(dense.features, expected, atol=1e-5, rtol=1e-5)
    assert sorted(dense.pixel_values) == [16, 112]  # 999 is not a dense frame
    torch.testing.assert_close(dense.pixel_values[112], pixel_values[plan.index(112)])
    assert set(dense.timings) >= {"decode", "preprocess", "encode", "total"}


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the test fails rather than skip: it cannot check memory)."""
    if not os.path.exists("/proc/self/statm"):
        pytest.fail("this test reads the resident memory from /proc/self/statm (Linux); there is none here")
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_batches_are_released_as_they_are_encoded(video):
    """Memory stays flat over many batches even when the encoder returns views into its batch."""
    rss: list[float] = []
    seen: list[weakref.ref] = []

    def encode(pv):
        rss.append(_rss_mb())
        seen.append(weakref.ref(pv))
        return pv[:, 0, 0, :8]  # a view into the batch (as last_hidden_state[:, 0] is): must not pin it

    # every frame, 8 per batch: 27 batches of ~19 MB of pixel values each
    dense = extract_dense_features(video, encode, stride=1, batch_size=8, queue_size=2, progress=False)
    assert len(rss) == -(-NUM_FRAMES // 8)
    assert max(rss[5:]) - rss[4] < 120  # keeping each batch would add ~19 MB per batch (> 400 MB)
    assert sum(r() is not None for r in seen) == 0
    assert dense.features.shape == (NUM_FRAMES, 8)


def test_encoder_errors_propagate_and_stop_the_reader(video):
    calls = 0

    def failing(pv):
        nonlocal calls
        calls += 1
        raise RuntimeError("encoder broke")

    with pytest.raises(RuntimeError, match="encoder broke"):
        extract_dense_features(video, failing, stride=4, batch_size=2, progress=False)
    assert calls == 1


def test_bad_video_raises_video_error(tmp_path, vit):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="broken.mp4"):
        extract_dense_features(path, _cls(vit), progress=False)
