"""holmesvau.files: all-or-nothing writes, strict JSON, and file names that are not UTF-8."""

from __future__ import annotations

import json
import math

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
