"""Online scoring against the offline (whole-video) path: features of a real clip read as a live source through the
watcher, scored over a sliding window, must match the offline dense pass (holmesvau.ats.streaming + the scorer)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import shared_path

from holmesvau.ats.weights import load_scorer
from holmesvau.frame_plan import SamplingConfig
from holmesvau.live import (
    LiveSource,
    OnlineScorer,
    Snippet,
    SourceConfig,
    WatchConfig,
    Watcher,
    vit_tile_encoder,
)
from holmesvau.pipeline import score_features
from holmesvau.testing import make_random_scorer

STRIDE = 16


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return load_scorer(
        make_random_scorer(tmp_path_factory.mktemp("s") / "tiny_scorer.pth", input_dim=64, seed=3)
    )


@pytest.fixture(scope="module")
def offline(tiny_lm, scorer):
    """The offline path: one dense pass over the file, features and whole-video scores."""
    from holmesvau.ats import extract_dense_features
    from holmesvau.model import vit_encoder

    video = shared_path("videos/earthquake.mp4")  # 411 frames -> 26 snippets
    dense = extract_dense_features(video, vit_encoder(tiny_lm), stride=STRIDE, progress=False)
    scores = score_features(scorer, dense.features)  # the pipeline's whole-video scoring
    return video, dense, scores


def watch_file(video, tiny_lm, scorer, out, window: int, delay: int = 0):
    got: list[tuple[int, int, float]] = []
    src = LiveSource(SourceConfig(str(video)))
    src.open()
    cfg = WatchConfig(
        out_dir=out, sampling=SamplingConfig(dense_stride=STRIDE), window=window, delay=delay, batch_size=5
    )
    w = Watcher(src, vit_tile_encoder(tiny_lm), scorer, cfg, on_score=lambda s, v, _: got.append((s.index, s.frame, v)),
                progress=False)  # fmt: skip
    summary = w.run(threading.Event())
    return w, got, summary


def test_window_covering_the_clip_gives_the_offline_scores(offline, tiny_lm, scorer, tmp_path):
    video, dense, offline_scores = offline
    n = len(dense.frame_indices)
    w, got, summary = watch_file(video, tiny_lm, scorer, tmp_path, window=n + 4)
    assert summary["snippets"] == n and summary["frames"] == 411
    assert [g[1] for g in got] == dense.frame_indices.tolist()  # the same frames, in order, each scored once
    np.testing.assert_allclose(w.online.window_scores(), offline_scores, atol=1e-5)
    # each emitted score is the newest position of the window so far: the scorer on the prefix of the offline features
    with torch.inference_mode():
        prefix = [float(scorer(dense.features[None, : i + 1])[0, -1]) for i in range(n)]
    np.testing.assert_allclose([g[2] for g in got], prefix, atol=1e-5)


@pytest.mark.parametrize("window,delay", [(5, 0), (6, 2)])
def test_sliding_window_scores(offline, tiny_lm, scorer, tmp_path, window, delay):
    video, dense, _ = offline
    n, f = len(dense.frame_indices), dense.features
    _, got, _ = watch_file(video, tiny_lm, scorer, tmp_path, window=window, delay=delay)
    assert [g[0] for g in got] == list(range(n))

    def naive(
        i: int,
    ) -> float:  # snippet i scored in the window ending `delay` snippets after it (or at the end)
        end = min(n, i + delay + 1)
        x = f[max(0, end - window) : end]
        with torch.inference_mode():
            return float(scorer(x[None])[0, i - max(0, end - window)])

    np.testing.assert_allclose([g[2] for g in got], [naive(i) for i in range(n)], atol=1e-5)
    if delay == 0:  # with no right context the online curve is not the offline one (what the bench measures)
        assert not np.allclose([g[2] for g in got], offline[2], atol=1e-5)


def test_online_scorer_memory_is_the_window(scorer):
    o = OnlineScorer(scorer, window=4, delay=1)
    out = []
    for i in range(50):
        out += o.push(
            Snippet(i, i * 16, i * 0.5, 0.0, 0.0, torch.zeros(3, 2, 2, dtype=torch.uint8)), torch.randn(64)
        )
        assert len(o.feats) == min(i + 1, 4)
        assert sum(s.tile is not None for s in o.snips) <= 2  # pixels are dropped once a snippet is scored
    out += o.reset()
    assert [s.index for s, _ in out] == list(range(50)) and len(o.feats) == 0
    with pytest.raises(ValueError, match="delay"):
        OnlineScorer(scorer, window=4, delay=4)
