"""Generated test videos: a moving square over a gradient (frame number in a corner), written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_frame(index: int, width: int = 160, height: int = 120, bright: bool = False) -> np.ndarray:
    """One RGB uint8 frame (H, W, 3): gradient background, a square that moves with `index`.

    `bright=True` makes the frame a visibly different ("anomalous") scene: used to plant events in generated videos.
    """
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = ((x + index * 3) % 256).astype(np.uint8)
    frame[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    frame[..., 2] = 96 if not bright else 255
    side = max(8, min(width, height) // 5)
    cx = (index * 4) % max(1, width - side)
    cy = (index * 2) % max(1, height - side)
    frame[cy : cy + side, cx : cx + side] = (255, 255, 255) if not bright else (255, 0, 0)
    return frame


def make_video(
    path: str | Path,
    num_frames: int,
    fps: float = 30.0,
    width: int = 160,
    height: int = 120,
    codec: str = "libx264",
    bright_ranges: list[tuple[int, int]] | None = None,
) -> Path:
    """Write a video of `num_frames` frames at `fps`; frames inside any [start, end) of `bright_ranges` are bright.

    Every frame is a keyframe-friendly, constant-rate frame so frame counts are exact.
    """
    from fractions import Fraction

    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bright_ranges = bright_ranges or []
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        try:
            stream = container.add_stream(codec, rate=rate)
        except Exception:  # codec missing in this FFmpeg build
            stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if stream.codec_context.name == "libx264":
            stream.options = {"preset": "ultrafast", "g": "30", "bf": "0"}
        for i in range(num_frames):
            bright = any(s <= i < e for s, e in bright_ranges)
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, width, height, bright), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
