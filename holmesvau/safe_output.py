"""Writing an output folder without ever deleting what we did not write.

    staged = StagedOutput(dst, sources=[src], overwrite=False)   # checks now, before any long work
    ... write everything into staged.path ...                   # a hidden temporary sibling of dst
    staged.commit()                                              # mark it ours, move it into place

The rules:
- `dst` must not be, contain, or lie inside any of `sources` (converting a folder onto itself or onto its parent
  would replace the original).
- A missing or empty `dst` is fine. A non-empty `dst` is refused unless it holds a previous output of ours (our
  marker file, listing every file we wrote) and `overwrite` is set; even then it is refused when it holds files
  that are not in that list (the user added them: we would delete them).
- Everything is written into a temporary sibling (same filesystem, so the final move is a rename); the old
  output is renamed aside, the new one renamed in, and only then is the old one deleted. An interrupted run
  leaves the previous output (or nothing) under `dst`, never a half-written folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

MARKER = ".holmesvau-output.json"


class OutputError(ValueError):
    """An output destination we refuse to write to; the message says why and what to do."""


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
    """Raise OutputError unless writing `what` to `dst` can only replace an earlier output of ours."""
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
    """A temporary sibling folder of `dst` to write into; `commit()` puts it in place (see the module doc).

    Nothing is created or checked lazily: the constructor refuses a bad destination before any work is done.
    An uncommitted staging folder is removed by `discard()`, on garbage collection, or at interpreter exit."""

    def __init__(
        self,
        dst: str | Path,
        sources: list[str | Path] | tuple = (),
        overwrite: bool = False,
        what: str = "output",
    ):
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
        files = _files(self.path)
        marker = {"tool": self.what, "files": files, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
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
