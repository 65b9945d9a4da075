"""Online ATS scoring: InternViT CLS features of the dense frames as they arrive, the URDMU scorer over a sliding
window of the last `window` snippets, one score per snippet as soon as it can be given.

URDMU attends over the whole window and its temporal convolution looks one snippet ahead, so a score depends on
the snippets around it. Snippet i gets position `-1 - delay` of the window ending at snippet i + delay: with
`delay=0` the newest position, out the moment its features are (zero padding stands in for the next snippet);
`delay=k` waits k more snippets (k * stride / fps seconds) for k snippets of right context. The window holds at
most `window` features (flat memory); covering the whole stream, `window_scores()` equal the offline scores.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Snippet:
    index: int  # snippet number since the start
    frame: int  # frame index it was taken from
    t: float  # stream time
    wall: float  # arrival wall time
    mono: float  # arrival monotonic time
    tile: torch.Tensor | None  # uint8 (3, S, S), kept until the snippet is scored (the MLLM may use it)


class OnlineScorer:
    """Sliding-window URDMU scoring. `push(snippet, feature)` -> [(snippet, score)] now scorable (0 or 1 of them);
    `flush()` -> the last `delay` snippets' scores at the end of a segment (stream gap, end, shutdown)."""

    def __init__(self, scorer: torch.nn.Module, window: int = 64, delay: int = 0):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 <= delay < window:
            raise ValueError(f"delay must be in [0, window), got {delay} for window {window}")
        self.scorer, self.window, self.delay = scorer, window, delay
        p = next(scorer.parameters())
        self._device, self._dtype = p.device, p.dtype
        self.feats: deque[torch.Tensor] = deque(maxlen=window)
        self.snips: deque[Snippet] = deque(maxlen=window)
        self.scored = 0  # snippets of the current segment given a score
        self.seen = 0  # snippets of the current segment pushed

    @torch.inference_mode()
    def window_scores(self) -> np.ndarray:
        """Scores (len(window),) of every position of the current window, float32."""
        if not self.feats:
            return np.zeros(0, dtype=np.float32)
        x = torch.stack(list(self.feats)).to(self._device, self._dtype)[None]
        out = self.scorer(x)
        if isinstance(out, dict):
            out = out["anomaly_scores"]
        return out.reshape(-1).float().cpu().numpy()

    def push(self, snippet: Snippet, feature: torch.Tensor) -> list[tuple[Snippet, float]]:
        self.feats.append(feature.detach().reshape(-1).to("cpu", torch.float32))
        self.snips.append(snippet)
        self.seen += 1
        if self.seen - self.scored <= self.delay:
            return []
        pos = len(self.feats) - 1 - self.delay
        scores = self.window_scores()
        return [self._emit(pos, float(scores[pos]))]

    def _emit(self, pos: int, score: float) -> tuple[Snippet, float]:
        snip = self.snips[pos]
        self.scored += 1
        out = (Snippet(snip.index, snip.frame, snip.t, snip.wall, snip.mono, snip.tile), score)
        snip.tile = None  # scored: the window no longer needs its pixels
        return out

    def flush(self) -> list[tuple[Snippet, float]]:
        """Scores of the snippets still waiting for right context (scored with what the window has)."""
        pending = self.seen - self.scored
        if pending <= 0:
            return []
        scores = self.window_scores()
        n = len(self.feats)
        return [self._emit(n - pending + k, float(scores[n - pending + k])) for k in range(pending)]

    def reset(self) -> list[tuple[Snippet, float]]:
        """A new segment (after a stream gap): flush, then forget the window (the scorer sees a new video)."""
        out = self.flush()
        self.feats.clear()
        self.snips.clear()
        self.scored = self.seen = 0
        return out
