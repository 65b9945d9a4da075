"""A sparse forward read (ATS's every 16th frame) leaves undecoded the frames no other frame refers to: the frames
and times it gives are those of a decode of every frame (the ffmpeg command line, plain PyAV), it decodes fewer
frames, and a mismatch half way goes on decoding every frame without losing or repeating one."""

from __future__ import annotations

import numpy as np
import pytest

from holmesvau.video import VideoReader


def _b_frame_clip(tmp_path):
    """h264 with non-reference B-frames (IBBP..., no pyramid: 2 frames in 3 are referred to by none, among them planned ones: 16, 32, ...)."""
    from bad_videos import ffmpeg

    path = tmp_path / "bframes.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=20", "-c:v", "libx264", "-preset",
           "ultrafast", "-bf", "2", "-b_strategy", "0", "-x264-params", "b-pyramid=none", "-g", "60",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def _plain_decode(path, stride: int = 16) -> tuple[dict[int, np.ndarray], list[float]]:
    """Every `stride`-th frame as the ffmpeg command line decodes it (rgb24, all frames decoded, passthrough),
    and every frame's presentation time from plain PyAV (frame.time - first)."""
    import subprocess

    import av
    import imageio_ffmpeg

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        times = [f.time for f in c.decode(stream)]
        w, h = stream.codec_context.width, stream.codec_context.height
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf",
           f"select=not(mod(n\\,{stride}))", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    return dict(zip(range(0, len(times), stride), frames)), [t - times[0] for t in times]


def _read(path, plan, reader_setup=None) -> tuple[dict[int, np.ndarray], dict[int, float], int]:
    decoded = []
    with VideoReader(path) as r:
        r.on_frame = decoded.append
        if reader_setup:
            reader_setup(r)
        got = [(int(i), f) for idx, batch in r.iter_frames(plan, batch_size=8) for i, f in zip(idx, batch)]
    assert [i for i, _ in got] == plan.tolist()  # each planned frame once, in order
    return dict(got), dict(r.times_s), len(decoded)


@pytest.mark.parametrize("source", ["bframes", "robbery.mp4"])
def test_sparse_reads_skip_unreferenced_frames_and_give_a_full_decodes_frames(shared, tmp_path, source):
    path = _b_frame_clip(tmp_path) if source == "bframes" else shared(f"videos/{source}")
    every, times = _plain_decode(path)
    plan = np.arange(0, len(times), 16)
    assert sorted(every) == plan.tolist()
    frames, got_times, decoded = _read(path, plan)
    for i in plan:
        assert np.abs(frames[i].astype(np.int16) - every[i]).mean() < 1.0, i
        assert got_times[i] == pytest.approx(times[i], abs=1e-6), i
    # bit-identical to reading with every frame decoded (no packet index: the plain forward read)
    full, full_times, decoded_all = _read(path, plan, lambda r: setattr(r, "_seek", False))
    assert all(np.array_equal(frames[i], full[i]) for i in plan)
    assert decoded_all >= plan[-1] + 1
    # bframes: 1 frame in 3 is a reference, plus the planned B-frames; robbery.mp4: 1,467 of its first 2,721
    assert decoded < 0.6 * decoded_all, (decoded, decoded_all)


def test_a_mismatch_half_way_reads_the_rest_decoding_every_frame(tmp_path, monkeypatch):
    import holmesvau.video_seek as video_seek

    path = _b_frame_clip(tmp_path)
    every, times = _plain_decode(path)
    plan = np.arange(0, len(times), 16)
    position = video_seek.SeekIndex.position
    calls = []

    def failing(self, pts):  # the packet index stops matching after 100 frames
        calls.append(pts)
        if len(calls) > 100:
            raise video_seek.SeekUnsafe("test: a timestamp not in the index")
        return position(self, pts)

    monkeypatch.setattr(video_seek.SeekIndex, "position", failing)
    frames, _, decoded = _read(path, plan)
    assert len(calls) == 101  # the skipping read stopped at the mismatch, the rest was read without the index
    for i in plan:
        assert np.abs(frames[i].astype(np.int16) - every[i]).mean() < 1.0, i
