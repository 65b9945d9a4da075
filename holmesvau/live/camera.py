"""One camera of the watcher: its source and reader thread, online window, events, clip ring and output files.

The reader thread decodes, feeds the clip ring (clips are encoded there), and turns every `dense_stride`-th frame
into a uint8 448 px tile on the camera's bounded queue; the watcher's scoring thread takes tiles from every
camera's queue, encodes them in shared batches and hands each camera its features back (`scored`). Everything
a camera writes goes through `emit` (events.jsonl + the watcher's sinks) or `score_line` (scores.jsonl), stamped
with the camera and the run; a file that cannot be written stops the watcher (`on_fatal`), never a thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from holmesvau.ats.sampler import density_aware_sample
from holmesvau.output_guard import OutputError
from holmesvau.preprocess import frames_to_tiles
from holmesvau.video_open import put_unless_stopped

from .clips import ClipRing
from .events import EventTracker, Transition
from .online import OnlineScorer, Snippet
from .outputs import JsonlWriter
from .source import Gap, LiveSource, redact

log = logging.getLogger("holmesvau.live")
END = object()  # a reader's last item


def event_frames(kept: list, select: int, tau: float) -> tuple[np.ndarray | None, dict]:
    """The frames shown to the MLLM: a density-aware sample (holmesvau.ats.sampler) of an event's kept
    (t, score, snippet) on their online scores, each snippet at most once and in time order (an event of fewer
    than `select` snippets gets fewer frames, never a repeated one)."""
    kept = [k for k in kept if k[2] is not None and k[2].tile is not None]
    if not kept:
        return None, {"frames_s": []}
    pos = sorted(set(density_aware_sample([k[1] for k in kept], select, tau)))
    chosen = [kept[p] for p in pos]
    tiles = np.stack([c[2].tile.numpy() for c in chosen])
    meta = {
        "frames_s": [round(c[0], 3) for c in chosen],
        "frame_indices": [c[2].frame for c in chosen],
        "frame_scores": [round(c[1], 6) for c in chosen],
    }
    return tiles, meta


class Camera:
    def __init__(self, name: str, source: LiveSource, config, out_dir: Path, run_id: str, scorer,
                 wake: threading.Event | None = None):  # fmt: skip
        cfg = self.cfg = config
        self.name, self.src, self.out = name, source, Path(out_dir)
        self.wake = wake or threading.Event()
        stamp = {"camera": name, "run": run_id}
        self.events = JsonlWriter(self.out / "events.jsonl", stamp)
        self.scores = JsonlWriter(self.out / "scores.jsonl", stamp)
        self.online = OnlineScorer(scorer, cfg.window, cfg.delay)
        self.tracker = EventTracker(cfg.rule, cfg.reservoir, id_prefix=run_id)
        # ring: pre-roll + the opening delay + what may sit in the hand-over queue, in stream seconds
        fps = source.fps or 30.0
        queued = cfg.queue_snippets + cfg.batch_size + cfg.delay + 2
        keep = cfg.pre_roll_s + cfg.rule.min_duration_s + queued * cfg.sampling.dense_stride / fps
        self.ring = ClipRing(self.out / "clips", cfg.pre_roll_s, cfg.post_roll_s, keep, cfg.ring_mb << 20,
                             cfg.clip_width, on_clip=self._clip_done)  # fmt: skip
        self.q: queue.Queue = queue.Queue(maxsize=cfg.queue_snippets)
        self._emit_lock = threading.Lock()
        self.sinks: list[Callable[[str, str, dict], None]] = []  # (camera, kind, line): webhook, MQTT, page
        self.on_fatal: Callable[[OutputError], None] = lambda e: None
        self.explainer = None
        self.on_score: Callable[[Snippet, float, float], None] | None = None
        self.n_scored = self.n_gaps = 0
        self.latencies: deque[float] = deque(maxlen=100_000)
        self.last: tuple[float, float] = (0.0, time.time())  # stream time, wall time of the last score
        self.last_score: float | None = None
        self.reader_t = 0.0  # stream time of the newest decoded frame
        self.state = "starting"  # online / reconnecting / offline / ended / failed
        self.error: str | None = None
        self.ended = False
        self.thread: threading.Thread | None = None
        self.reader_stop = threading.Event()

    # -- outputs ---------------------------------------------------------------------------------------------
    def _write(self, writer: JsonlWriter, record: dict) -> dict | None:
        """The line as written, None when it could not be (the watcher stops)."""
        try:
            return writer.write(record)
        except OutputError as e:
            self.on_fatal(e)
            return None

    def _tell(self, kind: str, line: dict | None) -> None:
        if line is not None:
            for sink in self.sinks:
                sink(self.name, kind, line)

    def emit(self, record: dict, kind: str = "events") -> dict | None:
        """An events.jsonl line, then the same line to every sink (in the file's order: the scoring, reader and
        explainer threads all emit). None when it could not be written."""
        with self._emit_lock:
            line = self._write(self.events, record)
            self._tell(kind, line)
        return line

    def explained(self, record: dict) -> bool:
        """The explainer's record written (else its event stays in the backlog)."""
        return self.emit(record) is not None

    def score_line(self, record: dict) -> dict | None:
        return self._write(self.scores, record)

    def set_state(self, state: str, force: bool = False) -> None:
        """Tell the sinks (MQTT's retained state, the page) when the state changes, or now with `force`."""
        if state != self.state or force:
            self.state = state
            score = None if self.last_score is None else round(self.last_score, 6)
            lag = round(self.latencies[-1], 3) if self.latencies else None
            info = {"state": state, "last_score": score, "lag_s": lag, "wall": round(time.time(), 3)}
            self._tell("state", info)

    def _clip_done(self, event: str, path: Path, first_t, last_t, frames: int) -> None:
        """Reader thread, once clips/<event>.mp4 is complete and in place."""
        self.emit({"type": "clip", "event": event, "clip": f"clips/{path.name}", "start_s": round(first_t, 3),
                   "end_s": round(last_t, 3), "duration_s": round(last_t - first_t, 3), "frames": frames},
                  kind="clip")  # fmt: skip

    def run_line(self, options: dict) -> None:
        rec = dict(type="run", start_wall=round(time.time(), 3), source=self.src.name, options=options)
        self.emit(rec)
        self.score_line(rec)

    # -- reader thread ---------------------------------------------------------------------------------------
    def start_reader(self) -> None:
        self.thread = threading.Thread(target=self._read, name=f"holmesvau-reader-{self.name}", daemon=True)
        self.thread.start()

    def _put(self, item) -> bool:
        ok = put_unless_stopped(self.q, item, self.reader_stop)
        self.wake.set()
        return ok

    def _read(self) -> None:
        stride, n, stop = self.cfg.sampling.dense_stride, 0, self.reader_stop
        try:
            for item in self.src.items(stop):
                if isinstance(item, Gap):
                    self._put(item)
                    continue
                if self.state != "online":
                    self.set_state("online")
                self.ring.push(item.t, item.frame, item.fps)
                self.reader_t = item.t
                if item.index % stride == 0:
                    rgb = item.frame.to_ndarray(format="rgb24")
                    tile = frames_to_tiles(rgb[None], resize=self.cfg.resize)[0]
                    if not self._put(Snippet(n, item.index, item.t, item.wall, item.mono, tile)):
                        return
                    n += 1
            self._put(END)
        except BaseException as e:  # noqa: BLE001 - handed to the scoring thread
            self._put(e)

    # -- scoring thread --------------------------------------------------------------------------------------
    def scored(self, snip: Snippet, score: float) -> None:
        latency = time.monotonic() - snip.mono
        self.latencies.append(latency)
        self.n_scored += 1
        self.last, self.last_score = (snip.t, snip.wall), score
        line = self.score_line({"type": "score", "snippet": snip.index, "frame": snip.frame, "t": round(snip.t, 3),
                                "wall": round(snip.wall, 3), "score": round(score, 6), "latency_s": round(latency, 4)})  # fmt: skip
        self._tell("score", line)  # (the page's curve; the webhook and MQTT skip scores)
        if self.on_score is not None:
            self.on_score(snip, score, latency)
        for tr in self.tracker.update(snip.t, snip.wall, score, snip):
            self.transition(tr)

    def _scored_all(self, pairs: list[tuple[Snippet, float]]) -> None:
        for snip, score in pairs:
            self.scored(snip, score)

    def push_feature(self, snip: Snippet, feature) -> None:
        self._scored_all(self.online.push(snip, feature))

    def transition(self, tr: Transition) -> None:
        ev = tr.event
        if tr.kind == "opened":
            self.ring.start(ev.id, ev.start_s)
            self.emit({"type": "opened", **ev.summary(), "source": self.src.name})
            return
        tiles, frames = event_frames(tr.snippets, self.cfg.sampling.select_frames, self.cfg.sampling.tau)
        # the clip is announced by its own `clip` line once the file is complete. The reader runs ahead of the
        # scores, so the ring may finish the clip on its next frame: `closed` is written before the ring is told.
        self.emit({"type": "closed", **ev.summary(), "source": self.src.name, **frames})
        self.ring.stop(ev.id, ev.end_s)
        if self.explainer is not None and tiles is not None:
            meta = {**ev.summary(), "camera": self.name, "source": self.src.name, "clip": f"clips/{ev.id}.mp4",
                    **frames}  # fmt: skip
            self.explainer.submit(self.name, ev.id, tiles, meta)

    def gap(self, gap: Gap) -> None:
        self._scored_all(self.online.reset())
        self.n_gaps += 1
        line = self.emit({"type": "gap", **gap.to_dict(), "source": self.src.name})
        if line is not None:
            self.score_line({k: v for k, v in line.items() if k not in ("schema_version", "camera", "run")})
        self.set_state("online" if gap.end_t is not None else "offline")

    def failed(self, e: BaseException) -> None:
        message = str(e) if isinstance(e, Exception) and str(e) else type(e).__name__
        self.error = redact(message, self.src.secrets)
        log.error("camera %s: %s", self.name, self.error)
        self.set_state("failed")

    def finish(self, reason: str) -> None:
        """Flush the window, close the open event (clips finish with what they have), record a gap still open."""
        self._scored_all(self.online.flush())
        tr = self.tracker.close(*self.last, reason)
        if tr is not None:
            self.transition(tr)
        if self.src.down is not None:  # stopped while the stream was down: the gap has no end
            self.gap(self.src.down)
        self.ring.close()

    def close_files(self) -> None:
        for w in (self.events, self.scores):
            try:
                w.close()
            except OutputError as e:
                self.on_fatal(e)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies, dtype=np.float64)
        p50, p95 = (round(float(np.percentile(lat, q)), 4) if lat.size else None for q in (50, 95))
        src = self.src
        return {"camera": self.name, "source": src.name, "frames": src.frames, "stream_s": round(self.reader_t, 3),
                "snippets": self.n_scored, "events": self.tracker.count, "gaps": self.n_gaps,
                "reconnections": src.reconnections, "corrupt_packets": src.corrupt_packets,
                "clips": self.ring.clips_written, "latency_p50_s": p50, "latency_p95_s": p95, "error": self.error,
                "out_dir": str(self.out)}  # fmt: skip
