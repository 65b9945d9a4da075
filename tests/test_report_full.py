"""A full hierarchical report on a generated video with the tiny model: report.json validates against its schema,
report.html is self-contained and holds the curve and every event, timestamps agree with the video's fps."""

from __future__ import annotations

import html
import json
import re

import jsonschema
import numpy as np
import pytest
import torch

from holmesvau.ats import URDMU
from holmesvau.frame_plan import SamplingConfig
from holmesvau.pipeline import DenseScores, HolmesVAU
from holmesvau.report import (
    REPORT_SCHEMA,
    ReportConfig,
    ReportSchemaError,
    build_report,
    validate_report,
    write_report,
)
from holmesvau.testing.synthetic import make_video

FPS, N_FRAMES, STRIDE = 24.0, 240, 16
BRIGHT = [(32, 96), (160, 224)]  # two anomalies, 2.7 s apart: two events


@pytest.fixture(scope="module")
def vau(tiny_lm):
    torch.manual_seed(0)
    return HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(
        tmp_path_factory.mktemp("v") / "two_events.mp4", N_FRAMES, fps=FPS, bright_ranges=BRIGHT
    )


@pytest.fixture(scope="module")
def report(vau, video, tmp_path_factory):
    """The real dense pass; its (random-scorer) curve replaced by one high on the bright frames."""
    dense = vau.dense_scores(video, STRIDE, progress=False)
    planted = np.array(
        [0.9 if any(a <= f < b for a, b in BRIGHT) else 0.1 for f in dense.frame_indices], np.float32
    )
    dense = DenseScores(dense.frame_indices, planted, dense.info, dense.stride, dense.timings)
    sampling = SamplingConfig(select_frames=4)
    cfg = ReportConfig(
        sampling, event_frames=3, clip_frames=2, clip_seconds=1.0, max_clips=2, max_new_tokens=3
    )
    rep = build_report(vau, video, cfg, progress=False, dense=dense)
    out = tmp_path_factory.mktemp("report")
    return rep, *write_report(rep, out)


def test_report_json_validates(report):
    rep, json_path, _ = report
    data = json.loads(json_path.read_text())
    assert data == rep.data
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    jsonschema.validate(data, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    validate_report(data)
    assert data["schema_version"] == "2.0"
    assert data["video_sampling"]["method"] == "ats"  # 240 frames > 16 x 4
    assert all(data["video_answers"][k] is not None for k in ("judgement", "description", "analysis"))


def test_events_and_timestamps_agree_with_fps(report):
    data = report[0].data
    v = data["video"]
    assert v["fps"] == pytest.approx(FPS) and v["n_frames"] == N_FRAMES
    assert v["duration_s"] == pytest.approx(N_FRAMES / FPS)
    assert [(e["start_frame"], e["end_frame"]) for e in data["events"]] == BRIGHT
    for e in data["events"]:
        assert e["start_s"] == pytest.approx(e["start_frame"] / FPS) and e["end_s"] == pytest.approx(
            e["end_frame"] / FPS
        )
        assert e["peak_score"] == pytest.approx(0.9)
        assert len(e["frame_indices"]) == 3 and all(
            e["start_frame"] <= f < e["end_frame"] for f in e["frame_indices"]
        )
        clips = e["clips"]
        assert len(clips) == 2  # 2.7 s event, 1 s clips, at most 2
        assert clips[0]["start_s"] == pytest.approx(e["start_s"]) and clips[-1]["end_s"] == pytest.approx(
            e["end_s"]
        )
        for a, b in zip(clips, clips[1:]):
            assert a["end_s"] == pytest.approx(b["start_s"])
        for c in clips:
            assert all(c["start_s"] * FPS - 1e-6 <= f < c["end_s"] * FPS for f in c["frame_indices"])
    assert data["scores"]["dense_frame_indices"] == list(range(0, N_FRAMES, STRIDE))
    assert data["scores"]["stride"] == STRIDE


def test_html_is_self_contained_with_curve_and_every_event(report):
    rep, _, html_path = report
    page = html_path.read_text(encoding="utf-8")
    assert page.count('<svg id="anomaly-curve"') == 1
    points = re.search(r'class="score-curve" points="([^"]+)"', page).group(1).split()
    assert len(points) == len(rep.data["scores"]["values"])
    assert page.count('class="event-span"') == len(rep.data["events"]) == 2
    for k, e in enumerate(rep.data["events"], 1):
        assert f'id="event-{k}"' in page
        for text in [*e["answers"].values(), *(c["caption"] for c in e["clips"])]:
            assert html.escape(text) in page
    n_thumbs = len(rep.data["video_sampling"]["frame_indices"]) + sum(
        len(e["frame_indices"]) for e in rep.data["events"]
    )
    assert page.count('src="data:image/jpeg;base64,') == n_thumbs
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    assert "RANDOM-WEIGHT TEST MODEL" in page


def test_no_event_report_still_validates(vau, video, tmp_path):
    dense = vau.dense_scores(video, STRIDE, progress=False)
    calm = DenseScores(dense.frame_indices, np.full(len(dense.scores), 0.05, np.float32), dense.info, STRIDE)
    rep = build_report(
        vau,
        video,
        ReportConfig(SamplingConfig(select_frames=2), max_new_tokens=2),
        progress=False,
        dense=calm,
    )
    _, html_path = write_report(rep, tmp_path)
    assert rep.data["events"] == [] and "No anomalous event" in html_path.read_text()


def test_report_needs_the_scorer(tiny_lm, video):
    with pytest.raises(ValueError, match="scorer"):
        build_report(HolmesVAU(tiny_lm, None), video)


def test_schema_rejects_bad_reports(report):
    good = report[0].data
    for bad in (
        {**good, "schema_version": "0.1"},
        {k: v for k, v in good.items() if k != "events"},
        {**good, "events": [{**good["events"][0], "end_s": good["events"][0]["start_s"]}]},
        {**good, "video": {**good["video"], "fps": 0}},
    ):
        with pytest.raises(ReportSchemaError):
            validate_report(bad)
