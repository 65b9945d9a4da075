"""Feature extraction for scorer training: tiny ViT on generated videos, resume, failures, sharding, file format."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from holmesvau.ats.features import (
    FAILURES_FILE,
    FeatureFileError,
    extract_to_dir,
    load_features,
    save_features,
    shard,
    videos_from_annotations,
    videos_from_list,
)
from holmesvau.testing.synthetic import make_video

FRAMES = {"clip_a": 300, "clip_b": 170, "clip_c": 33}


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name, n in FRAMES.items():
        make_video(root / "sub" / f"{name}.mp4", n, fps=25, bright_ranges=[(n // 3, n // 2)])
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return root


def _mean_encoder(pixel_values: torch.Tensor) -> torch.Tensor:
    """A cheap stand-in ViT: per-channel means (N, 3)."""
    return pixel_values.float().mean(dim=(2, 3))


def test_tiny_vit_one_file_per_video_with_shapes_indices_and_failure(tiny_lm, video_dir, tmp_path):
    from holmesvau.model import vit_cls_features, vit_encoder
    from holmesvau.preprocess import frames_to_pixel_values
    from holmesvau.video import read_frames

    videos = [video_dir / "sub" / f"{n}.mp4" for n in FRAMES] + [video_dir / "broken.mp4"]
    report = extract_to_dir(videos, vit_encoder(tiny_lm), tmp_path, stride=16, batch_size=8, progress=False)
    assert sorted(report.extracted) == sorted(FRAMES)
    assert [f["name"] for f in report.failed] == ["broken"]
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(f"{n}.npz" for n in FRAMES)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind
    failures = [json.loads(line) for line in (tmp_path / FAILURES_FILE).read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["name"] == "broken" and "broken.mp4" in failures[0]["reason"]
    for name, n in FRAMES.items():
        vf = load_features(tmp_path / f"{name}.npz")
        np.testing.assert_array_equal(vf.frame_indices, np.arange(0, n, 16))
        assert vf.features.shape == (len(range(0, n, 16)), 64) and vf.features.dtype == np.float32
        assert vf.fps == pytest.approx(25.0) and vf.n_frames == n and vf.stride == 16
    # the stored rows are the CLS features of exactly those frames
    vf = load_features(tmp_path / "clip_b.npz")
    pick = [0, 5, 10]
    pv = frames_to_pixel_values(read_frames(video_dir / "sub" / "clip_b.mp4", vf.frame_indices[pick]))
    np.testing.assert_allclose(vf.features[pick], vit_cls_features(tiny_lm, pv).numpy(), atol=1e-4)


def test_resume_skips_done_videos_and_retries_failures(video_dir, tmp_path):
    videos = [video_dir / "sub" / f"{n}.mp4" for n in FRAMES] + [video_dir / "broken.mp4"]
    first = extract_to_dir(videos[:2], _mean_encoder, tmp_path, progress=False)
    assert sorted(first.extracted) == ["clip_a", "clip_b"]
    stamp = (tmp_path / "clip_a.npz").stat().st_mtime_ns
    calls = []

    def counting(pv):
        calls.append(pv.shape[0])
        return _mean_encoder(pv)

    second = extract_to_dir(videos, counting, tmp_path, progress=False)
    assert sorted(second.skipped) == ["clip_a", "clip_b"]
    assert second.extracted == ["clip_c"] and [f["name"] for f in second.failed] == ["broken"]
    assert sum(calls) == len(range(0, FRAMES["clip_c"], 16))  # only the new video was encoded
    assert (tmp_path / "clip_a.npz").stat().st_mtime_ns == stamp


def test_shards_are_disjoint_and_complete(video_dir, tmp_path):
    videos = [video_dir / "sub" / f"{n}.mp4" for n in FRAMES]
    reports = [
        extract_to_dir(videos, _mean_encoder, tmp_path, rank=r, world_size=2, progress=False)
        for r in range(2)
    ]
    done = [set(r.extracted) for r in reports]
    assert done[0].isdisjoint(done[1]) and done[0] | done[1] == set(FRAMES)
    assert all(r.skipped == [] for r in reports)  # no rank redid another's video
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_feature_file_roundtrip_and_errors(tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    p = save_features(tmp_path / "v.npz", x, [0, 16, 32, 48, 64], 29.97, n_frames=70, stride=16)
    vf = load_features(p)
    np.testing.assert_array_equal(vf.features, x)
    assert vf.frame_indices.dtype == np.int64 and vf.fps == pytest.approx(29.97) and vf.n_frames == 70
    with pytest.raises(ValueError, match="do not match"):
        save_features(tmp_path / "w.npz", x, [0, 16], 30.0)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FeatureFileError, match="bad.npz"):
        load_features(tmp_path / "bad.npz")
    np.savez(tmp_path / "nofps.npz", features=x, frame_indices=np.arange(5))
    with pytest.raises(FeatureFileError, match="fps"):
        load_features(tmp_path / "nofps.npz")
    with pytest.raises(FeatureFileError, match="no such"):
        load_features(tmp_path / "missing.npz")


def test_video_lists_from_list_raw_database_and_jsonl(video_dir, tmp_path):
    lst = tmp_path / "videos.txt"
    lst.write_text("# comment\nsub/clip_a.mp4\n\nsub/clip_b.mp4\n")
    assert videos_from_list(lst, video_dir) == [video_dir / "sub/clip_a.mp4", video_dir / "sub/clip_b.mp4"]
    entry = {
        "n_frames": 300,
        "fps": 25.0,
        "label": [],
        "events": [[0.0, 12.0]],
        "clips": [[[0.0, 12.0]]],
        "clips_caption": [["c"]],
        "events_summary": ["s"],
        "events_summary_split": [{"judgement": "j", "description": "d"}],
        "video_summary": "v",
        "video_summary_split": {"judgement": "j", "description": "d"},
    }
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"clip_a": entry, "clip_c": {**entry, "n_frames": 33}}))
    assert videos_from_annotations(db, video_dir) == [
        video_dir / "sub/clip_a.mp4",
        video_dir / "sub/clip_c.mp4",
    ]
    rows = [
        {"type": "clip", "video": "sub/clip_a_E0C0.mp4"},
        {"type": "video", "video": "sub/clip_a.mp4"},
        {"type": "video", "video": "sub/clip_a.mp4"},
        {"type": "video", "video": "sub/clip_b.mp4"},
    ]
    jl = tmp_path / "test.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert videos_from_annotations(jl, video_dir) == [
        video_dir / "sub/clip_a.mp4",
        video_dir / "sub/clip_b.mp4",
    ]


def test_cli_extracts_with_tiny_model(tiny_model_dir, video_dir, tmp_path):
    """tools/extract_features.py run as a user runs it: a bad and a missing video are recorded, the run goes on."""
    import subprocess
    import sys
    from pathlib import Path

    lst = tmp_path / "videos.txt"
    lst.write_text("sub/clip_c.mp4\nbroken.mp4\nmissing.mp4\n")
    out = tmp_path / "feats"
    cmd = [sys.executable, "tools/extract_features.py", "--video-root", str(video_dir), "--list", str(lst),
           "--model", str(tiny_model_dir), "--output", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip

    def run():
        proc = subprocess.run(cmd, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])

    rc, summary = run()
    assert rc == 0 and summary["extracted"] == 1 and summary["failed"] == 2
    assert load_features(out / "clip_c.npz").features.shape == (3, 64)
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["name"] for f in failures) == ["broken", "missing"]
    rc, summary = run()
    assert rc == 0 and summary["skipped"] == 1 and summary["extracted"] == 0


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    """tools/extract_features.py in a subprocess, as a user runs it: (exit status, stdout, stderr)."""
    import subprocess
    import sys
    from pathlib import Path

    cmd = [sys.executable, "tools/extract_features.py", *argv]
    proc = subprocess.run(cmd, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_exit_status_1_when_every_video_fails(tiny_model_dir, video_dir, tmp_path, capsys):
    lst = tmp_path / "videos.txt"
    lst.write_text("broken.mp4\nmissing.mp4\nsub\n")  # corrupt, missing, a folder
    out = tmp_path / "feats"
    argv = [
        "--video-root",
        str(video_dir),
        "--list",
        str(lst),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(out),
    ]
    rc, out_text, _ = _run_cli([*argv, "--device", "cpu", "--no-progress"])
    summary = json.loads(out_text.strip().splitlines()[-1])
    assert rc == 1 and (summary["extracted"], summary["failed"]) == (0, 3)  # before: exit status 0
    assert sorted(p.name for p in out.iterdir()) == [FAILURES_FILE]  # no partial feature file


@pytest.mark.parametrize(
    "case,message",
    [
        ("model_missing", "no_such_model: no such folder"),
        ("model_is_a_file", "videos.txt: a model must be a folder"),
        ("output_is_a_file", "--output .*videos.txt: exists and is not a folder"),
        ("empty_list", "empty.txt: names no videos"),
        ("bad_stride", "--stride and --batch-size must be >= 1"),
    ],
)
def test_cli_bad_arguments_are_one_line_before_any_work(
    tiny_model_dir, video_dir, tmp_path, capsys, case, message
):
    lst, empty = tmp_path / "videos.txt", tmp_path / "empty.txt"
    lst.write_text("sub/clip_c.mp4\n")
    empty.write_text("# nothing\n")
    out = tmp_path / "feats"
    args = {"--video-root": video_dir, "--list": lst, "--model": tiny_model_dir, "--output": out}
    if case == "model_missing":
        args["--model"] = tmp_path / "no_such_model"  # before: a traceback
    elif case == "model_is_a_file":
        args["--model"] = lst
    elif case == "output_is_a_file":
        args["--output"] = lst
    elif case == "empty_list":
        args["--list"] = empty
    argv = [str(x) for kv in args.items() for x in kv] + ["--device", "cpu", "--no-progress"]
    if case == "bad_stride":
        argv += ["--stride", "0"]
    rc, out_text, err_text = _run_cli(argv)
    assert rc == 2 and out_text == ""
    lines = err_text.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), err_text
    assert not out.exists()  # nothing written
