"""Prefill with a frame set's common prompt prefix run once (holmesvau.model.prefill) against transformers' own
InternVL forward over each whole prompt: the same last logits and the same KV cache, layer by layer."""

from __future__ import annotations

import os.path
import random

import torch

from holmesvau.model import video_question
from holmesvau.model.batch import AnswerRequest, BatchStats, FrameSet, _embeds, _prepare, image_features
from holmesvau.model.prefill import prefill_rows, shared_prefixes
from holmesvau.preprocess import normalize_tiles


def test_shared_prefix_prefill_equals_whole_prompt_forward(tiny_lm):
    g = torch.Generator().manual_seed(3)
    tiles = [torch.randint(0, 256, (n, 3, 448, 448), dtype=torch.uint8, generator=g) for n in (3, 2)]
    sets = [FrameSet(tiles=t, key=("v", j)) for j, t in enumerate(tiles)]
    questions = ["What happened?", "Why is it anomalous?", "Describe the video in detail, please."]
    reqs = [AnswerRequest(sets[0], video_question(q, 3)) for q in questions]  # three questions, one frame set
    reqs += [AnswerRequest(sets[1], video_question("What happened?", 2)), AnswerRequest(None, "Hello there.")]
    batch = [_prepare(tiny_lm, i, r) for i, r in enumerate(reqs)]
    feats = {s.identity: image_features(tiny_lm, s) for s in sets}
    stats = BatchStats()
    got = list(prefill_rows(tiny_lm, batch, lambda p, start: _embeds(tiny_lm, p, feats, start), stats))
    assert [r for r, _, _ in got] == list(range(len(reqs)))
    lengths = [p.ids.shape[1] for p in batch]
    common = len(os.path.commonprefix([p.ids[0].tolist() for p in batch[:3]]))
    assert common > 3 * 256  # the system message and every image token are shared
    assert stats.prefill_tokens == sum(lengths) - 2 * common  # the prefix ran once, not three times
    model = tiny_lm.model
    for start in (1, 40, 300, 700, lengths[0] - 1):  # a part embedded alone: image features where they belong
        whole = model.get_input_embeddings()(batch[0].ids)
        with torch.inference_mode():
            ref = model.model.get_placeholder_mask(
                batch[0].ids, inputs_embeds=whole, image_features=feats[sets[0].identity]
            )
            whole = whole.masked_scatter(ref, feats[sets[0].identity].reshape(-1, whole.shape[-1]))
        torch.testing.assert_close(_embeds(tiny_lm, batch[0], feats, start), whole[:, start:], rtol=0, atol=0)
    for (r, hidden, kv), p, req in zip(got, batch, reqs):
        pv = None if req.frames is None else normalize_tiles(req.frames.tiles)
        with torch.inference_mode():
            ref = model(input_ids=p.ids, pixel_values=pv, use_cache=True)
            logits = model.lm_head(hidden)
        torch.testing.assert_close(logits, ref.logits[:, -1], rtol=1e-5, atol=1e-5)
        ref_kv = [(layer.keys, layer.values) for layer in ref.past_key_values.layers]
        assert len(kv) == len(ref_kv)
        for (k, v), (rk, rv) in zip(kv, ref_kv):
            assert k.shape == rk.shape == (1, rk.shape[1], lengths[r], rk.shape[3])
            torch.testing.assert_close(k, rk, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(v, rv, rtol=1e-5, atol=1e-5)


def test_shared_prefixes_against_commonprefix():
    rng = random.Random(0)
    for _ in range(200):
        stem = [rng.randrange(5) for _ in range(rng.randint(0, 6))]
        ids = [stem + [rng.randrange(5) for _ in range(rng.randint(1, 6))] for _ in range(rng.randint(1, 6))]
        groups = [rng.choice(["a", "b", None]) for _ in ids]
        got = shared_prefixes([torch.tensor(x) for x in ids], groups)
        for r, g in enumerate(groups):
            mates = [ids[j] for j, h in enumerate(groups) if h == g] if g is not None else [ids[r]]
            want = 0 if len(mates) < 2 else min(len(os.path.commonprefix(mates)), min(map(len, mates)) - 1)
            assert got[r] == want
