"""Shared test helpers: locating ../shared (fixtures and real data, never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("HOLMESVAU_SHARED", REPO.parent / "shared"))


def shared_path(rel: str) -> Path:
    """Path inside ../shared; skips the test when absent (fails instead under HOLMESVAU_REQUIRE_SHARED=1)."""
    p = shared_root() / rel
    if not p.exists():
        msg = f"shared fixture missing: {p} (set HOLMESVAU_SHARED to the folder holding fixtures/, data/, videos/)"
        if os.environ.get("HOLMESVAU_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared():
    """The shared() fixture returns a function rel -> Path with the skip/fail policy above."""
    return shared_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random native-format InternVL2 checkpoint (made once per test session)."""
    from holmesvau.testing.tiny_model import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "native", "native")


@pytest.fixture(scope="session")
def tiny_original_dir(tmp_path_factory) -> Path:
    """The same tiny checkpoint in the ORIGINAL remote-code layout."""
    from holmesvau.testing.tiny_model import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "original", "original")


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """The tiny model loaded for inference on CPU (float32)."""
    from holmesvau.model import load_model

    return load_model(tiny_model_dir, device="cpu")
