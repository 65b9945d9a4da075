"""Reading JSON Lines: one policy for every jsonl file the project reads (instructions, predictions, logs).

A line is **skipped and reported** (a `JsonlProblem`: file, 1-based line number, reason), and reading goes on, when
- it is not valid JSON (NaN / Infinity included: strict JSON has none), or is cut short (a torn last line);
- it is nested deeper than the parser allows (a line of 100,000 `[` is an error for that line, not the run's);
- it is longer than `MAX_LINE_BYTES` (1 MiB; a HIVAU row is under 4 KB): such a line is read past in chunks and
  never held or parsed whole, so memory stays bounded by the cap, not by the line. Its `id` is recovered from its
  first bytes when it comes before the long field, so the caller can fail that row by name;
- the caller's `parse` rejects it (`require_id`: not a JSON object, an `id` that is not a string or an integer).
`unique_ids=True` also skips a row whose id repeats an earlier one after normalisation (`1` and `"1"` are one id),
naming the line of the first. Blank lines are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    dec, ws = json.JSONDecoder(parse_constant=_no_constants), " \t\r\n"
    i = len(text) - len(text.lstrip(ws))
    if not text.startswith("{", i):
        return None
    i += 1
    try:
        while True:
            i += len(text[i:]) - len(text[i:].lstrip(ws))
            if not text.startswith('"', i):
                return None
            key, i = json.decoder.scanstring(text, i + 1)
            i += len(text[i:]) - len(text[i:].lstrip(ws))
            if not text.startswith(":", i):
                return None
            i += 1
            i += len(text[i:]) - len(text[i:].lstrip(ws))
            value, i = dec.raw_decode(text, i)  # a value cut off by the head ends the search (ValueError)
            if key == "id":
                return check_id(value)
            i += len(text[i:]) - len(text[i:].lstrip(ws))
            if not text.startswith(",", i):
                return None
            i += 1
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
                reason = (
                    f"line of {size:,} bytes is over the {max_line_bytes:,}-byte limit for one row; not read"
                )
                row_id = head_id(head)
                if unique_ids and row_id is not None:  # its id is taken: the caller fails that row by it
                    first_line.setdefault(row_key(row_id), lineno)
                yield JsonlProblem(str(path), lineno, reason, row_id)
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
                    yield JsonlProblem(
                        str(path), lineno, f"duplicate id {k!r} (first on line {first_line[k]})"
                    )
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
