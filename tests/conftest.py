"""Shared test helpers: locating ../shared (fixtures and real data, never copied into the repo), and the skip
policy: outside CI a test whose tool or data is missing skips and says why (`-ra`); in CI nothing skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# --- skip policy ---------------------------------------------------------------------------------------------------
# CI (.ci/run) sets HOLMESVAU_REQUIRE_ALL=1: the install script provides every optional tool (Chromium, Playwright,
# Java, nbclient, torchrun, ../shared), so a skip there means a broken environment and must fail the run. One rule,
# applied here to every kind of skip: pytest.skip / importorskip in a test or fixture, skipif markers, and
# module-level skips at collection. Outside CI skips stay skips, and `-ra` (pyproject addopts) prints their reasons.
REQUIRE_ALL = "HOLMESVAU_REQUIRE_ALL"


def skips_fail() -> bool:
    return os.environ.get(REQUIRE_ALL) == "1"


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _ci_failure(reason: str) -> str:
    return f"skipped in CI ({REQUIRE_ALL}=1 makes every skip a failure): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and skips_fail() and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = _ci_failure(_skip_reason(rep.longrepr))


class SkippedModule(pytest.Item):
    """Stands for a test module that skipped itself at import, so that the skip fails in CI as one test."""

    def __init__(self, *, reason: str, **kwargs):
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.fail(_ci_failure(self.reason), pytrace=False)

    def reportinfo(self):
        return self.path, None, f"{self.name}: {self.reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and skips_fail() and isinstance(collector, pytest.Module):
        item = SkippedModule.from_parent(collector, name="module_skipped", reason=_skip_reason(rep.longrepr))
        outcome.force_result(pytest.CollectReport(rep.nodeid, "passed", None, [item]))


# --- ../shared ------------------------------------------------------------------------------------------------------
def shared_root() -> Path:
    return Path(os.environ.get("HOLMESVAU_SHARED", REPO.parent / "shared"))


def shared_path(rel: str) -> Path:
    """Path inside ../shared; skips the test when absent (fails instead under HOLMESVAU_REQUIRE_SHARED=1 or in CI)."""
    p = shared_root() / rel
    if not p.exists():
        msg = f"shared fixture missing: {p} (set HOLMESVAU_SHARED to the folder holding fixtures/, data/, videos/)"
        if os.environ.get("HOLMESVAU_REQUIRE_SHARED") == "1" or skips_fail():
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared():
    """The shared() fixture returns a function rel -> Path with the skip/fail policy above."""
    return shared_path


# --- tiny models ----------------------------------------------------------------------------------------------------
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
