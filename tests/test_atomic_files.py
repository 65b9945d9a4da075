"""holmesvau.files: all-or-nothing writes, strict JSON, and file names that are not UTF-8."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from holmesvau.files import atomic_write_json, atomic_write_text

NON_UTF8 = b"caf\xe9.mp4".decode("utf-8", "surrogateescape")  # how Python names a Latin-1 file on Linux


def test_non_utf8_name_is_escaped_not_a_crash(tmp_path):
    atomic_write_text(tmp_path / "report.html", f"<p>{NON_UTF8}</p>")
    assert (tmp_path / "report.html").read_bytes() == b"<p>caf\\udce9.mp4</p>"
    atomic_write_json(tmp_path / "r.json", {"video": NON_UTF8})
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == {"video": NON_UTF8}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "report.html"]  # no temporary left


def test_nan_is_refused_and_the_previous_file_kept(tmp_path):
    dst = tmp_path / "result.json"
    atomic_write_json(dst, {"auc": 0.5})
    with pytest.raises(ValueError):
        atomic_write_json(dst, {"auc": math.nan})
    assert json.loads(dst.read_text()) == {"auc": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


KILLED_WRITER = """
import sys, time
from holmesvau.files import atomic_open
with atomic_open(sys.argv[1], sys.argv[2]) as f:
    f.write(b"new " * 100_000 if "b" in sys.argv[2] else "new " * 100_000)
    f.flush()
    print("half-way", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_kill_mid_write_leaves_the_old_file(tmp_path, mode):
    """SIGKILL while the new version is half written: the target still holds the old bytes, whole."""
    dst = tmp_path / "result.json"
    dst.write_text('{"old": true}\n')
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(dst), mode], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"half-way\n"
        assert any(p.name != "result.json" for p in tmp_path.iterdir())  # the new bytes exist, elsewhere
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    assert dst.read_text() == '{"old": true}\n'
    atomic_write_json(dst, {"new": 1})  # a later run replaces it (the killed run's temporary is hidden)
    assert json.loads(dst.read_text()) == {"new": 1}


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    """The rename must not reach the disk before the data (a power cut would leave an empty file)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd))
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b))
    )
    atomic_write_text(tmp_path / "a.txt", "x" * 10)
    assert events[:2] == [("fsync", 10), ("replace", "a.txt")]
