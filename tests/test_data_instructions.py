"""Instruction files: both released formats load, counts per level/task match the release, malformed lines are
reported with file and line."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from holmesvau.data.instructions import (
    InstructionError,
    read_instructions,
    read_instructions_report,
    to_conversations,
)

TEST_FILE = "data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl"
TRAIN_EXAMPLE = "data/HIVAU-70k/instruction/train_format_example.jsonl"


def test_test_file_counts(shared):
    path = shared(TEST_FILE)
    rows = read_instructions(path)
    raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) == len(raw) == 3339
    counts = Counter(r.level_task for r in rows)
    assert counts == {
        "clip/caption": 2207,
        "event/judgement": 276,
        "event/description": 276,
        "event/analysis": 182,
        "video/judgement": 150,
        "video/description": 150,
        "video/analysis": 98,
    }
    assert {r.dataset for r in rows} == {"ucf-crime", "xd-violence"}
    for r, line in zip(rows, raw):
        assert (r.id, r.video, r.prompt, r.answer) == (
            line["id"],
            line["video"],
            line["prompt"],
            line["anwser"],
        )
        assert r.conversations is None
    conv = to_conversations(rows[0])
    assert conv == [
        {"from": "human", "value": "<video>\n" + raw[0]["prompt"]},
        {"from": "gpt", "value": raw[0]["anwser"]},
    ]


def test_train_format(shared):
    path = shared(TRAIN_EXAMPLE)
    rows = read_instructions(path)
    raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) == len(raw)
    for r, line in zip(rows, raw):
        assert to_conversations(r) == line["conversations"]
        human = line["conversations"][0]["value"]
        assert "<video>" in human and "<video>" not in r.prompt and r.prompt in human
        assert r.answer == line["conversations"][1]["value"]
    assert {r.type for r in rows} == {"clip", "event", "video"}


def test_malformed_lines(tmp_path):
    good = {
        "id": 1,
        "type": "clip",
        "task": "caption",
        "video": "ucf-crime/clips/test/A_E0C0.mp4",
        "prompt": "p",
        "anwser": "a",
    }
    lines = [
        json.dumps(good),
        '{"id": 2, "type": "clip", ',  # truncated JSON
        json.dumps({**good, "type": "scene"}),  # unknown type
        json.dumps({k: v for k, v in good.items() if k != "video"}),  # missing field
        "",  # blank lines are fine
        json.dumps({**good, "id": 5, "anwser": None}),  # no answer
        json.dumps(
            {
                "id": 6,
                "type": "event",
                "task": "judgement",
                "video": "x.mp4",
                "conversations": [{"from": "human", "value": "q"}],
            }
        ),
        json.dumps([1, 2]),
        json.dumps({**{k: v for k, v in good.items() if k != "anwser"}, "id": 8, "answer": "spelled right"}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InstructionError, match=r"bad\.jsonl:2: not valid JSON"):
        read_instructions(path)
    rows, problems = read_instructions_report(path)
    assert [r.id for r in rows] == [1, 8] and rows[1].answer == "spelled right"
    assert [p.line for p in problems] == [2, 3, 4, 6, 7, 8]
    messages = {p.line: p.reason for p in problems}
    assert "unknown type 'scene'" in messages[3] and "missing field(s): video" in messages[4]
    assert "gpt turn" in messages[7] and "JSON object" in messages[8]
    with pytest.warns(UserWarning, match="skipped 6 malformed"):
        assert len(read_instructions(path, on_error="skip")) == 2
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_instructions(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="on_error"):
        read_instructions(path, on_error="ignore")


def test_sampled_frames_kept(tmp_path):
    row = {"id": "a", "type": "video", "task": "judgement", "video": "xd-violence/videos/test/v.mp4",
           "prompt": "p", "anwser": "a", "sampled_frames": [0, 5, 9]}  # fmt: skip
    (tmp_path / "s.jsonl").write_text(json.dumps(row))
    (r,) = read_instructions(tmp_path / "s.jsonl")
    assert r.sampled_frames == [0, 5, 9] and r.dataset == "xd-violence"
