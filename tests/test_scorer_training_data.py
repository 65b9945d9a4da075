"""Scorer training data: snippet labels from frame labels, fixed-length resampling, balanced batches, pairing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import raw_db_entry
from hypothesis import given, settings
from hypothesis import strategies as st

from holmesvau.ats.features import save_features
from holmesvau.ats.training_data import (
    BalancedSampler,
    fixed_length,
    load_scorer_videos,
    make_batch,
    snippet_labels,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 1), min_size=1, max_size=120),
    st.integers(1, 20),
    st.sampled_from(["any", "majority", "center"]),
)
def test_snippet_labels_match_a_direct_count(frames, stride, rule):
    lab = np.array(frames, dtype=np.uint8)
    idx = np.arange(0, lab.size, stride)
    got = snippet_labels(lab, idx, stride, rule)
    for i, f in enumerate(idx):
        seg = lab[f : f + stride]
        want = {"any": seg.any(), "majority": seg.sum() * 2 >= seg.size, "center": seg[(seg.size - 1) // 2]}[
            rule
        ]
        assert got[i] == float(want)
    assert got.dtype == np.float32


def test_snippet_labels_edges():
    lab = np.zeros(100, dtype=np.uint8)
    lab[40:56] = 1  # frames 40..55: half of snippet 32..47, all of none
    idx = np.arange(0, 100, 16)
    assert snippet_labels(lab, idx, 16, "any").tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert snippet_labels(lab, idx, 16, "majority").tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert snippet_labels(lab, idx, 16, "center").tolist() == [0, 0, 0, 1, 0, 0, 0]
    # a snippet past the annotated frames takes the last frame's label
    assert snippet_labels(np.array([0, 1]), [0, 16, 32], 16, "center").tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="label rule"):
        snippet_labels(lab, idx, 16, "mean")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 90), st.integers(1, 40))
def test_fixed_length_shapes_and_means(t, length):
    rng = np.random.default_rng(t * 100 + length)
    x = rng.standard_normal((t, 3)).astype(np.float32)
    y = (rng.random(t) > 0.5).astype(np.float32)
    fx, fy = fixed_length(x, y, length)
    assert fx.shape == (length, 3) and fy.shape == (length,)
    assert fy.min() >= 0 and fy.max() <= 1
    if t == length:
        np.testing.assert_allclose(fx, x, atol=1e-6)
        np.testing.assert_array_equal(fy, y)
    if t % length == 0:  # equal bins: the overall mean is kept
        np.testing.assert_allclose(fx.mean(0), x.mean(0), atol=1e-5)
    if t < length:  # repeats snippets, never invents values
        assert all(any(np.allclose(r, s) for s in x) for r in fx)
    rx, ry = fixed_length(x, y, length, pooling="random", rng=np.random.default_rng(0))
    assert all(any(np.array_equal(r, s) for s in x) for r in rx) and set(ry) <= {0.0, 1.0}


def test_balanced_sampler_is_balanced_covers_all_and_seeded():
    anomalous = [False] * 7 + [True] * 3
    s = BalancedSampler(anomalous, per_class=4, seed=3)
    seen_n, seen_a = set(), set()
    for _ in range(6):
        n, a = s.next()
        assert len(n) == len(a) == 4
        assert not any(anomalous[i] for i in n) and all(anomalous[i] for i in a)
        seen_n.update(n)
        seen_a.update(a)
    assert seen_n == set(range(7)) and seen_a == {7, 8, 9}
    again = BalancedSampler(anomalous, per_class=4, seed=3)
    first = BalancedSampler(anomalous, per_class=4, seed=3).next()
    assert again.next() == first
    with pytest.raises(ValueError, match="0 anomalous"):
        BalancedSampler([False, False], per_class=1)


def test_load_pairs_features_with_annotations_and_reports_gaps(tmp_path):
    feats = tmp_path / "feats"
    db = {
        "Fight001": raw_db_entry(160, 10.0, ["Fighting"], [[4.0, 8.0]]),  # frames 40..79 anomalous
        "Normal001": raw_db_entry(100, 10.0, [], [[0.0, 10.0]]),  # events of a normal video are normal
        "NoFeatures": raw_db_entry(100, 10.0, [], [[0.0, 10.0]]),
        "TooLong": raw_db_entry(50, 10.0, [], [[0.0, 5.0]]),
    }
    (tmp_path / "db.json").write_text(json.dumps(db))
    for name, n in [("Fight001", 160), ("Normal001", 100), ("TooLong", 400)]:
        idx = np.arange(0, n, 16)
        save_features(feats / f"{name}.npz", np.ones((idx.size, 4)), idx, 10.0, n, 16)
    videos, skipped = load_scorer_videos(feats, tmp_path / "db.json")
    assert [v.name for v in videos] == ["Fight001", "Normal001"]
    assert set(skipped) == {"NoFeatures", "TooLong"} and "no feature file" in skipped["NoFeatures"]
    fight, normal = videos
    assert fight.anomalous and not normal.anomalous and normal.labels.sum() == 0
    assert fight.labels.tolist() == [
        0,
        0,
        1,
        1,
        1,
        0,
        0,
        0,
        0,
        0,
    ]  # snippets at 32, 48, 64 hold >= 8 event frames
    assert fight.frame_labels.sum() == 40 and fight.n_frames == 160
    x, y, v = make_batch(videos, [1, 0], length=8)
    assert x.shape == (2, 8, 4) and y.shape == (2, 8) and v.tolist() == [0.0, 1.0]


def test_minimal_event_annotations_are_enough(tmp_path):
    """Own videos: only n_frames, fps, label and events (seconds) per video; malformed entries are reported."""
    from holmesvau.ats.training_data import load_event_database

    db = {
        "cam1_0001": {"n_frames": 300, "fps": 30, "label": ["Fall"], "events": [[2.0, 4.5], [8.0, 9.0]]},
        "cam1_0002": {"n_frames": 300, "fps": 30, "label": [], "events": []},
        "cam1_0003": {"n_frames": 300, "fps": 30, "label": ["Fall"], "events": [[4.0, 2.0]]},
        "cam1_0004": {"fps": 30, "label": [], "events": []},
    }
    (tmp_path / "own.json").write_text(json.dumps(db))
    videos, bad = load_event_database(tmp_path / "own.json")
    assert sorted(videos) == ["cam1_0001", "cam1_0002"] and sorted(bad) == ["cam1_0003", "cam1_0004"]
    assert "end <= start" in bad["cam1_0003"] and "n_frames" in bad["cam1_0004"]
    assert (
        videos["cam1_0001"].frame_labels().sum() == 75 + 30 and videos["cam1_0002"].frame_labels().sum() == 0
    )
    for name in videos:
        idx = np.arange(0, 300, 16)
        save_features(tmp_path / "f" / f"{name}.npz", np.zeros((idx.size, 4)), idx, 30.0, 300, 16)
    pairs, skipped = load_scorer_videos(tmp_path / "f", tmp_path / "own.json")
    assert [v.name for v in pairs] == ["cam1_0001", "cam1_0002"] and set(skipped) == {
        "cam1_0003",
        "cam1_0004",
    }
