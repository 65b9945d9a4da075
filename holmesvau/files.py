"""Writing files all or nothing, with one policy for every file the project writes (docs/files.md).

- **One temp-and-rename**: `atomic_target` (a path, for writers that want one: a video muxer, ffmpeg, savefig) and
  `atomic_open` (a file object; np.save / np.savez add their suffix to a name, so give them this). Both write a
  hidden sibling `.NAME.PID-N.part` (no `*.mp4` / `*.npz` listing picks it up), fsync it, rename it onto the
  target and fsync the folder: a reader or a kill sees the old file or the new one, never a mix. On error the
  temporary is removed and the old file is untouched.
- **Strict JSON**: `json_text` refuses NaN / infinity (ValueError, before anything is written); `json_safe` turns
  them into null where a value may be undefined. What UTF-8 cannot encode (the lone surrogates of a non-UTF-8
  file name) is escaped, not a crash. JSON Lines are in `holmesvau.jsonl`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

_serial = itertools.count()  # temporaries unique across threads of one process too


def json_text(data: Any, indent: int | None = None, default: Callable[[Any], Any] | None = None) -> str:
    """Strict JSON text (no newline): ValueError for NaN / infinity. `default` as in json.dumps."""
    kw = {"indent": indent, "allow_nan": False, "default": default}
    text = json.dumps(data, ensure_ascii=False, **kw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, **kw)
    return text


def json_safe(value: Any) -> Any:
    """NaN / inf (e.g. an AUC undefined on one class, a diverged loss) as null, in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of `path` left by a killed run (to remove before writing it again)."""
    path = Path(path)
    return sorted(path.parent.glob(glob.escape(f".{path.name}.") + "*.part"))


@contextlib.contextmanager
def atomic_target(
    path: str | Path, keep_suffix: bool = False, temporary: Path | None = None
) -> Iterator[Path]:
    """Yield a hidden temporary sibling path of `path` to write to; on success it is fsynced and renamed onto
    `path`, on error removed, unless it is the caller's `temporary` (a partial download the next run resumes).
    `keep_suffix`: for writers that pick the format from the name (savefig). The project's one temp-and-rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{next(_serial)}.part"  # `.NAME.PID-N.part`, `.STEM.PID-N.part.SUFFIX` with keep_suffix
    tmp = temporary or path.with_name(
        f".{path.stem}.{tag}{path.suffix}" if keep_suffix else f".{path.name}.{tag}"
    )
    try:
        yield tmp
        if tmp.is_file():
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # the rename made durable (a folder cannot be opened on Windows)
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        if temporary is None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """`open(path, mode)` all or nothing ("w" or "wb"). Text is UTF-8 with what it cannot encode escaped."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    text = {"encoding": "utf-8", "errors": "backslashreplace"} if mode == "w" else {}
    with atomic_target(path) as tmp, open(tmp, mode, **text) as f:
        yield f


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8; what it cannot encode is backslash-escaped (not a failure half-way through the outputs)."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2, default=None) -> Path:
    """Strict JSON (NaN / infinity refused with ValueError before anything is written), with a final newline."""
    return atomic_write_text(path, json_text(data, indent, default) + "\n")
