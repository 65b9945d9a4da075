"""The cameras file of `watch.py --cameras cameras.toml`: per-camera options over shared defaults.

    [defaults]            # any watch option (the long option name, `-` or `_`): on, off, min_duration_s, ...
    on = 0.6
    [[camera]]
    name = "lobby"        # [A-Za-z0-9_-]+, unique: names the output folder, MQTT topics and the page's rows
    source = "rtsp://user:pass@10.0.0.5/stream1"
    [[camera]]
    name = "gate"
    source = "udp://127.0.0.1:5001"
    off = 0.3             # this camera only

Precedence: the built-in defaults < the command line < [defaults] < the camera's own keys. Anything wrong (TOML
syntax, an unknown key, a duplicate or unsafe name, a value of the wrong type or out of range) is refused before
anything starts, with the file and line.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CamerasFileError(ValueError):
    """A cameras file that cannot be used: `file:line: what`."""


@dataclass
class CameraSpec:
    name: str
    args: argparse.Namespace  # the watch options of this camera (source included)
    line: int  # where its [[camera]] table starts


def _line_of(text: str, table: str | None, index: int, key: str | None) -> int:
    """1-based line of `key` in the index-th `[[table]]` (or `[table]` when index < 0), else of the header."""
    lines = text.splitlines()
    header = re.compile(rf"^\s*\[\[\s*{table}\s*\]\]" if index >= 0 else rf"^\s*\[\s*{table}\s*\]")
    seen, start = -1, None
    for i, line in enumerate(lines):
        if header.match(line):
            seen += 1
            if seen == max(index, 0):
                start = i
                break
    if start is None:
        return 1
    if key is None:
        return start + 1
    for j in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[j]):
            break
        if re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", lines[j]):
            return j + 1
    return start + 1


def _check_value(key: str, value, action: argparse.Action):
    """The TOML value for one option, checked against the option's type; returns the converted value."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value if isinstance(action, argparse._StoreTrueAction) else not value
    kind = action.type
    if action.dest == "option":  # FFmpeg options: a table of strings
        if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
            raise ValueError(f'{key} must be a table of FFmpeg options, e.g. {{ rtsp_transport = "udp" }}')
        return [f"{k}={v}" for k, v in value.items()]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return kind(value) if callable(kind) else value


def read_cameras(path: Path, parser: argparse.ArgumentParser, base: argparse.Namespace,
                 per_camera: set[str]) -> list[CameraSpec]:  # fmt: skip
    """Every camera's options (a copy of `base` with [defaults] and its own keys applied). `per_camera`: the
    option names (argparse dests) a cameras file may set."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CamerasFileError(f"{path}: cannot read the cameras file ({e})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))  # (Python < 3.14 gives the line only in the message)
        line = getattr(e, "lineno", None) or (int(m.group(1)) if m else "?")
        raise CamerasFileError(f"{path}:{line}: not valid TOML ({e})") from None
    actions = {a.dest: a for a in parser._actions if a.dest in per_camera}

    def err(table, index, key, msg):
        return CamerasFileError(f"{path}:{_line_of(text, table, index, key)}: {msg}")

    for top in doc:
        if top not in ("defaults", "camera"):
            raise CamerasFileError(f"{path}:{_line_of(text, top, -1, None)}: unknown table [{top}] (there are "
                                   "[defaults] and [[camera]])")  # fmt: skip
    defaults = doc.get("defaults", {})
    cams = doc.get("camera", [])
    if (
        not isinstance(defaults, dict)
        or not isinstance(cams, list)
        or not all(isinstance(c, dict) for c in cams)
    ):
        raise CamerasFileError(f"{path}: [defaults] must be a table and cameras [[camera]] tables")
    if not cams:
        raise CamerasFileError(f"{path}: no [[camera]] in the file")

    def apply(ns: argparse.Namespace, table: dict, tname: str, index: int, allowed_extra: tuple[str, ...]):
        for key, value in table.items():
            dest = key.replace("-", "_")
            if key in allowed_extra:
                continue
            if dest not in actions:
                raise err(tname, index, key, f"unknown option {key!r} (a camera takes: "
                          f"{', '.join(sorted(actions))})")  # fmt: skip
            try:
                setattr(ns, dest, _check_value(key, value, actions[dest]))
            except (ValueError, TypeError) as e:
                raise err(tname, index, key, str(e)) from None

    common = argparse.Namespace(**vars(base))
    apply(common, defaults, "defaults", -1, ())
    specs, seen = [], set()
    for i, cam in enumerate(cams):
        name = cam.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise err("camera", i, "name" if "name" in cam else None,
                      f"camera {i + 1}: name must be 1-64 of A-Z a-z 0-9 _ - (it names a folder and topics), "
                      f"got {name!r}")  # fmt: skip
        if name in seen:
            raise err("camera", i, "name", f"camera name {name!r} is used twice")
        seen.add(name)
        source = cam.get("source")
        if not isinstance(source, str) or not source.strip():
            raise err("camera", i, "source" if "source" in cam else None, f"camera {name!r}: no source")
        ns = argparse.Namespace(**vars(common))
        apply(ns, cam, "camera", i, ("name", "source"))
        ns.source = source
        specs.append(CameraSpec(name, ns, _line_of(text, "camera", i, None)))
    return specs
