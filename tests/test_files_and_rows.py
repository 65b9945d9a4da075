"""Issue 24 on tools/predict.py: rows whose `video` leads out of --video-root, outputs that would destroy a file,
one writer per output, and the reading policy for bad rows (docs/files-and-rows.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from holmesvau.predict_cli import main as predict_main
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """videos/ucf/A.mp4 and B.mp4 under the video root, private.mp4 beside it (outside), a random scorer."""
    d = tmp_path_factory.mktemp("rows")
    make_video(d / "videos/ucf/A.mp4", 24)
    make_video(d / "videos/ucf/B.mp4", 8)
    make_video(d / "private.mp4", 8)
    return d, make_random_scorer(d / "scorer.pth", input_dim=64)


def _row(i, video, prompt="What happens?", **extra) -> dict:
    return {
        "id": i,
        "type": "clip",
        "task": "caption",
        "video": video,
        "prompt": prompt,
        "anwser": "a",
        **extra,
    }


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _predict(d, model, out, annotations, *extra) -> int:
    return predict_main(
        ["--annotations", str(annotations), "--video-root", str(d / "videos"), "--model", str(model),
         "--no-ats", "--select-frames", "2", "--max-new-tokens", "2", "--device", "cpu", "--quiet",
         "--output", str(out), *extra]
    )  # fmt: skip


def _rows(path: Path) -> dict:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_video_paths_that_leave_the_root_fail_their_row(data, tiny_model_dir, tmp_path):
    d, _ = data
    private = d / "private.mp4"
    rows = [_row(0, "ucf/A.mp4"), _row(1, "../private.mp4"), _row(2, str(private)), _row(3, "ucf/../../private.mp4"),
            _row(4, "ucf/sub/../B.mp4")]  # fmt: skip
    out = tmp_path / "preds.jsonl"
    assert _predict(d, tiny_model_dir, out, _write(tmp_path / "t.jsonl", rows)) == 0
    got = _rows(out)
    assert [got[i]["status"] for i in range(5)] == ["ok", "failed", "failed", "failed", "ok"]
    assert "'../private.mp4' leads outside --video-root" in got[1]["error"]
    assert "is absolute; rows name videos relative to --video-root" in got[2]["error"]
    assert "leads outside --video-root" in got[3]["error"]
