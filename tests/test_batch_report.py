"""The report answers through the batched core: every answer equals a one-at-a-time `chat()` on the same frames
(features reused across the questions of a frame set), with far fewer ViT tiles and generation loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from holmesvau.ats import URDMU
from holmesvau.frame_plan import SamplingConfig
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
    sampling = SamplingConfig(select_frames=4)
    cfg = ReportConfig(
        sampling, event_frames=4, clip_frames=3, clip_seconds=1.0, max_clips=2, max_new_tokens=6
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
    """An ATS frame d stands for its dense snippet [d, d + stride), a clip frame for its uniform segment. Checked
    against a brute-force oracle: every video frame lies in its ATS snippet; every clip frame is the uniform
    sample or, if moved, a video frame strictly between its neighbours' uniform samples; and a video frame whose
    snippet overlaps a clip is one of the events' frames (encoded once for both)."""
    from holmesvau.frame_plan import plan_frames
    from holmesvau.video import uniform_indices

    _, _, data, _ = built
    stride, sc = data["scores"]["stride"], data["scores"]
    video = data["video_sampling"]["frame_indices"]
    sampling = SamplingConfig(select_frames=len(video), dense_stride=stride)
    ats = plan_frames(data["video"]["n_frames"], sampling, sc["values"], sc["dense_frame_indices"]).indices  # fmt: skip
    assert all(d <= v < d + stride for d, v in zip(ats, video))
    fps = data["video"]["fps"]
    clip_frames = {i for ev in data["events"] for c in ev["clips"] for i in c["frame_indices"]}
    moved = 0
    for ev in data["events"]:
        for c in ev["clips"]:
            a, b = round(c["start_s"] * fps), round(c["end_s"] * fps)
            got, uniform = (
                c["frame_indices"],
                [a + i for i in uniform_indices(b - a, len(c["frame_indices"]))],
            )
            for k, (g, u) in enumerate(zip(got, uniform)):
                if g != u:
                    moved += 1
                    assert g in video
                    assert (
                        (uniform[k - 1] if k else a - 1) < g < (uniform[k + 1] if k + 1 < len(uniform) else b)
                    )
            for d, v in zip(ats, video):
                if d < b and a < d + stride:  # the snippet overlaps this clip: shared with the events' frames
                    assert v in clip_frames
    assert sum(v != d for d, v in zip(ats, video)) + moved > 0  # the planted events hold some ATS frames


def test_share_with_ats_by_hand():
    from holmesvau.report.frames import Uniform, sample_inside, share_with_ats

    assert sample_inside(0, 64, 4) == [7, 23, 39, 54]  # segments [0,16) [16,32) [32,47) [47,64)
    sets = [
        Uniform.over(0, 64, 4)
    ]  # a frame of the set inside the snippet serves it; beyond the set: d itself
    assert share_with_ats([16, 40, 48, 96], sets, 16) == [23, 54, 54, 96]
    assert sets[0].frames == [7, 23, 39, 54]
    sets = [Uniform.over(0, 64, 4)]  # no frame inside [10, 14): segment [0, 16) gives up its frame 7 for 10;
    assert share_with_ats([10, 12], sets, 4) == [10, 12]  # [12, 16) then finds that segment already used
    assert sets[0].frames == [10, 23, 39, 54]
    sets = [Uniform.over(100, 164, 4), Uniform.over(0, 64, 4)]  # two sets: each snippet finds its own
    assert share_with_ats([3, 100], sets, 4) == [3, 100]
    assert [u.frames for u in sets] == [[100, 123, 139, 154], [3, 23, 39, 54]]


def test_share_with_ats_properties():
    """Random disjoint uniform sets and ATS frames: each video frame stays in its snippet, each set frame stays
    strictly between its neighbours' uniform samples (so inside its segment), a moved frame is a video frame, a
    video frame whose snippet holds a set frame is a set frame, and no frame is ever added to the encoded total."""
    import random

    from holmesvau.report.frames import Uniform, share_with_ats

    rng = random.Random(0)
    for _ in range(300):
        stride, start, sets = rng.choice([4, 8, 16]), 0, []
        for _ in range(rng.randint(1, 4)):
            start += rng.randint(0, 40)
            length = rng.randint(2, 120)
            sets.append(Uniform.over(start, start + length, rng.randint(1, min(8, length - 1))))
            start += length
        before = [list(u.frames) for u in sets]
        ats = sorted(rng.randrange(0, start + 20) // stride * stride for _ in range(rng.randint(1, 12)))
        video = share_with_ats(ats, sets, stride)
        assert all(d <= v < d + stride for d, v in zip(ats, video))
        for u, orig in zip(sets, before):
            for k, (g, o) in enumerate(zip(u.frames, orig)):
                if g != o:
                    assert g in video
                    assert (
                        (orig[k - 1] if k else u.start - 1)
                        < g
                        < (orig[k + 1] if k + 1 < len(orig) else u.end)
                    )
        for d, v in zip(ats, video):
            if any(d <= f < d + stride for o in before for f in o):
                assert any(v in u.frames for u in sets)
        n_before = len(set(ats).union(*map(set, before)))
        assert len(set(video).union(*(u.frames for u in sets))) <= n_before
