"""Batched answering (holmesvau.model.batch) against one-at-a-time `chat()` (transformers' own `generate`)."""

from __future__ import annotations

import logging

import pytest
import torch

from holmesvau.model import chat, video_question
from holmesvau.model.batch import (
    AnswerRequest,
    BatchStats,
    FeatureCache,
    FrameSet,
    answer_batch,
    image_features,
)
from holmesvau.preprocess import normalize_tiles

QUESTIONS = [
    "What happened?",
    "Describe the main events that take place in this video, with the people, the cars and the street.",
    "Why?",
    "Could you specify the anomaly events present in the video?",
    "Determine whether there are anomaly events in the video and the specific name of the anomaly.",
]
FRAME_COUNTS = [1, 2, 3, 2, 4, 1]  # tiles per frame set: prompts from ~300 to ~1100 tokens
BUDGETS = [4, 9, 16]  # each request's own max_new_tokens


def _tiles(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 448, 448), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def cases(tiny_lm):
    """15 requests over 6 frame sets (uint8 tiles, float pixel values and features mixed) + 1 text-only one,
    with the serial answers of chat() for each."""
    sets = []
    for j, n in enumerate(FRAME_COUNTS):
        tiles = _tiles(n, j)
        if j % 3 == 1:
            sets.append(FrameSet(pixel_values=normalize_tiles(tiles), key=("v", j)))
        else:
            sets.append(FrameSet(tiles=tiles, key=("v", j)))
    reqs = [
        AnswerRequest(
            sets[i % len(sets)],
            video_question(QUESTIONS[i % len(QUESTIONS)], sets[i % len(sets)].num_tiles),
            BUDGETS[i % len(BUDGETS)],
        )
        for i in range(15)
    ]
    reqs.append(AnswerRequest(None, "Describe the video briefly.", 7))
    serial = []
    for r in reqs:
        pv = None
        if r.frames is not None:
            pv = (
                r.frames.pixel_values
                if r.frames.pixel_values is not None
                else normalize_tiles(r.frames.tiles)
            )
        serial.append(chat(tiny_lm, pv, r.question, max_new_tokens=r.max_new_tokens))
    return reqs, serial


def _shared_prefix_tokens(reqs, serial) -> int:
    """Prompt tokens saved when each frame set's prompts prefill their common prefix once (oracle:
    os.path.commonprefix over the token lists; every prompt keeps at least one token of its own)."""
    import os.path

    groups: dict = {}
    for r, s in zip(reqs, serial):
        if r.frames is not None:
            groups.setdefault(r.frames.key, []).append(s.input_ids[0].tolist())
    saved = 0
    for ids in groups.values():
        if len(ids) > 1:
            k = min(len(os.path.commonprefix(ids)), min(map(len, ids)) - 1)
            saved += (len(ids) - 1) * k
    return saved


@pytest.mark.parametrize("batch_size, grow", [(5, None), (16, None), (16, 3)])
def test_batched_equals_serial_token_for_token(tiny_lm, cases, batch_size, grow, monkeypatch):
    """grow=3: the decode cache starts with room for 3 tokens and grows 3 at a time, while rows leave it."""
    if grow is not None:
        monkeypatch.setattr("holmesvau.model.kv_cache.GROW", grow)
    reqs, serial = cases
    stats = BatchStats()
    outs = answer_batch(tiny_lm, reqs, batch_size, stats=stats)
    assert [o.output_ids for o in outs] == [s.output_ids for s in serial]
    assert [o.answer for o in outs] == [s.answer for s in serial]
    assert [o.prompt for o in outs] == [s.prompt for s in serial]
    # each row stopped at <|im_end|> or at its own budget, as generate did
    for o, r in zip(outs, reqs):
        assert len(o.output_ids) == r.max_new_tokens or o.output_ids[-1] == tiny_lm.im_end_id
    assert stats.generate_calls == -(-len(reqs) // batch_size)
    # no padding prefilled, and the questions of one frame set prefill their common prompt prefix once
    full = sum(s.input_ids.shape[1] for s in serial)
    once = full - _shared_prefix_tokens(reqs, serial)
    if batch_size >= len(reqs):
        assert stats.prefill_tokens == once
    else:  # a frame set's questions may fall in different batches
        assert once <= stats.prefill_tokens < full
    assert stats.vit_tiles == sum(FRAME_COUNTS)  # every frame set through the ViT once
    assert stats.new_tokens == sum(len(o.output_ids) for o in outs)


def test_serial_answers_are_not_all_alike(cases):
    """Guards the test above: the requests really get different answers and lengths (not a degenerate model)."""
    _, serial = cases
    assert len({tuple(s.output_ids) for s in serial}) >= 8
    assert len({len(s.output_ids) for s in serial}) >= 3


def test_reused_features_equal_recomputed_for_the_report_questions(tiny_lm):
    from holmesvau.report.analysis import TASK_PROMPTS, TASKS

    tiles = _tiles(2, 42)
    shared = FrameSet(tiles=tiles, key=("robbery.mp4", (0, 10)))
    asks = [video_question(TASK_PROMPTS[t], 2) for t in TASKS]
    reused_stats, recomputed_stats = BatchStats(), BatchStats()
    reused = answer_batch(tiny_lm, [AnswerRequest(shared, q, 12) for q in asks], 3, stats=reused_stats)
    recomputed = answer_batch(
        tiny_lm, [AnswerRequest(FrameSet(tiles=tiles), q, 12) for q in asks], 1, stats=recomputed_stats
    )
    assert reused_stats.vit_tiles == 2 and recomputed_stats.vit_tiles == 6
    assert reused_stats.generate_calls == 1 and recomputed_stats.generate_calls == 3
    assert [o.output_ids for o in reused] == [o.output_ids for o in recomputed]
    # the oracle: chat() re-encodes the frames for each question
    expected = [chat(tiny_lm, normalize_tiles(tiles), q, max_new_tokens=12).output_ids for q in asks]
    assert [o.output_ids for o in reused] == expected
    # features computed beforehand, and a cache across calls, give the same answers with no ViT work
    feats = image_features(tiny_lm, shared)
    assert feats.shape == (2, tiny_lm.num_image_token, tiny_lm.model.config.text_config.hidden_size)
    pre_stats = BatchStats()
    pre = answer_batch(
        tiny_lm, [AnswerRequest(FrameSet(features=feats), q, 12) for q in asks], 2, stats=pre_stats
    )
    assert [o.output_ids for o in pre] == expected and pre_stats.vit_tiles == 0
    cache, cached_stats = FeatureCache(2), BatchStats()
    for q in asks:  # one call per question, as a UI asks them
        out = answer_batch(tiny_lm, [AnswerRequest(shared, q, 12)], cache=cache, stats=cached_stats)
        assert out[0].output_ids == expected[asks.index(q)]
    assert cached_stats.vit_tiles == 2


def test_out_of_memory_halves_the_batch_and_retries(tiny_lm, cases, monkeypatch, caplog):
    import holmesvau.model.batch as batch_mod

    reqs, serial = cases
    real = batch_mod._generate
    failures = []

    def flaky(lm, batch, feats, stats):
        if len(batch) > 4 and not failures:
            failures.append(len(batch))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(lm, batch, feats, stats)

    monkeypatch.setattr(batch_mod, "_generate", flaky)
    stats = BatchStats()
    with caplog.at_level(logging.WARNING, logger="holmesvau.batch"):
        outs = answer_batch(tiny_lm, reqs, 8, stats=stats)
    assert failures == [8]
    assert stats.oom_retries == 1 and stats.batch_sizes == [4, 4, 4, 4]
    assert "out of memory at batch 8: retrying at batch 4" in caplog.text
    assert [o.output_ids for o in outs] == [s.output_ids for s in serial]


def test_out_of_memory_at_batch_one_reaches_the_caller(tiny_lm, cases, monkeypatch):
    import holmesvau.model.batch as batch_mod

    def always(lm, batch, feats, stats):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(batch_mod, "_generate", always)
    with pytest.raises(torch.OutOfMemoryError):
        answer_batch(tiny_lm, cases[0][:3], 2)


def test_bad_requests_are_refused_with_the_reason(tiny_lm):
    with pytest.raises(ValueError, match="exactly one of"):
        FrameSet(tiles=_tiles(1, 0), pixel_values=torch.zeros(1, 3, 448, 448))
    with pytest.raises(ValueError, match="must be uint8"):
        FrameSet(tiles=torch.zeros(1, 3, 448, 448))
    bad = FrameSet(tiles=_tiles(2, 0), tiles_per_image=[1])
    with pytest.raises(ValueError, match="request 0: tiles_per_image sums to 1 but the frame set has 2"):
        answer_batch(tiny_lm, [AnswerRequest(bad, "Frame1: <image>\nWhat?")])
    with pytest.raises(ValueError, match="2 <image> placeholders but 1 images"):
        answer_batch(tiny_lm, [AnswerRequest(FrameSet(tiles=_tiles(1, 0)), video_question("What?", 2))])
