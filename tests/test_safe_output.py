"""Conversion and tiny-model outputs never delete what we did not write (holmesvau.output_guard): the library
functions behind tools/convert_internvl2.py and tools/make_tiny_model.py, and the scripts' one-line refusal."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import check_overwrite_policy, digest, leftovers, user_folder

from holmesvau.model import convert_checkpoint
from holmesvau.output_guard import MARKER, OutputError, StagedOutput
from holmesvau.testing.tiny_model import TinyConfig, make_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def source(tiny_original_dir, tmp_path):
    """A private copy of the tiny original-format checkpoint under tmp/models/orig."""
    src = tmp_path / "models" / "orig"
    shutil.copytree(tiny_original_dir, src)
    return src


def test_convert_refuses_a_folder_holding_unrelated_files(source, tmp_path):
    dst = user_folder(tmp_path)
    before = digest(dst)
    with pytest.raises(OutputError, match="not written by HolmesVAU") as e:
        convert_checkpoint(source, dst)
    assert str(dst) in str(e.value)
    assert digest(dst) == before  # untouched
    with pytest.raises(OutputError, match="not written by HolmesVAU"):  # not ours: never
        convert_checkpoint(source, dst, overwrite=True)
    assert digest(dst) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["source", "parent", "inside"])
def test_convert_refuses_source_its_parent_and_inside_it(source, where):
    before = digest(source.parent)
    dst = {"source": source, "parent": source.parent, "inside": source / "native"}[where]
    relation = {"source": "is the source", "parent": "contains the source", "inside": "is inside the source"}
    with pytest.raises(OutputError, match=relation[where]):
        convert_checkpoint(source, dst, overwrite=True)
    assert digest(source.parent) == before  # the original checkpoint is intact, nothing added
    assert leftovers(source.parent) == [] and leftovers(source.parent.parent) == []


def test_overwrite_replaces_only_our_own_output(source, tmp_path):
    from holmesvau.model import load_model

    dst = tmp_path / "native"
    assert convert_checkpoint(source, dst) == dst
    marker = json.loads((dst / MARKER).read_text())
    assert set(marker["files"]) == set(digest(dst)) - {MARKER}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(marker["files"])
    check_overwrite_policy(lambda overwrite: convert_checkpoint(source, dst, overwrite=overwrite), dst)
    assert load_model(dst, device="cpu").model.config.image_seq_length == 256  # the rewritten folder loads
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["native", "original"])
def test_make_tiny_model_refuses_a_non_empty_folder(tmp_path, fmt):
    dst = tmp_path / "tiny"
    dst.mkdir()
    (dst / "config.json").write_text('{"mine": true}')
    with pytest.raises(OutputError, match="not written by HolmesVAU"):
        make_tiny_checkpoint(dst, fmt)
    assert digest(dst) == {"config.json": hashlib.sha256(b'{"mine": true}').hexdigest()}
    assert leftovers(tmp_path) == []


def test_make_tiny_model_into_empty_folder_then_overwrite(tmp_path):
    dst = tmp_path / "tiny"
    dst.mkdir()
    assert make_tiny_checkpoint(dst, "original") == dst
    assert (dst / "model.safetensors").is_file() and (dst / MARKER).is_file()
    with pytest.raises(OutputError, match="--overwrite"):
        make_tiny_checkpoint(dst, "original")
    first = digest(dst)["model.safetensors"]
    make_tiny_checkpoint(dst, "original", TinyConfig(seed=1), overwrite=True)
    assert digest(dst)["model.safetensors"] != first  # replaced by the new seed's weights
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_output(tmp_path):
    dst = tmp_path / "out"
    with StagedOutput(dst) as d:
        (d / "a.txt").write_text("first")
    with pytest.raises(RuntimeError, match="boom"):
        with StagedOutput(dst, overwrite=True) as d:
            (d / "a.txt").write_text("second, half written")
            raise RuntimeError("boom")
    assert (dst / "a.txt").read_text() == "first" and leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="symbolic link"):
        (tmp_path / "link").symlink_to(dst)
        StagedOutput(tmp_path / "link", overwrite=True)
    with pytest.raises(OutputError, match="not a folder"):
        (tmp_path / "file").write_text("x")
        StagedOutput(tmp_path / "file", overwrite=True)


@pytest.mark.parametrize("script", ["make_tiny_model", "convert_internvl2"])
def test_script_refusal_is_one_line_without_traceback(source, tmp_path, script):
    dst = tmp_path / "x"
    dst.mkdir()
    (dst / "keep.txt").write_text("k")
    args = [str(dst)] if script == "make_tiny_model" else [str(source), str(dst), "--overwrite"]
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / f"{script}.py"), *args], capture_output=True, text=True
    )
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert "not written by HolmesVAU" in res.stderr and str(dst) in res.stderr
    assert (dst / "keep.txt").read_text() == "k"
