"""Events on the online anomaly curve, by hysteresis.

An event opens when the score has stayed >= `on` for `min_duration_s` of stream time (it starts where that run
began) and closes once the score has stayed < `off` for `gap_s` (it ends where the score fell below `off`).
Scores between `off` and `on` keep an open event open and never open one. Each event carries stream time and
wall-clock time of its start and end and its peak score; `FrameReservoir` keeps an evenly spread, bounded subset
of its snippets (the frames the MLLM may look at), however long it lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Hysteresis:
    on: float = 0.5
    off: float = 0.4
    min_duration_s: float = 1.0
    gap_s: float = 2.0

    def __post_init__(self):
        for name, v in (("--on", self.on), ("--off", self.off)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be a score in [0, 1], got {v!r}")
        for name, v in (("--min-duration-s", self.min_duration_s), ("--gap-s", self.gap_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"{name} must be a number of seconds, got {v!r}")
        if self.off > self.on:
            raise ValueError(f"--off ({self.off}) must not be above --on ({self.on})")
        if self.min_duration_s < 0 or self.gap_s < 0:
            raise ValueError("--min-duration-s and --gap-s must be >= 0")


@dataclass
class LiveEvent:
    id: str
    start_s: float
    start_wall: float
    peak: float
    peak_s: float
    end_s: float | None = None
    end_wall: float | None = None
    snippets: int = 0
    close_reason: str | None = None

    def summary(self) -> dict:
        d = {"event": self.id, "start_s": round(self.start_s, 3), "start_wall": round(self.start_wall, 3),
             "peak_score": round(self.peak, 6), "peak_s": round(self.peak_s, 3)}  # fmt: skip
        if self.end_s is not None:
            d.update(end_s=round(self.end_s, 3), end_wall=round(self.end_wall, 3),
                     duration_s=round(self.end_s - self.start_s, 3), snippets=self.snippets,
                     reason=self.close_reason)  # fmt: skip
        return d


class FrameReservoir:
    """At most `cap` items out of a stream of unknown length, evenly spread: items 0, s, 2s, ... where the step s
    doubles (and every other kept item is dropped) each time the reservoir overflows."""

    def __init__(self, cap: int):
        if cap < 2:
            raise ValueError(f"reservoir capacity must be >= 2, got {cap}")
        self.cap, self.step, self.seen = cap, 1, 0
        self.items: list = []

    def add(self, item) -> None:
        if self.seen % self.step == 0:
            self.items.append(item)
            if len(self.items) > self.cap:
                self.items = self.items[::2]
                self.step *= 2
        self.seen += 1


@dataclass
class Transition:
    kind: str  # "opened" | "closed"
    event: LiveEvent
    snippets: list = field(default_factory=list)  # closed: the kept snippets inside the event


class EventTracker:
    """Feed (stream time, wall time, score, snippet) in order; get `Transition`s back."""

    def __init__(self, rule: Hysteresis, reservoir_cap: int = 96, id_prefix: str = "ev"):
        self.rule, self.cap, self.prefix = rule, reservoir_cap, id_prefix
        self.count = 0
        self.current: LiveEvent | None = None
        self._run: tuple[float, float, float, float] | None = None  # candidate: start t, wall, peak, peak t
        self._run_snips: FrameReservoir | None = None
        self._below: tuple[float, float] | None = None  # open event: when the score went below `off`
        self._snips: FrameReservoir | None = None

    @property
    def is_open(self) -> bool:
        return self.current is not None

    def update(self, t: float, wall: float, score: float, snippet=None) -> list[Transition]:
        r, out = self.rule, []
        if self.current is None:
            if score < r.on:
                self._run = self._run_snips = None
                return out
            if self._run is None:
                self._run, self._run_snips = (t, wall, score, t), FrameReservoir(self.cap)
            s0, w0, peak, peak_t = self._run
            if score > peak:
                peak, peak_t = score, t
            self._run = (s0, w0, peak, peak_t)
            self._run_snips.add((t, score, snippet))
            if t - s0 >= r.min_duration_s:
                self.count += 1
                self.current = LiveEvent(f"{self.prefix}-{self.count:04d}", s0, w0, peak, peak_t)
                self.current.snippets = self._run_snips.seen
                self._snips, self._run, self._run_snips = self._run_snips, None, None
                self._below = None
                out.append(Transition("opened", self.current))
            return out
        ev = self.current
        ev.snippets += 1
        self._snips.add((t, score, snippet))
        if score > ev.peak:
            ev.peak, ev.peak_s = score, t
        if score >= r.off:
            self._below = None
            return out
        if self._below is None:
            self._below = (t, wall)
        if t - self._below[0] >= r.gap_s:
            out.append(self._close(*self._below, "score below off"))
        return out

    def _close(self, end_t: float, end_wall: float, reason: str) -> Transition:
        ev, self.current = self.current, None
        ev.end_s, ev.end_wall, ev.close_reason = end_t, end_wall, reason
        # the snippets after the score fell below `off` are not part of the event
        kept = [s for s in self._snips.items if self._below is None or s[0] < self._below[0]]
        self._snips, self._below = None, None
        return Transition("closed", ev, kept)

    def close(self, t: float, wall: float, reason: str) -> Transition | None:
        """Close the open event now (end of stream, shutdown); it ends at the last score (or where it fell)."""
        if self.current is None:
            return None
        end = self._below if self._below is not None else (t, wall)
        return self._close(*end, reason)
