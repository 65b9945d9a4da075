"""The explainer: one worker thread that asks HolmesVAU about the closed events of every camera, in batches,
never holding up scoring.

Each event handed over is first written to `<camera backlog>/<event>.npz` (its uint8 448 px tiles and what is
known about it); the worker answers the oldest files of all cameras together (up to `batch`; `mllm_explainer`:
every question through one `answer_batch`, each event's frames through the ViT once) and deletes each file once
its "explained" record is written. At most `max_in_memory` jobs are also kept in memory, so the backlog costs no
memory, no event is dropped however far the model falls behind, and events left when the watcher stops (or
crashes) are explained by the next run on the folder. Stopping interrupts a generation between two tokens.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from holmesvau.files import atomic_open
from holmesvau.preprocess import encode_jpeg

log = logging.getLogger("holmesvau.live")

# uint8 tiles (N, 3, S, S) of each event, a stop flag -> one {"judgement": ..., "description": ...} per event
ExplainFn = Callable[[list[np.ndarray], threading.Event], list[dict]]


class Stopped(Exception):
    """The watcher is stopping: the generation in progress was interrupted."""


def per_event(fn: Callable[[np.ndarray], dict]) -> ExplainFn:
    """An ExplainFn from a one-event function (tests, stand-ins)."""
    return lambda tile_sets, stop: [fn(t) for t in tile_sets]


def mllm_explainer(lm, max_new_tokens: int = 1024, tasks: tuple[str, ...] = ("judgement", "description"),
                   stats=None) -> ExplainFn:  # fmt: skip
    """HIVAU event-level questions (holmesvau.report's prompts) on each event's frames, all answered together by
    `answer_batch` (one ViT pass per event for all its questions). `stats`: a BatchStats that adds up the work."""
    import torch

    from holmesvau.model import video_question
    from holmesvau.model.batch import AnswerRequest, BatchStats, FrameSet, answer_batch
    from holmesvau.report.analysis import TASK_PROMPTS

    stats = stats if stats is not None else BatchStats()
    lang = lm.model.model.language_model

    def explain(tile_sets: list[np.ndarray], stop: threading.Event) -> list[dict]:
        requests = []
        for k, tiles in enumerate(tile_sets):
            frames = FrameSet(tiles=torch.from_numpy(np.ascontiguousarray(tiles)), key=("event", k))
            for t in tasks:
                question = video_question(TASK_PROMPTS[t], len(tiles))
                requests.append(AnswerRequest(frames, question, max_new_tokens=max_new_tokens))

        def check(_module, _args):  # every forward of the language model: a step of prefill or decoding
            if stop.is_set():
                raise Stopped()

        hook = lang.register_forward_pre_hook(check)
        try:
            outs = answer_batch(lm, requests, stats=stats)
        finally:
            hook.remove()
        n = len(tasks)
        return [{t: outs[k * n + j].answer for j, t in enumerate(tasks)} for k in range(len(tile_sets))]

    explain.stats = stats  # type: ignore[attr-defined]
    return explain


@dataclass
class _Camera:
    backlog: Path
    on_result: Callable[[dict], bool | None]  # False: not written (output closed): the file stays for later
    frames_dir: Path | None


class Explainer:
    def __init__(self, explain_fn: ExplainFn, max_in_memory: int = 4, batch: int = 4):
        self.fn = explain_fn
        self.max_in_memory, self.batch = max(0, max_in_memory), max(1, batch)
        self.cameras: dict[str, _Camera] = {}
        self.memory: OrderedDict[Path, tuple[np.ndarray, dict]] = OrderedDict()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.explained = self.failed = 0
        self.batch_sizes: list[int] = []
        self.busy = False
        self.thread = threading.Thread(target=self._run, name="holmesvau-explain", daemon=True)

    def add_camera(self, key: str, backlog: Path, on_result: Callable[[dict], bool | None],
                   frames_dir: Path | None = None) -> None:  # fmt: skip
        Path(backlog).mkdir(parents=True, exist_ok=True)
        self.cameras[key] = _Camera(Path(backlog), on_result, frames_dir)

    def start(self) -> Explainer:
        self.thread.start()
        return self

    def pending(self) -> list[tuple[str, Path]]:
        """(camera, file) of every event waiting, oldest first over all cameras."""
        out = []
        for key, cam in self.cameras.items():
            for p in cam.backlog.iterdir():
                if p.suffix == ".npz" and not p.name.startswith("."):
                    try:
                        out.append((p.stat().st_mtime_ns, p.name, key, p))
                    except FileNotFoundError:  # just taken
                        continue
        return [(k, p) for _, _, k, p in sorted(out)]

    @property
    def backlog(self) -> int:
        """Events waiting for (or in) explanation."""
        return len(self.pending())

    def submit(self, camera: str, event: str, tiles: np.ndarray, meta: dict) -> None:
        """Hand over a closed event (scoring thread): written to disk, kept in memory if there is room."""
        path = self.cameras[camera].backlog / f"{event}.npz"
        with atomic_open(path, "wb") as f:  # hidden until complete: the worker lists only finished files
            np.savez(f, tiles=tiles, meta=np.array(json.dumps(meta)))
        with self.lock:
            if len(self.memory) < self.max_in_memory:
                self.memory[path] = (tiles, meta)
        self.wake.set()

    def _load(self, path: Path) -> tuple[np.ndarray, dict]:
        with self.lock:
            if path in self.memory:
                return self.memory.pop(path)
        with np.load(path, allow_pickle=False) as d:
            return d["tiles"], json.loads(str(d["meta"]))

    def _run(self) -> None:
        while not self.stop.is_set():
            jobs = self.pending()[: self.batch]
            if not jobs:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            self.busy = True
            try:
                self._explain(jobs)
            except Stopped:
                return  # the events stay in the backlog for the next run
            finally:
                self.busy = False

    def _set_aside(self, camera: str, path: Path, event: str, t0: float, err: BaseException) -> None:
        log.error("explaining %s failed (%s: %s)", event, type(err).__name__, err)
        self.failed += 1
        failed = self.cameras[camera].backlog / "failed"
        failed.mkdir(exist_ok=True)
        if path.exists():
            path.replace(failed / path.name)
        self._result(camera, path, {"type": "explained", "event": event, "error": f"{type(err).__name__}: {err}"},
                     t0)  # fmt: skip

    def _result(self, camera: str, path: Path, record: dict, t0: float) -> None:
        record["explain_s"] = round(time.perf_counter() - t0, 3)
        record["backlog"] = max(0, self.backlog - (1 if path.exists() else 0))
        if self.cameras[camera].on_result(record) is not False:
            path.unlink(missing_ok=True)

    def _explain(self, jobs: list[tuple[str, Path]]) -> None:
        t0 = time.perf_counter()
        loaded = []
        for camera, path in jobs:
            event = path.stem
            if not path.exists():  # taken meanwhile
                continue
            try:
                tiles, meta = self._load(path)
                frames_dir = self.cameras[camera].frames_dir
                if frames_dir is not None:  # what HolmesVAU is shown, as <event>_frames/NN_<t>s.jpg
                    folder = frames_dir / f"{event}_frames"
                    folder.mkdir(parents=True, exist_ok=True)
                    for k, (tile, t) in enumerate(zip(tiles, meta.get("frames_s", []))):
                        jpeg = encode_jpeg(tile.transpose(1, 2, 0), quality=90)
                        (folder / f"{k:02d}_{t:.2f}s.jpg").write_bytes(jpeg)
            except Exception as e:  # noqa: BLE001 - a bad job must not kill the worker; reported and set aside
                self._set_aside(camera, path, event, t0, e)
                continue
            loaded.append((camera, path, event, tiles, meta))
        if not loaded:
            return
        self.batch_sizes.append(len(loaded))
        self._answer(loaded, t0, split=len(loaded) > 1)

    def _answer(self, loaded: list, t0: float, split: bool) -> None:
        """The loaded events answered together. On an error, `split`: each alone, so that one bad event does not
        take the others down; else they are set aside (reported, kept under backlog/failed)."""
        try:
            answers = self.fn([x[3] for x in loaded], self.stop)
            if len(answers) != len(loaded):
                raise ValueError(f"{len(answers)} answers for {len(loaded)} events")
        except Stopped:
            raise
        except Exception as e:  # noqa: BLE001
            if split:
                log.warning("explaining %d events together failed (%s); each alone", len(loaded), e)
                for job in loaded:
                    self._answer([job], t0, split=False)
            else:
                for camera, path, event, _, _ in loaded:
                    self._set_aside(camera, path, event, t0, e)
            return
        for (camera, path, event, _, meta), ans in zip(loaded, answers):
            self.explained += 1
            self._result(camera, path, {"type": "explained", "event": event, **ans, **meta}, t0)

    def close(self, timeout_s: float = 60.0) -> int:
        """Explain what is waiting for at most `timeout_s`, then stop (a generation in progress is interrupted
        and its events stay on disk) and join the worker; returns the events left on disk."""
        deadline = time.monotonic() + timeout_s
        while self.thread.is_alive() and time.monotonic() < deadline and (self.pending() or self.busy):
            self.wake.set()
            time.sleep(0.05)
        self.stop.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join()  # at most one forward step: the stop check runs before each
        left = self.backlog
        if left:
            dirs = sorted({str(c.backlog) for c in self.cameras.values()})
            log.warning("%d event(s) not explained yet; kept in %s for the next run", left, ", ".join(dirs))
        return left
