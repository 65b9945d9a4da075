"""One decoder for every path, on hostile and odd files (issue 23): a resolution change mid-file, a playlist that
names a local file, two video streams, a cover picture first, rotation, variable frame rate, widths 1-72 px, and a
file that grows to 8192x8192 frames. Oracles: the ffmpeg command line (frames with `-map 0:V:0`: the first video
stream that is not an attached picture, autorotated; presentation times from `showinfo`), and a FIFO that records
whether anyone opened it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_videos import ffmpeg

from holmesvau.ats import extract_dense_features
from holmesvau.preprocess import frames_to_pixel_values
from holmesvau.video import VideoReader, read_frames
from holmesvau.video_open import DecodeLimits, VideoError, decode_limits, open_container

REPO = Path(__file__).resolve().parents[1]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"]


def _src(kind: str, size: str, rate: int, seconds: float) -> list[str]:
    sep = ":" if "=" in kind else "="
    return ["-f", "lavfi", "-i", f"{kind}{sep}size={size}:rate={rate}:duration={seconds}"]


def resolution_change(path: Path) -> Path:
    """Two MPEG-TS pieces of different sizes, concatenated (160x120 for 1 s, then 320x240 from 1 s)."""
    a, b = path.with_suffix(".a.ts"), path.with_suffix(".b.ts")
    ffmpeg(*_src("testsrc", "160x120", 30, 1), *X264, "-f", "mpegts", str(a))
    ffmpeg(*_src("testsrc2", "320x240", 30, 1), *X264, "-output_ts_offset", "1", "-f", "mpegts", str(b))
    path.write_bytes(a.read_bytes() + b.read_bytes())
    return path


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    """Small files, each odd in one way."""
    d = tmp_path_factory.mktemp("odd")
    files = {"resolution_change.ts": resolution_change(d / "resolution_change.ts")}
    files["two_streams.mkv"] = d / "two_streams.mkv"  # stream 0: the test pattern; stream 1: plain blue
    ffmpeg(*_src("testsrc", "64x48", 10, 2), *_src("color=c=blue", "64x48", 10, 2), "-map", "0", "-map", "1",
           *X264, "-pix_fmt", "yuv444p", str(files["two_streams.mkv"]))  # fmt: skip
    files["cover_first.mkv"] = d / "cover_first.mkv"  # a one-frame PNG track before the video track
    ffmpeg(*_src("testsrc2", "32x32", 1, 1), *_src("testsrc", "64x48", 10, 2), "-map", "0", "-map", "1",
           "-c:v:0", "png", "-c:v:1", "libx264", "-preset", "ultrafast", "-pix_fmt:v:1", "yuv444p",
           str(files["cover_first.mkv"]))  # fmt: skip
    plain = d / "plain.mp4"
    ffmpeg(*_src("testsrc", "64x48", 10, 2), *X264, "-pix_fmt", "yuv444p", str(plain))
    files["rotated_90.mp4"] = d / "rotated_90.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(files["rotated_90.mp4"]))
    files["vfr.mp4"] = d / "vfr.mp4"  # 25 fps for 10 frames, then 5 fps
    ffmpeg(*_src("testsrc", "64x48", 25, 1.2), "-vf", "setpts='if(lt(N,10),N*0.04,0.4+(N-10)*0.2)/TB'",
           "-fps_mode", "passthrough", *X264, "-pix_fmt", "yuv444p", str(files["vfr.mp4"]))  # fmt: skip
    for w in (1, 2, 7, 24, 48, 72):
        files[f"width_{w}.mp4"] = d / f"width_{w}.mp4"
        ffmpeg(*_src("testsrc", f"{w}x32", 10, 2), *X264, "-pix_fmt", "yuv444p", str(files[f"width_{w}.mp4"]))
    return files


# the stream the rule must pick, where ffmpeg's `0:V:0` (first not flagged attached_pic) is not it: an MKV's
# PNG track carries no flag; it is a picture beside a video track, so the video track (0:v:1) is read
STREAM = {"cover_first.mkv": "0:v:1"}


def _oracle(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Frames and presentation times (from the first frame) as the ffmpeg command line decodes the first video
    stream that is not an attached picture, rotated as its metadata says; frames scaled to the first size."""
    import imageio_ffmpeg

    exe = imageio_ffmpeg.get_ffmpeg_exe()
    base = [
        exe,
        "-hide_banner",
        "-i",
        str(path),
        "-map",
        STREAM.get(path.name, "0:V:0"),
        "-fps_mode",
        "passthrough",
    ]
    log = subprocess.run(
        [*base, "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True, timeout=60
    )
    infos = re.findall(r"pts_time:(\S+).*? s:(\d+)x(\d+)", log.stderr)
    times = [float(t) for t, _, _ in infos]
    w, h = int(infos[0][1]), int(infos[0][2])
    raw = subprocess.run([*base, "-vf", f"scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    frames = list(np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3))
    return frames, [t - times[0] for t in times]


CASES = ["two_streams.mkv", "cover_first.mkv", "rotated_90.mp4", "vfr.mp4"] + [
    f"width_{w}.mp4" for w in (1, 2, 7, 24, 48, 72)
]


@pytest.mark.parametrize("name", CASES)
def test_scores_and_frames_come_from_the_same_stream_at_its_presentation_times(odd, name):
    """Documented success for every case: the MLLM's frames and the dense pass's pixel values are the ffmpeg
    command line's frames of the same stream (rotation applied), and each frame's time is its pts."""
    path = odd[name]
    want, want_t = _oracle(path)
    with VideoReader(path) as r:
        n = r.info.num_frames
        idx = list(range(n))
        frames = r.get_frames(idx)
        times = [r.times_s[i] for i in idx]
    assert n == len(want), (name, n, len(want))
    assert frames.shape[1:] == want[0].shape, (name, frames.shape, want[0].shape)
    for i in idx:
        assert np.abs(frames[i].astype(np.int16) - want[i]).mean() < 2.0, (name, i)
    np.testing.assert_allclose(times, want_t, atol=1e-3)
    dense = extract_dense_features(path, lambda pv: pv.mean(dim=(2, 3)), stride=2, batch_size=3,
                                   keep_indices=range(0, n, 2), progress=False)  # fmt: skip
    expected = frames_to_pixel_values(np.stack(want[::2]))
    torch.testing.assert_close(dense.features, expected.mean(dim=(2, 3)), atol=0.05, rtol=0)
    np.testing.assert_allclose(dense.times_s, want_t[::2], atol=1e-3)


def test_a_file_holding_only_a_flagged_cover_is_refused(tmp_path):
    path = tmp_path / "only_cover.mp4"  # mp4 keeps the attached_pic flag: a file of a cover alone is refused
    ffmpeg(*_src("testsrc2", "32x32", 1, 1), "-c:v", "png", "-disposition:v:0", "attached_pic", str(path))
    with pytest.raises(VideoError, match=r"only_cover\.mp4: .*attached picture"):
        VideoReader(path)


def test_resolution_change_is_scaled_to_the_first_size(odd):
    path = odd["resolution_change.ts"]
    with pytest.warns(UserWarning, match=r"resolution_change\.ts: frame size changes from 160x120 to 320x240 at "
                      r"frame 30; such frames are scaled to 160x120"):  # fmt: skip
        frames = read_frames(path, [0, 29, 30, 59])
    want, _ = _oracle(path)  # ffmpeg scaled to the first size too
    for got, i in zip(frames, [0, 29, 30, 59]):
        assert (
            got.shape == (120, 160, 3) and np.abs(got.astype(np.int16) - want[i]).mean() < 8.0
        )  # filters differ


def test_resolution_change_through_inference_with_and_without_ats(odd, tiny_model_dir, tmp_path):
    """inference.py answers (both runs at once, each within the time limit): ATS scores 15 dense frames."""
    import json

    from holmesvau.testing import make_random_scorer

    scorer = make_random_scorer(tmp_path / "scorer.pth", input_dim=64)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    runs = {}
    for ats in (True, False):
        ats_args = ["--scorer", str(scorer), "--dense-stride", "4"] if ats else ["--no-ats"]
        out = tmp_path / f"result_{ats}.json"
        cmd = [sys.executable, "inference.py", "--video", str(odd["resolution_change.ts"]), "--model",
               str(tiny_model_dir), *ats_args, "--select-frames", "4", "--max-new-tokens", "2", "--device", "cpu",
               "--quiet", "--output", str(out)]  # fmt: skip
        runs[ats] = (subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True), out)
    for ats, (proc, out) in runs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        result = json.loads(out.read_text())
        assert result["sampling"] == ("ats" if ats else "uniform") and len(result["frame_indices"]) == 4
        assert len(result["dense_scores"] or []) == (15 if ats else 0)  # 60 frames at stride 4


# -- the demo ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_handler(tiny_lm, tmp_path_factory):
    import holmesvau.demo as demo
    from holmesvau.ats import URDMU
    from holmesvau.pipeline import HolmesVAU

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("uploads")
    vau = HolmesVAU(tiny_lm, URDMU(input_size=tiny_lm.vision_hidden_size).eval())
    cfg = demo.DemoConfig(max_new_tokens=2, decode_stall_s=10.0)
    return demo.make_handler(vau, cfg, root), root, cfg


def _ask(handler, path: Path, ats: bool = True) -> tuple[str, float]:
    t0 = time.monotonic()
    status, *_ = handler(str(path), None, "What happens?", 4, ats, "Answer the prompt", lambda *a, **k: None)
    return status, time.monotonic() - t0


def test_demo_answers_the_resolution_change_and_the_next_request(odd, demo_handler):
    handle, root, cfg = demo_handler
    upload = root / "res.mp4"  # uploaded as .mp4, as in the issue
    upload.write_bytes(odd["resolution_change.ts"].read_bytes())
    status, seconds = _ask(handle, upload)
    assert status.startswith("Done · answered"), status
    assert seconds < 3 * cfg.decode_stall_s
    clip = root / "next.mp4"
    clip.write_bytes(odd["vfr.mp4"].read_bytes())
    status, _ = _ask(handle, clip, ats=False)
    assert status.startswith("Done · answered"), status


def test_a_decoder_that_stalls_is_stopped_naming_the_file(odd, monkeypatch):
    """No progress for `stall_s`: an error naming the file, in about that time (the stuck thread is left)."""
    import holmesvau.video as video

    release = threading.Event()

    class Stuck:
        def __init__(self, container):
            self.c = container

        def __getattr__(self, name):
            return getattr(self.c, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.c.close()

        def demux(self, stream):
            release.wait(30)  # as a decoder spinning inside FFmpeg
            return iter(())

    reader = VideoReader(odd["vfr.mp4"], limits=DecodeLimits(stall_s=0.5))
    real = video.open_container
    monkeypatch.setattr(video, "open_container", lambda *a, **k: Stuck(real(*a, **k)))
    t0 = time.monotonic()
    with pytest.raises(VideoError, match=r"vfr\.mp4: decoding made no progress for 0\.5 s"):
        reader.get_frames([3])
    release.set()
    assert time.monotonic() - t0 < 5


def _playlist(names: Path) -> bytes:
    return (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
            + os.fsencode(names) + b"\n#EXT-X-ENDLIST\n")  # fmt: skip


def test_a_playlist_upload_is_refused_and_the_file_it_names_never_opened(odd, demo_handler, tmp_path):
    import av

    handle, root, _ = demo_handler
    fifo = tmp_path / "secret.ts"
    os.mkfifo(fifo)
    opened = threading.Event()

    def watch():  # returns once someone opens the FIFO for reading
        os.close(os.open(fifo, os.O_WRONLY))
        opened.set()

    threading.Thread(target=watch, daemon=True).start()
    ts = odd["resolution_change.ts"].read_bytes()
    for name, data in (("list.m3u8", _playlist(fifo)), ("ts_with_playlist_head.mp4", _playlist(fifo) + ts)):
        upload = root / name
        upload.write_bytes(data)
        status, _ = _ask(handle, upload)
        assert status.startswith("**Error:**") and name in status and "playlist" in status, status
        if name.endswith(".m3u8"):  # the demuxer allow-list alone (no head check) refuses HLS too
            with pytest.raises(av.error.FFmpegError):
                open_container(upload).close()
    time.sleep(0.3)
    assert not opened.is_set()
    # the oracle sees an open: FFmpeg left to itself follows the playlist to the FIFO
    with pytest.raises(av.error.FFmpegError):
        av.open(str(root / "list.m3u8")).close()
    assert opened.wait(5)


def _vm_hwm_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def test_frames_growing_to_8192_are_refused_before_memory_grows(demo_handler, tmp_path):
    """320x240 frames, then 8192x8192 ones (the probe sees 320x240): refused at the first large frame, by a
    child process capped at the demo's stated decoding memory; the server's own peak memory stays put."""
    handle, root, cfg = demo_handler
    small, big = tmp_path / "small.ts", tmp_path / "big.ts"
    ffmpeg(*_src("testsrc", "320x240", 30, 1), *X264, "-f", "mpegts", str(small))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=8192x8192:rate=30", "-frames:v", "2", *X264,
           "-output_ts_offset", "1", "-f", "mpegts", str(big))  # fmt: skip
    upload = root / "grows.mp4"
    upload.write_bytes(small.read_bytes() + big.read_bytes())
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from the current RSS
    before = _vm_hwm_mb()
    status, _ = _ask(handle, upload)
    assert "grows.mp4" in status and "frame 30 is 8192x8192, over the limit of 8294400 pixels" in status, (
        status
    )
    assert _vm_hwm_mb() - before < 100  # one 8192x8192 RGB frame alone is 192 MB
    # in the process: the same refusal, and the decoder allocates no such frame (peak well under one frame)
    Path("/proc/self/clear_refs").write_text("5")
    before = _vm_hwm_mb()
    with pytest.raises(VideoError, match=r"grows\.mp4: frame 30 is 8192x8192"):
        with decode_limits(cfg.limits()):
            read_frames(upload, [0, 31])
    assert _vm_hwm_mb() - before < 100


def test_the_demo_decoding_child_is_held_to_its_memory_cap(odd):
    """The cap is real: a child given less address space than Python needs fails, and the caller gets one
    error naming the file (the server is untouched); with the default cap the same file passes."""
    from holmesvau.video_guard import check_in_child

    path = odd["vfr.mp4"]
    with pytest.raises(VideoError, match=r"vfr\.mp4: decoding it needs more than the memory cap of 64 MB"):
        check_in_child(path, DecodeLimits(), memory_mb=64)
    assert check_in_child(path, DecodeLimits()).num_frames == 30


@pytest.mark.parametrize("method", ["pyav", "reencode"])
def test_a_cut_segment_is_read_in_the_orientation_of_its_source(odd, tmp_path, method):
    """HIVAU cutting (PyAV re-encode, or the ffmpeg command line) keeps what the reader sees: rotated frames."""
    from holmesvau.data.segments import SegmentJob, cut_segment

    src = odd["rotated_90.mp4"]  # 64x48 coded, shown 48x64
    res = cut_segment(SegmentJob(str(src), str(tmp_path / f"{method}.mp4"), 5, 10, 10.0), method=method)
    assert res.status == "done", res.reason
    cut, whole = read_frames(res.output, [0, 9]), read_frames(src, [5, 14])
    assert cut.shape == whole.shape == (2, 64, 48, 3)
    err = np.abs(cut.astype(np.int16) - whole).mean()  # the same frames, re-encoded (yuv420p: colour blurs)
    assert err < 20 and err < np.abs(cut.astype(np.int16) - whole[:, ::-1, ::-1]).mean() / 2
