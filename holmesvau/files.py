"""Writing output files all or nothing: a temporary sibling, then a rename (a reader never sees half a file, and a
kill leaves the previous version in place)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix, so writers that look at it behave); on success it is
    renamed onto `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}-tmp{path.suffix}")  # keeps the suffix (and only it)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8; what UTF-8 cannot encode (the lone surrogates Python makes of a non-UTF-8 file name) is written as
    a backslash escape instead of failing half-way through a set of outputs."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
    return Path(path)


def atomic_write_json(path: str | Path, data, indent: int | None = 2) -> Path:
    """Strict JSON (NaN / infinity refused with ValueError before anything is written). UTF-8 text is kept
    readable; what UTF-8 cannot encode (the lone surrogates of a non-UTF-8 file name) is escaped instead."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")
