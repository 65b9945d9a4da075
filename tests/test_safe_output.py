"""Conversion and tiny-model outputs never delete what we did not write (holmesvau.safe_output)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from holmesvau.safe_output import MARKER, OutputError, StagedOutput

REPO = Path(__file__).resolve().parents[1]


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> sha256 of its bytes (an independent record of what was there)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.fixture
def source(tiny_original_dir, tmp_path):
    """A private copy of the tiny original-format checkpoint under tmp/models/orig."""
    src = tmp_path / "models" / "orig"
    shutil.copytree(tiny_original_dir, src)
    return src


def test_convert_refuses_a_folder_holding_unrelated_files(source, tmp_path, capsys):
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "notes.txt").write_text("my notes")
    (dst / "config.json").write_text("{}")
    before = _digest(dst)
    assert _tool("convert_internvl2")([str(source), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "not written by HolmesVAU" in err and str(dst) in err and "Traceback" not in err
    assert _digest(dst) == before  # untouched
    assert _tool("convert_internvl2")([str(source), str(dst), "--overwrite"]) == 2  # not ours: never
    assert _digest(dst) == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["source", "parent", "inside"])
def test_convert_refuses_source_its_parent_and_inside_it(source, where, capsys):
    before = _digest(source.parent)
    dst = {"source": source, "parent": source.parent, "inside": source / "native"}[where]
    assert _tool("convert_internvl2")([str(source), str(dst), "--overwrite"]) == 2
    relation = {"source": "is the source", "parent": "contains the source", "inside": "is inside the source"}
    assert relation[where] in capsys.readouterr().err
    assert _digest(source.parent) == before  # the original checkpoint is intact, nothing added
    assert _leftovers(source.parent) == [] and _leftovers(source.parent.parent) == []


def test_overwrite_replaces_only_our_own_output(source, tmp_path, capsys):
    convert = _tool("convert_internvl2")
    dst = tmp_path / "native"
    assert convert([str(source), str(dst)]) == 0
    marker = json.loads((dst / MARKER).read_text())
    assert set(marker["files"]) == set(_digest(dst)) - {MARKER}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(marker["files"])
    first = _digest(dst)

    assert convert([str(source), str(dst)]) == 2  # ours, but not asked to replace it
    assert "--overwrite" in capsys.readouterr().err and _digest(dst) == first

    (dst / "model.safetensors").write_bytes(b"stale")  # a file of ours, changed: replaced by the rerun
    assert convert([str(source), str(dst), "--overwrite"]) == 0
    assert {k: v for k, v in _digest(dst).items() if k != MARKER} == {
        k: v for k, v in first.items() if k != MARKER
    }
    from holmesvau.model import load_model

    assert load_model(dst, device="cpu").model.config.image_seq_length == 256

    (dst / "my_eval.json").write_text("{}")  # the user added a file: overwriting would delete it
    assert convert([str(source), str(dst), "--overwrite"]) == 2
    assert "my_eval.json" in capsys.readouterr().err and (dst / "my_eval.json").read_text() == "{}"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["native", "original"])
def test_make_tiny_model_refuses_a_non_empty_folder(tmp_path, fmt, capsys):
    dst = tmp_path / "tiny"
    dst.mkdir()
    (dst / "config.json").write_text('{"mine": true}')
    assert _tool("make_tiny_model")([str(dst), "--format", fmt]) == 2
    assert "not written by HolmesVAU" in capsys.readouterr().err
    assert _digest(dst) == {"config.json": hashlib.sha256(b'{"mine": true}').hexdigest()}
    assert _leftovers(tmp_path) == []


def test_make_tiny_model_into_empty_folder_then_overwrite(tmp_path):
    dst = tmp_path / "tiny"
    dst.mkdir()
    make = _tool("make_tiny_model")
    assert make([str(dst), "--format", "original"]) == 0
    assert (dst / "model.safetensors").is_file() and (dst / MARKER).is_file()
    assert make([str(dst), "--format", "original"]) == 2
    assert make([str(dst), "--format", "original", "--overwrite", "--seed", "1"]) == 0
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_output(tmp_path):
    dst = tmp_path / "out"
    with StagedOutput(dst) as d:
        (d / "a.txt").write_text("first")
    with pytest.raises(RuntimeError, match="boom"):
        with StagedOutput(dst, overwrite=True) as d:
            (d / "a.txt").write_text("second, half written")
            raise RuntimeError("boom")
    assert (dst / "a.txt").read_text() == "first" and _leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="symbolic link"):
        (tmp_path / "link").symlink_to(dst)
        StagedOutput(tmp_path / "link", overwrite=True)
    with pytest.raises(OutputError, match="not a folder"):
        (tmp_path / "file").write_text("x")
        StagedOutput(tmp_path / "file", overwrite=True)


def test_script_refusal_is_one_line_without_traceback(source, tmp_path):
    dst = tmp_path / "x"
    dst.mkdir()
    (dst / "keep.txt").write_text("k")
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_tiny_model.py"), str(dst)], capture_output=True, text=True
    )
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert (dst / "keep.txt").read_text() == "k"
