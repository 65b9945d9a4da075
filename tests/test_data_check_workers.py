"""holmesvau.data.check's worker processes die with the process that started them (killed or terminated), and
check_video.py writes its --json report whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import kill_and_expect_no_tagged, tagged_processes

REPO = Path(__file__).resolve().parents[1]
ROW = {"id": 0, "type": "video", "task": "judgement", "prompt": "Anomalies?", "anwser": "No."}

# check_videos with a check that hangs (each worker sleeps a minute in its first job)
DRIVER = """
import sys, time
import holmesvau.data.check as check

def hang(path):
    time.sleep(60)
    return ""

check.check_file = hang
check.check_videos(sys.argv[1], instruction_files=[sys.argv[2]], workers=2, progress=False)
"""


def _instructions(tmp_path: Path, n: int) -> Path:
    f = tmp_path / "instructions.jsonl"
    rows = [{**ROW, "id": i, "video": f"ucf-crime/videos/test/v{i}.mp4"} for i in range(n)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_check_leaves_no_worker(tmp_path, sig):
    (tmp_path / "driver.py").write_text(DRIVER)
    token = uuid.uuid4().hex
    env = {**os.environ, "HOLMESVAU_TEST_RUN": token}
    cmd = [sys.executable, str(tmp_path / "driver.py"), str(tmp_path), str(_instructions(tmp_path, 4))]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while len(tagged_processes(token)) < 3:  # the check and its two workers
            assert proc.poll() is None and time.time() < deadline, "the check did not start two workers"
            time.sleep(0.05)
        time.sleep(0.5)  # the workers have run their initializer and are inside hang()
    finally:
        kill_and_expect_no_tagged(proc, token, sig, "the check")


def test_check_video_json_report_is_written_whole(tmp_path):
    root = tmp_path / "HIVAU-70k"
    (root / "videos").mkdir(parents=True)
    report = tmp_path / "report.json"
    cmd = [sys.executable, str(REPO / "HIVAU-70k" / "check_video.py"), "--root", str(root), "--no-progress"]
    cmd += ["--instructions", str(_instructions(tmp_path, 2)), "--workers", "1"]
    res = subprocess.run([*cmd, "--json", str(report)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr  # both videos are missing
    data = json.loads(report.read_text())
    assert data["missing"] == ["ucf-crime/videos/test/v0.mp4", "ucf-crime/videos/test/v1.mp4"]
    assert (data["checked"], data["ok"], data["passed"]) == (2, 0, False)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temporary left
    res = subprocess.run([*cmd, "--json", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is a folder" in res.stderr and "Traceback" not in res.stderr
