"""Batched prediction (tools/predict.py --batch-size): same rows and answers as one at a time and as chat() per
row, whole videos per rank, and bad input failing only its own rows."""

import json
import random
from pathlib import Path

import pytest
from helpers import predict_args

from holmesvau.ats.weights import load_scorer
from holmesvau.cli.predict import main as predict_main
from holmesvau.data.instructions import Instruction, read_instructions
from holmesvau.frame_plan import SamplingConfig
from holmesvau.model import chat, video_question
from holmesvau.pipeline import HolmesVAU
from holmesvau.predict import predict_rows, shard_by_video
from holmesvau.preprocess import frames_to_pixel_values
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video
from holmesvau.video import read_frames

SAMPLING = SamplingConfig(select_frames=2, dense_stride=4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three readable videos (one long enough for ATS), a corrupt one in the middle; 11 rows, mixed levels."""
    d = tmp_path_factory.mktemp("set")
    make_video(d / "videos/ucf/A.mp4", 40, bright_ranges=[(10, 20)])
    make_video(d / "videos/ucf/B.mp4", 8)
    make_video(d / "videos/ucf/C.mp4", 27)
    (d / "videos/ucf/bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    plan = [("video", "judgement", "A", "Are there anomalies observed in the video clip?"),
            ("clip", "caption", "B", "Describe the video briefly."),
            ("event", "description", "bad", "Could you specify the anomaly events present in the video?"),
            ("video", "description", "A", "Could you provide a summary of the anomaly events in this video?"),
            ("event", "judgement", "C", "Are there any anomaly events detected in the video?"),
            ("clip", "caption", "B", "What happened in this video?"),
            ("video", "analysis", "A", "How do the characteristics of this event support its classification?"),
            ("event", "analysis", "bad", "Can you provide the reasons for considering it anomalous?"),
            ("event", "description", "C", "Point out the abnormal actions in the video."),
            ("clip", "caption", "C", "Give a short description of the video."),
            ("clip", "caption", "B", "Summarize the visual content of the video clip.")]  # fmt: skip
    lines = [
        json.dumps({"id": i, "type": t, "task": k, "video": f"ucf/{v}.mp4", "prompt": q, "anwser": "a"})
        for i, (t, k, v, q) in enumerate(plan)
    ]
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    return d, make_random_scorer(d / "scorer.pth", input_dim=64)


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_batch_of_8_writes_the_rows_and_answers_of_batch_1_and_of_chat_per_row(
    dataset, tiny_model_dir, tiny_lm, tmp_path, monkeypatch
):
    d, scorer = dataset
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    outs = {}
    for b in (1, 8):
        outs[b] = tmp_path / f"b{b}.jsonl"
        args = [
            *predict_args(d, scorer, tiny_model_dir, outs[b]),
            "--max-new-tokens",
            "8",
            "--batch-size",
            str(b),
        ]
        assert predict_main(args) == 0
    assert outs[8].read_text() == outs[1].read_text()
    rows = _rows(outs[8])
    assert [r["id"] for r in rows] == list(range(11))
    # the corrupt video fails its own two rows, with the reason; every other row of its batch is answered
    failed = {r["id"]: r["error"] for r in rows if r["status"] == "failed"}
    assert set(failed) == {2, 7}
    assert all(e.startswith("VideoError") and "bad.mp4" in e for e in failed.values())
    # the oracle: chat() per row (one plain transformers generate on CPU-normalised pixel values, no batching
    # code) on the frames the planner picks for the row's video
    vau = HolmesVAU(tiny_lm, load_scorer(scorer))
    for r in rows:
        if r["status"] == "ok":
            video = d / "videos" / r["video"]
            plan = vau.plan(video, SAMPLING, progress=False).plan
            pv = frames_to_pixel_values(read_frames(video, list(plan.indices)))
            question = video_question(_prompt(d, r["id"]), len(plan.indices))
            want = chat(tiny_lm, pv, question, max_new_tokens=8).answer
            assert (r["prediction"], r["frame_indices"], r["sampling"]) == (
                want,
                list(plan.indices),
                plan.sampling,
            )
    assert {r["sampling"] for r in rows if r["video"].endswith("A.mp4")} == {"ats"}


def _prompt(d, row_id):
    return next(r.prompt for r in read_instructions(d / "test.jsonl") if r.id == row_id)


def test_a_request_that_fails_inside_a_batch_fails_alone(dataset, tiny_lm, tmp_path, monkeypatch):
    import holmesvau.model.batch as batch_mod

    d, scorer = dataset
    real = batch_mod.answer_batch

    def poisoned(lm, requests, batch_size=None, **kw):
        if any("briefly" in r.question for r in requests):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(lm, requests, batch_size, **kw)

    monkeypatch.setattr(batch_mod, "answer_batch", poisoned)
    rows = read_instructions(d / "test.jsonl")
    out = tmp_path / "p.jsonl"
    vau = HolmesVAU(tiny_lm, load_scorer(scorer))
    stats = predict_rows(vau, rows, d / "videos", out, SAMPLING, max_new_tokens=3,
                         progress=False, batch_size=8)  # fmt: skip
    got = {r["id"]: r for r in _rows(out)}
    assert stats == {"total": 11, "skipped_done": 0, "ok": 8, "failed": 3}
    assert got[1]["status"] == "failed" and got[1]["error"] == (
        "RuntimeError: CUDA error: an illegal memory access was encountered"
    )
    assert {i for i, r in got.items() if r["status"] == "failed"} == {1, 2, 7}


def _row(i, video):
    return Instruction(id=i, type="clip", task="caption", video=video, prompt="q", answer="a")


@pytest.mark.parametrize("world", [2, 3, 5])
def test_ranks_take_whole_videos_balanced_by_size(tmp_path, world):
    rng = random.Random(world)
    sizes = {f"v{k}.mp4": rng.randint(1_000, 200_000) for k in range(17)}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"\0" * size)
    rows = [_row(i, rng.choice([*sizes, "missing.mp4"])) for i in range(80)]
    shards = [shard_by_video(rows, k, world, tmp_path) for k in range(world)]
    assert sorted(r.id for s in shards for r in s) == list(range(80))  # complete, each row once
    videos = [{r.video for r in s} for s in shards]
    for a in range(world):
        for b in range(a + 1, world):
            assert not videos[a] & videos[b]  # no video on two ranks
        assert [r.id for r in shards[a]] == sorted(r.id for r in shards[a])  # rows keep their order
    loads = [sum(sizes.get(v, 1) for v in vs) for vs in videos]
    used = {r.video for r in rows}
    assert max(loads) - min(loads) <= max(sizes.get(v, 1) for v in used)  # greedy, largest first
    assert shards == [shard_by_video(rows, k, world, tmp_path) for k in range(world)]  # every rank agrees


def test_next_videos_are_decoded_while_a_batch_is_answered_and_the_model_runs_one_thing_at_a_time(
    dataset, tiny_lm, tmp_path, monkeypatch
):
    """Frames of the next videos are read in the background thread while a batch is being answered; the dense
    ATS pass never runs beside the answering (their GPU memory would add up)."""
    import threading
    import time

    import holmesvau.model.batch as batch_mod
    import holmesvau.video as video_mod

    d, scorer = dataset
    active, log, lock = {"answer": 0, "dense": 0, "read": 0}, [], threading.Lock()

    def tracked(kind, fn, pause=0.0, settle=0.0):
        def run(*a, **kw):
            time.sleep(settle)  # a read starts a moment later: the main thread has begun answering by then
            with lock:
                active[kind] += 1
                log.append((kind, dict(active), threading.current_thread() is threading.main_thread()))
            try:
                time.sleep(pause)  # an answer lasts long enough for the background thread to get going
                return fn(*a, **kw)
            finally:
                with lock:
                    active[kind] -= 1

        return run

    vau = HolmesVAU(tiny_lm, load_scorer(scorer))
    monkeypatch.setattr(batch_mod, "answer_batch", tracked("answer", batch_mod.answer_batch, pause=0.5))
    import holmesvau.ats as ats_mod  # the dense pass itself (inside HolmesVAU.dense_scores's model lock)

    monkeypatch.setattr(ats_mod, "extract_dense_features", tracked("dense", ats_mod.extract_dense_features))
    monkeypatch.setattr(video_mod, "read_frames", tracked("read", video_mod.read_frames, settle=0.1))
    rows = read_instructions(d / "test.jsonl")
    stats = predict_rows(vau, rows, d / "videos", tmp_path / "p.jsonl", SAMPLING,
                         max_new_tokens=2, progress=False, batch_size=1)  # fmt: skip
    assert stats["ok"] == 9 and stats["failed"] == 2
    assert any(kind == "dense" for kind, _, _ in log)  # video A is long enough for ATS
    assert all(not main for kind, _, main in log if kind in ("dense", "read"))  # prepared in the background
    assert all(now["answer"] + now["dense"] <= 1 for _, now, _ in log)  # the model: one thing at a time
    assert any(kind == "read" and now["answer"] == 1 for kind, now, _ in log)  # decoding beside answering
