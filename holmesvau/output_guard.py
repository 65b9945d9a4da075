"""Outputs that never destroy what we did not write, and one writer per output (docs/files-and-rows.md).

    check_output_file(args.output, inputs=[args.annotations], ours=jsonl_rows_with("id", "prediction"))
    with OutputLock(args.output):                  # for the whole run; a second run is refused with our pid
        ...
    with StagedOutput(dst, sources=[src]) as tmp:  # a folder: written beside dst, marked ours, renamed into place
        ...

A file is never an input (after following links), and an existing one is replaced or appended to only when it is
ours (`ours(path)`: our schema on its first line, or our marker in it). A folder never is, contains or lies inside
a source; a non-empty one is replaced only with `overwrite`, when it holds our marker file and no file outside the
marker's list. The old folder is deleted only once the new one is in place. All is checked before any work.
The ranks of one torchrun job hold the lock shared (each writes its own shard, rank 0 merges).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

HEAD_BYTES = 65536  # the first line of one of our row files fits (a row is < 2 KB); we never read more
MARKER = ".holmesvau-output.json"


class OutputError(OSError, ValueError):
    """An output we refuse (a ValueError) or that cannot be written (an OSError: OutputError(errno, message), the
    message in `.strerror`). The message names the file and what to do."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def jsonl_rows_with(*fields: str) -> Callable[[Path], bool]:
    """`ours` for a jsonl file of our rows: its first line is a JSON object with these fields (or the start of one
    of our rows cut by a kill before its newline: `{"id": ...` and nothing else in the file)."""

    def ours(path: Path) -> bool:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES).split(b"\n", 1)[0]
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
    probe = path.parent
    while not probe.exists() and probe != probe.parent:  # the folder is made later: its first existing parent
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            f"{flag} {path}: cannot write into {probe} (read-only or not a folder); pick another place"
        )
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def read_marker(folder: str | Path) -> dict | None:
    """Our marker in `folder` ({"tool", "files", "created"}), or None when the folder is not an output of ours."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def check_destination(
    dst: str | Path, sources: list[str | Path] | tuple = (), overwrite: bool = False, what: str = "output"
) -> None:
    """Raise OutputError unless writing the folder `what` to `dst` can only replace an earlier output of ours."""
    dst = Path(dst)
    real = dst.resolve()
    for src in sources:
        s = Path(src).resolve()
        if real == s or s.is_relative_to(real) or real.is_relative_to(s):
            relation = "is" if real == s else ("contains" if s.is_relative_to(real) else "is inside")
            raise OutputError(
                f"{dst} {relation} the source {src}: writing there would destroy it; pick another output folder"
            )
    if dst.is_symlink():
        raise OutputError(f"{dst} is a symbolic link; pass the folder it points to, or a new folder")
    if not dst.exists():
        return
    if not dst.is_dir():
        raise OutputError(f"{dst} exists and is not a folder; pick another output folder")
    if not any(dst.iterdir()):
        return
    marker = read_marker(dst)
    if marker is None:
        raise OutputError(
            f"{dst} is not empty and was not written by HolmesVAU (no {MARKER}); refusing to replace it. "
            "Pick a new or empty output folder"
        )
    if not overwrite:
        raise OutputError(
            f"{dst} already holds a previous {marker.get('tool', what)}; pass --overwrite to replace it "
            "(API: overwrite=True), or pick another output folder"
        )
    foreign = sorted(set(_files(dst)) - set(marker["files"]) - {MARKER})
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputError(
            f"{dst} holds a previous output of ours plus files we did not write ({shown}); refusing to replace "
            "it. Move those files out, or pick another output folder"
        )


class StagedOutput:
    """A temporary sibling folder of `dst` to write into; `commit()` puts it in place (see the module doc). The
    constructor refuses a bad destination before any work; an uncommitted folder is removed by `discard()`, on
    garbage collection, or at interpreter exit."""

    def __init__(self, dst: str | Path, sources: list | tuple = (), overwrite: bool = False, what="output"):
        self.dst, self.sources, self.overwrite, self.what = Path(dst), list(sources), overwrite, what
        check_destination(self.dst, self.sources, overwrite, what)
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.dst.name}.partial-", dir=self.dst.parent))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def discard(self) -> None:
        self._cleanup()

    def commit(self) -> Path:
        """Mark the staged folder as ours and move it to `dst` (replacing an earlier output of ours)."""
        check_destination(self.dst, self.sources, self.overwrite, self.what)  # again: it may have changed
        marker = {
            "tool": self.what,
            "files": _files(self.path),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (self.path / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        aside = None
        if self.dst.exists():
            if read_marker(self.dst) is None:  # empty folder (checked above): nothing to keep
                self.dst.rmdir()
            else:
                aside = Path(tempfile.mkdtemp(prefix=f".{self.dst.name}.old-", dir=self.dst.parent))
                aside.rmdir()  # mkdtemp only reserved a unique name
                os.rename(self.dst, aside)
        try:
            os.rename(self.path, self.dst)
        except BaseException:
            if aside is not None:
                os.rename(aside, self.dst)
            raise
        self._cleanup.detach()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return self.dst


class OutputLock:
    """Advisory lock on `path` for one run (a hidden sibling `.NAME.lock` holding the writers' pids, released by
    the kernel if the process dies). `shared`: the ranks of one distributed job."""

    REFUSAL = (
        "{flag} {path} is being written by another run ({who}); wait for it to finish or pick another output"
    )

    def __init__(self, path: str | Path, shared: bool = False, flag: str = "--output", lock_path=None):
        self.path, self.shared, self.flag = Path(path), shared, flag
        where = Path(os.path.abspath(path))  # "." has no name: its lock sits in its parent all the same
        self.lock_path = Path(lock_path or where.with_name(f".{where.name}.lock"))
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:  # never through a link, never anything but a regular file: the lock is truncated and removed
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
            except OSError as e:
                raise OutputError(f"{self.lock_path}: cannot be our lock file ({e.strerror})") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OutputError(f"{self.lock_path}: cannot be our lock file (not a regular file)")
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                holders = os.pread(fd, 4096, 0).decode("ascii", "replace").split()
                os.close(fd)
                who = f"pid {', '.join(dict.fromkeys(holders))}" if holders else "another process"
                raise OutputError(self.REFUSAL.format(flag=self.flag, path=self.path, who=who)) from None
            try:  # the file we locked may have been removed by the holder we waited for: lock the new one
                if os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        if not self.shared:
            os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        if not self.shared:  # removed while held: a run that opened it meanwhile sees it gone, retries
            self.lock_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __exit__(self, *exc) -> None:
        self.release()


class FolderLock(OutputLock):
    """One watcher per output folder: `<dir>/.watch.lock`, taken at once and held until `release()` (or the
    process dies); refused naming the folder and the holder's pid."""

    REFUSAL = "{path}: another watcher ({who}) is writing here; use another --out"

    def __init__(self, folder: str | Path):
        super().__init__(folder, lock_path=Path(folder) / ".watch.lock")
        self.__enter__()
