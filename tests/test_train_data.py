"""Training data: meta file, row formats, frame-count and frame-position rules, dataset samples, collator."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from holmesvau.model.tokenizer import load_tokenizer
from holmesvau.testing.toy_sft import make_toy_data
from internvl_chat.data import (
    FrameConfig,
    MetaError,
    Row,
    frame_plan,
    load_meta,
    num_frames_for,
    read_rows,
    repeat_rows,
    segment_indices,
)
from internvl_chat.dataset import SFTCollator, VideoSFTDataset
from internvl_chat.sft import IGNORE_INDEX


def test_frame_counts_per_type():
    cfg, rng = FrameConfig(), random.Random(0)
    clips = {num_frames_for("clip", cfg, rng) for _ in range(500)}
    assert clips == set(range(6, 13))  # clip: 6..12, every value reachable
    assert num_frames_for("event", cfg, rng) == 12
    assert num_frames_for("video", cfg, rng) == 12
    with pytest.raises(ValueError):
        num_frames_for("scene", cfg, rng)
    with pytest.raises(ValueError):
        FrameConfig(clip_min=5, clip_max=4)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 16), st.integers(0, 2**31))
def test_segment_indices_one_per_segment(video_len, n, seed):
    idx = segment_indices(video_len, n, random.Random(seed))
    mid = segment_indices(video_len, n)
    assert len(idx) == len(mid) == n
    assert all(0 <= i < video_len for i in idx + mid)
    k = min(n, video_len)
    # segment bounds as the original InternVL data code forms them (np.linspace(...).astype(int))
    bounds = np.linspace(0, video_len, k + 1).astype(int).tolist()
    for s in range(k):  # one index inside each equal segment, the eval one at its middle
        lo, hi = bounds[s], max(bounds[s + 1], bounds[s] + 1)
        assert lo <= idx[s] < hi and lo <= mid[s] < hi
        assert mid[s] == (lo + hi - 1) // 2
    assert idx == sorted(idx) and mid == sorted(mid)


def test_sampled_frames_win_over_the_rule(tmp_path):
    row = Row(0, "video", tmp_path / "v.mp4", [], [3, 9, 27], "x:1")
    assert frame_plan(row, 30, FrameConfig(), random.Random(0)) == [3, 9, 27]
    with pytest.raises(ValueError, match="outside"):
        frame_plan(row, 20, FrameConfig(), random.Random(0))
    row.sampled_frames = None
    assert len(frame_plan(row, 100, FrameConfig(), random.Random(0))) == 12
    assert frame_plan(row, 120, FrameConfig(), random.Random(0), train=False) == segment_indices(120, 12)


def test_meta_paths_are_relative_to_the_meta_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text("")
    meta = tmp_path / "cfg" / "meta.json"
    meta.parent.mkdir()
    meta.write_text(
        json.dumps({"a": {"root": "../videos", "annotation": "../data/a.jsonl", "repeat_time": 2}})
    )
    (spec,) = load_meta(meta)
    assert spec.annotation.resolve() == (tmp_path / "data" / "a.jsonl").resolve()
    assert spec.root.resolve() == (tmp_path / "videos").resolve() and spec.repeat_time == 2
    meta.write_text(json.dumps({"a": {"root": "v", "annotation": "missing.jsonl"}}))
    with pytest.raises(MetaError, match="missing.jsonl"):
        load_meta(meta)
    with pytest.raises(MetaError, match="not found"):
        load_meta(tmp_path / "nope.json")


def test_rows_both_formats_and_malformed_lines(tmp_path):
    lines = [
        json.dumps({"id": 0, "type": "clip", "video": "a.mp4", "conversations": [
            {"from": "human", "value": "<video>\nQ?"}, {"from": "gpt", "value": "A."}]}),
        json.dumps({"id": 1, "type": "event", "task": "judgement", "video": "b.mp4", "prompt": "Q2?", "anwser": "B."}),
        "{not json",
        json.dumps({"id": 3, "type": "scene", "video": "c.mp4", "prompt": "Q", "anwser": "C"}),
        json.dumps({"id": 4, "type": "clip", "video": "d.mp4", "conversations": [{"from": "gpt", "value": "x"}]}),
    ]  # fmt: skip
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "m.json").write_text(json.dumps({"d": {"root": "vids", "annotation": "a.jsonl"}}))
    rows, problems = read_rows(load_meta(tmp_path / "m.json")[0])
    assert [r.id for r in rows] == [0, 1]
    assert rows[1].conversations == [
        {"from": "human", "value": "<video>\nQ2?"},
        {"from": "gpt", "value": "B."},
    ]
    assert rows[0].video == tmp_path / "vids" / "a.mp4" and rows[1].source.endswith("a.jsonl:2")
    assert [p.line for p in problems] == [3, 4, 5]
    assert repeat_rows([1, 2, 3, 4], 0.5) == [1, 2] and repeat_rows([1, 2], 2.5) == [1, 2, 1, 2, 1]


def test_dataset_samples_and_collator(tmp_path, tiny_model_dir):
    meta = make_toy_data(tmp_path, num_frames=24)
    tok = load_tokenizer(tiny_model_dir)
    frames = FrameConfig(clip_min=2, clip_max=3, event=2, video=4)
    ds = VideoSFTDataset(load_meta(meta), tok, frames, num_image_token=256, max_seq_length=4096, seed=1)
    assert len(ds) == 3 and len(ds.lengths) == 3
    samples = [ds[i] for i in range(3)]
    img = tok.convert_tokens_to_ids("<IMG_CONTEXT>")
    for row, s in zip(ds.rows, samples):
        n = s["pixel_values"].shape[0]
        assert s["pixel_values"].shape[1:] == (3, 448, 448)
        assert int((s["input_ids"] == img).sum()) == 256 * n
        assert n in {"clip": (2, 3), "event": (2,), "video": (4,)}[row.type]
        assert s["problems"] == []
    again = ds[0]  # a sample is the same whenever it is built (seeded per index)
    assert torch.equal(again["input_ids"], samples[0]["input_ids"])
    assert torch.equal(again["pixel_values"], samples[0]["pixel_values"])
    batch = SFTCollator(tok.pad_token_id)(samples[:2])
    longest = max(len(s["input_ids"]) for s in samples[:2])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, longest)
    n0 = len(samples[0]["input_ids"])
    assert batch["attention_mask"][0].sum() == n0 and (batch["labels"][0, n0:] == IGNORE_INDEX).all()
    assert batch["pixel_values"].shape[0] == sum(s["pixel_values"].shape[0] for s in samples[:2])
