"""Writing files all or nothing, with one policy for every file the project writes.

- **One temp-and-rename**: `atomic_target` (a path for writers that want one: a video muxer, ffmpeg, savefig)
  and `atomic_open` (a file object). Both write a hidden temporary sibling `.NAME.PID-N.part` (same folder, so the
  final move is a rename; no listing of `*.mp4` or `*.npz` picks it up), fsync it, rename it onto the target and fsync the
  folder: a reader or a kill sees the old file or the new one, never a mix, and a power cut cannot leave the new
  name pointing at unwritten data. On error the temporary is removed and the old file is untouched. (np.save /
  np.savez add their suffix to a name without it: give them the file object of `atomic_open(path, "wb")`.)
- **Strict JSON**: `json_text` refuses NaN / infinity (ValueError, before anything is written: strict parsers
  reject them; `json_safe` turns them into null where a value may legitimately be undefined). UTF-8 stays
  readable; what UTF-8 cannot encode (the lone surrogates of a non-UTF-8 file name) is escaped, not a crash.
- JSON Lines (appending, torn tails) are in `holmesvau.jsonl`, built on these.
"""

from __future__ import annotations

import glob
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path, keep_suffix: bool = False) -> Path:
    """`.NAME.PID-N.part`: hidden, and matched by no `*.mp4` / `*.npz` / `*.jsonl` listing of the folder;
    keep_suffix gives `.STEM.PID-N.part.SUFFIX` for writers that pick the format from the name (savefig)."""
    tag = f"{os.getpid()}-{next(_serial)}.part"
    return path.with_name(f".{path.stem}.{tag}{path.suffix}" if keep_suffix else f".{path.name}.{tag}")


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of `path` left by a killed run (to remove before writing it again)."""
    path = Path(path)
    return sorted(path.parent.glob(glob.escape(f".{path.name}.") + "*.part"))


@contextmanager
def atomic_target(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path of `path` to write to; on success it is fsynced and renamed onto `path`,
    on error removed. The one temp-and-rename of the project (`atomic_open` and the writers below use it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, keep_suffix)
    try:
        yield tmp
        if tmp.is_file():
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """`open(path, mode)` all or nothing ("w" or "wb"). Text is UTF-8 with what it cannot encode escaped."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode 'w' or 'wb', not {mode!r}")
    binary = mode == "wb"
    with (
        atomic_target(path) as tmp,
        open(  # noqa: SIM115 - closed by the with
            tmp,
            mode,
            encoding=None if binary else encoding,
            errors=None if binary else "backslashreplace",
        ) as f,
    ):
        yield f


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8; what UTF-8 cannot encode (the lone surrogates Python makes of a non-UTF-8 file name) is written as
    a backslash escape instead of failing half-way through a set of outputs."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2, default=None) -> Path:
    """Strict JSON (NaN / infinity refused with ValueError before anything is written), with a final newline."""
    return atomic_write_text(path, json_text(data, indent, default) + "\n")
