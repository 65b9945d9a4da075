"""A malformed jsonl line, a missing video and a corrupt video: training goes on and reports all three."""

from __future__ import annotations

import json

from holmesvau.testing.toy_sft import make_toy_data
from internvl_chat.train import main as train_main


def test_bad_rows_and_videos_are_skipped_and_reported(tmp_path, tiny_model_dir):
    meta = make_toy_data(tmp_path / "data", num_frames=20, test_format=False)
    root = meta.parent
    (root / "videos" / "toy" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    turns = [{"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "Nothing."}]
    good = (root / "train.jsonl").read_text().splitlines()[:2]
    lines = [
        good[0],
        '{"id": 7, "type": "clip", "video": "toy/x.mp4", "conversations": [',  # malformed: line 2
        json.dumps({"id": 8, "type": "clip", "video": "toy/missing.mp4", "conversations": turns}),  # line 3
        json.dumps({"id": 9, "type": "event", "video": "toy/corrupt.mp4", "conversations": turns}),  # line 4
        good[1],
    ]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = train_main([
        "--model_name_or_path", str(tiny_model_dir), "--meta", str(meta), "--output_dir", str(out),
        "--clip_min_frames", "2", "--clip_max_frames", "2", "--event_frames", "2", "--video_frames", "2",
        "--per_device_train_batch_size", "2", "--max_steps", "2", "--save_steps", "10", "--report_to", "none",
        "--dataloader_num_workers", "0", "--activation_checkpointing", "False", "--max_seq_length", "1024",
    ])  # fmt: skip
    assert summary["global_step"] == 2  # it trained through the bad rows
    report = json.loads((out / "data_problems.json").read_text())
    assert report == summary["data_problems"]
    assert report["by_kind"] == {"malformed_row": 1, "missing_video": 1, "unreadable_video": 1}
    where = {p["kind"]: p for p in report["first"]}
    assert where["malformed_row"]["source"].endswith("train.jsonl:2")
    assert (
        where["missing_video"]["source"].endswith("train.jsonl:3")
        and "missing.mp4" in where["missing_video"]["video"]
    )
    assert where["unreadable_video"]["source"].endswith("train.jsonl:4")
    assert "corrupt.mp4" in where["unreadable_video"]["message"]
    logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert logs[-1]["skipped"] == 3 and all(
        "loss" in r for r in logs if r["step"] <= 2 and "train_runtime" not in r
    )
