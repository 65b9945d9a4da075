"""The cutting library on a short generated video: frame-accurate re-encode, stream copy only on keyframes,
PyAV fallback, completeness check, temp files, failures reported."""

from __future__ import annotations

import av
import numpy as np
import pytest

from holmesvau.data.segments import SegmentJob, cut_segment, is_complete, keyframe_aligned, run_jobs
from holmesvau.testing.synthetic import make_video, synthetic_frame
from holmesvau.video import probe

N, FPS = 150, 30.0  # make_video puts a keyframe every 30 frames and no B-frames


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("src") / "src.mp4", N, fps=FPS)


def decoded_indices(path, start: int) -> list[int]:
    """Index of the source frame each decoded frame shows: the nearest synthetic frame within ±3 of the expected."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            img = f.to_ndarray(format="rgb24").astype(np.int16)
            near = range(max(0, start + i - 3), min(N, start + i + 4))
            out.append(min(near, key=lambda k: np.abs(synthetic_frame(k).astype(np.int16) - img).mean()))
    return out


@pytest.mark.parametrize(
    "start, count, method, expected_method",
    [
        (45, 50, "auto", "reencode"),  # not on a keyframe
        (0, 17, "auto", "reencode"),  # starts on a keyframe, ends inside a GOP
        (30, 60, "auto", "copy"),  # keyframe to keyframe
        (120, 30, "auto", "copy"),  # keyframe to the end of the video
        (30, 60, "reencode", "reencode"),
        (7, 40, "pyav", "pyav"),
    ],
)
def test_cut_is_frame_accurate(source, tmp_path, start, count, method, expected_method):
    out = tmp_path / "seg.mp4"
    res = cut_segment(SegmentJob(str(source), str(out), start, count, FPS), method)
    assert (res.status, res.method, res.frames) == ("done", expected_method, count), res
    assert probe(out).num_frames == count
    assert decoded_indices(out, start) == list(range(start, start + count))
    assert not list(tmp_path.glob(".*.part"))


def test_keyframe_alignment(source):
    assert keyframe_aligned(str(source), 30, 90, FPS)[0]
    assert keyframe_aligned(str(source), 60, 150, FPS)[0]
    assert not keyframe_aligned(str(source), 31, 90, FPS)[0]
    assert not keyframe_aligned(str(source), 30, 100, FPS)[0]


def test_complete_outputs_skipped_incomplete_redone(source, tmp_path):
    out = tmp_path / "seg.mp4"
    job = SegmentJob(str(source), str(out), 10, 40, FPS)
    assert cut_segment(job).status == "done"
    mtime = out.stat().st_mtime_ns
    assert is_complete(out, 40) and is_complete(out, 41) and not is_complete(out, 45)
    assert cut_segment(job).status == "skipped" and out.stat().st_mtime_ns == mtime
    # a truncated file under the final name and a stale temp file from an interrupted run
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    stale = tmp_path / ".seg.mp4.999999.part"
    stale.write_bytes(b"half written")
    assert not is_complete(out, 40)
    res = cut_segment(job)
    assert res.status == "done" and is_complete(out, 40) and not stale.exists()
    # a longer segment wanted under the same name: the old file is not taken as done
    assert cut_segment(SegmentJob(str(source), str(out), 10, 60, FPS)).status == "done"
    assert probe(out).num_frames == 60


def test_failures_are_reported_not_raised(source, tmp_path):
    jobs = [
        SegmentJob(str(tmp_path / "missing.mp4"), str(tmp_path / "a.mp4"), 0, 10, FPS),
        SegmentJob(str(source), str(tmp_path / "b.mp4"), 0, 10, FPS),
        SegmentJob(str(source), str(tmp_path / "c.mp4"), 140, 40, FPS),  # runs 30 frames past the end
    ]
    (tmp_path / "not_a_video.mp4").write_bytes(b"\x00" * 100)
    jobs.append(SegmentJob(str(tmp_path / "not_a_video.mp4"), str(tmp_path / "d.mp4"), 0, 10, FPS))
    summary, results = run_jobs(jobs, workers=2, progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (1, 0, 3)
    reasons = {r.output.rsplit("/", 1)[-1]: r.reason for r in results if r.status == "failed"}
    assert "source video missing" in reasons["a.mp4"]
    assert "expected 40" in reasons["c.mp4"]
    assert reasons["d.mp4"]
    assert {p.name for p in tmp_path.iterdir()} == {"b.mp4", "not_a_video.mp4"}  # no output, no temp left
    assert summary.to_json()["failures"][0].keys() == {"output", "reason"}


def test_real_hevc_with_b_frames_is_frame_accurate(shared, tmp_path):
    """robbery.mp4 (HEVC, B-frames, 27 fps): the cut matches the source at offset 0, clearly better than ±1."""
    from holmesvau.video import read_frames

    src = shared("videos/robbery.mp4")
    assert not keyframe_aligned(str(src), 1000, 1020, 27.0)[0]
    res = cut_segment(SegmentJob(str(src), str(tmp_path / "r.mp4"), 1000, 20, 27.0))
    assert (res.status, res.method, res.frames) == ("done", "reencode", 20)
    seg = read_frames(tmp_path / "r.mp4", list(range(20))).astype(np.int16)
    err = {o: np.abs(seg - read_frames(src, list(range(1000 + o, 1020 + o)))).mean() for o in (-1, 0, 1)}
    assert err[0] < 2.0 and err[0] * 2 < min(err[-1], err[1]), err
