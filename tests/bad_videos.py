"""Bad and odd video files for tests: ffmpeg-made clips, MP4 box patching (broken timing), and a suite of inputs
that every tool must refuse with one clear line or read as documented.

MP4 layout used here (ISO/IEC 14496-12): a box is a 32-bit big-endian size (1: a 64-bit size follows the type;
0: to the end of the file), a 4-byte type, then its payload. `mdhd` (media header) holds the track's timescale
(ticks per second) at payload offset 12 (version 0) or 20 (version 1); `stts` (time-to-sample) holds entry_count
at offset 4, then (sample_count, sample_delta) pairs.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True, timeout=60)


def testsrc_video(
    path: Path, seconds: float = 1.0, size: str = "160x120", rate: int = 30, pix_fmt: str = "yuv420p", *extra
) -> Path:
    """An h264 mp4 of ffmpeg's test pattern (frame counter drawn in), constant rate, no B-frames."""
    src = f"testsrc=size={size}:rate={rate}:duration={seconds}"
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-pix_fmt", pix_fmt]
    ffmpeg("-f", "lavfi", "-i", src, *codec, *extra, str(path))
    return path


def boxes(data: bytes, start: int = 0, end: int | None = None, parents: tuple = ()) -> Iterator[tuple]:
    """(path of box types, offset, header size, box size) of every box, depth first."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield (*parents, kind), pos, header, size
        if kind in CONTAINER_BOXES:
            yield from boxes(data, pos + header, pos + size, (*parents, kind))
        pos += size


def find_box(data: bytes, kind: bytes) -> list[tuple[int, int, int]]:
    return [(pos, header, size) for path, pos, header, size in boxes(data) if path[-1] == kind]


def set_timescale(data: bytes, value: int) -> bytes:
    """Every track's `mdhd` timescale := value (0 is invalid: FFmpeg then takes 1 tick per second)."""
    out = bytearray(data)
    found = find_box(data, b"mdhd")
    assert found, "no mdhd box"
    for pos, header, _ in found:
        at = pos + header + (20 if out[pos + header] == 1 else 12)
        out[at : at + 4] = struct.pack(">I", value)
    return bytes(out)


def set_frame_durations(data: bytes, value: int) -> bytes:
    """Every `stts` sample delta := value (0: every frame has the same timestamp)."""
    out = bytearray(data)
    found = find_box(data, b"stts")
    assert found, "no stts box"
    for pos, header, _ in found:
        (count,) = struct.unpack(">I", out[pos + header + 4 : pos + header + 8])
        for i in range(count):
            at = pos + header + 8 + 8 * i + 4
            out[at : at + 4] = struct.pack(">I", value)
    return bytes(out)


def set_declared_size(data: bytes, width: int, height: int) -> bytes:
    """The size the container declares := width x height: in the first sample entry of `stsd` (16-bit fields
    24 bytes into the entry's payload) and in `tkhd` (16.16 fixed point, its last 8 bytes). The coded stream
    keeps its own size."""
    out = bytearray(data)
    pos, header, _ = find_box(data, b"stsd")[0]
    at = pos + header + 8 + 8 + 24  # version/flags + entry_count, the entry's size + type, then 24 bytes
    out[at : at + 4] = struct.pack(">HH", width, height)
    pos, _, size = find_box(data, b"tkhd")[0]
    out[pos + size - 8 : pos + size] = struct.pack(">II", width << 16, height << 16)
    return bytes(out)


def moov_at_end(data: bytes) -> bool:
    kinds = [path[0] for path, *_ in boxes(data) if len(path) == 1]
    return kinds.index(b"moov") > kinds.index(b"mdat")


def faststart(src: Path, dst: Path) -> Path:
    """The same mp4 with its index (moov) before the media data."""
    ffmpeg("-i", str(src), "-c", "copy", "-movflags", "faststart", str(dst))
    return dst


# name -> what the tools must do with it: "error" (refused, one line naming the file) or "ok" (read; docs/inference.md
# documents why). `make_bad_inputs` writes them all into a folder.
DOCUMENTED_OK = {
    "zero_timescale.mp4": "timing taken from the container (frames over its duration)",
    "zero_durations.mp4": "timing taken from the container (frames over its duration)",
    "zero_timestamps.mkv": "all timestamps 0, the duration with them: the codec header's rate",
    "raw_stream.h264": "no container: the rate in the stream header (25 fps if none)",
    "one_frame.mp4": "uniform sampling repeats the only frame, as the original does",
    "declared_0x0.mp4": "the size comes from the coded stream, not the container's declaration",
    "odd_size_161x121.mp4": "any size: one 448 px tile per frame",
    "very_wide_2048x16.mp4": "any aspect: one 448 px tile per frame",
    "html_<img src=x onerror=alert(1)>_&amp;.mp4": "a name is only a name (escaped wherever it is shown)",
    os.fsdecode(b"non_utf8_ok_\xff.mp4"): "a name is only a name (JSON escapes what UTF-8 cannot hold)",
}


def make_bad_inputs(folder: Path, clip_seconds: float = 1.0) -> dict[str, str]:
    """Write the bad-input suite into `folder`; returns {file name: "error" | "ok"} (names relative to folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = testsrc_video(folder / ".base.mp4", clip_seconds)
    data = good.read_bytes()
    assert moov_at_end(data)
    fast = faststart(good, folder / ".base_fast.mp4").read_bytes()
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {
        "empty.mp4": b"",
        "text.mp4": b"this is a text file, not a video\n" * 20,
        "random_bytes.mp4": rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
        "truncated_index_at_end.mp4": data[: len(data) // 2],  # the index (moov) is cut off
        "truncated_faststart.mp4": fast[: len(fast) // 2],  # index intact, half the frames missing
        "index_only.mp4": b"".join(data[p : p + s] for path, p, _, s in boxes(data) if path[0] != b"mdat"),
        "huge_declared_size.mp4": _huge_mdat(data),
        "zero_timescale.mp4": set_timescale(data, 0),
        "zero_durations.mp4": set_frame_durations(data, 0),
        "ftyp_only.mp4": data[:32],
        "corrupt_payload.mp4": _corrupt_payload(data, rng),
        "declared_0x0.mp4": set_declared_size(data, 0, 0),
        "timescale_1e9.mp4": set_timescale(data, 10**9),  # 1.95 million fps, nothing to correct it: refused
    }
    files["html_<img src=x onerror=alert(1)>_&amp;.mp4"] = data
    files[os.fsdecode(b"non_utf8_ok_\xff.mp4")] = data
    files["html_<script>alert(1)<script>.mp4"] = b"<html><script>alert(1)</script></html>\n"
    for name, content in files.items():
        (folder / name).write_bytes(content)
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(folder / "audio_only.mp4"))
    ffmpeg("-i", str(good), "-frames:v", "1", str(folder / "image.png"))
    os.replace(folder / "image.png", folder / "image_renamed.mp4")
    ffmpeg(
        "-i",
        str(good),
        "-c:v",
        "copy",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        str(folder / "raw_stream.h264"),
    )
    ffmpeg("-i", str(good), "-c", "copy", "-bsf:v", "setts=ts=0", str(folder / "zero_timestamps.mkv"))
    testsrc_video(folder / "one_frame.mp4", 1.0, "160x120", 30, "yuv420p", "-frames:v", "1")
    testsrc_video(folder / "odd_size_161x121.mp4", clip_seconds, "161x121", 30, "yuv444p")
    testsrc_video(folder / "very_wide_2048x16.mp4", clip_seconds, "2048x16")
    os.mkfifo(folder / "fifo.mp4")
    (folder / "folder.mp4").mkdir()
    os.symlink(folder / "does_not_exist.mp4", folder / "dangling_link.mp4")
    os.symlink("loop_b.mp4", folder / "loop_a.mp4")  # unreadable even for root: ELOOP
    os.symlink("loop_a.mp4", folder / "loop_b.mp4")
    (folder / "not_a_folder").write_bytes(b"x")  # not_a_folder/clip.mp4: ENOTDIR, also unreadable for root
    non_utf8 = os.fsdecode(b"non_utf8_\xff\xfe.mp4")
    (folder / non_utf8).write_bytes(b"\x00" * 100)
    (folder / "line\nbreak.mp4").write_bytes(b"not a video\n")
    good.unlink()
    (folder / ".base_fast.mp4").unlink()
    names = [p.name for p in folder.iterdir()]
    names += ["missing.mp4", "not_a_folder/clip.mp4"]
    return {n: ("ok" if n in DOCUMENTED_OK else "error") for n in sorted(names) if n != "not_a_folder"}


def _huge_mdat(data: bytes) -> bytes:
    """The media box declares 4 GiB (its 32-bit maximum): far past the end of the file and the index after it."""
    (pos, _, _) = find_box(data, b"mdat")[0]
    return data[:pos] + struct.pack(">I", 0xFFFFFFFF) + data[pos + 4 :]


def _corrupt_payload(data: bytes, rng: np.random.Generator) -> bytes:
    """Random bytes over the whole media payload; the header and index stay intact."""
    (pos, header, size) = find_box(data, b"mdat")[0]
    out = bytearray(data)
    out[pos + header : pos + size] = rng.integers(0, 256, size - header, dtype=np.uint8).tobytes()
    return bytes(out)
