"""holmesvau.jsonl (one policy for torn and malformed lines) and holmesvau.distributed (rank, world, shards)."""

import json
import os
import threading

import pytest

from holmesvau.distributed import DistEnv, default_device, dist_env, shard
from holmesvau.jsonl import (
    JsonlAppender,
    JsonlProblem,
    append_jsonl,
    iter_jsonl,
    read_jsonl,
    repair_torn_tail,
    require_id,
    write_jsonl_atomic,
)


def test_malformed_lines_are_skipped_and_reported_with_line_numbers(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"id": 1}\n{broken\n\n[1, 2]\n{"id": "2", "x": "\xc3\xa9"}\n\xff\xfe\n{"id": 3, "cut')
    rows, problems = read_jsonl(p, parse=require_id)
    assert rows == [{"id": 1}, {"id": "2", "x": "é"}]
    assert [(q.line, q.reason.split(":")[0]) for q in problems] == [
        (2, "not valid JSON"),
        (4, "expected a JSON object, got list"),
        (6, "not valid JSON"),
        (7, "incomplete last line (a write cut short?)"),
    ]
    assert str(problems[0]).startswith(f"{p}:2: ")
    assert p.read_bytes().endswith(b'"cut')  # reading never modifies the file
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
    assert read_jsonl(tmp_path / "nope.jsonl", missing_ok=True) == ([], [])


@pytest.mark.parametrize(
    "content,after,removed",
    [
        (b'{"id": 1}\n{"id": 2, "pre', b'{"id": 1}\n', 14),  # torn: cut
        (b'{"id": 1}\n{"id": 2}', b'{"id": 1}\n{"id": 2}\n', 0),  # complete, newline missing: added
        (b'{"id": 1}\n', b'{"id": 1}\n', 0),
        (b'{"id": ', b"", 7),  # the only line torn
        (b"", b"", 0),
    ],
)
def test_repair_torn_tail(tmp_path, content, after, removed):
    p = tmp_path / "out.jsonl"
    p.write_bytes(content)
    assert repair_torn_tail(p) == removed
    assert p.read_bytes() == after


def test_repair_reads_long_last_lines_backwards(tmp_path):
    p = tmp_path / "long.jsonl"
    first = json.dumps({"id": 1, "text": "a" * 200_000}) + "\n"
    torn = json.dumps({"id": 2, "text": "b" * 150_000})[:-5]
    p.write_text(first + torn)
    assert repair_torn_tail(p) == len(torn)
    assert p.read_text() == first


def test_appender_repairs_then_appends_and_refuses_nan(tmp_path):
    p = tmp_path / "sub" / "out.jsonl"
    p.parent.mkdir()
    p.write_text('{"id": 1}\n{"id": 2, "tor')
    with JsonlAppender(p) as out:
        out.write({"id": 2, "v": "ü"})
        with pytest.raises(ValueError):
            out.write({"id": 3, "v": float("nan")})
    assert p.read_text(encoding="utf-8") == '{"id": 1}\n{"id": 2, "v": "ü"}\n'
    append_jsonl(p, {"id": 4})
    assert read_jsonl(p)[0] == [{"id": 1}, {"id": 2, "v": "ü"}, {"id": 4}]


def test_atomic_rewrite_keeps_the_old_file_when_a_row_fails(tmp_path):
    p = tmp_path / "out.jsonl"
    p.write_text('{"id": 1}\n')
    with pytest.raises(ValueError):
        write_jsonl_atomic(p, [{"id": 2}, {"id": 3, "x": float("inf")}])
    assert p.read_text() == '{"id": 1}\n' and os.listdir(tmp_path) == ["out.jsonl"]
    write_jsonl_atomic(p, [{"id": 2}])
    assert p.read_text() == '{"id": 2}\n'


def test_dist_env_and_shards(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(k, raising=False)
    assert dist_env() == DistEnv(0, 1, 0, False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == DistEnv(3, 4, 1, False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert dist_env().can_barrier
    assert default_device("cuda", dist_env()) == "cuda:1" and default_device("cpu", dist_env()) == "cpu"
    for rank, world in (("4", "4"), ("-1", "2"), ("0", "0"), ("x", "2")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", world)
        with pytest.raises(ValueError, match="RANK|WORLD_SIZE"):
            dist_env()
    items = list(range(10))
    parts = [shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(ValueError):
        shard(items, 3, 3)


def test_appender_shared_by_threads_keeps_every_line_whole(tmp_path):
    p = tmp_path / "events.jsonl"
    text = "é" * 3000  # rows longer than a buffer, so an unlocked writer would interleave them
    with JsonlAppender(p) as out:
        threads = [
            threading.Thread(target=lambda t=t: [out.write({"t": t, "i": i, "x": text}) for i in range(200)])
            for t in range(4)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    rows, problems = read_jsonl(p)
    assert problems == [] and out.lines == 800
    assert sorted((r["t"], r["i"]) for r in rows) == [(t, i) for t in range(4) for i in range(200)]
    with pytest.raises(ValueError, match="closed"):
        out.write({"late": 1})
    with JsonlAppender(p, fresh=True) as out:  # a new log replaces the old one of ours
        out.write({"id": 1})
    assert p.read_text() == '{"id": 1}\n'


def test_every_bad_line_is_skipped_with_its_line_number_and_the_reading_goes_on(tmp_path):
    """Issue 24's lines: a NaN id (a traceback when written back), ids that are floats, lists or booleans, a NaN
    anywhere, a line nested 100,000 deep (RecursionError), duplicate ids after normalisation (1 and "1"), a line
    over the size cap (read past in chunks; its id found in its first bytes)."""
    p = tmp_path / "rows.jsonl"
    lines = [
        b'{"id": 1, "v": "a"}',
        b'{"id": NaN}',
        b'{"id": 2.5}',
        b'{"id": [1]}',
        b'{"id": true}',
        b'{"id": 3, "score": Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "1", "v": "b"}',
        b'{"id": 4, "prompt": "' + b"x" * 300_000 + b'"}',
        b'{"prompt": "' + b"x" * 300_000 + b'", "id": 5}',
        b'{"id": 4}',
        b'{"id": 6}',
    ]
    p.write_bytes(b"\n".join(lines) + b"\n")
    got = list(iter_jsonl(p, parse=require_id, unique_ids=True, max_line_bytes=250_000))
    rows = [item for item in got if not isinstance(item, JsonlProblem)]
    problems = {q.line: q for q in got if isinstance(q, JsonlProblem)}
    assert rows == [(1, {"id": 1, "v": "a"}), (12, {"id": 6})]
    reasons = {n: q.reason for n, q in problems.items()}
    assert reasons[2] == "not valid JSON: NaN is not valid JSON"
    assert reasons[3] == "`id` must be a string or an integer, got float 2.5"
    assert reasons[4] == "`id` must be a string or an integer, got list [1]"
    assert reasons[5] == "`id` must be a string or an integer, got bool true"
    assert reasons[6] == "not valid JSON: Infinity is not valid JSON"
    assert reasons[7] == "not valid JSON: nested too deep"
    assert reasons[8] == "duplicate id '1' (first on line 1)"
    size = len(lines[8]) + 1  # with its newline
    assert reasons[9] == f"line of {size:,} bytes is over the 250,000-byte limit for one row; not read"
    assert (problems[9].id, problems[10].id) == (4, None)  # an id after the long field is not looked for
    assert reasons[11] == "duplicate id '4' (first on line 9)"  # the over-long row 4 is failed by that id
    assert sorted(problems) == list(range(2, 12))
