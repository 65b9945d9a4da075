"""Batch prediction over HIVAU-70k-style test rows: resumable jsonl output, rank shards, dense-score dumps.

Output: one JSON object a line, `{"id", "type", "task", "video", "prediction", "frame_indices", "sampling",
"status": "ok"|"failed", "error"}`, appended and flushed row by row. A rerun reads the ids already written (a last
line cut by a kill is dropped) and does only the rest, so every row ends up exactly once. A row whose video
is missing or unreadable is written with status "failed" and the reason; `retry_failed` rewrites the file
without those rows and tries them again.

Batching: rows are grouped by video; each video is probed, scored, planned and decoded once and its frames encoded
once, and the questions are answered in batches (holmesvau.model.batch). Rows are appended as their batch finishes;
when a run completes the file is rewritten in annotation order, so it is the same whatever the batch size.

Sharding: rank r of W takes whole videos (`shard_by_video`: balanced by file size, so each video is read on one
rank) and writes `OUTPUT.rank{r}`; `merge_outputs` joins the shards (and any earlier merged output) in annotation
order, one line per id.

Score files (`--scores-dir`, holmesvau.score_store): one per video, named after its path. Prediction with
`scores_dir` samples ATS frames from a score file already there (written by an earlier run, e.g. detection before
reasoning) when its stride, frame count and recorded scorer fit; otherwise it runs the dense pass.

jsonl files follow holmesvau.jsonl: a torn last line is cut before appending, malformed lines are skipped.
"""

from __future__ import annotations

import contextlib
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from holmesvau.frame_plan import SamplingConfig
from holmesvau.jsonl import JsonlAppender, read_jsonl, require_id, write_jsonl_atomic
from holmesvau.score_store import dump_scores, save_dense, saved_dense, score_file  # noqa: F401 - re-exported

FIELDS = ("id", "type", "task", "video", "prediction", "frame_indices", "sampling", "status", "error")


def key(row_id: object) -> str:
    return str(row_id)  # ids may be ints in one file and strings in another


def shard_path(output: str | Path, rank: int) -> Path:
    return Path(f"{output}.rank{rank}")


def read_rows(path: str | Path) -> list[dict]:
    """Rows (objects with an id) of an output file of ours; missing file: none. Malformed lines are skipped
    (holmesvau.jsonl policy; a torn last line is cut before the next append)."""
    return read_jsonl(path, parse=require_id, missing_ok=True)[0]


def drop_failed(path: str | Path) -> int:
    """Rewrite `path` without its failed rows (so they are retried); returns how many were dropped."""
    path = Path(path)
    rows = read_rows(path)
    keep = [r for r in rows if r.get("status", "ok") == "ok"]
    if len(keep) != len(rows):
        write_jsonl_atomic(path, keep)
    return len(rows) - len(keep)


def done_ids(*paths: str | Path) -> set[str]:
    out: set[str] = set()
    for p in paths:
        out.update(key(r["id"]) for r in read_rows(p))
    return out


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
            k = key(row["id"])
            old = best.get(k)
            if old is None or row.get("status", "ok") == "ok" or old.get("status", "ok") != "ok":
                best[k] = row
    rank_of = {key(i): n for n, i in enumerate(order or [])}
    rows = sorted(best.values(), key=lambda r: rank_of.get(key(r["id"]), len(rank_of)))
    write_jsonl_atomic(output, rows)
    if remove:
        for p in sources[1:]:
            p.unlink(missing_ok=True)
    failed = sum(r.get("status", "ok") != "ok" for r in rows)
    return {"rows": len(rows), "failed": failed, "output": str(output)}


def _failed(base: dict, e: BaseException) -> dict:
    return {
        **base,
        "prediction": None,
        "frame_indices": None,
        "sampling": None,
        "status": "failed",
        "error": f"{type(e).__name__}: {e}",
    }


def shard_by_video(rows: Sequence, rank: int, world: int, video_root: str | Path = ".") -> list:
    """This rank's rows: whole videos, so each video's probe, dense pass and decoding happen on one rank only.

    Videos are dealt largest first to the least loaded rank (ties: the lower rank), weighed by file size as a
    stand-in for frame count (no rank opens another's videos); every rank computes the same split. Rows keep their
    order."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} out of range for world size {world}")
    videos = list(dict.fromkeys(r.video for r in rows))

    def weight(v: str) -> int:
        try:
            return max(1, (Path(video_root) / v).stat().st_size)
        except OSError:
            return 1  # missing: its rows fail fast wherever they go

    load = [0] * world
    owner: dict[str, int] = {}
    for v in sorted(videos, key=lambda v: (-weight(v), v)):
        owner[v] = min(range(world), key=lambda k: (load[k], k))
        load[owner[v]] += weight(v)
    return [r for r in rows if owner[r.video] == rank]


def _ok(base: dict, answer: str, plan) -> dict:
    return {
        **base,
        "prediction": answer,
        "frame_indices": list(plan.indices),
        "sampling": plan.sampling,
        "status": "ok",
        "error": None,
    }


def predict_rows(
    vau,
    rows: Sequence,
    video_root: str | Path,
    output: str | Path,
    sampling: SamplingConfig = SamplingConfig(),
    max_new_tokens: int = 1024,
    scores_dir: str | Path | None = None,
    score_levels: Sequence[str] = ("video",),
    progress: bool = True,
    desc: str = "predict",
    on_row: Callable[[dict], None] | None = None,
    skip_ids: Iterable[object] = (),
    batch_size: int | None = None,
) -> dict:
    """Predict every row (holmesvau.data.instructions.Instruction) not yet in `output` (nor in `skip_ids`);
    append as it goes, then rewrite the file in the order of `rows`.

    Rows are grouped by video: each video is probed, scored (when ATS samples it or its scores are dumped),
    planned and decoded once, its frames encoded once, and its questions answered with the others' in batches of
    `batch_size` (holmesvau.model.batch; default 16 on a GPU, 4 on the CPU). A video that cannot be read fails its
    own rows; the rest are answered. The next videos (up to 2 x batch_size) are prepared in a background thread
    while the current batch is answered (holmesvau.prefetch)."""
    import torch
    from tqdm.auto import tqdm

    from holmesvau.model import video_question
    from holmesvau.model.batch import AnswerRequest, default_batch_size
    from holmesvau.prefetch import prefetched

    output = Path(output)
    done = done_ids(output) | {key(i) for i in skip_ids}
    todo = [r for r in rows if key(r.id) not in done]
    size = max(1, int(batch_size or default_batch_size(vau.lm.device)))
    stats = {"total": len(rows), "skipped_done": len(rows) - len(todo), "ok": 0, "failed": 0}
    by_video: dict[str, list] = OrderedDict()
    for r in todo:
        by_video.setdefault(r.video, []).append(r)
    pending: list[tuple[object, dict, AnswerRequest, object]] = []  # (row, base, request, plan)
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
                answers = _answer_all(vau.lm, [p[2] for p in pending], size)
            for (r, base, _, plan), answer in zip(pending, answers):
                emit(r, _ok(base, answer, plan) if isinstance(answer, str) else _failed(base, answer))
            pending.clear()

        def load(item):
            video, vrows = item
            with torch.inference_mode():
                return _video_frames(
                    vau, Path(video_root) / video, video, vrows, sampling, scores_dir, score_levels
                )

        # the next videos are probed, scored and decoded in a background thread while the GPU answers; the model
        # runs one job at a time (vau.model_lock: the dense ATS pass waits for the answering), so their memory never
        # adds up and an out-of-memory error cannot hit a video's scoring because of a batch answered beside it
        model_lock = getattr(vau, "model_lock", None) or contextlib.nullcontext()
        for (_, vrows), loaded in prefetched(load, by_video.items(), depth=2 * size):
            bases = [{"id": r.id, "type": r.type, "task": r.task, "video": r.video} for r in vrows]
            if isinstance(loaded, Exception):  # a bad video fails its own rows; the run goes on
                for r, base in zip(vrows, bases):
                    emit(r, _failed(base, loaded))
                continue
            frames, plan = loaded
            for r, base in zip(vrows, bases):
                q = video_question(r.prompt, len(plan.indices))
                pending.append((r, base, AnswerRequest(frames, q, max_new_tokens), plan))
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
        dense = saved_dense(scores_dir, video, path, sampling.dense_stride, source)
        if dense is None and any(r.type in score_levels for r in vrows):
            dense = vau.dense_scores(path, sampling.dense_stride, progress=False)
            if not score_file(scores_dir, video).is_file():  # a file that does not fit is left as it is
                save_dense(scores_dir, video, dense, source)
    planned = vau.plan(path, sampling, progress=False, dense=dense)
    idx = list(planned.plan.indices)
    tiles = frames_to_tiles(read_frames(path, idx), resize=getattr(vau, "resize", "torch"))
    return FrameSet(tiles=tiles, key=(str(path), tuple(idx))), planned.plan


def _answer_all(lm, requests: list, batch_size: int) -> list:
    """Answers (str) of `requests` in order; if the batch fails as a whole, each request alone, so that one bad
    request fails (its exception in its place) and the others are answered."""
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
