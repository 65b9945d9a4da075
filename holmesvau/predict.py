"""Batch prediction over HIVAU-70k-style test rows: resumable jsonl output, rank shards, dense-score dumps.

Output: one JSON object a line (`_row`), appended row by row (holmesvau.jsonl); a rerun does only the ids not yet
written, so every row ends up exactly once. A row whose video cannot be read is "failed" with the reason.

Batching: each video is probed, scored, planned and decoded once, and the questions are answered in batches
(holmesvau.model.batch); a finished run rewrites the file in annotation order, whatever the batch size.
Sharding: rank r of W takes whole videos (`shard_by_video`) and writes `OUTPUT.rank{r}`; `merge_outputs` joins them.
Score files (holmesvau.eval.score_files): with `scores_dir`, ATS samples from a score file already there when its
stride, frame count and recorded scorer fit; otherwise the dense pass runs.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace

from holmesvau.eval.score_files import check_source, load_score_file, save_dense_scores, score_file
from holmesvau.frame_plan import SamplingConfig
from holmesvau.jsonl import JsonlAppender, done_ids, read_rows, row_key, write_jsonl_atomic
from holmesvau.paths import inside_root


def shard_path(output: str | Path, rank: int) -> Path:
    return Path(f"{output}.rank{rank}")


def drop_failed(path: str | Path) -> int:
    """Rewrite `path` without its failed rows (so they are retried); returns how many were dropped."""
    path = Path(path)
    rows = read_rows(path)
    keep = [r for r in rows if r.get("status", "ok") == "ok"]
    if len(keep) != len(rows):
        write_jsonl_atomic(path, keep)
    return len(rows) - len(keep)


def merge_outputs(
    output: str | Path, world: int, order: Sequence[object] | None = None, remove: bool = True
) -> dict:
    """Join `output` (if any) and `output.rank0..world-1` into `output`: one row per id (an ok row beats a failed
    one, else the later wins), in `order` (annotation ids; unknown ids go last). Shards are removed after."""
    output = Path(output)
    sources = [output] + [shard_path(output, r) for r in range(world)]
    best: dict[str, dict] = {}
    for p in sources:
        for row in read_rows(p):
            k = row_key(row["id"])
            old = best.get(k)
            if old is None or row.get("status", "ok") == "ok" or old.get("status", "ok") != "ok":
                best[k] = row
    rank_of = {row_key(i): n for n, i in enumerate(order or [])}
    rows = sorted(best.values(), key=lambda r: rank_of.get(row_key(r["id"]), len(rank_of)))
    write_jsonl_atomic(output, rows)
    if remove:
        for p in sources[1:]:
            p.unlink(missing_ok=True)
    failed = sum(r.get("status", "ok") != "ok" for r in rows)
    return {"rows": len(rows), "failed": failed, "output": str(output)}


def _row(r, answer: str | None = None, plan=None, error: BaseException | None = None) -> dict:
    """The output row of instruction `r`: the answer and the frames it saw, or the error that failed the row."""
    return {
        "id": r.id,
        "type": r.type,
        "task": r.task,
        "video": r.video,
        "prediction": answer,
        "frame_indices": None if plan is None else list(plan.indices),
        "sampling": None if plan is None else plan.sampling,
        "status": "ok" if error is None else "failed",
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }


def shard_by_video(rows: Sequence, rank: int, world: int, video_root: str | Path = ".") -> list:
    """This rank's rows, by whole videos (each is read on one rank): largest first to the least loaded rank (ties:
    the lower rank), weighed by file size (no rank opens another's videos). Rows keep their order."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of range for world size {world}")
    videos = list(dict.fromkeys(r.video for r in rows))

    def weight(v: str) -> int:
        try:
            return max(1, inside_root(video_root, v).stat().st_size)
        except (OSError, ValueError):
            return 1  # missing: its rows fail fast wherever they go

    load = [0] * world
    owner: dict[str, int] = {}
    for v in sorted(videos, key=lambda v: (-weight(v), v)):
        owner[v] = min(range(world), key=lambda k: (load[k], k))
        load[owner[v]] += weight(v)
    return [r for r in rows if owner[r.video] == rank]


def predict_rows(
    vau, rows: Sequence, video_root: str | Path, output: str | Path, sampling: SamplingConfig = SamplingConfig(),
    max_new_tokens: int = 1024, scores_dir: str | Path | None = None, score_levels: Sequence[str] = ("video",),
    progress: bool = True, desc: str = "predict", on_row: Callable[[dict], None] | None = None,
    skip_ids: Iterable[object] = (), batch_size: int | None = None, refused: Sequence[tuple[object, str]] = (),
) -> dict:  # fmt: skip
    """Predict every row (holmesvau.data.instructions.Instruction) not yet in `output` (nor in `skip_ids`); append
    as it goes, then rewrite the file in the order of `rows`. The next videos (up to 2 x batch_size) are prepared in
    a background thread while the current batch is answered (holmesvau.prefetch). Failed before any model work: a
    row whose prompt cannot fit the model's context with its frames, and each (id, reason) of `refused` (input
    lines whose id is known but that the reading policy could not take, e.g. a line over the size cap)."""
    import torch
    from tqdm.auto import tqdm

    from holmesvau.model import video_question
    from holmesvau.model.batch import AnswerRequest, default_batch_size, prompt_problem
    from holmesvau.prefetch import prefetched

    output = Path(output)
    done = done_ids(output) | {row_key(i) for i in skip_ids}
    todo = [r for r in rows if row_key(r.id) not in done]
    refused = [(i, why) for i, why in refused if row_key(i) not in done]
    size = max(1, int(batch_size or default_batch_size(vau.lm.device)))
    stats = {"total": len(rows) + len(refused), "skipped_done": len(rows) - len(todo), "ok": 0, "failed": 0}
    failed_early = [(SimpleNamespace(id=i, type=None, task=None, video=None), why) for i, why in refused]
    by_video: dict[str, list] = OrderedDict()
    n = len(sampling.frame_indices) if sampling.frame_indices is not None else sampling.select_frames
    for r in todo:
        why = prompt_problem(vau.lm, video_question(r.prompt, n), n)
        if why is not None:
            failed_early.append((r, why))
        else:
            by_video.setdefault(r.video, []).append(r)
    pending: list[tuple[object, AnswerRequest, object]] = []  # (row, request, plan)
    with (
        JsonlAppender(output) as f,
        tqdm(
            total=len(rows), initial=stats["skipped_done"], desc=desc, disable=not progress, unit="row"
        ) as bar,
    ):

        def emit(r, out: dict) -> None:
            f.write(out)
            stats["ok" if out["status"] == "ok" else "failed"] += 1
            bar.update(1)
            if out["status"] != "ok":
                bar.write(f"failed {r.id} ({r.video}): {out['error']}", file=sys.stderr)
            if on_row is not None:
                on_row(out)

        def flush() -> None:
            with model_lock:
                answers = _answer_all(vau.lm, [p[1] for p in pending], size)
            for (r, _, plan), answer in zip(pending, answers):
                emit(r, _row(r, answer, plan) if isinstance(answer, str) else _row(r, error=answer))
            pending.clear()

        def load(item):
            video, vrows = item
            with torch.inference_mode():
                path = inside_root(video_root, video)
                return _video_frames(vau, path, video, vrows, sampling, scores_dir, score_levels)

        # the next videos are probed, scored and decoded in a background thread while the GPU answers; the model
        # runs one job at a time (vau.model_lock: the dense ATS pass waits for the answering), so their memory never
        # adds up and an out-of-memory error cannot hit a video's scoring because of a batch answered beside it
        model_lock = getattr(vau, "model_lock", None) or contextlib.nullcontext()
        for r, why in failed_early:  # rows failed before any model work
            emit(r, _row(r, error=ValueError(why)))
        for (_, vrows), loaded in prefetched(load, by_video.items(), depth=2 * size):
            if isinstance(loaded, Exception):  # a bad video fails its own rows; the run goes on
                for r in vrows:
                    emit(r, _row(r, error=loaded))
                continue
            frames, plan = loaded
            for r in vrows:
                q = video_question(r.prompt, len(plan.indices))
                pending.append((r, AnswerRequest(frames, q, max_new_tokens), plan))
            if len(pending) >= 2 * size:
                flush()
        flush()
    merge_outputs(output, 0, [r.id for r in rows], remove=False)  # the rows' order, whatever the batching
    return stats


def _video_frames(vau, path: Path, video: str, vrows, sampling: SamplingConfig, scores_dir, score_levels):
    """One video's frame set (uint8 tiles, keyed by video and frames) and frame plan: probe, dense scores when
    ATS samples or they are dumped, plan and decode, once."""
    from holmesvau.model.batch import FrameSet
    from holmesvau.preprocess import frames_to_tiles
    from holmesvau.video import read_frames

    dense = None
    if scores_dir is not None and vau.scorer is not None:
        # an earlier run's scores (e.g. tools/reproduce.py's detection before reasoning): no second dense pass
        source = getattr(vau, "scores_source", None)
        dense = _reusable_dense(scores_dir, video, path, sampling.dense_stride, source)
        if dense is None and any(r.type in score_levels for r in vrows):
            dense = vau.dense_scores(path, sampling.dense_stride, progress=False)
            if not score_file(scores_dir, video).is_file():  # a file that does not fit is left as it is
                save_dense_scores(scores_dir, video, dense, source)
    planned = vau.plan(path, sampling, progress=False, dense=dense)
    idx = list(planned.plan.indices)
    tiles = frames_to_tiles(read_frames(path, idx), resize=getattr(vau, "resize", "torch"))
    return FrameSet(tiles=tiles, key=(str(path), tuple(idx))), planned.plan


def _answer_all(lm, requests: list, batch_size: int) -> list:
    """Answers (str) of `requests` in order; if the batch fails, each request alone: a bad one gets its exception."""
    from holmesvau.model.batch import answer_batch

    if not requests:
        return []
    try:
        return [o.answer for o in answer_batch(lm, requests, batch_size)]
    except Exception:  # noqa: BLE001 - narrowed down below, request by request
        out: list = []
        for req in requests:
            try:
                out.append(answer_batch(lm, [req], 1)[0].answer)
            except Exception as e:  # noqa: BLE001 - recorded as this row's failure
                out.append(e)
        return out


def _reusable_dense(
    scores_dir: str | Path, video: str | Path, path: str | Path, dense_stride: int, source: str | None = None
):
    """The DenseScores of `video` in SCORES_DIR when they fit this run: same stride and frame count as `path` now,
    increasing frames inside it, and the same `source` when the file records one. Else None."""
    import numpy as np

    from holmesvau.pipeline import DenseScores
    from holmesvau.video import dense_indices, probe

    f = score_file(scores_dir, video)
    try:
        saved = load_score_file(f) if f.is_file() else None
    except ValueError:
        saved = None
    if saved is None or (saved.source is not None and saved.source != source):
        return None
    info = probe(path)
    n = info.num_frames
    idx = saved.frame_indices
    if idx is None and saved.scores.size == len(dense_indices(n, dense_stride)):
        idx = np.asarray(dense_indices(n, dense_stride), dtype=np.int64)
    if saved.stride != dense_stride or saved.n_frames != n or idx is None:
        return None
    if idx.size and (idx[0] < 0 or idx[-1] >= n or np.any(np.diff(idx) <= 0)):
        return None
    return DenseScores(idx, saved.scores.astype(np.float32), info, int(dense_stride))


def dump_scores(
    vau, videos: Sequence[str], video_root: str | Path, scores_dir: str | Path, log: str | Path,
    dense_stride: int = SamplingConfig.dense_stride, progress: bool = True, desc: str = "scores",
    skip_ids: Iterable[object] = (),
) -> dict:  # fmt: skip
    """Dense anomaly scores of each video -> `scores_dir/<stem>.npz`, one log line per video in `log`; an existing
    file is kept (one that records another scorer, encoder or resize fails its video, with the reason)."""
    from tqdm.auto import tqdm

    if vau.scorer is None:
        raise ValueError("score dumping needs the anomaly scorer (do not pass --no-ats)")
    log = Path(log)
    done = done_ids(log) | {row_key(i) for i in skip_ids}
    stats = {"total": len(videos), "skipped_done": 0, "ok": 0, "failed": 0}
    with (
        JsonlAppender(log) as f,
        tqdm(total=len(videos), desc=desc, disable=not progress, unit="video") as bar,
    ):
        for v in videos:
            base = {"id": v, "video": v, "scores_file": None}
            try:
                dst = score_file(scores_dir, v)
                base["scores_file"] = dst.relative_to(scores_dir).as_posix()
                if row_key(v) in done or dst.is_file():
                    if row_key(v) not in done:  # a file already there: kept when it is from this scorer
                        check_source(dst, getattr(vau, "scores_source", None))
                        f.write({**base, "n_scores": None, "status": "ok", "error": None})
                    stats["skipped_done"] += 1
                    bar.update(1)
                    continue
                dense = vau.dense_scores(inside_root(video_root, v), dense_stride, progress=False)
                save_dense_scores(scores_dir, v, dense, getattr(vau, "scores_source", None))
                out = {**base, "n_scores": int(dense.scores.size), "status": "ok", "error": None}
                stats["ok"] += 1
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                out = {**base, "n_scores": None, "status": "failed", "error": f"{type(e).__name__}: {e}"}
                stats["failed"] += 1
                bar.write(f"failed {v}: {out['error']}", file=sys.stderr)
            f.write(out)
            bar.update(1)
    return stats
