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


def _pixels(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def _rows(box, height: int) -> tuple[float, float]:
    """A display box (origin bottom left) -> its (top, bottom) pixel rows (origin top left)."""
    return height - box.y1, height - box.y0


def test_curve_pixels_follow_the_scores():
    """The red curve's pixels sit at the height of each score: 0.9 on the first half of the video, 0.2 on the
    second (an oracle from the axes box alone: row = top + (1 - score / 1.05) x height, the plot's 0-1.05 range)."""
    idx = np.arange(0, 320, 16)
    scores = np.where(idx < 160, 0.9, 0.2)
    fig = anomaly_figure((idx, scores, []), frames=False, fps=30)
    img = _pixels(fig)
    h = img.shape[0]
    ax = fig.axes[0]
    top, bottom = _rows(ax.get_window_extent(), h)
    legend = ax.get_legend().get_window_extent()
    legend_top, legend_bottom = _rows(legend, h)
    red = np.abs(img.astype(int) - (214, 39, 40)).sum(-1) < 40  # tab:red, the line (the fill is pale)
    to_col = lambda t: int(round(ax.transData.transform((t, 0))[0]))  # noqa: E731 - x position of a time
    for t0, t1, score in ((0.5, 4.5, 0.9), (6.0, 9.5, 0.2)):
        want = top + (1 - score / 1.05) * (bottom - top)
        for col in range(to_col(t0), to_col(t1), 7):
            in_legend = legend.x0 <= col <= legend.x1
            rows = [
                r for r in np.flatnonzero(red[:, col]) if not (in_legend and legend_top <= r <= legend_bottom)
            ]
            assert rows and abs(np.median(rows) - want) <= 3, (t0, col, rows[:5], want)


def test_strip_shows_the_frames_the_analysis_kept_in_order():
    """A result that carries decoded frames (positions 0 and 2 of 4) draws them, in order, with their positions'
    labels, without reading the (missing) video; given frames replace them."""
    colours = {0: (255, 0, 0), 2: (0, 0, 255)}
    r = _result()
    r.frames = {p: np.full((60, 80, 3), c, np.uint8) for p, c in colours.items()}
    fig = anomaly_figure(r)
    img = _pixels(fig)
    strip = fig.axes[1:]
    assert [a.get_title() for a in strip] == ["1: 0.5s", "3: 4.3s"]
    for a, c in zip(strip, colours.values()):
        b = a.get_window_extent()
        centre = img[img.shape[0] - int((b.y0 + b.y1) / 2), int((b.x0 + b.x1) / 2)]
        assert tuple(int(v) for v in centre) == c
    given = anomaly_figure(r, frames=np.zeros((4, 6, 8, 3), np.uint8))
    assert len(given.axes) == 5  # one per sampled frame


def test_analysis_keeps_at_most_twelve_decoded_frames_and_plots_decode_none(tiny_lm, tmp_path, monkeypatch):
    """analyze() keeps the frames it decoded (evenly spread, at most 12 of 20) and they are the frames at those
    indices (the synthetic video's frames encode their index); the plot then decodes nothing."""
    import holmesvau.video
    from holmesvau.frame_plan import SamplingConfig
    from holmesvau.pipeline import HolmesVAU
    from holmesvau.testing.synthetic import make_video, synthetic_frame

    video = make_video(tmp_path / "v.mp4", 40)
    r = HolmesVAU(tiny_lm, None).analyze(
        video, "q", SamplingConfig(select_frames=20), max_new_tokens=1, progress=False
    )
    assert sorted(r.frames) == [0, 2, 3, 5, 7, 9, 10, 12, 14, 16, 17, 19]  # round(k * 19 / 11), k < 12
    for p, frame in r.frames.items():
        errors = [np.abs(frame.astype(np.int16) - synthetic_frame(j)).mean() for j in range(40)]
        assert int(np.argmin(errors)) == r.frame_indices[p]
    assert "frames" not in r.to_dict()

    def no_decoding(*a, **kw):
        raise AssertionError("decoded again")

    monkeypatch.setattr(holmesvau.video, "read_frames", no_decoding)
    fig = anomaly_figure(r)
    assert len(fig.axes) == 13
