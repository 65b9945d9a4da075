"""The report answers through the batched core: every answer equals a one-at-a-time `chat()` on the same frames
(features reused across the questions of a frame set), with far fewer ViT tiles and generation loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from holmesvau.ats import URDMU
from holmesvau.model import chat, video_question
from holmesvau.pipeline import DenseScores, HolmesVAU
from holmesvau.preprocess import frames_to_pixel_values
from holmesvau.report import ReportConfig, build_report
from holmesvau.report.analysis import CLIP_CAPTION_PROMPT, TASK_PROMPTS, TASKS
from holmesvau.testing.synthetic import make_video
from holmesvau.video import read_frames

FPS, N_FRAMES, STRIDE = 24.0, 240, 16
BRIGHT = [(32, 96), (160, 224)]  # two anomalies: two events


@pytest.fixture(scope="module")
def built(tiny_lm, tmp_path_factory):
    torch.manual_seed(0)
    vau = HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())
    video = make_video(tmp_path_factory.mktemp("v") / "two.mp4", N_FRAMES, fps=FPS, bright_ranges=BRIGHT)
    dense = vau.dense_scores(video, STRIDE, progress=False)
    planted = np.array(
        [0.9 if any(a <= f < b for a, b in BRIGHT) else 0.1 for f in dense.frame_indices], "f4"
    )
    dense = DenseScores(dense.frame_indices, planted, dense.info, dense.stride, dense.timings)
    cfg = ReportConfig(
        video_frames=4, event_frames=4, clip_frames=3, clip_seconds=1.0, max_clips=2, max_new_tokens=6
    )
    tiles = []
    hook = tiny_lm.model.model.vision_tower.register_forward_pre_hook(
        lambda m, a, kw: tiles.append(int(kw.get("pixel_values", a[0] if a else None).shape[0])),
        with_kwargs=True,
    )
    try:
        rep = build_report(vau, video, cfg, progress=False, dense=dense)
    finally:
        hook.remove()
    return vau, video, rep.data, sum(tiles)


def _questions(data):
    """(frame indices, prompt, the report's answer) for every question the report asked."""
    out = [
        (data["video_sampling"]["frame_indices"], TASK_PROMPTS[t], data["video_answers"][t]) for t in TASKS
    ]
    for ev in data["events"]:
        out += [(ev["frame_indices"], TASK_PROMPTS[t], ev["answers"][t]) for t in TASKS]
        out += [(c["frame_indices"], CLIP_CAPTION_PROMPT, c["caption"]) for c in ev["clips"]]
    return out


def test_report_answers_equal_one_at_a_time_chat(tiny_lm, built):
    vau, video, data, _ = built
    questions = _questions(data)
    assert len(data["events"]) == 2 and len(questions) == 3 + 2 * (3 + 2)
    for idx, prompt, answer in questions:  # the oracle re-encodes the frames for every question, as before
        pv = frames_to_pixel_values(read_frames(video, idx))
        assert chat(tiny_lm, pv, video_question(prompt, len(idx)), max_new_tokens=6).answer == answer


def test_report_encodes_each_frame_once(built):
    _, _, data, tiles = built
    questions = _questions(data)
    serial = sum(len(idx) for idx, _, _ in questions)  # before: every question encoded its own frames
    frames_video = set(data["video_sampling"]["frame_indices"])
    per_event = [
        set(ev["frame_indices"]) | {i for c in ev["clips"] for i in c["frame_indices"]}
        for ev in data["events"]
    ]
    assert tiles == len(frames_video) + sum(len(s - frames_video) for s in per_event)
    for ev in data["events"]:  # the event's frames are its clips' frames: no extra encoding
        assert set(ev["frame_indices"]) <= {i for c in ev["clips"] for i in c["frame_indices"]}
    assert tiles <= 0.4 * serial


def test_video_frames_share_the_events_frames_within_their_snippet(built):
    """An ATS frame d stands for dense snippet [d, d + stride): where an event or clip frame lies in that snippet,
    the video-level questions use it (encoded once for both); elsewhere d itself. Oracle: a linear scan."""
    _, _, data, _ = built
    stride = data["scores"]["stride"]
    pool = sorted(
        set().union(
            *(
                set(ev["frame_indices"]) | {i for c in ev["clips"] for i in c["frame_indices"]}
                for ev in data["events"]
            )
        )
    )
    from holmesvau.frame_plan import plan_frames

    sc = data["scores"]
    ats = plan_frames(data["video"]["n_frames"], len(data["video_sampling"]["frame_indices"]), scores=sc["values"],
                      dense_indices=sc["dense_frame_indices"], dense_stride=stride).indices  # fmt: skip
    expected = [next((p for p in pool if d <= p < d + stride), d) for d in ats]
    assert data["video_sampling"]["frame_indices"] == expected
    assert any(e != d for e, d in zip(expected, ats))  # the planted events hold some of the ATS frames


def test_snap_to_pool_by_hand():
    from holmesvau.report.analysis import snap_to_pool

    assert snap_to_pool([0, 16, 32, 48, 48, 64], [5, 20, 31, 47, 50, 81], 16) == [5, 20, 47, 50, 50, 64]
    assert snap_to_pool([96], [], 16) == [96]
