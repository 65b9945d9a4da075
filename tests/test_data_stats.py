"""`python -m holmesvau.data.stats` on the shared HIVAU-70k annotations."""

from __future__ import annotations

import json
import subprocess
import sys

from holmesvau.data.annotations import load_raw_database
from holmesvau.data.stats import collect


def test_stats_json(shared, tmp_path):
    root = shared("data/HIVAU-70k")
    out = tmp_path / "stats.json"
    res = subprocess.run(
        [sys.executable, "-m", "holmesvau.data.stats", str(root), "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    s = json.loads(out.read_text())
    assert s["instructions"]["test"] == {
        "clip/caption": 2207,
        "event/analysis": 182,
        "event/description": 276,
        "event/judgement": 276,
        "video/analysis": 98,
        "video/description": 150,
        "video/judgement": 150,
    }
    by_ds = s["instructions_by_dataset"]["test"]
    for key, n in s["instructions"]["test"].items():
        assert by_ds["ucf-crime"].get(key, 0) + by_ds["xd-violence"].get(key, 0) == n
    assert "clip/caption" in res.stdout and "2207" in res.stdout

    db = load_raw_database(root / "raw_annotations/ucf_database_test.json")
    a = s["annotations"]["ucf_database_test"]
    assert (a["videos"], a["anomalous"], a["normal"]) == (251, 128, 123)
    assert a["events"] == sum(len(v.events) for v in db.values())
    assert a["clips"] == sum(len(g) for v in db.values() for g in v.clips)
    assert abs(a["hours"] - sum(v.n_frames / v.fps for v in db.values()) / 3600) < 1e-3
    assert a["event_duration_s"]["max"] >= a["event_duration_s"]["mean"] >= a["event_duration_s"]["min"] > 0
    assert a["words"]["video_summary"]["mean"] > a["words"]["clip_caption"]["mean"] > 0


def test_stats_counts_present_videos(tmp_path):
    (tmp_path / "instruction").mkdir()
    (tmp_path / "instruction" / "merge_instruction_train_final.jsonl").write_text(
        json.dumps({"id": 0, "type": "clip", "task": "caption", "video": "xd-violence/clips/train/a_E0C0.mp4",
                    "conversations": [{"from": "human", "value": "<video>\nq"}, {"from": "gpt", "value": "two words"}]})
    )  # fmt: skip
    clips = tmp_path / "videos/xd-violence/clips/train"
    clips.mkdir(parents=True)
    (clips / "a_E0C0.mp4").write_bytes(b"")
    (clips / ".a_E0C1.mp4.1.part").write_bytes(b"")  # temp files are not counted
    s = collect(tmp_path)
    assert s["instructions"] == {"train": {"clip/caption": 1}}
    assert s["answer_words"]["train"]["clip/caption"] == {"mean": 2.0, "total": 2}
    assert s["videos"] == {"xd-violence/clips/train": 1}
