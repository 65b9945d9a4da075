"""Issue 24 on tools/predict.py: rows whose `video` leads out of --video-root, outputs that would destroy a file,
one writer per output, and the reading policy for bad rows (docs/files-and-rows.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SLOW_WRITES

from holmesvau.cli.predict import main as predict_main
from holmesvau.testing import make_random_scorer
from holmesvau.testing.synthetic import make_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """videos/ucf/A.mp4 and B.mp4 under the video root, private.mp4 beside it (outside), a random scorer."""
    d = tmp_path_factory.mktemp("rows")
    make_video(d / "videos/ucf/A.mp4", 24)
    make_video(d / "videos/ucf/B.mp4", 8)
    make_video(d / "private.mp4", 8)
    return d, make_random_scorer(d / "scorer.pth", input_dim=64)


def _row(i, video, prompt="What happens?", **extra) -> dict:
    return {
        "id": i,
        "type": "clip",
        "task": "caption",
        "video": video,
        "prompt": prompt,
        "anwser": "a",
        **extra,
    }


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _predict(d, model, out, annotations, *extra) -> int:
    return predict_main(
        ["--annotations", str(annotations), "--video-root", str(d / "videos"), "--model", str(model),
         "--no-ats", "--select-frames", "2", "--max-new-tokens", "2", "--device", "cpu", "--quiet",
         "--output", str(out), *extra]
    )  # fmt: skip


def _rows(path: Path) -> dict:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_video_paths_that_leave_the_root_fail_their_row(data, tiny_model_dir, tmp_path):
    d, _ = data
    private = d / "private.mp4"
    rows = [_row(0, "ucf/A.mp4"), _row(1, "../private.mp4"), _row(2, str(private)), _row(3, "ucf/../../private.mp4"),
            _row(4, "ucf/sub/../B.mp4")]  # fmt: skip
    out = tmp_path / "preds.jsonl"
    assert _predict(d, tiny_model_dir, out, _write(tmp_path / "t.jsonl", rows)) == 0
    got = _rows(out)
    assert [got[i]["status"] for i in range(5)] == ["ok", "failed", "failed", "failed", "ok"]
    assert "'../private.mp4' leads outside --video-root" in got[1]["error"]
    assert "is absolute; rows name videos relative to --video-root" in got[2]["error"]
    assert "leads outside --video-root" in got[3]["error"]


@pytest.mark.parametrize("victim", ["video", "notes", "annotations", "link_to_annotations", "under_a_file"])
def test_an_output_that_is_not_ours_is_refused_untouched(data, tiny_model_dir, tmp_path, victim, capsys):
    """Issue 24: `--output victim.mp4` replaced a video with JSONL, `--output` equal to `--annotations` counted every
    row done and predicted nothing. Now each is refused before any work, exit 2, one line naming the file."""
    d, _ = data
    ann = _write(tmp_path / "test.jsonl", [_row(0, "ucf/A.mp4"), _row(1, "ucf/B.mp4")])
    out = {
        "video": tmp_path / "victim.mp4",
        "notes": tmp_path / "notes.txt",
        "annotations": ann,
        "link_to_annotations": tmp_path / "link.jsonl",
        "under_a_file": tmp_path / "notes.txt" / "preds.jsonl",  # (root writes into read-only folders)
    }[victim]
    if victim == "video":
        out.write_bytes((d / "videos/ucf/A.mp4").read_bytes())
    elif victim == "notes":
        out.write_text('{"my": "notes"}\nnot yours\n')
    elif victim == "link_to_annotations":
        out.symlink_to(ann)
    elif victim == "under_a_file":
        out.parent.write_text("notes")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert _predict(d, tiny_model_dir, out, ann) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: --output {out}") and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    want = {
        "video": "was not written by HolmesVAU",
        "notes": "was not written by HolmesVAU",
        "annotations": "is the input",
        "link_to_annotations": "is the input",
        "under_a_file": "cannot write into",
    }
    assert want[victim] in err  # fmt: skip


def test_two_runs_on_one_output_the_second_is_refused(data, tiny_model_dir, tmp_path, capsys):
    """Issue 24: run A (many rows) and run B (--limit 1) on one --output both exited 0 and the file kept 1 row.
    Now B is refused naming A's pid, and A completes with every row exactly once."""
    import os
    import subprocess
    import sys
    import time

    d, _ = data
    rows = [_row(f"r{i}", "ucf/A.mp4" if i % 2 else "ucf/B.mp4", f"q{i}?") for i in range(5)]
    ann, out = _write(tmp_path / "test.jsonl", rows), tmp_path / "preds.jsonl"
    argv = ["--annotations", str(ann), "--video-root", str(d / "videos"), "--model", str(tiny_model_dir), "--no-ats",
            "--select-frames", "2", "--max-new-tokens", "2", "--device", "cpu", "--quiet", "--output", str(out),
            "--batch-size", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    a = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITES, *argv], cwd=REPO, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.is_file() and out.read_bytes().count(b"\n") >= 1):  # A is writing its rows
            assert a.poll() is None and time.monotonic() < deadline, "run A ended before writing"
            time.sleep(0.05)
        assert predict_main(argv[:-2] + ["--limit", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: --output {out} is being written by another run (pid {a.pid}); wait for it to " \
            "finish or pick another output", err  # fmt: skip
        assert a.poll() is None  # B was refused while A was still running
        assert a.wait(timeout=240) == 0, a.stderr.read().decode()
    finally:
        a.kill()
        a.wait()
    got = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert got == [f"r{i}" for i in range(5)]  # every row once, in annotation order
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the lock went with run A


def test_inference_outputs_never_replace_the_video_or_a_users_file(data, tiny_model_dir, tmp_path, capsys):
    """Issue 24: `inference.py --video x.mp4 --output x.mp4` replaced the video with JSON (exit 0), and `--plot` on a
    user's file was refused only after the whole run. Each is refused before any work; our own outputs of an
    earlier run may be replaced."""
    from holmesvau.cli.inference import build_parser, check_outputs
    from holmesvau.cli.inference import main as inference_main

    d, scorer = data
    video = tmp_path / "x.mp4"
    video.write_bytes((d / "videos/ucf/A.mp4").read_bytes())
    (tmp_path / "notes.json").write_text('{"answer": "mine"}')
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's picture")
    base = ["--video", str(video), "--model", str(tmp_path / "no-model"), "--device", "cpu", "--quiet"]
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    for flag, target, says in [
        ("--output", video, "is the input"),
        ("--plot", video, "is the input"),
        ("--output", tmp_path / "notes.json", "was not written by HolmesVAU"),
        ("--plot", tmp_path / "photo.png", "was not written by HolmesVAU"),
        ("--report", tmp_path, "was not written by HolmesVAU"),  # report.json would replace ...
    ]:
        if flag == "--report":
            (tmp_path / "report.json").write_text("{}")
            before[tmp_path / "report.json"] = b"{}"
        assert inference_main([*base, flag, str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {flag} ") and says in err and "\n" not in err, err
        assert "no-model" not in err  # refused before the model was looked for
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a real run writes our result and plot; a rerun may replace them
    out, plot = tmp_path / "r.json", tmp_path / "curve.png"
    argv = ["--video", str(video), "--model", str(tiny_model_dir), "--scorer", str(scorer), "--select-frames", "2",
            "--dense-stride", "4", "--max-new-tokens", "2", "--device", "cpu", "--quiet", "--output", str(out),
            "--plot", str(plot)]  # fmt: skip
    assert inference_main(argv) == 0
    check_outputs(build_parser().parse_args(argv))  # ours now: no error


def _limit_memory():  # the child may never take the machine down, whatever the code under test does
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def test_a_50_mb_prompt_fails_its_own_row_in_bounded_memory(data, tiny_model_dir, tmp_path):
    """Issue 24: one row with a 50 MB prompt ran into the OOM killer at 23.4 GB and left an empty output. Now that
    row fails with the reason before any model work, the 5 good rows are answered, and the process stays under
    2 GB (its own peak RSS, from wait4)."""
    import os
    import subprocess
    import sys

    d, _ = data
    ann = tmp_path / "test.jsonl"
    with ann.open("w") as f:
        for i in range(5):
            if i == 3:  # written in pieces: the test itself never holds the 50 MB line
                f.write('{"id": "huge", "type": "clip", "task": "caption", "video": "ucf/B.mp4", "prompt": "')
                for _ in range(50):
                    f.write("What happened? " * 69_906)  # ~1 MiB
                f.write('", "anwser": "a"}\n')
            f.write(json.dumps(_row(f"r{i}", "ucf/A.mp4" if i % 2 else "ucf/B.mp4")) + "\n")
    assert ann.stat().st_size > 50_000_000
    out = tmp_path / "preds.jsonl"
    argv = ["tools/predict.py", "--annotations", str(ann), "--video-root", str(d / "videos"), "--model",
            str(tiny_model_dir), "--no-ats", "--select-frames", "2", "--max-new-tokens", "2", "--device", "cpu",
            "--quiet", "--output", str(out)]  # fmt: skip
    child = subprocess.Popen([sys.executable, *argv], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stderr=subprocess.PIPE, preexec_fn=_limit_memory)  # fmt: skip
    err = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, err
    peak_mb = usage.ru_maxrss / 1024  # Linux: kilobytes
    assert peak_mb < 2048, peak_mb
    rows = _rows(out)
    assert sorted(rows) == ["huge", "r0", "r1", "r2", "r3", "r4"]
    assert all(rows[f"r{i}"]["status"] == "ok" for i in range(5))
    assert rows["huge"]["status"] == "failed"
    assert (
        "line of 52,4" in rows["huge"]["error"]
        and "over the 1,048,576-byte limit for one row" in rows["huge"]["error"]
    )
    assert f"skipped line {ann}:4: line of 52,4" in err and '"skipped_lines": 1' in err


@pytest.mark.parametrize("damage", ["safetensors_header", "tokenizer_json"])
def test_a_damaged_model_file_is_one_line_naming_it(data, tiny_model_dir, tmp_path, damage, capsys):
    """Issue 24: a safetensors file with a bad header offset was a traceback; an invalid tokenizer.json an error
    that did not name the file."""
    import shutil
    import struct

    from holmesvau.cli.inference import main as inference_main

    d, _ = data
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    if damage == "safetensors_header":
        f = next(model.glob("*.safetensors"))
        raw = bytearray(f.read_bytes())
        raw[:8] = struct.pack("<Q", 10**12)  # the header length: far past the end of the file
        f.write_bytes(bytes(raw))
        named = str(model)
    else:
        (model / "tokenizer.json").write_text("{not json")
        named = str(model / "tokenizer.json")
    argv = [
        "--video",
        str(d / "videos/ucf/B.mp4"),
        "--model",
        str(model),
        "--no-ats",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert inference_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {named}") and "Traceback" not in err, err


@pytest.mark.parametrize(
    "tool", ["evaluate_detection", "evaluate_reasoning", "split_video_summary", "reproduce"]
)
def test_every_tool_refuses_a_file_it_did_not_write(shared, tmp_path, tool, capsys):
    """The other tools that write: tools/evaluate.py --output, split_video.py --summary, tools/reproduce.py's
    results in --output-dir. A user's file there is refused before any work, byte-identical."""
    import runpy

    notes = tmp_path / "out" / ("results.md" if tool == "reproduce" else "notes.json")
    notes.parent.mkdir()
    notes.write_text('{"my": "notes"}\n')
    if tool.startswith("evaluate"):
        from holmesvau.cli.evaluate import main

        sub = ["detection", "--scores", str(tmp_path), "--annotations", str(tmp_path / "a.txt")]
        if tool == "evaluate_reasoning":
            sub = [
                "reasoning",
                "--predictions",
                str(tmp_path / "p.jsonl"),
                "--annotations",
                str(tmp_path / "a"),
            ]
        rc, flag = main([*sub, "--output", str(notes)]), "--output"
    elif tool == "split_video_summary":
        main = runpy.run_path(str(REPO / "HIVAU-70k/split_video.py"))["main"]
        rc, flag = (
            main(
                [
                    "--root",
                    str(tmp_path),
                    "--dataset",
                    "ucf-crime",
                    "--split",
                    "test",
                    "--summary",
                    str(notes),
                ]
            ),
            "--summary",
        )
    else:
        main = runpy.run_path(str(REPO / "tools/reproduce.py"))["main"]
        data = shared("data/HIVAU-70k")
        (tmp_path / "Abuse028_x264.mp4").write_bytes(b"")  # one test video there: the data check passes
        rc = main(
            [
                "--data-root",
                str(data),
                "--output-dir",
                str(notes.parent),
                "--tasks",
                "detection-ucf",
                "--ucf-videos",
                str(tmp_path),
                "--allow-partial",
                "--model",
                str(tmp_path / "no-model"),
            ]
        )
        flag = "--output-dir"  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"error: {flag} {notes} exists and was not written by HolmesVAU"), err
    assert notes.read_text() == '{"my": "notes"}\n' and sorted(p.name for p in notes.parent.iterdir()) == [
        notes.name
    ]


def test_the_ranks_of_one_job_share_the_lock_and_nobody_else_gets_it(tmp_path):
    """flock on separate opens (as separate processes): ranks (shared) coexist; a plain run is refused while any
    rank holds it, naming their pids; while a plain run holds it, a rank is refused; the lock file goes with the
    plain run (tests/test_predict_shards.py runs two real torchrun ranks through it)."""
    import os

    from holmesvau.output_guard import OutputError, OutputLock

    out = tmp_path / "preds.jsonl"
    with OutputLock(out, shared=True), OutputLock(out, shared=True):
        with pytest.raises(OutputError, match=f"being written by another run \\(pid {os.getpid()}\\)"):
            OutputLock(out).__enter__()
    with OutputLock(out):
        with pytest.raises(OutputError, match="being written by another run"):
            OutputLock(out, shared=True).__enter__()
        with pytest.raises(OutputError, match="being written by another run"):
            OutputLock(out).__enter__()
    assert not (tmp_path / ".preds.jsonl.lock").exists()
    with OutputLock(out):  # free again
        pass


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_lock_path_that_is_a_link_or_not_a_file_is_refused_and_what_it_points_at_kept(tmp_path, kind):
    """The lock file is truncated and removed: one planted as a link to a user's file (or a FIFO) is refused
    before anything is opened through it, and the user's file keeps its bytes."""
    import os

    from holmesvau.output_guard import FolderLock, OutputError, OutputLock

    mine = tmp_path / "my_notes.txt"
    mine.write_text("keep me\n")
    out = tmp_path / "preds.jsonl"
    folder = tmp_path / "watch"
    folder.mkdir()
    for lock, make in ((tmp_path / ".preds.jsonl.lock", lambda: OutputLock(out).__enter__()),
                       (folder / ".watch.lock", lambda: FolderLock(folder))):  # fmt: skip
        os.symlink(mine, lock) if kind == "symlink" else os.mkfifo(lock)
        with pytest.raises(OutputError, match=r"cannot be our lock file"):
            make()
        assert lock.is_symlink() if kind == "symlink" else lock.exists()
    assert mine.read_text() == "keep me\n"


def test_a_full_disk_is_one_line_and_keeps_the_rows_written(
    data, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """A full disk during predict was a traceback. The file system is made full after the first row (the write
    raises ENOSPC as the kernel would): one line saying so and what to do, exit 2, the first row kept."""
    import errno

    from holmesvau.jsonl import JsonlAppender

    d, _ = data
    rows = [_row(f"r{i}", "ucf/B.mp4", f"q{i}?") for i in range(3)]
    out = tmp_path / "preds.jsonl"
    write = JsonlAppender.write

    def full_after_one(self, row):
        if self.lines >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, row)

    monkeypatch.setattr(JsonlAppender, "write", full_after_one)
    assert _predict(d, tiny_model_dir, out, _write(tmp_path / "t.jsonl", rows), "--batch-size", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: no space left on the device while writing {out}: free some space and rerun the same " \
        "command (the rows already written are kept)"  # fmt: skip
    assert list(_rows(out)) == ["r0"]


def test_bad_lines_are_skipped_reported_and_counted_and_the_run_goes_on(
    data, tiny_model_dir, tmp_path, capsys
):
    """Issue 24: `"id": NaN` was a traceback when written (every rerun the same), a line nested 100,000 deep a
    RecursionError, ids 1 and "1" or two rows with id 2 dropped rows while the stats said `"ok": 10`. Now each bad
    line is skipped and reported with its line number, the others are answered, and the stats add up."""
    d, _ = data
    lines = [
        _row(1, "ucf/B.mp4"),
        '{"id": NaN, "type": "clip", "task": "caption", "video": "ucf/B.mp4", "prompt": "p", "anwser": "a"}',
        "[" * 100_000 + "]" * 100_000,
        _row("1", "ucf/B.mp4"),
        _row(2, "ucf/B.mp4"),
        _row(2, "ucf/A.mp4"),
        _row(3.5, "ucf/B.mp4"),
        _row(4, "ucf/A.mp4"),
    ]
    ann, out = _write(tmp_path / "t.jsonl", lines), tmp_path / "preds.jsonl"
    assert _predict(d, tiny_model_dir, out, ann) == 0
    err = capsys.readouterr().err
    assert f"skipped line {ann}:2: not valid JSON: NaN is not valid JSON" in err
    assert f"skipped line {ann}:3: not valid JSON: nested too deep" in err
    assert f"skipped line {ann}:4: duplicate id '1' (first on line 1)" in err
    assert f"skipped line {ann}:6: duplicate id '2' (first on line 5)" in err
    assert f"skipped line {ann}:7: `id` must be a string or an integer, got float 3.5" in err
    stats = json.loads(err.strip().splitlines()[-1])
    assert (stats["total"], stats["ok"], stats["failed"], stats["skipped_lines"]) == (3, 3, 0, 5)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 4]


def test_a_prompt_longer_than_the_context_fails_its_row_before_any_model_work(data, tiny_model_dir, tmp_path):
    """Issue 24: a 120 KB prompt (123k tokens, over the model's 32,768) ran for minutes. A prompt that cannot fit
    with its frames now fails its own row with the reason: counted exactly when it could fit by its length, refused by
    its length alone (never tokenized) when it cannot."""
    d, _ = data
    rows = [_row("ok", "ucf/B.mp4"), _row("long", "ucf/B.mp4", " x" * 40_000),
            _row("huge", "ucf/B.mp4", "x" * 900_000)]  # fmt: skip
    out = tmp_path / "preds.jsonl"
    assert _predict(d, tiny_model_dir, out, _write(tmp_path / "t.jsonl", rows)) == 0
    got = _rows(out)
    assert got["ok"]["status"] == "ok" and got["long"]["status"] == got["huge"]["status"] == "failed"
    assert "is longer than the model's context of 32,768 tokens" in got["long"]["error"]
    huge = got["huge"]["error"]  # the frame lines count too
    assert (
        huge.startswith("ValueError: prompt of 900,0") and "characters cannot fit the model's context" in huge
    )


def test_an_answer_never_runs_past_the_models_context(tiny_lm, tiny_model_dir):
    """Issue 24: the model's context bounds tokens. --max-new-tokens is capped at parse time by the context alone;
    each row's answer is then capped by what its own prompt leaves of the context (read here from config.json)."""
    from holmesvau.model.batch import AnswerRequest, _prepare

    context = json.loads((tiny_model_dir / "config.json").read_text())["text_config"][
        "max_position_embeddings"
    ]
    short = _prepare(tiny_lm, 0, AnswerRequest(None, "Describe it.", max_new_tokens=10**6))
    assert short.max_new_tokens == context - short.ids.shape[1] and short.max_new_tokens < context
    assert _prepare(tiny_lm, 0, AnswerRequest(None, "Describe it.", max_new_tokens=7)).max_new_tokens == 7
    words = (context - short.ids.shape[1]) // 4  # " x" is one or two tokens: at most half the room
    longer = _prepare(tiny_lm, 0, AnswerRequest(None, "Describe it." + " x" * words, max_new_tokens=10**6))
    assert longer.ids.shape[1] >= short.ids.shape[1] + words
    assert longer.max_new_tokens == context - longer.ids.shape[1]


@pytest.mark.parametrize(
    "case", ["train_output_is_annotations", "train_log_is_a_users_file", "features_failures"]
)
def test_scorer_tools_refuse_inputs_and_files_they_did_not_write(shared, tmp_path, case, capsys):
    """tools/train_scorer.py (--output, --log, --metrics) and tools/extract_features.py (FEATDIR/failures.jsonl,
    the one file it appends to): an input or a user's file there is refused before any work, byte-identical."""
    import runpy

    annotations = tmp_path / "annotations.json"
    annotations.write_text('{"Abuse028_x264": {"label": "Abuse"}}\n')
    feats = tmp_path / "feats"
    feats.mkdir()
    notes = feats / ("failures.jsonl" if case == "features_failures" else "notes.jsonl")
    notes.write_text('{"my": "notes"}\n')
    if case == "features_failures":
        main = runpy.run_path(str(REPO / "tools/extract_features.py"))["main"]
        rc = main(
            ["--annotations", str(annotations), "--output", str(feats), "--model", str(tmp_path / "none")]
        )
        victim, expected = notes, f"error: --output {notes} exists and was not written by HolmesVAU"
    else:
        main = runpy.run_path(str(REPO / "tools/train_scorer.py"))["main"]
        argv = [
            "--features",
            str(feats),
            "--annotations",
            str(annotations),
            "--output",
            str(tmp_path / "s.pth"),
        ]
        if case == "train_output_is_annotations":
            argv[-1] = str(annotations)
            victim, expected = annotations, f"error: --output {annotations} is the input {annotations}"
        else:
            argv += ["--log", str(notes)]
            victim, expected = notes, f"error: --log {notes} exists and was not written by HolmesVAU"
        rc = main(argv)
    before = {"notes": '{"my": "notes"}\n', "annotations": '{"Abuse028_x264": {"label": "Abuse"}}\n'}
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(expected) and "Traceback" not in err, err
    assert victim.read_text() == before["annotations" if victim == annotations else "notes"]
    assert not (tmp_path / "s.pth").exists() and sorted(p.name for p in feats.iterdir()) == [notes.name]
