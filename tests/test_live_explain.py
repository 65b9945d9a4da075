"""Live explanations against chat() on the same frames: the watcher's "explained" record holds what the MLLM answers
to the HIVAU event-level prompts about the very tiles the closed event handed over (normalised by hand here, the
question written out), not merely strings."""

from __future__ import annotations

import json
import threading

import numpy as np
import torch

from holmesvau.frame_plan import SamplingConfig
from holmesvau.live import LiveSource, SourceConfig, WatchConfig, Watcher, vit_tile_encoder
from holmesvau.live.events import Hysteresis
from holmesvau.live.explain import mllm_explainer
from holmesvau.model import chat
from holmesvau.testing.planted import planted_scorer
from holmesvau.testing.synthetic import make_video

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet's, as InternVL's
PROMPTS = {  # HIVAU-70k's event-level judgement and description prompts
    "judgement": "Determine whether there are anomaly events in the video and the specific name of the anomaly.",
    "description": "Could you specify the anomaly events present in the video?",
}


def test_explained_record_is_chat_on_the_events_frames(tiny_lm, tmp_path, monkeypatch):
    import holmesvau.model.batch

    asked, real = (
        [],
        holmesvau.model.batch.answer_batch,
    )  # what the explainer hands the model: exact-input checks

    def recorded(lm, requests, *a, **kw):
        asked.extend((r.frames.tiles.numpy().copy(), r.question) for r in requests)
        return real(lm, requests, *a, **kw)

    monkeypatch.setattr(holmesvau.model.batch, "answer_batch", recorded)
    fps = 4.0
    video = make_video(tmp_path / "v.mp4", 120, fps=fps, width=64, height=48, bright_ranges=[(40, 80)])
    encode = vit_tile_encoder(tiny_lm)
    explain, seen = mllm_explainer(tiny_lm, max_new_tokens=3), []

    def recording(tile_sets, stop):
        seen.extend(np.array(t) for t in tile_sets)
        return explain(tile_sets, stop)

    src = LiveSource(SourceConfig(str(video)))
    src.open()
    cfg = WatchConfig(
        out_dir=tmp_path / "out",
        sampling=SamplingConfig(select_frames=4, dense_stride=4),
        rule=Hysteresis(0.5, 0.4, 1.0, 2.0),
    )
    summary = Watcher(src, encode, planted_scorer(encode), cfg, recording, progress=False).run(
        threading.Event()
    )
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    closed = [e for e in events if e["type"] == "closed"]
    explained = [e for e in events if e["type"] == "explained"]
    assert summary["explained"] == len(explained) == len(closed) == len(seen) == 1
    assert all(closed[0]["start_s"] <= t <= closed[0]["end_s"] for t in explained[0]["frames_s"])
    tiles = seen[0]
    assert tiles.shape == (4, 3, 448, 448) and tiles.dtype == np.uint8
    question = "".join(f"Frame{i}: <image>\n" for i in range(1, 5))
    assert [q for _, q in asked] == [
        question + p for p in PROMPTS.values()
    ]  # the tiny model hardly reads them
    assert all(np.array_equal(t, tiles) for t, _ in asked)
    pv = torch.from_numpy(((tiles / 255.0 - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32))
    for task, prompt in PROMPTS.items():
        assert explained[0][task] == chat(tiny_lm, pv, question + prompt, max_new_tokens=3).answer, task


def test_a_batch_of_events_is_answered_each_on_its_own_frames(tiny_lm, monkeypatch):
    """Several events in one explainer batch: each one's questions carry its own tiles (and frame count), and its
    answers are chat() on them."""
    import holmesvau.model.batch

    asked, real = [], holmesvau.model.batch.answer_batch

    def recorded(lm, requests, *a, **kw):
        asked.extend((r.frames.tiles.numpy().copy(), r.question) for r in requests)
        return real(lm, requests, *a, **kw)

    monkeypatch.setattr(holmesvau.model.batch, "answer_batch", recorded)
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, 256, (n, 3, 448, 448), dtype=np.uint8) for n in (2, 3)]
    outs = mllm_explainer(tiny_lm, max_new_tokens=3)(sets, threading.Event())
    assert len(outs) == len(asked) // 2 == 2
    for k, tiles in enumerate(sets):
        question = "".join(f"Frame{i}: <image>\n" for i in range(1, len(tiles) + 1))
        pv = torch.from_numpy(((tiles / 255.0 - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32))
        for j, (task, prompt) in enumerate(PROMPTS.items()):
            got_tiles, got_question = asked[2 * k + j]
            assert np.array_equal(got_tiles, tiles) and got_question == question + prompt, (k, task)
            assert outs[k][task] == chat(tiny_lm, pv, question + prompt, max_new_tokens=3).answer, (k, task)


def test_closed_is_written_before_the_clip_ring_is_told(tiny_lm, tmp_path, monkeypatch):
    """The reader runs ahead of the scores: once the ring knows an event's end it may finish the clip on its next
    frame, so the `closed` line must already be in events.jsonl then (a dashboard saw `clip` before `closed`)."""
    from holmesvau.live.clips import ClipRing

    out, at_stop, real_stop = tmp_path / "out", [], ClipRing.stop

    def stop(self, event, end_s):
        lines = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
        at_stop.append(
            [e["type"] for e in lines if e.get("event", e.get("id")) == event or e["type"] == "closed"]
        )
        return real_stop(self, event, end_s)

    monkeypatch.setattr(ClipRing, "stop", stop)
    video = make_video(tmp_path / "v.mp4", 120, fps=4.0, width=64, height=48, bright_ranges=[(40, 80)])
    encode = vit_tile_encoder(tiny_lm)
    src = LiveSource(SourceConfig(str(video)))
    src.open()
    cfg = WatchConfig(out_dir=out, sampling=SamplingConfig(select_frames=4, dense_stride=4),
                      rule=Hysteresis(0.5, 0.4, 1.0, 2.0))  # fmt: skip
    Watcher(src, encode, planted_scorer(encode), cfg, None, progress=False).run(threading.Event())
    assert len(at_stop) == 1 and "closed" in at_stop[0], at_stop
