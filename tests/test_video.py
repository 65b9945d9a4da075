"""holmesvau.video: shared clips (h264, HEVC, VFR), generated clips, and bad inputs (one decoder: PyAV)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from holmesvau.testing.synthetic import make_video, synthetic_frame
from holmesvau.video import VideoReader, dense_indices, probe, read_frames, uniform_indices
from holmesvau.video_open import VideoError, broken_timing_fps, shown, timing_consistent

# name, frames, fps, width, height (as the shared README states them)
CLIPS = [
    ("car_accident.mp4", 120, 30.0, 640, 480),
    ("earthquake.mp4", 411, 30.07, 528, 480),
    ("robbery.mp4", 2730, 27.0, 852, 480),
]


@pytest.mark.parametrize("name,frames,fps,width,height", CLIPS)
def test_probe_shared_clips(shared, name, frames, fps, width, height):
    info = probe(shared(f"videos/{name}"))
    assert info.backend == "pyav"
    assert (info.num_frames, info.width, info.height) == (frames, width, height)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert info.duration_s == pytest.approx(frames / info.fps)


@pytest.mark.parametrize(
    "name,indices",
    [
        ("car_accident.mp4", [119, 5, 3, 3, 0, 64, 119]),  # h264, last frame, duplicates, unsorted
        ("earthquake.mp4", [410, 409, 200, 0]),  # VFR: the last frame must exist on both backends
        ("robbery.mp4", [300, 17, 17, 0, 150]),  # HEVC
    ],
)
def test_frames_agree_with_ffmpeg_and_iteration(shared, name, indices):
    """Frames equal to what the ffmpeg command line decodes (an independent oracle), in any order asked."""
    path = shared(f"videos/{name}")
    with VideoReader(path) as r:
        frames = r.get_frames(indices)
        batches = list(r.iter_frames(indices, batch_size=2))
    w, h = r.info.width, r.info.height
    assert frames.shape == (len(indices), h, w, 3) and frames.dtype == np.uint8
    cli = _ffmpeg_frames(path, w, h, max(indices) + 1)
    for row, idx in enumerate(indices):
        assert np.abs(frames[row].astype(np.int16) - cli[idx]).mean() < 1.0, (name, idx)
    order = np.unique(indices)
    assert np.concatenate([i for i, _ in batches]).tolist() == order.tolist()
    assert all(len(i) <= 2 for i, _ in batches)
    iterated = np.concatenate([f for _, f in batches])
    for row, idx in enumerate(indices):
        np.testing.assert_array_equal(frames[row], iterated[np.searchsorted(order, idx)])
    assert not np.array_equal(frames[0], frames[1])  # distinct frames really differ


def _ffmpeg_frames(path, width: int, height: int, n: int) -> np.ndarray:
    """The first n frames as the ffmpeg command line decodes them (every frame, passthrough: no rate change)."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode",
           "passthrough", "-frames:v", str(n), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]  # fmt: skip
    raw = subprocess.run(cmd, capture_output=True, check=True, timeout=120).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_generated_video_frames_match_their_index(tmp_path):
    path = make_video(tmp_path / "gen.mp4", 70)
    indices = [69, 0, 33, 33, 12]
    frames = read_frames(path, indices)
    for frame, idx in zip(frames, indices):
        errors = {j: np.abs(frame.astype(np.int16) - synthetic_frame(j)).mean() for j in range(70)}
        assert min(errors, key=errors.get) == idx


def test_index_plans():
    assert dense_indices(40, 16) == [0, 16, 32]
    assert dense_indices(5, 16) == [0]
    # the original's get_index, worked by hand: int(seg / 2 + round_half_even(seg * i)), seg = (n - 1) / k
    expected = {
        (120, 4): [14, 44, 74, 103],  # seg 29.75: 14.875 + 0, 30, 60 (59.5 to even), 89
        (2730, 12): [113, 340, 568, 795, 1023, 1250, 1477, 1705, 1932, 2160, 2387, 2615],
        (7, 12): [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6],  # seg 0.5: frames repeat; 0.5, 2.5, 4.5 round to even
        (1, 3): [0, 0, 0],
    }
    for (n, k), want in expected.items():
        plan = uniform_indices(n, k)
        assert plan == want and all(type(i) is int for i in plan)


def test_index_out_of_range_names_the_file(tmp_path):
    path = make_video(tmp_path / "short.mp4", 10)
    with pytest.raises(VideoError, match="short.mp4.*out of range"):
        read_frames(path, [3, 10])


def _faststart_copy(src, dst):
    """Remux with the index (moov) first, so a truncated copy still opens and fails while decoding."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def _bad_inputs(tmp_path, clip):
    data = clip.read_bytes()
    bad = {}
    bad["zero.mp4"] = b""
    bad["text.mp4"] = b"this is a text file, not a video\n" * 10
    bad["truncated.mp4"] = data[: len(data) // 2]
    corrupt = bytearray(data)
    rng = np.random.default_rng(0)
    corrupt[200 : len(data) - 200] = rng.integers(0, 256, len(data) - 400, dtype=np.uint8).tobytes()
    bad["corrupt.mp4"] = bytes(corrupt)
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    fast = _faststart_copy(clip, tmp_path / "fast.mp4").read_bytes()
    (tmp_path / "truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])
    return [*bad, "truncated_faststart.mp4", "missing.mp4"]


def test_bad_inputs_raise_video_error_naming_the_file(shared, tmp_path):
    names = _bad_inputs(tmp_path, shared("videos/car_accident.mp4"))
    for name in names:
        path = tmp_path / name
        with pytest.raises(VideoError, match=name):
            with VideoReader(path) as r:
                r.get_frames(list(range(r.info.num_frames)))


# -- broken timing: the container's own count and duration decide ---------------------------------------------


@pytest.fixture(autouse=True)
def _warn_every_time(monkeypatch):
    """holmesvau.video warns once per file and process; each test here expects its own warning."""
    import holmesvau.video_open

    monkeypatch.setattr(holmesvau.video_open, "_WARNED", set())


@pytest.fixture(scope="module")
def broken_timing(tmp_path_factory):
    """A 120-frame 30 fps clip (4 s, frames identifiable) and two patched copies (see tests/bad_videos.py)."""
    from bad_videos import set_frame_durations, set_timescale

    folder = tmp_path_factory.mktemp("timing")
    data = make_video(folder / "good.mp4", 120, fps=30).read_bytes()
    (folder / "zero_timescale.mp4").write_bytes(set_timescale(data, 0))
    (folder / "zero_durations.mp4").write_bytes(set_frame_durations(data, 0))
    return folder


def _closest_frame(frame: np.ndarray, n: int) -> int:
    errors = [np.abs(frame.astype(np.int16) - synthetic_frame(j)).mean() for j in range(n)]
    return int(np.argmin(errors))


@pytest.mark.parametrize("name", ["zero_timescale.mp4", "zero_durations.mp4"])
def test_broken_timing_reads_every_frame_at_the_container_rate(broken_timing, name):
    # before: zero timescale -> decord saw 1 frame at 1/512 fps (12 copies of frame 0); zero durations ->
    # 0.25 fps (decord) / 14.9 fps (PyAV), so frame 113 was put at 452 s of a 4 s clip
    path = broken_timing / name
    with pytest.warns(UserWarning, match="broken timestamps.*read as 120 frames at 30 fps"):
        info = probe(path)
    assert (info.num_frames, info.fps, info.duration_s, info.backend) == (120, 30.0, 4.0, "pyav")
    picks = uniform_indices(info.num_frames, 12)
    assert max(picks) / info.fps < 4.0
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        frames = read_frames(path, picks)
    assert again == []  # once per file: a question opens it three times
    assert [_closest_frame(f, 120) for f in frames] == picks  # the frames asked for, not frame 0 again


@pytest.mark.parametrize("n", [30, 120])  # 30 frames in 33 ms "is" 909 fps: under the 1000 fps bound
@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_muxed_with_all_timestamps_zero_reads_at_the_header_rate(tmp_path, ext, n):
    # the duration collapses with the timestamps (one frame's 33 ms): the codec header's 30 fps is left
    from bad_videos import ffmpeg

    src = make_video(tmp_path / "good.mp4", n, fps=30)
    path = tmp_path / f"zero_timestamps.{ext}"
    ffmpeg("-i", str(src), "-c", "copy", "-bsf:v", "setts=ts=0", str(path))
    with pytest.warns(UserWarning, match=f"read as {n} frames at 30 fps .the stream header's rate"):
        info = probe(path)
    assert (info.num_frames, info.fps, info.duration_s, info.backend) == (n, 30.0, n / 30, "pyav")
    picks = [0, n // 2, n - 1]
    assert [_closest_frame(f, n) for f in read_frames(path, picks)] == picks


def test_a_rate_no_camera_has_with_nothing_to_correct_it_is_refused(broken_timing, tmp_path):
    from bad_videos import set_timescale

    path = tmp_path / "timescale_1e9.mp4"  # 120 frames in 61 us: 1.95 million fps, the header says the same
    path.write_bytes(set_timescale((broken_timing / "good.mp4").read_bytes(), 10**9))
    with pytest.raises(
        VideoError, match=r"timescale_1e9\.mp4: broken timestamps: .*cannot tell its frame rate"
    ):
        probe(path)


def test_broken_timing_rate_choice():
    assert broken_timing_fps(120, 4.0, (30.0, 14.9)) == (
        30.0,
        "the stream header's rate, which fits the duration",
    )
    assert broken_timing_fps(120, 4.0, (1 / 512, 1 / 512)) == (30.0, "120 frames over the container's 4 s")
    assert broken_timing_fps(120, 0.033, (30.0, 30.0))[0] == 30.0  # 3636 fps: the header's rate
    assert broken_timing_fps(30, 0.033, (30.0, 30.0), timestamps_move=False)[0] == 30.0  # collapsed
    assert broken_timing_fps(30, 0.033, (30.0,))[0] == pytest.approx(909.09, abs=0.01)  # if they move
    assert broken_timing_fps(120, 0.0, (25.0, 0.0))[0] == 25.0
    assert broken_timing_fps(120, 6e-5, (2e6, 2e6)) == (None, "")  # nothing plausible: refused


def test_timing_consistency_rule():
    assert timing_consistent(120, 30.0, 4.0) and timing_consistent(411, 30.067, 13.669)  # CFR, VFR
    assert timing_consistent(120, 25.0, 0.0)  # no duration (raw stream): nothing to check against
    assert timing_consistent(2, 1 / 512, 4.0)  # two frames: no rate to check
    assert not timing_consistent(120, 1 / 512, 4.0)  # zero timescale
    assert not timing_consistent(120, 14.9, 4.0)  # zero frame durations
    assert not timing_consistent(120, 0.0, 4.0) and not timing_consistent(120, float("nan"), 4.0)
    assert timing_consistent(120, 30.0 * 1.19, 4.0) and not timing_consistent(120, 30.0 * 1.3, 4.0)


def test_error_names_are_one_printable_line():
    assert shown("a/b c.mp4") == "a/b c.mp4"
    assert shown("line\nbreak\t.mp4") == "line\\nbreak\\t.mp4"
    assert shown(os.fsdecode(b"bad_\xff.mp4")) == "bad_\\xff.mp4"
    assert shown(os.fsdecode(b"bad_\xff.mp4")).encode("ascii")


@pytest.mark.parametrize("ext,audio", [("mkv", "aac"), ("webm", "libopus"), ("mp4", "aac")])
def test_audio_longer_than_the_video_is_not_broken_timing(tmp_path, ext, audio):
    # mkv/webm have no frame index: the container's duration there is the 10 s audio's, the video's own packets
    # say 4 s; taking the container's would have read 120 frames as 12 fps
    from bad_videos import ffmpeg

    path = tmp_path / f"long_audio.{ext}"
    video = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=30:duration=4"]
    codec = (
        ["-c:v", "libvpx", "-deadline", "realtime"]
        if ext == "webm"
        else ["-c:v", "libx264", "-preset", "ultrafast"]
    )
    ffmpeg(
        *video,
        "-f",
        "lavfi",
        "-i",
        "sine=duration=10",
        *codec,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        audio,
        str(path),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = probe(path)
    assert (info.num_frames, info.fps, info.duration_s) == (120, 30.0, 4.0)


def test_broken_timing_and_truncated_is_refused(tmp_path):
    # with the timing gone only the index's count is left, and the file holds half of it: refused as a
    # truncated file is, not read as a shorter video and not planned over frames that are not there
    from bad_videos import faststart, set_timescale

    fast = faststart(make_video(tmp_path / "good.mp4", 120), tmp_path / "fast.mp4").read_bytes()
    path = tmp_path / "zero_timescale_truncated.mp4"
    path.write_bytes(set_timescale(fast, 0)[: len(fast) // 2])
    with pytest.raises(VideoError, match=r"truncated\.mp4: truncated or corrupt: .*120"):
        probe(path)


@pytest.mark.parametrize("source", ["generated", "robbery.mp4"])
def test_sparse_reads_seek_and_give_the_frames_of_a_forward_read(shared, tmp_path, source, monkeypatch):
    """Frames far apart are reached by seeking (the packet index, one seek per group): the same frames as a
    forward read, which is itself checked against the ffmpeg CLI above. The generated clip's frames are also
    told by their content; robbery.mp4's timestamps step unevenly (592 and 608 ticks), HEVC with open GOPs."""
    import holmesvau.video_seek as video_seek

    n = 600
    path = make_video(tmp_path / "gen.mp4", n) if source == "generated" else shared(f"videos/{source}")
    seeks = []
    monkeypatch.setattr(video_seek, "decode_groups", _spy(video_seek.decode_groups, seeks))
    monkeypatch.setattr("holmesvau.video.decode_groups", video_seek.decode_groups)
    with VideoReader(path) as r:
        last = r.info.num_frames - 1
        indices = [last, 0, last // 3, last // 3, 2 * last // 3, last // 3 + 1, last - 40]
        frames = r.get_frames(indices)
        near_end = r.get_frames([last - 3, last - 5])  # one group, far from the start: one seek too
        forward = {
            int(i): f for b_idx, b in r.iter_frames(indices + [last - 5, last - 3]) for i, f in zip(b_idx, b)
        }
    third = last // 3  # one read, four groups (a keyframe interval is 30 / 135 frames: last - 40 joins last)
    assert seeks == [[[0], [third, third + 1], [2 * last // 3], [last - 40, last]], "complete",
                     [[last - 5, last - 3]], "complete"]  # fmt: skip
    for row, idx in enumerate(indices):
        np.testing.assert_array_equal(frames[row], forward[idx])
    np.testing.assert_array_equal(near_end, np.stack([forward[last - 3], forward[last - 5]]))
    if source == "generated":
        for frame, idx in zip(frames, indices):
            errors = [np.abs(frame.astype(np.int16) - synthetic_frame(j)).mean() for j in range(n)]
            assert int(np.argmin(errors)) == idx


def _spy(fn, calls: list):
    def wrapper(reader, groups, *args):
        calls.append([g.tolist() for g in groups])
        yield from fn(reader, groups, *args)
        calls.append("complete")  # not abandoned for a forward read

    return wrapper
