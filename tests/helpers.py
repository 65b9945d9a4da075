"""Small builders shared by several test files (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations


def raw_db_entry(n_frames: int, fps: float, label: list[str], events: list[list[float]]) -> dict:
    """One video of a raw annotation database (`ucf_database_*.json` layout), one clip per event."""
    return {
        "n_frames": n_frames,
        "fps": fps,
        "label": label,
        "events": events,
        "clips": [[ev] for ev in events],
        "clips_caption": [["c"] for _ in events],
        "events_summary": ["s" for _ in events],
        "events_summary_split": [{"judgement": "j", "description": "d"} for _ in events],
        "video_summary": "v",
        "video_summary_split": {"judgement": "j", "description": "d"},
    }


def predict_args(d, scorer, model, out) -> list[str]:
    """tools/predict.py arguments for a small generated set in `d` (test.jsonl + videos/), tiny model on CPU."""
    return ["--annotations", str(d / "test.jsonl"), "--video-root", str(d / "videos"), "--model", str(model),
            "--scorer", str(scorer), "--output", str(out), "--select-frames", "2", "--dense-stride", "4",
            "--max-new-tokens", "3", "--device", "cpu", "--quiet"]  # fmt: skip
