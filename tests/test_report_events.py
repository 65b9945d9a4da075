"""Event localisation on hand-built anomaly curves (holmesvau.report.localize_events): a pure function."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holmesvau.report import default_threshold, localize_events, otsu_threshold, smooth_scores

STRIDE, FPS = 16, 32.0  # one dense sample = 0.5 s


def curve(n: int, spans: list[tuple[int, int]], low: float = 0.1, high: float = 0.9) -> np.ndarray:
    s = np.full(n, low)
    for a, b in spans:
        s[a:b] = high
    return s


def frames(events) -> list[tuple[int, int]]:
    return [(e.start_frame, e.end_frame) for e in events]


def test_calm_video_has_no_event():
    assert localize_events(np.full(40, 0.1), STRIDE, FPS) == []
    # contrast, but never above the scorer's decision boundary: still nothing by default
    assert localize_events(curve(40, [(10, 20)], 0.05, 0.4), STRIDE, FPS) == []
    assert localize_events([], STRIDE, FPS) == []


def test_one_event_spanning_the_whole_video():
    n_frames = 40 * STRIDE - 5  # the last dense sample covers a partial stride
    (ev,) = localize_events(np.full(40, 0.9), STRIDE, FPS, n_frames=n_frames)
    assert (ev.start_frame, ev.end_frame) == (0, n_frames)
    assert ev.start_s == 0.0 and ev.end_s == pytest.approx(n_frames / FPS)
    assert ev.peak_score == pytest.approx(0.9)


def test_one_event_frames_and_seconds_follow_stride_and_fps():
    s = curve(40, [(10, 20)])
    s[14] = 0.97
    (ev,) = localize_events(s, STRIDE, FPS)
    assert (ev.start_frame, ev.end_frame) == (10 * STRIDE, 20 * STRIDE)
    assert ev.start_s == pytest.approx(10 * STRIDE / FPS) and ev.end_s == pytest.approx(20 * STRIDE / FPS)
    assert ev.peak_score == pytest.approx(0.97)
    assert ev.duration_s == pytest.approx(5.0)


def test_two_close_segments_are_merged_and_far_ones_are_not():
    s = curve(60, [(10, 16), (18, 24), (40, 46)])  # gap of 2 samples (1 s), then 16 samples (8 s)
    merged = localize_events(s, STRIDE, FPS, smooth=1, merge_gap_s=1.5)
    assert frames(merged) == [(10 * STRIDE, 24 * STRIDE), (40 * STRIDE, 46 * STRIDE)]
    apart = localize_events(s, STRIDE, FPS, smooth=1, merge_gap_s=0.5)
    assert frames(apart) == [
        (10 * STRIDE, 16 * STRIDE),
        (18 * STRIDE, 24 * STRIDE),
        (40 * STRIDE, 46 * STRIDE),
    ]


def test_minimum_duration_drops_a_blip():
    s = curve(60, [(5, 6), (30, 40)])  # a 0.5 s blip and a 5 s event
    kept = localize_events(s, STRIDE, FPS, smooth=1, merge_gap_s=0, min_duration_s=1.0)
    assert frames(kept) == [(30 * STRIDE, 40 * STRIDE)]
    both = localize_events(s, STRIDE, FPS, smooth=1, merge_gap_s=0, min_duration_s=0.0)
    assert frames(both) == [(5 * STRIDE, 6 * STRIDE), (30 * STRIDE, 40 * STRIDE)]


def test_smoothing_removes_a_single_sample_spike():
    s = curve(60, [(30, 40)])
    s[5] = 0.95
    assert frames(localize_events(s, STRIDE, FPS, min_duration_s=0)) == [(30 * STRIDE, 40 * STRIDE)]


def test_default_threshold_adapts_to_a_high_baseline_and_can_be_overridden():
    s = curve(60, [(20, 30)], low=0.62, high=0.95)  # a scorer that runs high on the whole video
    thr = default_threshold(smooth_scores(s, 3))
    assert 0.62 < thr < 0.95
    assert frames(localize_events(s, STRIDE, FPS)) == [(20 * STRIDE, 30 * STRIDE)]
    # an explicit threshold below the baseline: the whole video is one event
    assert frames(localize_events(s, STRIDE, FPS, threshold=0.5)) == [(0, 60 * STRIDE)]
    # flat curves: 0.5 decides alone
    assert default_threshold(np.full(10, 0.7)) == 0.5 and default_threshold(np.full(10, 0.2)) == 0.5


def test_otsu_separates_two_clusters():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(0.05, 0.2, 50), rng.uniform(0.7, 0.9, 10)])
    assert 0.2 < otsu_threshold(v) < 0.7
    with pytest.raises(ValueError):
        otsu_threshold([0.3, 0.3])


def test_smoothing_keeps_a_constant_curve_and_its_ends():
    assert np.allclose(smooth_scores(np.full(7, 0.8), 5), 0.8)
    assert smooth_scores([1.0, 0.0, 0.0, 0.0], 3)[0] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "kwargs",
    [dict(stride=0, fps=30.0), dict(stride=16, fps=0.0), dict(stride=16, fps=float("nan"))],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        localize_events([0.1, 0.9], **kwargs)


def test_nan_scores_raise():
    with pytest.raises(ValueError, match="NaN"):
        localize_events([0.1, float("nan")], 16, 30.0)


def _naive_runs(s, thr, stride, n_frames):
    out, start = [], None
    for i, v in enumerate([*s, -1.0]):
        if v >= thr and start is None:
            start = i
        elif v < thr and start is not None:
            out.append((start * stride, min(i * stride, n_frames)))
            start = None
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=80),
    st.floats(0.05, 0.95),
    st.sampled_from([1, 8, 16]),
    st.sampled_from([10.0, 25.0, 29.97, 30.0]),
    st.integers(0, 15),
)
def test_events_are_the_runs_above_threshold(scores, thr, stride, fps, cut):
    """No smoothing, merging or minimum: events are exactly the runs at/above the threshold (naive oracle);
    with merging and a minimum: sorted, disjoint, in range, long enough, far enough apart, times = frames / fps."""
    n_frames = max(1, len(scores) * stride - min(cut, stride - 1))
    plain = localize_events(
        scores, stride, fps, threshold=thr, smooth=1, merge_gap_s=0, min_duration_s=0, n_frames=n_frames
    )
    assert frames(plain) == [r for r in _naive_runs(scores, thr, stride, n_frames) if r[1] > r[0]]
    for e in plain:
        assert e.peak_score == max(scores[e.start_frame // stride : -(-e.end_frame // stride)]) >= thr

    evs = localize_events(
        scores, stride, fps, threshold=thr, merge_gap_s=1.0, min_duration_s=0.5, n_frames=n_frames
    )
    for e in evs:
        assert 0 <= e.start_frame < e.end_frame <= n_frames and e.start_frame % stride == 0
        assert e.start_s == pytest.approx(e.start_frame / fps) and e.end_s == pytest.approx(e.end_frame / fps)
        assert e.duration_s >= 0.5 - 1e-9
    for a, b in zip(evs, evs[1:]):
        assert (b.start_frame - a.end_frame) / fps > 1.0
