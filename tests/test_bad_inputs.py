"""32 bad or odd inputs (tests/bad_videos.py) through inference.py, tools/predict.py and tools/extract_features.py.

Each input is either refused -- one line naming the file, a non-zero exit (inference; extract_features when every
video failed) or a failed row (predict, extract_features), no traceback, no hang, no output file -- or read as the
"Bad input" section of docs/inference.md documents (bad_videos.DOCUMENTED_OK).

predict and extract_features take every input in ONE subprocess each. inference.py takes one video, and a
process per input costs ~2.5 s of imports: three representative inputs (a FIFO, a non-UTF-8 name, broken
timing) run as real subprocesses; all of them run through `holmesvau.cli.inference.main` (what the script runs) in one
subprocess that loads the tiny model once. extract_features' exit status when every video fails and its
`--model` check are in test_extract_features.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_videos import DOCUMENTED_OK, make_bad_inputs

from holmesvau.testing import make_random_scorer
from holmesvau.video_open import shown

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # a FIFO handed to a decoder would block forever: every run has a deadline


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad") / "inputs"
    expected = make_bad_inputs(folder)
    scorer = make_random_scorer(folder.parent / "scorer.pth", input_dim=64)  # the tiny ViT's 64-d CLS
    rows = [{"id": i, "type": "video", "task": "description", "video": n, "prompt": "What happens?", "anwser": ""}
            for i, n in enumerate(expected)]  # fmt: skip
    (folder.parent / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder, expected, scorer


def test_the_suite_is_what_it_claims(bad):
    folder, expected, _ = bad
    assert len(expected) == 32
    assert sum(v == "ok" for v in expected.values()) == len(DOCUMENTED_OK)
    assert os.path.exists(folder / "fifo.mp4") and not (folder / "fifo.mp4").is_file()


def _run(args: list[str], cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, timeout=TIMEOUT, env=env)


def _one_line_naming(message: str, name: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    assert shown(name) in message, (name, message)


def _no_traceback(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    return err


def test_predict_records_a_failed_row_per_bad_input(bad, tiny_model_dir, tmp_path):
    folder, expected, scorer = bad
    out, scores = tmp_path / "preds.jsonl", tmp_path / "scores"
    proc = _run([
        "tools/predict.py", "--annotations", str(folder.parent / "test.jsonl"), "--video-root", str(folder),
        "--model", str(tiny_model_dir), "--scorer", str(scorer), "--output", str(out), "--scores-dir", str(scores),
        "--select-frames", "4", "--dense-stride", "4", "--max-new-tokens", "2", "--device", "cpu", "--quiet",
    ])  # fmt: skip
    _no_traceback(proc)
    assert proc.returncode == 0  # some rows are fine
    rows = {r["video"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert sorted(rows) == sorted(expected)
    for name, want in expected.items():
        row = rows[name]
        assert row["status"] == ("ok" if want == "ok" else "failed"), (name, row)
        if want == "ok":
            assert len(row["frame_indices"]) == 4 and row["error"] is None
        else:
            _one_line_naming(row["error"], name)
    written = {p.name for p in scores.iterdir() if p.is_file()}
    assert len(written) == len(DOCUMENTED_OK)  # a score file for each readable video, none for the others
    assert not list(scores.glob(".partial/*"))
    for name in ("zero_timescale", "zero_durations", "zero_timestamps"):  # 1 s at 30 fps, whatever they say
        with np.load(scores / f"{name}.npz") as z:
            assert (int(z["n_frames"]), float(z["fps"]), z["scores"].shape) == (30, 30.0, (8,)), name
        row = rows[f"{name}.mkv" if name == "zero_timestamps" else f"{name}.mp4"]
        assert len(set(row["frame_indices"])) == 4, row


def test_extract_features_fails_each_bad_input_and_writes_no_partial_file(bad, tiny_model_dir, tmp_path):
    from holmesvau.ats.features import FAILURES_FILE, load_features

    folder, expected, _ = bad
    out = tmp_path / "feats"
    common = ["tools/extract_features.py", "--video-root", str(folder), "--model", str(tiny_model_dir),
              "--device", "cpu", "--no-progress"]  # fmt: skip
    proc = _run([*common, "--annotations", str(folder.parent / "test.jsonl"), "--output", str(out)])
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr  # some videos were extracted
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    n_ok = len(DOCUMENTED_OK)
    assert (summary["extracted"], summary["failed"]) == (n_ok, len(expected) - n_ok)
    failures = [json.loads(line) for line in (out / FAILURES_FILE).read_text(encoding="utf-8").splitlines()]
    failed_names = sorted(os.path.relpath(f["video"], folder) for f in failures)
    assert failed_names == sorted(n for n, w in expected.items() if w == "error")
    for f in failures:
        _one_line_naming(f["reason"], os.path.relpath(f["video"], folder))
    npz = sorted(p.name for p in out.iterdir() if p.name != FAILURES_FILE)
    assert len(npz) == n_ok and all(n.endswith(".npz") and not n.startswith(".") for n in npz)
    for n in npz:
        assert load_features(out / n).features.shape[1] == 64


# inference.main for every input in one process, the tiny model loaded once (load_pipeline is what main calls)
_DRIVER = r"""
import contextlib, io, json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from holmesvau.cli import inference
cfg = json.loads(Path(sys.argv[1]).read_text())
cache = {}
real = inference.load_pipeline
inference.load_pipeline = lambda args: cache.get("vau") or cache.setdefault("vau", real(args))
out = []
for i, video in enumerate(cfg["videos"]):
    err = io.StringIO()
    result = Path(cfg["out"]) / f"{i}.json"
    argv = ["--video", video, *cfg["args"], "--output", str(result)]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc, uncaught = inference.main(argv), None
        except SystemExit as e:
            rc, uncaught = e.code, None
        except BaseException as e:
            rc, uncaught = None, f"{type(e).__name__}: {e}"
    out.append({"video": video, "rc": rc, "stderr": err.getvalue(), "uncaught": uncaught,
                "result": json.loads(result.read_text()) if result.exists() else None})
Path(cfg["report"]).write_text(json.dumps(out))
"""


def _inference_args(model, scorer) -> list[str]:
    return ["--model", str(model), "--scorer", str(scorer), "--select-frames", "4", "--dense-stride", "4",
            "--max-new-tokens", "2", "--device", "cpu", "--quiet"]  # fmt: skip


def _check_inference(name: str, want: str, rc, stderr: str, result: dict | None) -> None:
    if want == "error":
        assert rc == 2 and result is None, (name, rc, stderr)
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
        _one_line_naming(lines[0], name)
        return
    assert rc == 0, (name, stderr)
    n, fps = result["video"]["num_frames"], result["video"]["fps"]
    assert len(result["frame_indices"]) == 4 and all(0 <= i < n for i in result["frame_indices"])
    assert all(0 <= t <= n / fps for t in result["timestamps_s"]), (name, result["timestamps_s"])
    if n > 1:  # distinct frames of the whole clip: not one frame four times, not seconds past the end
        assert len(set(result["frame_indices"])) == 4 and result["frame_indices"][-1] >= n // 2, (
            name,
            result,
        )


def test_inference_main_on_every_input(bad, tiny_model_dir, tmp_path):
    folder, expected, scorer = bad
    cfg = {"videos": [str(folder / n) for n in expected], "args": _inference_args(tiny_model_dir, scorer),
           "out": str(tmp_path), "report": str(tmp_path / "report.json")}  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "cfg.json")], cwd=REPO,
                          capture_output=True, timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report) == len(expected)
    for item, (name, want) in zip(report, expected.items()):
        assert item["uncaught"] is None, (name, item["uncaught"])  # the script would print a traceback
        _check_inference(name, want, item["rc"], item["stderr"], item["result"])


@pytest.mark.parametrize("name", ["fifo.mp4", os.fsdecode(b"non_utf8_\xff\xfe.mp4"), "zero_timescale.mp4"])
def test_inference_script(bad, tiny_model_dir, tmp_path, name):
    folder, expected, scorer = bad
    result = tmp_path / "r.json"
    proc = _run(["inference.py", "--video", str(folder / name), *_inference_args(tiny_model_dir, scorer),
                 "--output", str(result)])  # fmt: skip
    err = _no_traceback(proc)
    data = json.loads(result.read_text()) if result.exists() else None
    _check_inference(name, expected[name], proc.returncode, err, data)
