"""Anomaly-judgement reading on hand-checked texts and on every released test answer."""

from __future__ import annotations

import pytest

from holmesvau.eval.judgement import judgement_label

ANOMALY = [
    "An anomaly exists, specifically named Animal Abuse.",
    "The anomaly exists and the specific name of the anomaly is Shooting.",
    "There is a potential anomaly, specifically Fighting, which may occur in the video.",
    "Two anomaly events exist in the video: Violence and Abuse.",
    "Multiple anomalies exist in the video, including Physical Altercation, ...",
    "Based on the provided caption, it appears that an anomaly exists, specifically a robbery.",
    "A riot anomaly exists in the video.",
    "Yes, a man is seen breaking into the car.",
    "Yes. There is an explosion.",
    "No doubt, an anomaly exists: an explosion.",
    "An anomaly exists, specifically shoplifting; no other anomalies are visible.",
    "Abnormal behaviour detected: two men are fighting.",
    "The video shows anomalous activity near the door.",
    "An anomaly exists, specifically, there is no Car accident but a fight.",
]
NORMAL = [
    "No anomaly exists in the video.",
    "There is no anomaly in the video.",
    "No anomaly exists in this video, specifically, there is no car accident.",
    "There is no anomaly event (Shooting) in the video.",
    "No anomaly event (Shoplifting) exists in the video.",
    "No anomalies were detected.",
    "No.",
    "No, everything looks fine.",
    "The video does not contain any anomalous events.",
    "There isn't any anomaly here.",
    "I don't see anything abnormal in this clip.",
    "Nothing unusual happens in the video.",
    "The scene appears completely normal.",
    "Without any anomaly, the cars drive along the road.",
    "There are no signs of abnormal behavior.",
]
UNDECIDED = ["", None, "A man walks his dog along the street.", "The cars drive past the camera."]


@pytest.mark.parametrize("text", ANOMALY)
def test_anomaly_texts(text):
    assert judgement_label(text) is True


@pytest.mark.parametrize("text", NORMAL)
def test_normal_texts(text):
    assert judgement_label(text) is False


@pytest.mark.parametrize("text", UNDECIDED)
def test_undecided_texts(text):
    assert judgement_label(text) is None


def test_case_and_curly_apostrophe():
    assert judgement_label("THERE ISN\u2019T ANY ANOMALY.") is False
    assert judgement_label("an ANOMALY exists") is True


def test_every_released_judgement_answer_is_decided(shared):
    """Each test judgement answer gets a label; answers for normal videos (UCF 'Normal_Videos', XD 'label_A')
    all read as normal."""
    from holmesvau.data.instructions import read_instructions

    rows = read_instructions(shared("data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl"))
    judged = [r for r in rows if r.task == "judgement"]
    assert len(judged) == 426
    labels = {r.id: judgement_label(r.answer) for r in judged}
    assert all(v is not None for v in labels.values())
    normal_videos = [r for r in judged if "Normal_Videos" in r.video or "label_A" in r.video]
    assert normal_videos and all(labels[r.id] is False for r in normal_videos)
    assert sum(labels.values()) > 200  # most rows are anomalous events/videos
