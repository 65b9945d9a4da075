"""Bad inputs to the pipeline: a VideoError / ValueError naming the input, or the original's uniform plan."""

import numpy as np
import pytest

from holmesvau.frame_plan import SamplingConfig
from holmesvau.pipeline import HolmesVAU
from holmesvau.testing.synthetic import make_video
from holmesvau.video_open import VideoError


@pytest.fixture
def vau(tiny_lm):
    return HolmesVAU(tiny_lm, None)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "good.mp4", 40)


def _ask(vau, video, **kw):
    return vau.analyze(video, "q", SamplingConfig(select_frames=4, **kw), max_new_tokens=2, progress=False)


def test_missing_empty_and_text_files_raise_video_error(vau, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    for path in (tmp_path / "missing.mp4", empty, text, tmp_path):
        with pytest.raises(VideoError, match=str(path.name)):
            _ask(vau, path)


def test_truncated_and_corrupt_videos_fail_cleanly(vau, good, tmp_path):
    data = good.read_bytes()
    assert data.find(b"moov") > len(data) // 2  # the index sits at the end: cutting the file in half loses it
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"truncated\.mp4: cannot open as a video"):
        _ask(vau, truncated)
    # random bytes over the H.264 data: the container opens (40 frames), decoding the frames asked for fails
    corrupt = tmp_path / "corrupt.mp4"
    rng = np.random.default_rng(0)
    mid = bytearray(data)
    mid[len(data) // 3 : len(data) // 3 + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(bytes(mid))
    with pytest.raises(VideoError, match=r"corrupt\.mp4: decoding failed near frame \d+"):
        _ask(vau, corrupt)


@pytest.mark.parametrize("frames", [1, 3])
def test_video_shorter_than_n_frames_samples_uniformly_with_repeats(vau, tmp_path, frames):
    video = make_video(tmp_path / "short.mp4", frames)
    r = vau.analyze(video, "q", SamplingConfig(select_frames=12), max_new_tokens=2, progress=False)
    # the original's plan (InternVL get_index): int(seg / 2 + round(seg * k)), seg = (frames - 1) / 12 - frames repeat
    expected = {1: [0] * 12, 3: [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]}[frames]
    assert r.sampling == "uniform" and r.frame_indices == expected
    assert r.prompt.count("<image>") == 12


def test_bad_frame_indices_and_counts(vau, good):
    with pytest.raises(VideoError, match="out of range"):
        _ask(vau, good, frame_indices=[0, 40])
    with pytest.raises(VideoError, match="out of range"):
        _ask(vau, good, frame_indices=[-1])
    with pytest.raises(ValueError, match="empty"):
        _ask(vau, good, frame_indices=[])
    with pytest.raises(ValueError, match="integers"):
        _ask(vau, good, frame_indices=[1.5])
    with pytest.raises(ValueError, match="select_frames"):
        vau.analyze(good, "q", SamplingConfig(select_frames=0), progress=False)


def test_given_frames_may_repeat_and_be_unsorted(vau, good):
    r = _ask(vau, good, frame_indices=[30, 2, 2])
    assert r.sampling == "given" and r.frame_indices == [30, 2, 2]
    assert r.timestamps_s == [1.0, 0.067, 0.067]  # 30 fps
    assert r.prompt == "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nq"
