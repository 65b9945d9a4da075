"""Hysteresis events against a naive re-implementation (scan for runs), and the bounded frame reservoir."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holmesvau.live.events import EventTracker, FrameReservoir, Hysteresis


def naive_events(ts, scores, on, off, min_d, gap):
    """(start, end, peak) per event: a run of scores >= on lasting min_d opens one at the run's start; then a run
    of scores < off lasting gap closes it at that run's start; an event still open at the end ends at the start
    of a trailing run below off, else at the last time."""
    n, i, out = len(ts), 0, []
    while i < n:
        opened, j = None, i
        while j < n and opened is None:
            if scores[j] < on:
                j += 1
                continue
            k = j
            while k < n and scores[k] >= on and ts[k] - ts[j] < min_d:
                k += 1
            if k < n and scores[k] >= on:
                opened = (j, k)
            j = max(k, j + 1)
        if opened is None:
            return out
        start, k = opened
        closed, m = None, k + 1
        while m < n and closed is None:
            if scores[m] >= off:
                m += 1
                continue
            q = m
            while q < n and scores[q] < off and ts[q] - ts[m] < gap:
                q += 1
            if q < n and scores[q] < off:
                closed = (m, q)
            elif q >= n:
                break
            m = max(q, m + 1)
        if closed is None:
            end = ts[m] if m < n and all(s < off for s in scores[m:]) else ts[-1]
            out.append((ts[start], end, max(scores[start:])))
            return out
        out.append((ts[start], ts[closed[0]], max(scores[start : closed[1] + 1])))
        i = closed[1] + 1
    return out


def run_tracker(ts, scores, rule):
    tr, out, opened = EventTracker(rule), [], 0
    for t, s in zip(ts, scores):
        for x in tr.update(t, 1000 + t, s):
            if x.kind == "opened":
                opened += 1
                assert x.event.start_s <= t
            else:
                out.append((x.event.start_s, x.event.end_s, x.event.peak))
                assert x.event.end_wall == 1000 + x.event.end_s  # the wall clock of the frame at that time
    last = tr.close(ts[-1], 1000 + ts[-1], "end of stream") if ts else None
    if last is not None:
        out.append((last.event.start_s, last.event.end_s, last.event.peak))
    assert opened == len(out)
    return out


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([0.1, 0.5, 0.53, 1.0]), st.sampled_from([0.0, 0.3, 0.45, 0.6, 0.9])),
        min_size=1,
        max_size=60,
    ),  # fmt: skip
    min_d=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
    gap=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
)
def test_tracker_matches_naive_scan(steps, min_d, gap):
    ts, scores, t = [], [], 0.0
    for dt, s in steps:
        t = round(t + dt, 6)
        ts.append(t)
        scores.append(s)
    rule = Hysteresis(on=0.5, off=0.4, min_duration_s=min_d, gap_s=gap)
    got = run_tracker(ts, scores, rule)
    want = naive_events(ts, scores, 0.5, 0.4, min_d, gap)
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in want]
    assert [p for *_, p in got] == pytest.approx([p for *_, p in want])


def test_known_sequence():
    # 0.5 s snippets: above `on` from 1.0 to 2.5 s, dips to 0.45 (between off and on: stays open), falls at 4.0
    ts = [0.5 * i for i in range(16)]
    scores = [0.1, 0.1, 0.7, 0.8, 0.9, 0.7, 0.45, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2, 0.9, 0.2, 0.1]
    got = run_tracker(ts, scores, Hysteresis(on=0.5, off=0.4, min_duration_s=1.0, gap_s=2.0))
    assert got == [(1.0, 4.0, 0.9)]  # the lone 0.9 at 6.5 s is shorter than min_duration: no event


def test_rule_is_checked():
    with pytest.raises(ValueError, match="--off"):
        Hysteresis(on=0.3, off=0.5)


@given(n=st.integers(0, 3000), cap=st.integers(2, 64))
def test_reservoir_keeps_an_even_bounded_spread(n, cap):
    r = FrameReservoir(cap)
    for i in range(n):
        r.add(i)
    assert len(r.items) <= cap
    assert r.items == list(range(0, n, r.step))
    assert r.step == 1 or math.ceil(n / (r.step // 2)) > cap  # the finest spread that fits
