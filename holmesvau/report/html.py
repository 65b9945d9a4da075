"""`report.html`: one self-contained page (inline CSS, inline SVG curve, base64 JPEG thumbnails; no script, no
external asset), so it opens from disk, in a mail attachment or in an iframe's srcdoc."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import numpy as np

from .schema import TASKS

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;
padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}.warn{background:#fff3cd;border:1px solid #e0b84c;padding:8px 12px;font-weight:600}
.strip{display:flex;flex-wrap:wrap;gap:6px;margin:8px 0}.strip figure{margin:0;text-align:center;font-size:.75em;
color:#555}.strip img{display:block;height:90px;border-radius:3px}
dl.answers dt{font-weight:600;margin-top:8px}dl.answers dd{margin:2px 0 0 0;white-space:pre-wrap}
table.clips{border-collapse:collapse;margin-top:8px;width:100%}table.clips td,table.clips th{border:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top;font-size:.92em}.event{border-left:4px solid #d62728;
padding-left:12px;margin-top:18px}.muted{color:#777}svg text{font-size:11px;fill:#444}
"""


def fmt_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s past an hour)."""
    seconds = max(0.0, float(seconds))
    m, s = divmod(seconds, 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


def _ticks(end: float, n: int = 6) -> list[float]:
    """About `n` round tick values in [0, end]."""
    if end <= 0:
        return [0.0]
    raw = end / n
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(end / step + 1e-9) + 1)]


def anomaly_svg(report: dict, width: int = 960, height: int = 240) -> str:
    """The anomaly curve (score vs seconds) with event spans, threshold and video-level sampled frames."""
    fps = float(report["video"]["fps"])
    duration = float(report["video"]["duration_s"]) or 1.0
    sc = report.get("scores") or {}
    idx, vals = sc.get("dense_frame_indices") or [], sc.get("values") or []
    stride = int(sc.get("stride") or 1)
    left, right, top, bottom = 44, 12, 12, 30
    pw, ph = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + pw * min(max(t / duration, 0.0), 1.0)

    def y(v: float) -> float:
        return top + ph * (1.0 - min(max(v, 0.0), 1.0))

    parts = [
        f'<svg id="anomaly-curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="anomaly score over time">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for k, ev in enumerate(report.get("events") or []):
        x0, x1 = x(ev["start_s"]), x(ev["end_s"])
        parts.append(
            f'<rect class="event-span" data-event="{k + 1}" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{ph}" fill="#d62728" fill-opacity="0.15"><title>Event {k + 1}: {fmt_time(ev["start_s"])} – '
            f"{fmt_time(ev['end_s'])}, peak {ev['peak_score']:.2f}</title></rect>"
            f'<text x="{(x0 + x1) / 2:.1f}" y="{top + 12}" text-anchor="middle">E{k + 1}</text>'
        )
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for t in _ticks(duration):
        parts.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#888"/>'
            f'<text x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}s</text>'
        )
    if vals:
        # Each dense score is drawn over the frames it covers: [i*stride, (i+1)*stride).
        pts = [(x((f + stride / 2) / fps), y(v)) for f, v in zip(idx, vals)]
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        area = f"{pts[0][0]:.1f},{y(0):.1f} {line} {pts[-1][0]:.1f},{y(0):.1f}"
        parts.append(f'<polygon points="{area}" fill="#d62728" fill-opacity="0.12"/>')
        parts.append(
            f'<polyline class="score-curve" points="{line}" fill="none" stroke="#d62728" stroke-width="1.8"/>'
        )
    else:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no anomaly scores</text>'
        )
    thr = (report.get("localization") or {}).get("threshold")
    if thr is not None:
        parts.append(
            f'<line class="threshold" x1="{left}" x2="{left + pw}" y1="{y(thr):.1f}" y2="{y(thr):.1f}" '
            f'stroke="#555" stroke-dasharray="5,4"><title>threshold {thr:.3f}</title></line>'
        )
    for f in (report.get("video_sampling") or {}).get("frame_indices") or []:
        parts.append(
            f'<line class="sampled" x1="{x(f / fps):.1f}" x2="{x(f / fps):.1f}" y1="{top + ph - 8}" '
            f'y2="{top + ph}" stroke="#1f77b4" stroke-width="2"/>'
        )
    parts.append(f'<text x="{left + pw}" y="{height - 2}" text-anchor="end">time (s)</text></svg>')
    return "".join(parts)


def _strip(thumbs: Sequence[tuple[int, np.ndarray]], fps: float) -> str:
    from holmesvau.preprocess import encode_jpeg

    if not thumbs:
        return ""
    figs = "".join(
        f'<figure><img alt="frame {f}" src="data:image/jpeg;base64,{base64.b64encode(encode_jpeg(img)).decode("ascii")}">'
        f"<figcaption>{fmt_time(f / fps)} · #{f}</figcaption></figure>"
        for f, img in thumbs
    )
    return f'<div class="strip">{figs}</div>'


def _answers(answers: dict) -> str:
    rows = "".join(
        f"<dt>{html.escape(k.capitalize())}</dt><dd>{html.escape(answers.get(k, ''))}</dd>" for k in TASKS
    )
    return f'<dl class="answers">{rows}</dl>'


def render_html(report: dict, thumbnails: dict[str, Sequence[tuple[int, np.ndarray]]] | None = None) -> str:
    """The whole page for a report dict (`Report.data`) and its thumbnails (`Report.thumbnails`)."""
    thumbnails = thumbnails or {}
    v = report["video"]
    fps = float(v["fps"])
    esc = html.escape
    model = report.get("model") or {}
    loc = report.get("localization") or {}
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Anomaly report · {esc(v['path'])}</title><style>{_CSS}</style></head><body>",
        "<h1>HolmesVAU anomaly report</h1>",
        f'<p class="meta">{esc(v["path"])} · {fmt_time(v["duration_s"])} · {v["n_frames"]} frames at '
        f"{fps:g} fps · model {esc(str(model.get('name', '?')))} · schema {esc(report['schema_version'])}</p>",
    ]
    if model.get("random_weights"):
        out.append('<p class="warn">RANDOM-WEIGHT TEST MODEL — outputs are meaningless.</p>')
    out.append("<h2>Anomaly curve</h2>" + anomaly_svg(report))
    thr = loc.get("threshold")
    if thr is not None:
        out.append(
            f'<p class="meta">threshold {thr:.3f} ({esc(str(loc.get("threshold_source", "")))}), smoothing '
            f"{loc.get('smooth')} samples, merge gap {loc.get('merge_gap_s')} s, minimum duration "
            f"{loc.get('min_duration_s')} s; blue ticks: frames sampled for the video-level answers.</p>"
        )
    sampling = report.get("video_sampling") or {}
    out.append(f'<h2>Whole video</h2><p class="meta">{esc(str(sampling.get("method", "")))} sampling</p>')
    out.append(_strip(thumbnails.get("video", []), fps) + _answers(report["video_answers"]))
    events = report.get("events") or []
    out.append(f"<h2>Events ({len(events)})</h2>")
    if not events:
        out.append('<p class="muted">No anomalous event: the anomaly score stays below the threshold.</p>')
    for k, ev in enumerate(events):
        out.append(
            f'<section class="event" id="event-{k + 1}"><h3>Event {k + 1} · {fmt_time(ev["start_s"])} – '
            f"{fmt_time(ev['end_s'])} · peak score {ev['peak_score']:.2f}</h3>"
        )
        out.append(_strip(thumbnails.get(f"event{k}", []), fps) + _answers(ev["answers"]))
        if ev.get("clips"):
            rows = "".join(
                f"<tr><td>{fmt_time(c['start_s'])} – {fmt_time(c['end_s'])}</td><td>{esc(c['caption'])}</td></tr>"
                for c in ev["clips"]
            )
            out.append(f'<table class="clips"><tr><th>Clip</th><th>Caption</th></tr>{rows}</table>')
        out.append("</section>")
    timings = ", ".join(f"{esc(k)} {t:.2f} s" for k, t in (report.get("timings") or {}).items())
    out.append(f'<h2>Timings</h2><p class="meta">{timings}</p></body></html>')
    return "\n".join(out)
