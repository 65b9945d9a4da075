"""JSON Lines files: one reader, one appender, one atomic rewrite, with one policy for damaged lines.

Policy (the same for every jsonl file the project reads or writes):
- A **malformed line** (not valid JSON, nested too deep, over the size cap, or rejected by the caller's `parse`) is
  **skipped and reported** as a `JsonlProblem` with the file and 1-based line number; reading goes on
  (holmesvau.jsonl_read, which reads a line over the cap in chunks, never whole). Callers that must be strict raise
  on the first problem (e.g. `holmesvau.data.instructions.read_instructions(on_error="raise")`).
- A **torn last line** (no final newline and not valid JSON: a write cut by a kill) is reported like any malformed
  line by the reader, which never modifies a file. Before *appending* to a file of ours, `repair_torn_tail` cuts it
  off (and gives a complete last object its missing newline), so the next row starts on a line of its own.
- Blank lines are ignored.
- Rows are written by `JsonlAppender` (the one JSONL writer) as one `write` of `holmesvau.files.json_text(row)`
  plus a newline (a NaN or infinity is refused: strict JSON parsers reject them), flushed, so concurrent appenders'
  lines stay whole and a kill loses at most the row being written; the file is fsynced on close.
  `write_jsonl_atomic` rewrites a whole file through `holmesvau.files.atomic_open`: a reader sees the old file
  or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from holmesvau.files import atomic_open, json_text

# reading: one policy for every jsonl input (holmesvau.jsonl_read), imported from here by the callers
from holmesvau.jsonl_read import JsonlProblem, iter_jsonl, read_jsonl, require_id, row_key  # noqa: F401


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
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, tail = size, b""
        while pos > 0:  # the bytes after the last newline, read backwards in chunks
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                tail = chunk[nl + 1 :] + tail
                break
            tail = chunk + tail
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
    """The project's JSONL writer: appends rows to a jsonl file of ours (a torn tail repaired first; `fresh`
    starts the file empty instead), one write + flush per row under a lock (safe from several threads), fsync on
    close. `lines` counts the rows written.

    with JsonlAppender("preds.jsonl") as out:
        out.write({"id": 1, ...})
    """

    def __init__(self, path: str | Path, fresh: bool = False):
        self.path, self.fresh = Path(path), fresh
        self.lines = 0
        self._f: IO[str] | None = None
        self._lock = threading.Lock()

    def open(self) -> JsonlAppender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.fresh:
            repair_torn_tail(self.path)
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
            if self._f is not None:
                try:
                    os.fsync(self._f.fileno())
                finally:
                    self._f.close()
                    self._f = None

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
