"""JSON Lines: one reader, one appender, one atomic rewrite, one policy for every jsonl file of the project.

Reading (docs/files-and-rows.md) skips a line, reported as a `JsonlProblem` (file, 1-based line, reason), and
goes on, when it is not strict JSON (NaN, a torn last line), nested too deep, over `MAX_LINE_BYTES` (read past in
chunks, never held whole; its `id` recovered from its first bytes when it comes first, so the caller can fail
that row by name), or rejected by the caller's `parse` (`require_id`); with `unique_ids`, a repeated id (`1` and
`"1"` are one id). Blank lines are ignored; the reader never modifies a file.

Writing: `JsonlAppender` cuts a torn tail off a file of ours (a complete last object gets its missing newline),
then appends each row as one flushed `write` of `holmesvau.files.json_text(row)` + newline (NaN refused), so
concurrent appenders' lines stay whole and a kill loses at most that row; fsync on close. `write_jsonl_atomic`
rewrites a whole file all or nothing.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from holmesvau.files import atomic_open, json_text

MAX_LINE_BYTES = 1 << 20
HEAD_BYTES = 65536  # how much of an over-long line is kept to find its id


@dataclass(frozen=True)
class JsonlProblem:
    path: str
    line: int  # 1-based
    reason: str
    id: object = None  # the row's id when it could be read (an over-long line whose id comes first)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str) -> Any:
    """Strict JSON: NaN / Infinity refused (ValueError), nesting past the parser's depth a ValueError too."""
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("nested too deep") from None


def row_key(row_id: object) -> str:
    """An id as a key, whatever its JSON type: `1` and `"1"` are the same row."""
    return str(row_id)


def check_id(row_id: object) -> object:
    """The id of a row: a string or an integer (not a bool, float, NaN, list or object); else ValueError."""
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        shown = json.dumps(row_id)[:40] if not isinstance(row_id, float) else repr(row_id)
        raise ValueError(f"`id` must be a string or an integer, got {type(row_id).__name__} {shown}")
    return row_id


def require_id(value: Any) -> dict:
    """`parse` for row files keyed by id: an object with a string or integer `id`."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    if "id" not in value:
        raise ValueError("expected a JSON object with an `id`")
    check_id(value["id"])
    return value


def head_id(head: bytes) -> object:
    """The top-level `id` of a JSON object from the first bytes of its line, when it comes before anything cut off
    (None otherwise). Only `head` is looked at, never the rest of the line."""
    text = head.decode("utf-8", "replace")
    dec, skip = json.JSONDecoder(parse_constant=_no_constants), json.decoder.WHITESPACE.match
    i = skip(text, 0).end()
    if not text.startswith("{", i):
        return None
    try:
        while True:
            i = skip(text, i + 1).end()  # past the "{" or ","
            if not text.startswith('"', i):
                return None
            key, i = json.decoder.scanstring(text, i + 1)
            i = skip(text, i).end()
            if not text.startswith(":", i):
                return None
            # a value cut off by the head: ValueError
            value, i = dec.raw_decode(text, skip(text, i + 1).end())
            if key == "id":
                return check_id(value)
            i = skip(text, i).end()
            if not text.startswith(",", i):
                return None
    except (ValueError, RecursionError):
        return None


def _lines(f, cap: int) -> Iterator[tuple[int, bytes | None, int, bytes]]:
    """(line number, the line or None when over `cap`, its size, its first HEAD_BYTES): at most cap + 1 bytes held."""
    lineno = 0
    while True:
        raw = f.readline(cap + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) <= cap or raw.endswith(b"\n"):
            yield lineno, raw, len(raw), b""
            continue
        head, size = raw[:HEAD_BYTES], len(raw)
        del raw
        while True:  # the rest of the line, a chunk at a time, counted and dropped
            chunk = f.readline(cap)
            size += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                break
        yield lineno, None, size, head


def iter_jsonl(
    path: str | Path,
    parse: Callable[[Any], Any] | None = None,
    unique_ids: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple[int, Any] | JsonlProblem]:
    """(line number, value) for every good line, a JsonlProblem for every skipped one (see the module doc).
    `parse(value)` may convert the decoded value or raise ValueError / TypeError / KeyError to reject it.
    `unique_ids`: values are rows with an `id` (after `parse`); a repeated id is a problem."""
    path = Path(path)
    first_line: dict[str, int] = {}
    with path.open("rb") as f:
        for lineno, raw, size, head in _lines(f, max_line_bytes):
            if raw is None:
                row_id = head_id(head)
                if unique_ids and row_id is not None:  # its id is taken: the caller fails that row by it
                    first_line.setdefault(row_key(row_id), lineno)
                over = f"over the {max_line_bytes:,}-byte limit for one row; not read"
                yield JsonlProblem(str(path), lineno, f"line of {size:,} bytes is {over}", row_id)
                continue
            if not raw.strip():
                continue
            try:
                value = loads(raw)
            except ValueError as e:
                reason = getattr(e, "msg", None) or str(e)
                torn = not raw.endswith(b"\n")
                what = "incomplete last line (a write cut short?)" if torn else f"not valid JSON: {reason}"
                yield JsonlProblem(str(path), lineno, what)
                continue
            if parse is not None:
                try:
                    value = parse(value)
                except (ValueError, TypeError, KeyError) as e:
                    yield JsonlProblem(str(path), lineno, str(e) or type(e).__name__)
                    continue
            if unique_ids:
                k = row_key(value["id"] if isinstance(value, dict) else value.id)
                if k in first_line:
                    dup = f"duplicate id {k!r} (first on line {first_line[k]})"
                    yield JsonlProblem(str(path), lineno, dup)
                    continue
                first_line[k] = lineno
            yield lineno, value


def read_jsonl(
    path: str | Path,
    parse: Callable[[Any], Any] | None = None,
    missing_ok: bool = False,
    unique_ids: bool = False,
) -> tuple[list[Any], list[JsonlProblem]]:
    """All good values of a jsonl file and the problems of the skipped lines. FileNotFoundError naming the file
    when it does not exist (or ([], []) with missing_ok)."""
    path = Path(path)
    if not path.is_file():
        if missing_ok and not path.exists():
            return [], []
        raise FileNotFoundError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    rows, problems = [], []
    for item in iter_jsonl(path, parse, unique_ids):
        if isinstance(item, JsonlProblem):
            problems.append(item)
        else:
            rows.append(item[1])
    return rows, problems


def dumps(row: Any) -> str:
    """One jsonl line (with its newline); ValueError for NaN / infinity (holmesvau.files.json_text)."""
    return json_text(row) + "\n"


def read_rows(path: str | Path) -> list[dict]:
    """Rows (objects with an id) of an output file of ours; missing file: none; malformed lines skipped."""
    return read_jsonl(path, parse=require_id, missing_ok=True)[0]


def done_ids(*paths: str | Path) -> set[str]:
    """The `row_key`s of the rows already in these output files (what a resumed run skips)."""
    return {row_key(r["id"]) for p in paths for r in read_rows(p)}


def repair_torn_tail(path: str | Path) -> int:
    """Make a file of ours safe to append to: cut a torn last line (returns the bytes removed); a complete last
    object missing only its newline gets the newline. A missing file is left alone."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[-1:] == b"\n":
            return 0
        size, tail = len(m), m[m.rfind(b"\n") + 1 :]  # the bytes after the last newline (rfind: from the end)
    try:
        json.loads(tail)
    except ValueError:
        with path.open("r+b") as f:
            f.truncate(size - len(tail))
        return len(tail)
    with path.open("ab") as f:
        f.write(b"\n")
    return 0


class JsonlAppender:
    """The project's JSONL writer (see the module doc), as `with JsonlAppender(path) as out: out.write(row)`;
    `fresh` starts the file empty instead of repairing it. Safe from several threads; `lines` counts the rows."""

    def __init__(self, path: str | Path, fresh: bool = False):
        self.path, self.fresh = Path(path), fresh
        self.lines = 0
        self.repaired = 0  # bytes of a torn tail cut on opening
        self._f: IO[str] | None = None
        self._lock = threading.RLock()  # a subclass may hold it around write and close

    def open(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.fresh:
            self.repaired = repair_torn_tail(self.path)
        self._f = self.path.open("w" if self.fresh else "a", encoding="utf-8")
        return self

    __enter__ = open

    def write(self, row: Any) -> None:
        line = dumps(row)  # refused (ValueError) before anything is written
        with self._lock:
            if self._f is None:
                raise ValueError(f"{self.path}: writing to a closed JsonlAppender")
            self._f.write(line)
            self._f.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            f, self._f = self._f, None  # closed even when the fsync or the final flush fails
            if f is not None:
                try:
                    os.fsync(f.fileno())
                finally:
                    f.close()

    def __exit__(self, *exc) -> None:
        self.close()


def append_jsonl(path: str | Path, row: Any) -> None:
    """Append one row (one write, so lines from concurrent processes stay whole on a local file system)."""
    with JsonlAppender(path) as f:
        f.write(row)


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> Path:
    """Replace `path` with `rows` all or nothing (holmesvau.files.atomic_open)."""
    with atomic_open(path) as f:
        for row in rows:
            f.write(dumps(row))
    return Path(path)
