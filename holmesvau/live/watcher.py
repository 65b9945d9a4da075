"""The live watcher: source -> online ATS scores -> events -> clips, explanations, JSON lines, webhook.

Threads: the reader decodes, feeds the clip ring, and turns every `dense_stride`-th frame into a uint8 448 px tile
(bounded queue of `queue_snippets`); the caller's thread encodes the tiles in batches of what has arrived (at
most `batch_size`), scores them online, tracks events and writes the outputs; the explainer and the webhook have
threads of their own and only ever get work through bounded hand-overs, so neither can hold up scoring.
Outputs in `out_dir`: events.jsonl (opened / closed / explained / gap), scores.jsonl (score / gap),
clips/<event>.mp4, clips/<event>_frames/*.jpg (what the MLLM saw), backlog/ (events waiting to be explained).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from holmesvau.ats.sampler import density_aware_sample
from holmesvau.frame_plan import SamplingConfig
from holmesvau.preprocess import frames_to_tiles

from .clips import ClipRing
from .events import EventTracker, Hysteresis, Transition
from .explain import Explainer, ExplainFn
from .online import OnlineScorer, Snippet
from .outputs import JsonlWriter, Webhook
from .source import Gap, LiveSource

log = logging.getLogger("holmesvau.live")

EncodeFn = Callable[[torch.Tensor], torch.Tensor]  # uint8 tiles (B, 3, S, S) -> features (B, D)
_END = object()


@dataclass
class WatchConfig:
    out_dir: Path = Path("watch_out")
    # dense_stride: every k-th frame is scored; select_frames, tau: the frames shown to the MLLM per event
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    window: int = 64  # snippets the scorer attends over (64 x 16 frames = 34 s at 30 fps)
    delay: int = 0  # snippets of right context to wait for before scoring one (see holmesvau.live.online)
    batch_size: int = 8  # most tiles per ViT call (a batch is what has arrived, never waited for)
    queue_snippets: int = 32  # reader -> scorer hand-over
    rule: Hysteresis = field(default_factory=Hysteresis)
    pre_roll_s: float = 3.0
    post_roll_s: float = 3.0
    ring_mb: int = 96
    clip_width: int = 480
    reservoir: int = 48  # most snippets (with their tiles) an event keeps as candidates for the MLLM
    explain_queue: int = 4  # events kept in memory for the explainer; the rest wait on disk
    drain_timeout_s: float = 60.0  # at exit, time given to the explainer to finish the backlog
    webhook: str | None = None
    webhook_retries: int = 3
    progress_every_s: float = 5.0
    resize: str = "torch"

    def __post_init__(self):
        if self.batch_size < 1 or self.queue_snippets < 1:  # the sampling options checked themselves
            raise ValueError("--batch-size and --queue-snippets must be >= 1")


def vit_tile_encoder(lm) -> EncodeFn:
    """uint8 tiles -> InternViT CLS features, normalised on the model's device."""
    from holmesvau.model import vit_cls_features
    from holmesvau.preprocess import normalize_tiles

    return lambda tiles: vit_cls_features(lm, normalize_tiles(tiles, lm.device))


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class Watcher:
    def __init__(
        self,
        source: LiveSource,
        encode_fn: EncodeFn,
        scorer: torch.nn.Module,
        config: WatchConfig,
        explain_fn: ExplainFn | None = None,
        on_score: Callable[[Snippet, float, float], None] | None = None,
        progress: bool = True,
    ):
        self.src, self.encode, self.cfg, self.on_score, self.progress = (
            source,
            encode_fn,
            config,
            on_score,
            progress,
        )
        out = Path(config.out_dir)
        self.out = out
        self.online = OnlineScorer(scorer, config.window, config.delay)
        run = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        self.tracker = EventTracker(config.rule, config.reservoir, id_prefix=run)
        self.events = JsonlWriter(out / "events.jsonl")
        self.scores = JsonlWriter(out / "scores.jsonl")
        self.webhook = Webhook(config.webhook, retries=config.webhook_retries) if config.webhook else None
        # ring: pre-roll + the opening delay + what may sit in the hand-over queue, in stream seconds
        fps = source.fps or 30.0
        keep = (
            config.pre_roll_s
            + config.rule.min_duration_s
            + (config.queue_snippets + config.batch_size + config.delay + 2)
            * config.sampling.dense_stride
            / fps
        )
        self.ring = ClipRing(
            out / "clips",
            config.pre_roll_s,
            config.post_roll_s,
            keep,
            config.ring_mb << 20,
            config.clip_width,
        )
        self.explainer = (
            Explainer(explain_fn, out / "backlog", self._explained, config.explain_queue, out / "clips")
            if explain_fn is not None
            else None
        )
        self.q: queue.Queue = queue.Queue(maxsize=config.queue_snippets)
        self.n_snippets = self.n_scored = self.n_gaps = self.n_batches = 0
        self.latencies: deque[float] = deque(maxlen=100_000)
        self.last: tuple[float, float] = (0.0, time.time())  # stream time, wall time of the last score
        self.reader_t = 0.0  # stream time of the newest decoded frame
        self._next_progress = 0.0
        from holmesvau.ats.streaming import _malloc_trim

        self._trim = _malloc_trim()

    # -- outputs ---------------------------------------------------------------------------------------------
    def _event_line(self, record: dict) -> bool:
        ok = self.events.write(record)
        if self.webhook is not None:
            self.webhook.send(record)
        return ok

    def _explained(self, record: dict) -> bool:
        return self._event_line(record)

    # -- reader thread ---------------------------------------------------------------------------------------
    def _read(self, stop: threading.Event) -> None:
        stride, n = self.cfg.sampling.dense_stride, 0
        try:
            for item in self.src.items(stop):
                if isinstance(item, Gap):
                    _put(self.q, item, stop)
                    continue
                self.ring.push(item.t, item.frame, item.fps)
                self.reader_t = item.t
                if item.index % stride == 0:
                    rgb = item.frame.to_ndarray(format="rgb24")
                    tile = frames_to_tiles(rgb[None], resize=self.cfg.resize)[0]
                    if not _put(self.q, Snippet(n, item.index, item.t, item.wall, item.mono, tile), stop):
                        return
                    n += 1
            _put(self.q, _END, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the scoring thread, which re-raises it
            _put(self.q, e, stop)

    # -- scoring thread --------------------------------------------------------------------------------------
    def _score_batch(self, batch: list[Snippet]) -> None:
        with torch.inference_mode():
            feats = self.encode(torch.stack([s.tile for s in batch]))
        if feats.dim() != 2 or feats.shape[0] != len(batch):
            raise ValueError(f"the encoder must return (B, D) for B={len(batch)}, got {tuple(feats.shape)}")
        feats = feats.detach().float().cpu()
        self.n_snippets += len(batch)
        for s, f in zip(batch, feats):
            for snip, score in self.online.push(s, f):
                self._scored(snip, score)
        self.n_batches += 1
        if self.n_batches % 4 == 0:
            self._trim()

    def _scored(self, snip: Snippet, score: float) -> None:
        latency = time.monotonic() - snip.mono
        self.latencies.append(latency)
        self.n_scored += 1
        self.last = (snip.t, snip.wall)
        self.scores.write({"type": "score", "snippet": snip.index, "frame": snip.frame, "t": round(snip.t, 3),
                           "wall": round(snip.wall, 3), "score": round(score, 6), "latency_s": round(latency, 4)})  # fmt: skip
        if self.on_score is not None:
            self.on_score(snip, score, latency)
        for tr in self.tracker.update(snip.t, snip.wall, score, snip):
            self._transition(tr)

    def _transition(self, tr: Transition) -> None:
        ev = tr.event
        if tr.kind == "opened":
            self.ring.start(ev.id, ev.start_s)
            self._event_line({"type": "opened", **ev.summary(), "source": self.src.name})
            return
        self.ring.stop(ev.id, ev.end_s)
        frames = self._frames_for_mllm(tr.snippets)
        self._event_line({"type": "closed", **ev.summary(), "source": self.src.name,
                          "clip": f"clips/{ev.id}.mp4", **frames[1]})  # fmt: skip
        if self.explainer is not None and frames[0] is not None:
            self.explainer.submit(ev.id, frames[0], {**ev.summary(), **frames[1]})

    def _frames_for_mllm(self, kept: list) -> tuple[np.ndarray | None, dict]:
        """Density-aware sample (holmesvau.ats.sampler) of the event's kept snippets, on their online scores."""
        kept = [k for k in kept if k[2] is not None and k[2].tile is not None]
        if not kept:
            return None, {"frames_s": []}
        pos = density_aware_sample(
            [k[1] for k in kept], self.cfg.sampling.select_frames, self.cfg.sampling.tau
        )
        chosen = [kept[p] for p in pos]
        tiles = np.stack([c[2].tile.numpy() for c in chosen])
        meta = {
            "frames_s": [round(c[0], 3) for c in chosen],
            "frame_indices": [c[2].frame for c in chosen],
            "frame_scores": [round(c[1], 6) for c in chosen],
        }
        return tiles, meta

    def _gap(self, gap: Gap) -> None:
        for snip, score in self.online.reset():
            self._scored(snip, score)
        self.n_gaps += 1
        record = {"type": "gap", **gap.to_dict(), "source": self.src.name}
        self._event_line(record)
        self.scores.write(record)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.progress or (now < self._next_progress and not force):
            return
        self._next_progress = now + self.cfg.progress_every_s
        t = self.reader_t
        lag = self.latencies[-1] if self.latencies else 0.0
        backlog = self.explainer.backlog if self.explainer is not None else 0
        print(f"[watch] stream {int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:04.1f} | lag {lag:.2f} s "
              f"(scores {max(0.0, t - self.last[0]):.1f} s behind) | snippets {self.n_scored} | events "
              f"{self.tracker.count}{' (open)' if self.tracker.is_open else ''} | backlog {backlog} | gaps "
              f"{self.n_gaps} | corrupt packets {self.src.corrupt_packets}", file=sys.stderr, flush=True)  # fmt: skip

    def _handle(self, items: list) -> bool:
        """Score the snippets of `items` in order, handle markers; False once the stream has ended."""
        batch: list[Snippet] = []
        for item in items:
            if isinstance(item, Snippet):
                batch.append(item)
                continue
            if batch:
                self._score_batch(batch)
                batch = []
            if isinstance(item, Gap):
                self._gap(item)
            elif isinstance(item, BaseException):
                raise item
            elif item is _END:
                return False
        if batch:
            self._score_batch(batch)
        return True

    def run(self, stop: threading.Event) -> dict:
        """Watch until the source ends or `stop` is set; always closes the open event and flushes everything."""
        t0 = time.monotonic()
        reader_stop = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(reader_stop,), name="holmesvau-reader", daemon=True
        )
        reader.start()
        reason = "end of stream"
        try:
            running = True
            while running and not stop.is_set():
                try:
                    items = [self.q.get(timeout=0.2)]
                except queue.Empty:
                    self._report()
                    continue
                while len(items) < self.cfg.batch_size and isinstance(items[-1], Snippet):
                    try:
                        items.append(self.q.get_nowait())
                    except queue.Empty:
                        break
                running = self._handle(items)
                self._report()
            if stop.is_set():
                reason = "shutdown"
                reader_stop.set()
                reader.join(self.src.cfg.read_timeout_s + 2)
                leftover = []
                while True:
                    try:
                        leftover.append(self.q.get_nowait())
                    except queue.Empty:
                        break
                self._handle([i for i in leftover if not isinstance(i, BaseException)])
        finally:
            reader_stop.set()
            summary = self._finish(reason, time.monotonic() - t0)
        return summary

    def _finish(self, reason: str, wall_s: float) -> dict:
        for snip, score in self.online.flush():
            self._scored(snip, score)
        tr = self.tracker.close(*self.last, reason)
        if tr is not None:
            self._transition(tr)
        if self.src.down is not None:  # stopped while the stream was down: the gap has no end
            self._gap(self.src.down)
        self.ring.close()
        left = self.explainer.close(self.cfg.drain_timeout_s) if self.explainer is not None else 0
        if self.webhook is not None:
            self.webhook.close()
        self.events.close()
        self.scores.close()
        lat = np.asarray(self.latencies, dtype=np.float64)
        summary = {
            "source": self.src.name,
            "stopped": reason,
            "frames": self.src.frames,
            "stream_s": round(self.reader_t, 3),
            "wall_s": round(wall_s, 3),
            "realtime_factor": round(self.reader_t / wall_s, 3) if wall_s > 0 else None,
            "snippets": self.n_scored,
            "events": self.tracker.count,
            "gaps": self.n_gaps,
            "reconnections": self.src.reconnections,
            "corrupt_packets": self.src.corrupt_packets,
            "latency_p50_s": round(float(np.percentile(lat, 50)), 4) if lat.size else None,
            "latency_p95_s": round(float(np.percentile(lat, 95)), 4) if lat.size else None,
            "explained": self.explainer.explained if self.explainer is not None else 0,
            "backlog_left": left,
            "webhook": None
            if self.webhook is None
            else {
                "sent": self.webhook.sent,
                "failed": self.webhook.failed,
                "dropped": self.webhook.dropped,
            },  # fmt: skip
            "out_dir": str(self.out),
        }
        self._report(force=True)
        return summary
