"""Output files that never destroy a file, and one writer per output (docs/files-and-rows.md).

    check_output_file(args.output, inputs=[args.annotations], ours=jsonl_rows_with("id", "prediction"),
                      flag="--output")                       # before any work: refuse, or go on
    with OutputLock(args.output):                            # for the whole run; a second run is refused
        ...

The rules, for every tool that writes a file:
- the output is never one of the run's inputs (the same file after following links: `--output` equal to
  `--annotations`, or to the video being analysed);
- an existing file is replaced or appended to only when it is ours (`ours(path)`: our schema on its first line, or
  a marker we put in it); anything else (a video, a notes file) is refused, byte-identical;
- the folder must be writable (a read-only folder is a clear error now, not a traceback at the end).
All this runs before any model loads.

`OutputLock` is an advisory lock (fcntl.flock) on a hidden sibling `.NAME.lock` holding the writers' pids. A run
holds it exclusively; the ranks of one torchrun job hold it shared (each rank writes its own shard, rank 0 merges),
so the job's ranks run together and any other run on the same output is refused with the holder's pid.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

HEAD_BYTES = 65536  # the first line of one of our row files fits (a row is < 2 KB); we never read more


class OutputError(ValueError):
    """An output we refuse to write; the message names the file and what to do."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def first_line(path: str | Path, limit: int = HEAD_BYTES) -> bytes:
    """The first line of a file (at most `limit` bytes, without the newline)."""
    with open(path, "rb") as f:
        return f.read(limit).split(b"\n", 1)[0]


def jsonl_rows_with(*fields: str) -> Callable[[Path], bool]:
    """`ours` for a jsonl file of our rows: its first line is a JSON object with these fields (or the start of one
    of our rows cut by a kill before its newline: `{"id": ...` and nothing else in the file)."""

    def ours(path: Path) -> bool:
        head = first_line(path)
        try:
            row = json.loads(head)
        except ValueError:
            return head.startswith(b'{"id": ') and path.stat().st_size == len(head)
        return isinstance(row, dict) and all(f in row for f in fields)

    return ours


def json_object_with(*fields: str, limit: int = 64 << 20) -> Callable[[Path], bool]:
    """`ours` for a JSON document we wrote: an object with these fields (files over `limit` bytes are not ours)."""

    def ours(path: Path) -> bool:
        if path.stat().st_size > limit:
            return False
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            return False
        return isinstance(data, dict) and all(f in data for f in fields)

    return ours


def has_marker(marker: bytes, within: int = HEAD_BYTES) -> Callable[[Path], bool]:
    """`ours` for a file carrying `marker` in its first `within` bytes (a PNG text chunk, an HTML comment)."""

    def ours(path: Path) -> bool:
        with open(path, "rb") as f:
            return marker in f.read(within)

    return ours


def check_output_file(
    path: str | Path,
    inputs: Iterable[str | Path | None] = (),
    ours: Callable[[Path], bool] | None = None,
    flag: str = "--output",
    what: str = "output",
) -> Path:
    """Raise OutputError unless `path` can be written without destroying anything (see the module doc)."""
    path = Path(path)
    for src in inputs:
        if src is not None and Path(src).exists() and _same_file(path, Path(src)):
            raise OutputError(
                f"{flag} {path} is the input {src}: writing there would destroy it; pick another {what} file"
            )
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise OutputError(f"{flag} {path} exists and is not a regular file; pick another {what} file")
        try:
            mine = path.stat().st_size == 0 or (ours is not None and ours(path))
        except OSError as e:
            raise OutputError(
                f"{flag} {path}: cannot read it ({e.strerror}); pick another {what} file"
            ) from None
        if not mine:
            raise OutputError(
                f"{flag} {path} exists and was not written by HolmesVAU (not a {what} of ours); refusing to "
                f"replace it. Pick a new file name, or move that file away"
            )
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists() and probe != probe.parent:  # the folder is made later: its first existing parent
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            f"{flag} {path}: cannot write into {probe} (read-only or not a folder); pick another place"
        )
    return path


class OutputLock:
    """Advisory lock on `path` for one run (see the module doc). `shared`: the ranks of one distributed job."""

    def __init__(self, path: str | Path, shared: bool = False, flag: str = "--output"):
        self.path, self.shared, self.flag = Path(path), shared, flag
        where = Path(os.path.abspath(path))  # "." has no name: its lock sits in its parent all the same
        self.lock_path = where.with_name(f".{where.name}.lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                holders = os.pread(fd, 4096, 0).decode("ascii", "replace").split()
                os.close(fd)
                who = f"pid {', '.join(dict.fromkeys(holders))}" if holders else "another process"
                raise OutputError(
                    f"{self.flag} {self.path} is being written by another run ({who}); wait for it to finish or "
                    "pick another output"
                ) from None
            try:  # the file we locked may have been removed by the holder we waited for: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        if not self.shared:
            os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        if (
            not self.shared
        ):  # removed while still held: a run that opened it meanwhile sees it gone and retries
            self.lock_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
