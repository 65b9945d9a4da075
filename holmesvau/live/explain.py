"""The explainer: a worker thread that asks HolmesVAU about each closed event, never holding up scoring.

Every event handed over is first written to `<backlog>/<event>.npz` (its frames, uint8 448 px tiles, and what is
known about it); the worker explains the oldest file there and deletes it once the "explained" record is written.
At most `max_in_memory` jobs are also kept in memory (the bounded queue); the others wait on disk, so the backlog
never costs memory, no event is dropped however far the model falls behind, and events still waiting when the
watcher stops (or crashes) are explained by the next run on the same output folder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("holmesvau.live")

ExplainFn = Callable[[np.ndarray], dict]  # uint8 tiles (N, 3, S, S) -> {"judgement": ..., "description": ...}


def mllm_explainer(
    lm, max_new_tokens: int = 1024, tasks: tuple[str, ...] = ("judgement", "description")
) -> ExplainFn:
    """HIVAU event-level questions (holmesvau.report's prompts) on the event's frames, one chat each."""
    import torch

    from holmesvau.model import chat, video_question
    from holmesvau.preprocess import normalize_tiles
    from holmesvau.report.analysis import TASK_PROMPTS

    def explain(tiles: np.ndarray) -> dict:
        pv = normalize_tiles(torch.from_numpy(np.ascontiguousarray(tiles)))
        n = int(pv.shape[0])
        return {
            t: chat(lm, pv, video_question(TASK_PROMPTS[t], n), max_new_tokens=max_new_tokens).answer
            for t in tasks
        }

    return explain


def save_jpegs(tiles: np.ndarray, folder: Path, names: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for tile, name in zip(tiles, names):
        Image.fromarray(np.ascontiguousarray(tile.transpose(1, 2, 0))).save(folder / name, quality=90)


class Explainer:
    def __init__(
        self,
        explain_fn: ExplainFn,
        backlog_dir: Path,
        on_result: Callable[[dict], bool | None],
        max_in_memory: int = 4,
        frames_dir: Path | None = None,
    ):
        self.fn, self.dir, self.on_result = explain_fn, Path(backlog_dir), on_result
        self.frames_dir = frames_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_in_memory = max(0, max_in_memory)
        self.memory: OrderedDict[str, tuple[np.ndarray, dict]] = OrderedDict()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.explained = self.failed = 0
        self.busy = False
        self.thread = threading.Thread(target=self._run, name="holmesvau-explain", daemon=True)
        self.thread.start()

    def pending(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.suffix == ".npz" and not p.name.startswith("."))

    @property
    def backlog(self) -> int:
        """Events waiting for (or in) explanation."""
        return len(self.pending())

    def submit(self, event: str, tiles: np.ndarray, meta: dict) -> None:
        """Hand over a closed event (scoring thread): written to disk, kept in memory if there is room."""
        path = self.dir / f"{event}.npz"
        tmp = self.dir / f".{event}.part"  # hidden until complete: the worker lists only finished files
        with open(tmp, "wb") as f:
            np.savez(f, tiles=tiles, meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
        with self.lock:
            if len(self.memory) < self.max_in_memory:
                self.memory[path.name] = (tiles, meta)
        self.wake.set()

    def _load(self, path: Path) -> tuple[np.ndarray, dict]:
        with self.lock:
            if path.name in self.memory:
                return self.memory.pop(path.name)
        with np.load(path, allow_pickle=False) as d:
            return d["tiles"], json.loads(str(d["meta"]))

    def _run(self) -> None:
        while not self.stop.is_set():
            jobs = self.pending()
            if not jobs:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            path = jobs[0]
            self.busy = True
            try:
                self._explain(path)
            finally:
                self.busy = False

    def _explain(self, path: Path) -> None:
        event = path.stem
        t0 = time.perf_counter()
        if not path.exists():  # taken by another run on the same folder
            return
        try:
            tiles, meta = self._load(path)
            if self.frames_dir is not None:
                names = [f"{k:02d}_{t:.2f}s.jpg" for k, t in enumerate(meta.get("frames_s", []))]
                save_jpegs(tiles, self.frames_dir / f"{event}_frames", names)
            answers = self.fn(tiles)
            record = {"type": "explained", "event": event, **answers, **meta}
            self.explained += 1
        except Exception as e:  # noqa: BLE001 - a bad job must not kill the worker; it is reported and set aside
            log.error("explaining %s failed (%s: %s)", event, type(e).__name__, e)
            record = {"type": "explained", "event": event, "error": f"{type(e).__name__}: {e}"}
            self.failed += 1
            failed = self.dir / "failed"
            failed.mkdir(exist_ok=True)
            if path.exists():
                path.replace(failed / path.name)
        record["explain_s"] = round(time.perf_counter() - t0, 3)
        record["backlog"] = max(0, self.backlog - (1 if path.exists() else 0))
        if self.on_result(record) is not False:  # not written (output closed): stays for the next run
            path.unlink(missing_ok=True)

    def close(self, timeout_s: float = 60.0) -> int:
        """Explain what is waiting for at most `timeout_s`, then stop; returns the events left on disk."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (self.pending() or self.busy):
            self.wake.set()
            time.sleep(0.05)
        self.stop.set()
        self.wake.set()
        self.thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        left = self.backlog
        if left:
            log.warning("%d event(s) not explained yet; kept in %s for the next run", left, self.dir)
        return left
