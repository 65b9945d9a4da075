"""tools/predict.py sharding (RANK / WORLD_SIZE) and merging; dense-score dumps for detection evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import predict_args

from holmesvau.cli.predict import main as predict_main
from holmesvau.eval.score_files import load_score_dir
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:skipped 1 malformed instruction line")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("set")
    make_video(d / "videos/ucf/A.mp4", 40, bright_ranges=[(10, 20)])
    make_video(d / "videos/ucf/C.mp4", 27)  # a last partial snippet for stride 4
    make_video(d / "videos/ucf/B.mp4", 8)
    plan = [("video", "judgement", "A"), ("clip", "caption", "B"), ("video", "judgement", "C"),
            ("event", "analysis", "missing"), ("video", "description", "A"), ("clip", "caption", "B"),
            ("video", "analysis", "missing")]  # fmt: skip
    lines = [
        json.dumps(
            {"id": i, "type": t, "task": k, "video": f"ucf/{v}.mp4", "prompt": f"q{i}?", "anwser": "a"}
        )
        for i, (t, k, v) in enumerate(plan)
    ]
    (d / "test.jsonl").write_text("\n".join(lines) + "\n")
    return d, make_random_scorer(d / "scorer.pth", input_dim=64)


def _ids(path):
    return [json.loads(line)["id"] for line in Path(path).read_text().splitlines()]


def test_two_ranks_merge_to_the_single_process_output(dataset, tiny_model_dir, tmp_path, monkeypatch):
    d, scorer = dataset
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    single = tmp_path / "single.jsonl"
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert predict_main(predict_args(d, scorer, tiny_model_dir, single)) == 0

    out = tmp_path / "sharded.jsonl"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert predict_main(predict_args(d, scorer, tiny_model_dir, out)) == 0
    shards = [[json.loads(line) for line in Path(f"{out}.rank{k}").read_text().splitlines()] for k in (0, 1)]
    videos = [{r["video"] for r in rows} for rows in shards]
    assert videos[0] and videos[1] and not videos[0] & videos[1]  # whole videos: each read by one rank only
    assert sorted(r["id"] for rows in shards for r in rows) == list(range(7))
    assert not out.exists()
    assert predict_main(["--merge", "--world-size", "2", *predict_args(d, scorer, tiny_model_dir, out)]) == 0
    assert out.read_text() == single.read_text()
    assert not Path(f"{out}.rank0").exists() and not Path(f"{out}.rank1").exists()

    # a rerun of a rank after the merge finds its rows done in the merged output
    monkeypatch.setenv("RANK", "1")
    assert predict_main(predict_args(d, scorer, tiny_model_dir, out)) == 0
    assert Path(f"{out}.rank1").read_text() == ""


def test_scores_only_writes_one_file_per_video(dataset, tiny_model_dir, tmp_path, monkeypatch):
    d, scorer = dataset
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    scores = tmp_path / "scores"
    args = [
        *predict_args(d, scorer, tiny_model_dir, tmp_path / "log.jsonl"),
        "--scores-only",
        "--scores-dir",
        str(scores),
    ]
    assert predict_main(args) == 0
    files, bad = load_score_dir(scores)
    assert bad == {} and sorted(files) == ["A", "C"]  # video-level rows only; the missing video is logged
    for name, n in (("A", 40), ("C", 27)):
        sf = files[name]
        assert sf.stride == 4 and sf.n_frames == n and sf.fps == pytest.approx(30.0)
        assert sf.scores.shape == (-(-n // 4),) and np.all((sf.scores >= 0) & (sf.scores <= 1))
        np.testing.assert_array_equal(sf.frame_indices, np.arange(0, n, 4))
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["video"], r["status"]) for r in log] == [
        ("ucf/A.mp4", "ok"), ("ucf/C.mp4", "ok"), ("ucf/missing.mp4", "failed")
    ]  # fmt: skip
    before = {p: p.stat().st_mtime_ns for p in scores.rglob("*.npz")}
    assert predict_main(args) == 0  # rerun: nothing recomputed, nothing duplicated
    assert {p: p.stat().st_mtime_ns for p in scores.rglob("*.npz")} == before
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3


def test_predictions_with_score_dump_match_scores_only(dataset, tiny_model_dir, tmp_path, monkeypatch):
    d, scorer = dataset
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    args = predict_args(d, scorer, tiny_model_dir, tmp_path / "p.jsonl")
    assert predict_main([*args, "--scores-dir", str(tmp_path / "s1"), "--levels", "video"]) == 0
    assert _ids(tmp_path / "p.jsonl") == [0, 2, 4, 6]
    args2 = predict_args(d, scorer, tiny_model_dir, tmp_path / "log.jsonl")
    assert predict_main([*args2, "--scores-only", "--scores-dir", str(tmp_path / "s2")]) == 0
    a, b = load_score_dir(tmp_path / "s1")[0], load_score_dir(tmp_path / "s2")[0]
    assert sorted(a) == sorted(b) == ["A", "C"]
    for k in a:
        np.testing.assert_allclose(a[k].scores, b[k].scores, atol=1e-6)


def test_torchrun_two_processes_merge_at_the_end(dataset, tiny_model_dir, tmp_path):
    import os
    import subprocess
    import sys

    import torch.distributed

    if not torch.distributed.is_available():  # run as `python -m torch.distributed.run` (= torchrun)
        pytest.skip("this torch build has no torch.distributed (torchrun)")
    d, scorer = dataset
    out = tmp_path / "tr.jsonl"
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    }
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "tools/predict.py", *predict_args(d, scorer, tiny_model_dir, out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _ids(out) == list(range(7))
    assert not list(tmp_path.glob("tr.jsonl.rank*"))
