"""End to end: HIVAU-70k/split_video.py and check_video.py on the released UCF-Crime test annotations with
generated stand-in source videos.

Stand-ins: three real UCF-Crime test videos with the fewest frames among those the test instruction file uses
(RoadAccidents021_x264 155 frames, Shoplifting031_x264 447, Normal_Videos_909_x264 870; all 30 fps): 160x120 videos
with the annotation's exact frame count and fps, their events drawn as bright frames. The instruction file of the
temporary root holds the rows of the released test file that name these three videos (25 rows, 9 segments).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import kill_and_expect_no_tagged
from helpers import tagged_processes as _tagged

from holmesvau.data.annotations import load_raw_database, parse_segment_name
from holmesvau.data.instructions import read_instructions
from holmesvau.testing.synthetic import make_video, synthetic_frame
from holmesvau.video import probe

REPO = Path(__file__).resolve().parents[1]
SPLIT = [sys.executable, str(REPO / "HIVAU-70k" / "split_video.py")]
CHECK = [sys.executable, str(REPO / "HIVAU-70k" / "check_video.py")]
NAMES = ("RoadAccidents021_x264", "Shoplifting031_x264", "Normal_Videos_909_x264")


@pytest.fixture
def root(shared, tmp_path):
    db_path = shared("data/HIVAU-70k/raw_annotations/ucf_database_test.json")
    test_file = shared("data/HIVAU-70k/instruction/merge_instruction_test_final.jsonl")
    root = tmp_path / "HIVAU-70k"
    (root / "raw_annotations").mkdir(parents=True)
    (root / "instruction").mkdir()
    (root / "raw_annotations" / db_path.name).symlink_to(db_path)
    rows = [line for line in test_file.read_text().splitlines() if any(f"/{n}" in line for n in NAMES)]
    (root / "instruction" / test_file.name).write_text("\n".join(rows) + "\n")
    db = load_raw_database(db_path)
    for n in NAMES:
        v = db[n]
        bright = [v.frame_range(s, e) for s, e in v.events]
        make_video(
            root / "videos/ucf-crime/videos/test" / f"{n}.mp4", v.n_frames, fps=v.fps, bright_ranges=bright
        )
    return root


def run(cmd, root, *extra, env=None):
    return subprocess.run(
        [*cmd, "--root", str(root), *extra, "--no-progress"], capture_output=True, text=True, env=env
    )


def split_args(*extra):
    return ("--dataset", "ucf-crime", "--split", "test", "--workers", "2", *extra)


def expected_segments(root) -> dict[str, int]:
    """Relative path -> frame count, from the instruction rows and the annotation (not from the code under test)."""
    db = load_raw_database(root / "raw_annotations/ucf_database_test.json")
    out = {}
    for r in read_instructions(root / "instruction/merge_instruction_test_final.jsonl"):
        if r.type != "video":
            video, i, j = parse_segment_name(r.video)
            s, e = db[video].events[i] if j is None else db[video].clips[i][j]
            out[r.video] = min(round(e * 30), db[video].n_frames) - round(s * 30)
    return out


def segment_files(root) -> set[str]:
    base = root / "videos"
    files = [p for kind in ("events", "clips") for p in (base / "ucf-crime" / kind).rglob("*") if p.is_file()]
    return {str(p.relative_to(base)) for p in files}


def assert_frame_accurate(root, rel):
    db = load_raw_database(root / "raw_annotations/ucf_database_test.json")
    video, i, j = parse_segment_name(rel)
    v = db[video]
    first, _ = v.frame_range(*(v.events[i] if j is None else v.clips[i][j]))
    bright = [v.frame_range(s, e) for s, e in v.events]
    with av.open(str(root / "videos" / rel)) as c:
        for k, frame in enumerate(c.decode(video=0)):
            img = frame.to_ndarray(format="rgb24").astype(np.int16)
            near = range(max(0, first + k - 2), min(v.n_frames, first + k + 3))
            errs = {
                m: np.abs(synthetic_frame(m, bright=any(a <= m < b for a, b in bright)) - img).mean()
                for m in near
            }
            assert min(errs, key=errs.get) == first + k, (rel, k)


def test_split_then_rerun_then_check(root):
    expected = expected_segments(root)
    assert len(expected) == 9
    res = run(SPLIT, root, *split_args())
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["done"], summary["skipped"], summary["failed"]) == (9, 0, 0)
    assert segment_files(root) == set(expected)  # exactly these files, no temp files
    for rel, frames in expected.items():
        info = probe(root / "videos" / rel)
        assert abs(info.num_frames - frames) <= 1 and abs(info.duration_s - frames / 30) <= 1 / 30 + 1e-6, rel
    assert_frame_accurate(root, "ucf-crime/clips/test/RoadAccidents021_x264_E0C0.mp4")
    assert_frame_accurate(root, "ucf-crime/events/test/Normal_Videos_909_x264_E1.mp4")
    saved = json.loads((root / "videos/ucf-crime/split_video_test.json").read_text())
    assert saved["done"] == 9 and saved["failures"] == []

    mtimes = {rel: (root / "videos" / rel).stat().st_mtime_ns for rel in expected}
    res = run(SPLIT, root, *split_args())
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert res.returncode == 0 and (summary["done"], summary["skipped"]) == (0, 9)
    assert mtimes == {rel: (root / "videos" / rel).stat().st_mtime_ns for rel in expected}

    res = run(CHECK, root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "12 videos checked: 12 ok" in res.stderr  # 9 segments + 3 source videos

    gone = "ucf-crime/events/test/Shoplifting031_x264_E0.mp4"
    cut = "ucf-crime/clips/test/Normal_Videos_909_x264_E1C0.mp4"
    (root / "videos" / gone).unlink()
    data = (root / "videos" / cut).read_bytes()
    (root / "videos" / cut).write_bytes(data[: len(data) * 2 // 3])
    res = run(CHECK, root, "--json", str(root / "check.json"))
    assert res.returncode == 1
    assert f"missing: {gone}" in res.stdout and f"broken: {cut}" in res.stdout
    report = json.loads((root / "check.json").read_text())
    assert (
        report["missing"] == [gone]
        and [b["video"] for b in report["broken"]] == [cut]
        and not report["passed"]
    )

    res = run(SPLIT, root, *split_args())  # resume repairs both
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 7, 0)
    assert run(CHECK, root).returncode == 0


def test_killed_run_resumes_complete(root, tmp_path):
    expected = expected_segments(root)
    # Slow ffmpeg down (test only): the real one, then a pause while its output is still the temp file.
    wrapper = tmp_path / "slow_ffmpeg.sh"
    import imageio_ffmpeg

    wrapper.write_text(
        f'#!/bin/sh\n"{imageio_ffmpeg.get_ffmpeg_exe()}" "$@"\nstatus=$?\nsleep 1\nexit $status\n'
    )
    wrapper.chmod(0o755)
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(wrapper)}
    cmd = [*SPLIT, "--root", str(root), *split_args(), "--no-progress"]
    cmd[cmd.index("--workers") + 1] = "1"
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    base = root / "videos/ucf-crime"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [p for p in base.rglob("*.mp4") if "/videos/test/" not in str(p)]
        if done and list(base.rglob(".*.part")):
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its ffmpeg, mid-segment
    proc.wait()
    assert proc.returncode != 0
    finished = segment_files(root)
    temps = {f for f in finished if Path(f).name.startswith(".")}
    assert temps, "expected the kill to leave a temp file behind"
    finals = finished - temps
    assert 1 <= len(finals) < len(expected) and finals <= set(expected)
    for rel in finals:  # whatever was renamed is complete
        assert abs(probe(root / "videos" / rel).num_frames - expected[rel]) <= 1

    res = run(SPLIT, root, *split_args())
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert res.returncode == 0 and summary["skipped"] == len(finals) and summary["done"] == 9 - len(finals)
    assert segment_files(root) == set(expected)  # temp files gone
    for rel, frames in expected.items():
        assert abs(probe(root / "videos" / rel).num_frames - frames) <= 1
    assert run(CHECK, root).returncode == 0


def test_missing_sources_fail_with_reasons(root):
    (root / "videos/ucf-crime/videos/test/Shoplifting031_x264.mp4").unlink()
    res = run(SPLIT, root, *split_args())
    assert res.returncode == 1
    summary = json.loads((root / "videos/ucf-crime/split_video_test.json").read_text())
    assert (summary["done"], summary["failed"]) == (7, 2)
    assert all(
        "source video missing" in f["reason"] and "Shoplifting031" in f["output"] for f in summary["failures"]
    )
    assert "failed: " in res.stderr


def test_rows_never_write_outside_the_videos_folder(root, tmp_path):
    """Issue 24: a row naming `ucf-crime/../../../evil/<segment>.mp4` made folders and overwrote a user's file outside
    the dataset root. Now such rows (and paths outside events/ or clips/) fail with the reason;
    the user's file is byte-identical, no folder is made outside, the good segments are cut."""
    victim = tmp_path / "evil" / "RoadAccidents021_x264_E0.mp4"
    victim.parent.mkdir()
    victim.write_bytes(b"the user's own file")
    hostile = [
        "ucf-crime/../../../evil/RoadAccidents021_x264_E0.mp4",  # -> tmp_path/evil/... (the victim)
        "ucf-crime/../../../made/RoadAccidents021_x264_E0C0.mp4",  # a folder that must not be made
        "ucf-crime/videos/test/RoadAccidents021_x264_E0.mp4",  # among the sources, not a segment folder
    ]
    instructions = root / "instruction/merge_instruction_test_final.jsonl"
    extra = [{"id": f"h{i}", "type": "event", "task": "caption", "video": v, "prompt": "p", "anwser": "a"}
             for i, v in enumerate(hostile)]  # fmt: skip
    with instructions.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in extra)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(root))
    res = run(SPLIT, root, *split_args())
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert victim.read_bytes() == b"the user's own file"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(root))
    assert after == before  # nothing made outside the dataset root
    assert not (root / "videos/ucf-crime/videos/test/RoadAccidents021_x264_E0.mp4").exists()
    summary = json.loads((root / "videos/ucf-crime/split_video_test.json").read_text())
    assert summary["done"] == 9 and summary["failed"] == 3
    reasons = {f["output"]: f["reason"] for f in summary["failures"]}
    assert set(reasons) == set(hostile)
    assert all("leads outside ROOT/videos" in reasons[h] for h in hostile[:2])
    assert "events/ or ucf-crime/clips/" in reasons[hostile[2]]


def test_plan_every_annotated_segment(root):
    from holmesvau.data.layout import plan_segments

    db = load_raw_database(root / "raw_annotations/ucf_database_test.json")
    plan = plan_segments(root, "ucf-crime", "test", all_annotated=True)
    n_segments = sum(len(v.events) + sum(len(g) for g in v.clips) for v in db.values())
    assert len(plan.jobs) + len(plan.problems) == n_segments and not plan.problems
    job = next(j for j in plan.jobs if j.output.endswith("/events/test/Abuse028_x264_E0.mp4"))
    assert (job.start_frame, job.num_frames, job.fps) == (165, 75, 30.0)
    assert job.source.endswith("videos/ucf-crime/videos/test/Abuse028_x264.mp4")
    assert {j.output for j in plan_segments(root, "ucf-crime", "test").jobs} == {
        str(root / "videos" / rel) for rel in expected_segments(root)
    }


def test_clear_errors_for_missing_inputs(root):
    res = run(SPLIT, root, "--dataset", "xd-violence", "--split", "test")
    assert res.returncode == 2 and "raw annotation database not found" in res.stderr
    assert "xd_database_test.json" in res.stderr and "Traceback" not in res.stderr
    assert f"python HIVAU-70k/download.py --root {root}" in res.stderr
    res = run(CHECK, root, "--split", "train")
    assert res.returncode == 2 and "merge_instruction_train_final.jsonl" in res.stderr
    assert "the released annotations: python HIVAU-70k/download.py --root" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_run_leaves_no_worker_or_ffmpeg(root, tmp_path, sig):
    import uuid

    import imageio_ffmpeg

    # an ffmpeg that starts a minute late (test only), in one process: sh and python exec, as ffmpeg would run
    wrapper = tmp_path / "slow_ffmpeg.sh"
    late = "import os, sys, time; time.sleep(60); os.execv(sys.argv[1], sys.argv[1:])"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "{late}" "{imageio_ffmpeg.get_ffmpeg_exe()}" "$@"\n'
    )
    wrapper.chmod(0o755)
    token = uuid.uuid4().hex
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(wrapper), "HOLMESVAU_TEST_RUN": token}
    cmd = [*SPLIT, "--root", str(root), *split_args(), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while sum("ffmpeg" in c for c in _tagged(token).values()) < 2:  # both workers are cutting
            assert proc.poll() is None and time.time() < deadline, "the run did not start two cuts"
            time.sleep(0.05)
        assert len(_tagged(token)) >= 5  # the run, its 2 workers, their 2 ffmpeg
    finally:
        kill_and_expect_no_tagged(proc, token, sig, "the run")


def test_no_arguments_processes_what_is_present(root):
    """As the original README tells users: `cd HIVAU-70k && python split_video.py && python check_video.py`."""
    import shutil

    for script in ("split_video.py", "check_video.py"):
        shutil.copy(REPO / "HIVAU-70k" / script, root / script)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "split_video.py"], cwd=root, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    assert "ucf-crime/test: 3 source videos" in res.stderr
    for skipped in ("ucf-crime/train", "xd-violence/train", "xd-violence/test"):
        assert f"{skipped}: skipped, no videos in" in res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["dataset"], summary["split"], summary["done"], summary["failed"]) == (
        "ucf-crime",
        "test",
        9,
        0,
    )
    assert segment_files(root) == set(expected_segments(root))
    res = subprocess.run(
        [sys.executable, "check_video.py"], cwd=root, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0 and "12 videos checked: 12 ok" in res.stderr, res.stderr

    shutil.rmtree(root / "videos")  # nothing present: a clear error, not an empty success
    for script in ("split_video.py", "check_video.py"):
        res = subprocess.run([sys.executable, script], cwd=root, capture_output=True, text=True, env=env)
        assert (
            res.returncode == 2
            and "error: no source videos under" in res.stderr
            and "Traceback" not in res.stderr
        )
