"""Raw annotation databases: the released test database loads; validation catches each malformed case;
frame labels follow the events; segment names round-trip."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from holmesvau.data.annotations import (
    AnnotationError,
    clip_segment_name,
    event_segment_name,
    load_raw_database,
    load_raw_database_report,
    parse_segment_name,
    seconds_to_frames,
    validate_raw_video,
)

DB = "data/HIVAU-70k/raw_annotations/ucf_database_test.json"


def good_entry() -> dict:
    return {
        "n_frames": 300,
        "fps": 30.0,
        "label": ["Abuse"],
        "events": [[2.0, 5.0], [7.0, 9.0]],
        "clips": [[[2.0, 3.0], [4.5, 6.0]], [[7.0, 8.0]]],  # 4.5-6.0 runs past its event's end: allowed
        "clips_caption": [["a", "b"], ["c"]],
        "events_summary": ["s0", "s1"],
        "events_summary_split": [
            {"judgement": "j", "description": "d", "analysis": "a"},
            {"judgement": "j", "description": "d", "analysis": "a"},
        ],
        "video_summary": "v",
        "video_summary_split": {"judgement": "j", "description": "d", "analysis": "a"},
    }


def test_real_database_loads(shared):
    db = load_raw_database(shared(DB))
    raw = json.loads(shared(DB).read_text())
    assert set(db) == set(raw) and len(db) == 251
    v = db["Abuse028_x264"]
    assert (v.n_frames, v.fps, v.label, v.events) == (1412, 30.0, ["Abuse"], [(5.5, 8.0)])
    assert v.clips == [[(5.5, 6.7)]] and v.clip_captions[0][0].startswith("A gray-coated postman")
    assert v.event_summary_splits[0].analysis and v.video_summary_split.judgement.startswith(
        "An anomaly exists"
    )
    assert sum(v.is_anomalous for v in db.values()) == sum(bool(e["label"]) for e in raw.values()) == 128
    normal = db["Normal_Videos_003_x264"]
    assert not normal.is_anomalous and normal.video_summary_split.analysis is None
    assert sum(len(v.events) for v in db.values()) == sum(len(e["events"]) for e in raw.values())
    # the only problems in the release: clips filed under a neighbouring event, all in normal videos
    _, problems = load_raw_database_report(shared(DB))
    assert problems and all(p.severity == "warning" and p.video.startswith("Normal_Videos") for p in problems)


def test_frame_labels_follow_events(shared):
    db = load_raw_database(shared(DB))
    for v in db.values():
        labels = v.frame_labels()
        assert labels.shape == (v.n_frames,) and labels.dtype == np.uint8
        if not v.is_anomalous:
            assert not labels.any()
            continue
        expected = np.zeros(v.n_frames, dtype=np.uint8)
        for s, e in v.events:
            # independent statement of the rule: frame k (time k/fps) is inside iff s*fps <= k+0.5 ... < e*fps+0.5
            k = np.arange(v.n_frames)
            expected |= ((k + 0.5 >= s * v.fps) & (k + 0.5 < e * v.fps)).astype(np.uint8)
        assert np.array_equal(labels, expected), v.name
        for s, e in v.events:
            assert labels[min(v.n_frames - 1, math.floor(s * v.fps + 0.5))] == 1
            mid = int((s + e) / 2 * v.fps)
            assert labels[min(mid, v.n_frames - 1)] == 1
    v = db["Abuse028_x264"]  # event [5.5, 8.0] s at 30 fps = frames 165..239
    labels = v.frame_labels()
    assert (
        labels[164] == 0 and labels[165] == 1 and labels[239] == 1 and labels[240] == 0 and labels.sum() == 75
    )


@given(
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.sampled_from([24.0, 25.0, 30.0, 29.97]),
)
def test_seconds_to_frames_clamped_and_ordered(a, b, fps):
    n = 1000
    first, stop = seconds_to_frames(min(a, b), max(a, b), fps, n)
    assert 0 <= first <= stop <= n
    if max(a, b) * fps < n - 1:
        assert abs((stop - first) - (max(a, b) - min(a, b)) * fps) <= 1


def _mutate(path, value):
    entry = good_entry()
    target = entry
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return entry


@pytest.mark.parametrize(
    "path, value, field, words",
    [
        (("events", 1), [7.0, 10.5], "events[1]", "outside the video"),
        (("events", 0), [-1.0, 3.0], "events[0]", "outside the video"),
        (("events", 0), [5.0, 5.0], "events[0]", "end <= start"),
        (("clips", 0, 1), [3.0, 2.5], "clips[0][1]", "end <= start"),
        (("clips", 1, 0), [0.5, 1.5], "clips[1][0]", "does not overlap its event"),
        (("clips", 1, 0), [9.5, 10.4], "clips[1][0]", "outside the video"),
        (("video_summary",), KeyError, "video_summary", "missing field"),
        (("n_frames",), KeyError, "n_frames", "missing field"),
        (("n_frames",), "300", "n_frames", "positive integer"),
        (("fps",), 0, "fps", "positive number"),
        (("events", 0), [2.0], "events[0]", "[start, end]"),
        (("clips",), [[[2.0, 3.0]]], "clips", "1 clip groups for 2 events"),
        (("clips_caption", 1), [], "clips_caption", "one caption string per clip"),
        (("events_summary_split", 0), {"judgement": "j"}, "events_summary_split", "per event"),
    ],
)
def test_validation_catches_malformed(tmp_path, path, value, field, words):
    entry = _mutate(path, value)
    video, problems = validate_raw_video("Bad001_x264", entry)
    errors = [p for p in problems if p.severity == "error"]
    assert video is None and errors
    assert any(field in p.field and words in p.message for p in errors), problems
    # through the loader: strict raises naming the video and field; non-strict skips it with a warning
    db_path = tmp_path / "db.json"
    db_path.write_text(json.dumps({"Good001_x264": good_entry(), "Bad001_x264": entry}))
    with pytest.raises(
        AnnotationError, match=r"Bad001_x264: .*" + field.replace("[", r"\[").replace("]", r"\]")
    ):
        load_raw_database(db_path)
    with pytest.warns(UserWarning, match="Bad001_x264"):
        assert set(load_raw_database(db_path, strict=False)) == {"Good001_x264"}


def test_tolerated_release_quirks():
    entry = good_entry()
    entry["events"][1] = [7.0, 10.0 + 2 / 30]  # two frames past the end (rounding in the release)
    entry["clips"][0][1] = [4.5, 6.0]  # past its event's end
    video, problems = validate_raw_video("Ok001_x264", entry)
    assert video is not None and not problems
    assert video.frame_range(*video.events[1]) == (210, 300)  # clamped to the video
    normal = copy.deepcopy(good_entry())
    normal["label"] = []
    normal["clips"][1][0] = [2.0, 3.0]  # filed under the wrong event: a warning in a normal video
    video, problems = validate_raw_video("Normal_Videos_001_x264", normal)
    assert video is not None and [p.severity for p in problems] == ["warning"]
    assert not video.frame_labels().any()


def test_bad_database_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_raw_database(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(AnnotationError, match="broken.json: not valid JSON"):
        load_raw_database(tmp_path / "broken.json")


@given(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"), min_size=1, max_size=40
    ),
    st.integers(0, 99),
    st.integers(0, 99),
)
def test_segment_names_round_trip(video, i, j):
    assert event_segment_name(video, i) == f"{video}_E{i}.mp4"
    assert parse_segment_name(event_segment_name(video, i)) == (video, i, None)
    assert parse_segment_name(clip_segment_name(video, i, j)) == (video, i, j)
    assert parse_segment_name("ucf-crime/clips/test/" + clip_segment_name(video, i, j)) == (video, i, j)


def test_segment_name_examples_and_errors():
    assert parse_segment_name("v=Hnfy9XhlIPM__#1_label_B4-0-0_E0.mp4") == (
        "v=Hnfy9XhlIPM__#1_label_B4-0-0",
        0,
        None,
    )
    assert parse_segment_name("Abuse028_x264_E1C12.mp4") == ("Abuse028_x264", 1, 12)
    for bad in ("Abuse028_x264.mp4", "_E1.mp4", "Abuse028_x264_C1.mp4"):
        with pytest.raises(ValueError, match="not a segment name"):
            parse_segment_name(bad)
