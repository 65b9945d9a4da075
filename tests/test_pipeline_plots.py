"""The anomaly-curve plot from arrays, results and their JSON, with and without the frame strip."""

import numpy as np
from PIL import Image

from holmesvau.anomaly_curve import anomaly_figure, save_anomaly_curve
from holmesvau.pipeline import AnalysisResult


def _result(dense=True):
    idx = list(range(0, 320, 16))
    scores = [float(s) for s in np.clip(np.sin(np.arange(len(idx)) / 3) ** 2, 0, 1)]
    return AnalysisResult(
        answer="a", prompt="q", frame_indices=[16, 64, 128, 304], timestamps_s=[0.5, 2.1, 4.3, 10.1],
        dense_frame_indices=idx if dense else None, dense_scores=scores if dense else None,
        sampling="ats" if dense else "uniform", video={"path": "missing.mp4", "fps": 30.0, "num_frames": 320},
    )  # fmt: skip


def test_arrays_result_and_dict(tmp_path):
    frames = np.zeros((4, 60, 80, 3), dtype=np.uint8)
    outs = [
        save_anomaly_curve(
            (np.arange(0, 160, 16), np.linspace(0, 1, 10), [0, 48, 96]), tmp_path / "a.png", fps=30
        ),
        save_anomaly_curve(_result(), tmp_path / "b.png", frames=frames),
        save_anomaly_curve(_result().to_dict(), tmp_path / "sub" / "c.png"),  # video missing: no strip
        save_anomaly_curve(_result(dense=False), tmp_path / "d.png", frames=frames),
    ]
    sizes = [Image.open(p).size for p in outs]
    assert all(w > 300 and h > 100 for w, h in sizes)
    assert sizes[1][1] > sizes[2][1]  # the strip adds a row


def test_figure_marks_every_sampled_frame():
    fig = anomaly_figure(_result(), frames=False)
    ax = fig.axes[0]
    xs = sorted(
        round(line.get_xdata()[0], 3) for line in ax.lines if line.get_xdata()[0] == line.get_xdata()[-1]
    )
    assert xs == [round(f / 30, 3) for f in (16, 64, 128, 304)]
