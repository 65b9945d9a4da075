"""Paths that rows name, kept inside their root.

A jsonl row's `video` is relative to a root (tools/predict.py --video-root, HIVAU-70k `videos/`). `inside_root`
refuses a path that is absolute or whose `..` parts lead out of the root (`../../etc/x.mp4`), checked on the path
as written, not through the file system; links the user placed inside the root are followed as usual.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath


class PathEscapeError(ValueError):
    """A row's path leads outside its root; the message names the path, the root and the option."""


def inside_root(root: str | Path, rel: str | PurePath, option: str = "--video-root") -> Path:
    """`root / rel`, or PathEscapeError when `rel` is empty, absolute or climbs out of `root` with `..`."""
    text = str(rel).replace("\\", "/")
    if not text or PurePath(text).is_absolute() or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(
            f"video path {str(rel)!r} is absolute; rows name videos relative to {option} ({root})"
        )
    norm = os.path.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise PathEscapeError(
            f"video path {str(rel)!r} leads outside {option} ({root}); refused (rows name videos inside it)"
        )
    return Path(root) / norm
