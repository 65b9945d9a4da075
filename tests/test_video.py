"""holmesvau.video: shared clips (h264, HEVC, VFR) on both backends, generated clips, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from holmesvau.synthetic import make_video, synthetic_frame
from holmesvau.video import (
    VideoError,
    VideoReader,
    dense_indices,
    probe,
    read_frames,
    uniform_indices,
)

# name, frames, fps, width, height (as the shared README states them)
CLIPS = [
    ("car_accident.mp4", 120, 30.0, 640, 480),
    ("earthquake.mp4", 411, 30.07, 528, 480),
    ("robbery.mp4", 2730, 27.0, 852, 480),
]


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("name,frames,fps,width,height", CLIPS)
def test_probe_shared_clips(shared, backend, name, frames, fps, width, height):
    info = probe(shared(f"videos/{name}"), backend=backend)
    assert info.backend == backend
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
def test_frames_agree_between_backends_and_iteration(shared, name, indices):
    path = shared(f"videos/{name}")
    with VideoReader(path, backend="decord") as r:
        by_decord = r.get_frames(indices)
        batches = list(r.iter_frames(indices, batch_size=2))
    by_pyav = read_frames(path, indices, backend="pyav")
    assert by_decord.shape == by_pyav.shape == (len(indices), r.info.height, r.info.width, 3)
    assert by_decord.dtype == np.uint8
    # same FFmpeg decoder underneath: equal up to colour-conversion rounding
    assert np.abs(by_decord.astype(np.int16) - by_pyav).mean() < 1.0
    order = np.unique(indices)
    assert np.concatenate([i for i, _ in batches]).tolist() == order.tolist()
    assert all(len(i) <= 2 for i, _ in batches)
    iterated = np.concatenate([f for _, f in batches])
    for row, idx in enumerate(indices):
        np.testing.assert_array_equal(by_decord[row], iterated[np.searchsorted(order, idx)])
    assert not np.array_equal(by_decord[0], by_decord[1])  # distinct frames really differ


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_generated_video_frames_match_their_index(tmp_path, backend):
    path = make_video(tmp_path / "gen.mp4", 70)
    indices = [69, 0, 33, 33, 12]
    frames = read_frames(path, indices, backend=backend)
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


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_bad_inputs_raise_video_error_naming_the_file(shared, tmp_path, backend):
    names = _bad_inputs(tmp_path, shared("videos/car_accident.mp4"))
    for name in names:
        path = tmp_path / name
        with pytest.raises(VideoError, match=name):
            with VideoReader(path, backend=backend) as r:
                r.get_frames(list(range(r.info.num_frames)))
