"""The live watcher: many cameras, one model. Sources -> shared InternViT batches -> each camera's online ATS
scores -> events -> clips, explanations, JSON lines, sinks (webhook, MQTT, the dashboard).

Threads: one reader per `Camera` (holmesvau.live.camera); the caller's thread takes what has arrived from every
camera's queue (at most `batch_size` tiles, shared fairly), encodes the tiles in one ViT call, and gives each
camera its features back, in order; the explainer (one, for all cameras) and each sink have threads of their own
and only get work through bounded hand-overs. A camera that stalls or drops only leaves its queue empty: nothing
waits on it. Outputs: one camera without a name writes into `out_dir`; named cameras into `out_dir/<name>`
(events.jsonl, scores.jsonl, clips/, backlog/).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from holmesvau.frame_plan import SamplingConfig
from holmesvau.output_guard import OutputError

from .camera import END, Camera
from .events import Hysteresis
from .explain import Explainer, ExplainFn
from .online import Snippet
from .outputs import Webhook, new_run_id
from .source import Gap, LiveSource

log = logging.getLogger("holmesvau.live")

EncodeFn = Callable[[torch.Tensor], torch.Tensor]  # uint8 tiles (B, 3, S, S) -> features (B, D)
UNNAMED = "default"  # the camera of --source (outputs straight into out_dir)


@dataclass
class WatchConfig:
    out_dir: Path = Path("watch_out")
    # dense_stride: every k-th frame is scored; select_frames, tau: the frames shown to the MLLM per event
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    window: int = 64  # snippets the scorer attends over (64 x 16 frames = 34 s at 30 fps)
    delay: int = 0  # snippets of right context to wait for before scoring one (see holmesvau.live.online)
    batch_size: int = 8  # most tiles per ViT call, all cameras together (what has arrived, never waited for)
    queue_snippets: int = 32  # reader -> scorer hand-over, per camera
    rule: Hysteresis = field(default_factory=Hysteresis)
    pre_roll_s: float = 3.0
    post_roll_s: float = 3.0
    ring_mb: int = 96
    clip_width: int = 480
    reservoir: int = 48  # most snippets (with their tiles) an event keeps as candidates for the MLLM
    explain_queue: int = 4  # events kept in memory for the explainer; the rest wait on disk
    explain_batch: int = 4  # events answered together
    drain_timeout_s: float = 60.0  # at exit, time given to the explainer to finish the backlog
    webhook: str | None = None
    webhook_retries: int = 3
    progress_every_s: float = 5.0
    resize: str = "torch"

    def __post_init__(self):
        if self.batch_size < 1 or self.queue_snippets < 1:  # the sampling options checked themselves
            raise ValueError("--batch-size and --queue-snippets must be >= 1")
        delay, window = self.delay, self.window
        if not 0 <= delay < window:
            raise ValueError(f"--delay must be in [0, --window), got {delay} with --window {window}")
        if not 16 <= self.clip_width <= 8192:
            raise ValueError(f"--clip-width must be in [16, 8192] pixels, got {self.clip_width}")
        for name in ("pre_roll_s", "post_roll_s", "drain_timeout_s", "progress_every_s"):
            v = getattr(self, name)
            if not (v == v and 0 <= v < float("inf")):
                raise ValueError(f"--{name.replace('_', '-')} must be a number >= 0, got {v}")
        if self.ring_mb < 1 or self.explain_queue < 0 or self.explain_batch < 1:
            raise ValueError("--ring-mb and --explain-batch must be >= 1, --explain-queue >= 0")


def vit_tile_encoder(lm) -> EncodeFn:
    """uint8 tiles -> InternViT CLS features, normalised on the model's device."""
    from holmesvau.model import vit_cls_features
    from holmesvau.preprocess import normalize_tiles

    return lambda tiles: vit_cls_features(lm, normalize_tiles(tiles, lm.device))


class Watcher:
    """`Watcher(source or [(name, source, config)], encode_fn, scorer, config, explain_fn).run(stop)`."""

    def __init__(
        self,
        source: LiveSource | list[tuple[str, LiveSource, WatchConfig]],
        encode_fn: EncodeFn,
        scorer: torch.nn.Module,
        config: WatchConfig,
        explain_fn: ExplainFn | None = None,
        on_score: Callable[[Snippet, float, float], None] | None = None,
        progress: bool = True,
        sinks: list | None = None,
        run_options: dict[str, dict] | None = None,  # camera -> the options on its `run` line
    ):
        self.encode, self.cfg, self.progress = encode_fn, config, progress
        self.out = Path(config.out_dir)
        self.run_id = new_run_id()
        self.wake = threading.Event()
        self.fatal: OutputError | None = None
        self._stop = threading.Event()
        named = isinstance(source, list)
        specs = source if named else [(UNNAMED, source, config)]
        self.webhook = Webhook(config.webhook, retries=config.webhook_retries) if config.webhook else None
        self.explainer = (
            Explainer(explain_fn, config.explain_queue, config.explain_batch) if explain_fn else None
        )
        self.sinks = list(sinks or [])
        self.cameras: list[Camera] = []
        for name, src, cfg in specs:
            out = self.out / name if named else self.out
            cam = Camera(name, src, cfg, out, self.run_id, scorer, self.wake)
            cam.on_fatal, cam.on_score, cam.sinks = self._fail, on_score, list(self.sinks)
            if self.webhook is not None:
                cam.sinks.append(self._to_webhook)
            if self.explainer is not None:
                cam.explainer = self.explainer
                self.explainer.add_camera(name, cam.out / "backlog", cam.explained, cam.out / "clips")
            self.cameras.append(cam)
        self.run_options = run_options or {}
        self.n_batches = 0
        self.batch_sizes: dict[int, int] = {}  # ViT batch size -> calls
        self._next_progress = 0.0
        from holmesvau.ats.streaming import _malloc_trim

        self._trim = _malloc_trim()

    def add_sink(self, sink) -> None:
        """`sink(camera, kind, line)` for every camera; kind: events / clip / state / score. It must not block."""
        self.sinks.append(sink)
        for cam in self.cameras:
            cam.sinks.append(sink)

    @property
    def ring(self):  # the first camera's clip ring, online window, events (the single-camera API)
        return self.cameras[0].ring

    @property
    def online(self):
        return self.cameras[0].online

    def _to_webhook(self, camera: str, kind: str, line: dict) -> None:
        if kind in ("events", "clip"):
            self.webhook.send(line)

    def _fail(self, e: OutputError) -> None:
        if self.fatal is None:
            self.fatal = e
            log.error("%s; stopping", e.strerror)
        self._stop.set()

    # -- scoring thread --------------------------------------------------------------------------------------
    def _take(self, active: list[Camera]) -> dict[Camera, list]:
        """What has arrived, at most batch_size tiles: each camera's fair share first, then whoever has more.
        A camera's take ends at a marker (gap, end, error), so its snippets before it are scored first."""
        taken: dict[Camera, list] = {c: [] for c in active}
        room = self.cfg.batch_size
        share = max(1, room // max(1, len(active)))
        for limit in (share, room):
            for cam in active:
                items = taken[cam]
                while (
                    room > 0
                    and (not items or isinstance(items[-1], Snippet))
                    and sum(isinstance(i, Snippet) for i in items) < limit
                ):
                    try:
                        item = cam.q.get_nowait()
                    except queue.Empty:
                        break
                    items.append(item)
                    room -= isinstance(item, Snippet)
        return {c: v for c, v in taken.items() if v}

    def _step(self, taken: dict[Camera, list]) -> None:
        snippets = [(c, s) for c, items in taken.items() for s in items if isinstance(s, Snippet)]
        feats = None
        if snippets:
            with torch.inference_mode():
                feats = self.encode(torch.stack([s.tile for _, s in snippets]))
            n = len(snippets)
            if feats.dim() != 2 or feats.shape[0] != n:
                raise ValueError(f"the encoder must return (B, D) for B={n}, got {tuple(feats.shape)}")
            feats = feats.detach().float().cpu()
            self.n_batches += 1
            self.batch_sizes[n] = self.batch_sizes.get(n, 0) + 1
            if self.n_batches % 4 == 0:
                self._trim()
        k = 0
        for cam, items in taken.items():
            for item in items:
                if isinstance(item, Snippet):
                    cam.push_feature(item, feats[k])
                    k += 1
                elif isinstance(item, Gap):
                    cam.gap(item)
                elif item is END:
                    cam.ended = True
                    cam.set_state("ended")
                elif isinstance(item, BaseException):
                    cam.ended = True
                    cam.failed(item)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next_progress and not force:
            return
        self._next_progress = now + self.cfg.progress_every_s
        for c in self.cameras:  # the sinks' periodic state (last score, lag)
            # the reader is inside a reconnect loop, or retrying a source that never answered
            down = (c.src.down is not None and c.state == "online") or c.src.waiting
            c.set_state("reconnecting" if down else c.state, force=True)
        if not self.progress:
            return
        backlog = self.explainer.backlog if self.explainer is not None else 0
        for c in self.cameras:
            t, lag = c.reader_t, (c.latencies[-1] if c.latencies else 0.0)
            print(f"[watch] {c.name}: stream {int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:04.1f} | {c.state}"
                  f" | lag {lag:.2f} s (scores {max(0.0, t - c.last[0]):.1f} s behind) | snippets {c.n_scored} | "
                  f"events {c.tracker.count}{' (open)' if c.tracker.is_open else ''} | gaps {c.n_gaps} | corrupt "
                  f"packets {c.src.corrupt_packets}", file=sys.stderr, flush=True)  # fmt: skip
        print(f"[watch] explain backlog {backlog}", file=sys.stderr, flush=True)

    def run(self, stop: threading.Event) -> dict:
        """Watch until every source has ended or `stop` is set; always closes the open events, finishes the clips
        and flushes everything."""
        t0 = time.monotonic()
        reason = "end of stream"
        for cam in self.cameras:
            cam.run_line(self.run_options.get(cam.name, {}))
        if self.explainer is not None:
            self.explainer.start()
        for cam in self.cameras:
            cam.start_reader()
        try:
            while not stop.is_set() and not self._stop.is_set():
                active = [c for c in self.cameras if not c.ended]
                if not active:
                    break
                taken = self._take(active)
                if taken:
                    self._step(taken)
                else:
                    self.wake.wait(0.1)
                    self.wake.clear()
                self._report()
            if stop.is_set() or self._stop.is_set():
                reason = "shutdown" if self.fatal is None else "output error"
                self._drain()
        finally:
            self._stop_readers()
            summary = self._finish(reason, time.monotonic() - t0)
        return summary

    def _stop_readers(self) -> None:
        for cam in self.cameras:
            cam.reader_stop.set()
        for cam in self.cameras:
            if cam.thread is not None:
                cam.thread.join(cam.src.cfg.read_timeout_s + 2)

    def _drain(self) -> None:
        """Stopping: the readers stop, and what they had handed over is scored."""
        self._stop_readers()
        while self.fatal is None:
            taken = self._take([c for c in self.cameras if not c.ended])
            if not taken:
                break
            self._step({c: [i for i in v if not isinstance(i, BaseException)] for c, v in taken.items()})

    def _finish(self, reason: str, wall_s: float) -> dict:
        for cam in self.cameras:
            cam.finish(reason)
            if cam.state not in ("failed", "ended"):
                cam.set_state("offline")
        ex, hook = self.explainer, self.webhook
        left = ex.close(self.cfg.drain_timeout_s if self.fatal is None else 0) if ex is not None else 0
        webhook = hook.close() if hook is not None else None
        sinks = {type(s).__name__: s.close() for s in self.sinks if hasattr(s, "close")}
        for cam in self.cameras:
            cam.close_files()
        cams = [c.summary() for c in self.cameras]
        stream_s = max((c["stream_s"] for c in cams), default=0.0)
        summary = {
            "run": self.run_id,
            "stopped": reason,
            "error": None if self.fatal is None else self.fatal.strerror,
            "wall_s": round(wall_s, 3),
            "realtime_factor": round(stream_s / wall_s, 3) if wall_s > 0 else None,
            "vit_batches": dict(sorted(self.batch_sizes.items())),
            "explained": ex.explained if ex is not None else 0,
            "explain_batches": ex.batch_sizes if ex is not None else [],
            "backlog_left": left,
            "webhook": webhook,
            "sinks": sinks,
            "out_dir": str(self.out),
        }
        if len(self.cameras) == 1 and self.cameras[0].name == UNNAMED:  # one camera: today's flat summary
            summary = {**{k: v for k, v in cams[0].items() if k != "out_dir"}, **summary}
        else:
            summary["cameras"] = cams
        self._report(force=True)
        return summary
