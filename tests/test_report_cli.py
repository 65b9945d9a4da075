"""`python inference.py --video V --report DIR` (through its run(args, vau) entry, on the tiny model)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from holmesvau.ats import URDMU
from holmesvau.pipeline import HolmesVAU
from holmesvau.report import validate_report
from holmesvau.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


def _inference():
    spec = importlib.util.spec_from_file_location("holmesvau_inference_cli", REPO / "inference.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_inference_writes_the_report(tiny_lm, tmp_path, capsys):
    cli = _inference()
    torch.manual_seed(0)
    vau = HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())
    video = make_video(tmp_path / "v.mp4", 120, fps=20, bright_ranges=[(40, 80)])
    out = tmp_path / "rep"
    args = cli.build_parser().parse_args(
        [
            "--video",
            str(video),
            "--report",
            str(out),
            "--report-threshold",
            "0",
            "--select-frames",
            "3",
            "--max-new-tokens",
            "2",
            "--quiet",
            "--output",
            str(tmp_path / "result.json"),
        ]
    )
    _, result = cli.run(args, vau=vau)
    data = json.loads((out / "report.json").read_text())
    validate_report(data)
    # threshold 0: every score qualifies, so one event spans the whole 6 s video
    assert [(e["start_frame"], e["end_frame"]) for e in data["events"]] == [(0, 120)]
    assert data["localization"] == {**data["localization"], "threshold": 0.0, "threshold_source": "given"}
    assert 'id="event-1"' in (out / "report.html").read_text()
    assert result.dense_scores == pytest.approx(data["scores"]["values"])  # one dense pass, shared
    assert "report:" in capsys.readouterr().err


def test_report_without_scorer_is_a_clear_error(tiny_lm, tmp_path, capsys):
    cli = _inference()
    video = make_video(tmp_path / "v.mp4", 30, fps=10)
    args = cli.build_parser().parse_args(["--video", str(video), "--report", str(tmp_path / "r"), "--no-ats"])
    with pytest.raises(ValueError, match="needs the ATS anomaly scorer"):
        cli.run(args, vau=HolmesVAU(tiny_lm, None))
    assert not (tmp_path / "r" / "report.json").exists()
