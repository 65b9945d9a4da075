"""In CI nothing skips: with the environment .ci/run exports, a test whose tool is missing fails with the reason.

Each case runs a small pytest session in a subprocess with the project's conftest and a tool made missing (PATH
stripped of chromium / java), once with .ci/run's variables (must exit non-zero and name the reason) and once
without (must pass with the skip and its reason reported).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ci_env() -> dict[str, str]:
    """The variables .ci/run exports (read from the script, so the test follows it)."""
    found = dict(re.findall(r"^export (\w+)=(\S+)", (REPO / ".ci" / "run").read_text(), flags=re.M))
    assert found.get("HOLMESVAU_REQUIRE_ALL") == "1", ".ci/run must make every skip a failure"
    return found


def stripped_path(tool: str) -> str:
    """PATH with every folder holding `tool` removed; python itself stays reachable."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / tool).exists()]
    return os.pathsep.join([*keep, str(Path(sys.executable).parent)] if tool != "python" else keep)


def run_pytest(args: list[str], cwd: Path, ci: bool, path: str) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HOLMESVAU_REQUIRE_ALL", "HOLMESVAU_REQUIRE_SHARED")
    }
    env.update(PATH=path, PYTHONPATH=str(REPO), COLUMNS="400")  # untruncated summary lines
    if ci:
        env.update(ci_env())
    cmd = [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_missing_chromium_fails_the_browser_test_in_ci():
    path = stripped_path("chromium")
    assert shutil.which("chromium", path=path) is None
    target = str(REPO / "tests" / "test_app_browser.py")
    ci = run_pytest([target], REPO, ci=True, path=path)
    assert ci.returncode == 1, ci.stdout[-3000:]
    assert re.search(r"FAILED .*test_app_browser.py::module_skipped", ci.stdout), ci.stdout[-3000:]
    assert "skipped in CI" in ci.stdout and "chromium not found on PATH" in ci.stdout
    local = run_pytest([target], REPO, ci=False, path=path)
    assert local.returncode == 5, local.stdout[-3000:]  # pytest's "no tests ran": the module skipped itself
    assert re.search(r"SKIPPED \[1\] .*chromium not found on PATH", local.stdout), local.stdout[-3000:]


SKIPPING_TESTS = """
import shutil

import pytest

HAVE_JAVA = shutil.which("java") is not None


def test_runtime_skip():
    if shutil.which("java") is None:
        pytest.skip("java is not on PATH")


@pytest.fixture
def java():
    if shutil.which("java") is None:
        pytest.skip("fixture: no java")
    return "java"


def test_fixture_skip(java):
    pass


@pytest.mark.skipif(not HAVE_JAVA, reason="marker: no java")
def test_marker_skip():
    pass


def test_importorskip():
    pytest.importorskip("no_such_module_holmesvau", reason="importorskip: no module")


def test_passes():
    assert True


@pytest.mark.xfail(reason="expected failure, not a skip", strict=True)
def test_xfail_is_not_a_skip():
    raise AssertionError
"""


def test_every_kind_of_skip_fails_in_ci(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")  # the project's policy, as is
    (tmp_path / "test_tools.py").write_text(SKIPPING_TESTS)
    (tmp_path / "test_module_skip.py").write_text(
        'import pytest\n\npytest.importorskip("no_such_module_holmesvau", reason="module: no module")\n\n\n'
        "def test_never_collected():\n    pass\n"
    )
    path = stripped_path("java")
    assert shutil.which("java", path=path) is None
    ci = run_pytest([], tmp_path, ci=True, path=path)
    out = ci.stdout
    assert ci.returncode == 1, out
    for test, reason in [
        ("test_tools.py::test_runtime_skip", "java is not on PATH"),
        ("test_tools.py::test_fixture_skip", "fixture: no java"),
        ("test_tools.py::test_marker_skip", "marker: no java"),
        ("test_tools.py::test_importorskip", "importorskip: no module"),
        ("test_module_skip.py::module_skipped", "module: no module"),
    ]:
        # a skip in a fixture or a skipif marker happens at setup: pytest reports that failure as an ERROR
        assert re.search(rf"(FAILED|ERROR) {re.escape(test)} - (Failed: )?skipped in CI .*{reason}", out), (
            test,
            out,
        )
    assert re.search(r"3 failed, 1 passed, 1 xfailed, 2 errors", out), out
    assert "skipped" not in out.splitlines()[-1]

    local = run_pytest([], tmp_path, ci=False, path=path)
    assert local.returncode == 0, local.stdout
    for reason in ["java is not on PATH", "fixture: no java", "marker: no java", "module: no module"]:
        assert re.search(rf"SKIPPED \[1\] .*{reason}", local.stdout), (reason, local.stdout)
    assert re.search(r"1 passed, 5 skipped, 1 xfailed", local.stdout), local.stdout
