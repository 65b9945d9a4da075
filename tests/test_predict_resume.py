"""tools/predict.py: killed midway (or crashed, or a torn last line), a rerun gives every row exactly once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SLOW_WRITES, predict_args

from holmesvau.ats.weights import load_scorer
from holmesvau.cli.predict import main as predict_main
from holmesvau.data.instructions import read_instructions
from holmesvau.frame_plan import SamplingConfig
from holmesvau.pipeline import HolmesVAU
from holmesvau.predict import predict_rows, read_rows
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:skipped 1 malformed instruction line")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Generated videos (one long enough for ATS), a missing and a broken one, and test rows over them."""
    d = tmp_path_factory.mktemp("set")
    make_video(d / "videos/ucf/A.mp4", 40, bright_ranges=[(10, 20)])
    make_video(d / "videos/ucf/B.mp4", 8)
    (d / "videos/ucf/bad.mp4").write_text("not a video")
    plan = [("video", "judgement", "A"), ("clip", "caption", "B"), ("event", "analysis", "missing"),
            ("video", "description", "A"), ("clip", "caption", "bad"), ("event", "description", "B")]  # fmt: skip
    lines = [
        json.dumps(
            {"id": f"r{i}", "type": t, "task": k, "video": f"ucf/{v}.mp4", "prompt": f"q{i}?", "anwser": "a"}
        )
        for i, (t, k, v) in enumerate(plan * 3)
    ]
    lines.insert(4, '{"id": "torn')  # a malformed annotation line: skipped with a warning
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    return d, make_random_scorer(d / "scorer.pth", input_dim=64)


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _check_complete(rows, n=18):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == n
    assert {r["id"] for r in rows if r["status"] == "failed"} == {
        f"r{i}" for i in range(n) if i % 6 in (2, 4)
    }
    for r in rows:
        if r["status"] == "failed":
            assert r["error"].startswith("VideoError") and r["prediction"] is None
        else:
            assert isinstance(r["prediction"], str) and len(r["frame_indices"]) == 2
            assert r["sampling"] == ("ats" if r["video"].endswith("A.mp4") else "uniform")


def test_killed_midway_then_rerun(dataset, tiny_model_dir, tmp_path, capsys):
    d, scorer = dataset
    out = tmp_path / "preds.jsonl"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    # batches of 2, and the child pauses after each row it writes, so the kill lands inside the run however fast
    # the tiny model answers (without the pause a quick machine could finish all 18 rows between two polls)
    cmd = [
        sys.executable,
        "-c",
        SLOW_WRITES,
        *predict_args(d, scorer, tiny_model_dir, out),
        "--batch-size",
        "2",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        assert proc.poll() is None, "finished or died before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = out.read_text().count("\n")
    assert proc.returncode == -signal.SIGKILL and 3 <= done_before < 18
    before = {r["id"]: r for r in read_rows(out)}  # a line torn by the kill is skipped
    with out.open("a") as f:
        f.write('{"id": "r17", "prediction": "half a li')  # a torn last write
    assert predict_main(predict_args(d, scorer, tiny_model_dir, out)) == 0
    rows = _rows(out)
    _check_complete(rows)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(18)]  # annotation order once complete
    assert all(r == before[r["id"]] for r in rows if r["id"] in before)  # kept as written
    assert (
        json.loads(capsys.readouterr().err.strip().splitlines()[-1])["skipped_done"] == done_before
    )  # not redone


def test_crash_resume_equals_uninterrupted_run(dataset, tiny_lm, tmp_path):
    d, scorer = dataset
    rows = read_instructions(d / "test.jsonl", on_error="skip")
    vau = HolmesVAU(tiny_lm, load_scorer(scorer))
    kw = dict(sampling=SamplingConfig(select_frames=2, dense_stride=4), max_new_tokens=3, progress=False)

    class Crash(Exception):
        pass

    def crash_after(k):
        seen = []

        def on_row(row):
            seen.append(row)
            if len(seen) == k:
                raise Crash

        return on_row

    resumed = tmp_path / "resumed.jsonl"
    with pytest.raises(Crash):
        predict_rows(vau, rows, d / "videos", resumed, on_row=crash_after(7), **kw)
    assert len(_rows(resumed)) == 7
    stats = predict_rows(vau, rows, d / "videos", resumed, **kw)
    assert stats["total"] == 18 and stats["skipped_done"] == 7 and stats["ok"] + stats["failed"] == 11
    again = predict_rows(vau, rows, d / "videos", resumed, **kw)  # nothing left to do
    assert again["skipped_done"] == 18 and again["ok"] == again["failed"] == 0
    straight = tmp_path / "straight.jsonl"
    predict_rows(vau, rows, d / "videos", straight, **kw)
    assert resumed.read_text() == straight.read_text()
    _check_complete(_rows(resumed))


def test_retry_failed_redoes_only_failed_rows(dataset, tiny_model_dir, tmp_path):
    d, scorer = dataset
    out = tmp_path / "p.jsonl"
    args = predict_args(d, scorer, tiny_model_dir, out) + ["--limit", "6"]
    assert predict_main(args) == 0
    first = _rows(out)
    (d / "videos/ucf/missing.mp4").write_bytes(
        (d / "videos/ucf/B.mp4").read_bytes()
    )  # the missing video arrives
    try:
        assert predict_main([*args, "--retry-failed"]) == 0
    finally:
        (d / "videos/ucf/missing.mp4").unlink()
    rows = {r["id"]: r for r in _rows(out)}
    assert len(rows) == len(first) == 6
    assert rows["r2"]["status"] == "ok" and rows["r4"]["status"] == "failed"
    assert all(rows[r["id"]] == r for r in first if r["status"] == "ok")
