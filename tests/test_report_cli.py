"""`python inference.py --video V --report DIR` on the tiny model, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from holmesvau.report import validate_report
from holmesvau.testing import make_random_scorer, make_video

REPO = Path(__file__).resolve().parents[1]


def _run(*argv):
    cmd = [sys.executable, "inference.py", *map(str, argv)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_inference_writes_the_report(tiny_model_dir, tmp_path):
    video = make_video(tmp_path / "v.mp4", 120, fps=20, bright_ranges=[(40, 80)])
    scorer = make_random_scorer(tmp_path / "s.pth", input_dim=64)
    out = tmp_path / "rep"
    proc = _run("--video", video, "--model", tiny_model_dir, "--scorer", scorer, "--device", "cpu",
                "--report", out, "--report-threshold", "0", "--select-frames", "3", "--max-new-tokens", "2",
                "--quiet", "--output", tmp_path / "result.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "report.json").read_text())
    validate_report(data)
    # threshold 0: every score qualifies, so one event spans the whole 6 s video
    assert [(e["start_frame"], e["end_frame"]) for e in data["events"]] == [(0, 120)]
    assert data["localization"] == {**data["localization"], "threshold": 0.0, "threshold_source": "given"}
    assert data["model"] == {
        "name": tiny_model_dir.name, "path": str(tiny_model_dir), "dtype": "float32", "device": "cpu",
        "random_weights": True,
    }  # fmt: skip
    assert 'id="event-1"' in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]  # no temporaries left
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["dense_scores"] == pytest.approx(data["scores"]["values"])  # one dense pass, shared
    assert "report:" in proc.stderr


def test_report_without_scorer_is_a_clear_error(tiny_model_dir, tmp_path):
    video = make_video(tmp_path / "v.mp4", 30, fps=10)
    proc = _run("--video", video, "--model", tiny_model_dir, "--device", "cpu", "--report", tmp_path / "r",
                "--no-ats", "--quiet")  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "needs the ATS anomaly scorer" in proc.stderr
    assert not (tmp_path / "r" / "report.json").exists()
