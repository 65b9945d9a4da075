"""The documentation stays short, linked and runnable as written.

README.md is at most 250 lines; every relative link of README.md, docs/*.md and HIVAU-70k/README.md reaches an
existing file and, with an anchor, a heading of that file (GitHub's slugs); every path of ours they name in code
quotes exists; every `--option` that a documented command (in those pages, or in an entry point's opening docstring)
passes to one of our entry points is one that the entry point's own argparse `--help` lists (the oracle: the
parsers, run in a child process, not the docs).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
PAGES = [REPO / "README.md", REPO / "HIVAU-70k" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Entry points open with a docstring of their exact commands.
ENTRY_POINTS = sorted(
    p
    for pattern in (
        "*.py",
        "tools/*.py",
        "HIVAU-70k/*.py",
        "bench/*.py",
        "internvl_chat/*.py",
        "holmesvau/**/*.py",
    )
    for p in REPO.glob(pattern)
    if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8")
)
# Scripts whose extra arguments go to a Python entry point.
FORWARDED = {"shell/internvl2_2b_finetune_lora.sh": "-m internvl_chat.train"}
SUBCOMMANDS = {"tools/evaluate.py"}

FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
INLINE = re.compile(r"`((?:python|torchrun) [^`\n]+)`")  # a command quoted in prose
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markdown marks dropped, lower case, punctuation removed, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_readme_is_short():
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; details belong in docs/*.md"


def test_slug_matches_github():
    # Anchors GitHub gives these headings (as rendered on github.com).
    assert _slug("Reproduce the paper") == "reproduce-the-paper"
    assert _slug("Fine-tuning (LoRA on HIVAU-70k)") == "fine-tuning-lora-on-hivau-70k"
    assert _slug("1. Get the annotations") == "1-get-the-annotations"
    assert _slug("The `report.json` schema") == "the-reportjson-schema"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    assert not bad, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(bad)


CODE_PATH = re.compile(r"`((?:holmesvau|internvl_chat|tools|bench|shell|tests|docs)/[\w./-]*)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_code_paths_exist(page):
    """A file or folder of ours named in the docs exists (a path of the original repository is in the registry)."""
    from holmesvau.released import REGISTRY

    upstream = {f.path for f in REGISTRY.values()}
    named = CODE_PATH.findall(page.read_text(encoding="utf-8"))
    missing = [p for p in named if not (REPO / p).exists() and p not in upstream]
    assert not missing, f"{page.relative_to(REPO)} names paths that do not exist: {missing}"


def _command_lines(source: Path) -> list[str]:
    """Documented command lines, continuation lines joined: a page's code blocks and commands quoted in its prose,
    or the lines of an entry point's docstring."""
    text = source.read_text(encoding="utf-8")
    if source.suffix == ".py":
        blocks = [ast.get_docstring(ast.parse(text)) or ""]
        lines = []
    else:
        blocks = ["\n".join(b.strip().splitlines()[1:-1]) for b in FENCE.findall(text)]
        lines = INLINE.findall(FENCE.sub("", text))
    for block in blocks:
        body = "\n".join(line.strip() for line in block.splitlines())
        lines += re.sub(r"\\\n\s*", " ", body).splitlines()
    return lines


def _commands(source: Path):
    """(entry, argv) of every documented call of one of our entry points."""
    for line in _command_lines(source):
        cwd = REPO
        for part in re.split(r"\s#", line)[0].split("&&"):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            words = [w for w in words if not re.fullmatch(r"[A-Z_]+=.*", w)]  # VAR=value prefixes
            if words[:1] == ["cd"] and len(words) == 2:
                cwd = (cwd / words[1]).resolve()
                continue
            if words[:1] not in (["python"], ["torchrun"], ["sh"], ["bash"]):
                continue
            for i, w in enumerate(words):
                if w == "-m" and i + 1 < len(words):
                    yield f"-m {words[i + 1]}", words[i + 2 :]
                    break
                if w.endswith((".py", ".sh")) and (cwd / w).exists():
                    rel = str((cwd / w).relative_to(REPO))
                    if rel.endswith(".py") or rel in FORWARDED:
                        yield FORWARDED.get(rel, rel), words[i + 1 :]
                    break


_HELP_CHILD = """
import contextlib, io, json, runpy, sys
out = {}
repo = sys.argv[2]
for entry, sub in json.loads(sys.argv[1]):
    buf = io.StringIO()
    sys.argv = [entry, *sub, "--help"]
    with contextlib.redirect_stdout(buf):
        try:
            if entry.startswith("-m "):
                runpy.run_module(entry[3:], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(f"{repo}/{entry}", run_name="__main__")
        except SystemExit:
            pass
    out[" ".join([entry, *sub])] = buf.getvalue()
print(json.dumps(out))
"""


def _helps(calls: set[tuple[str, tuple[str, ...]]], cwd: Path) -> dict[str, str]:
    """Each entry point's --help, all in one child process run in `cwd` (an entry point that took --help for a
    file name would write there, not into the repository)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    arg = json.dumps(sorted([e, list(s)] for e, s in calls))
    r = subprocess.run([sys.executable, "-c", _HELP_CHILD, arg, str(REPO)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _subcommand(entry: str, argv: list[str]) -> tuple[str, ...]:
    """A subcommand (`tools/evaluate.py reasoning`) has options of its own."""
    return tuple(argv[:1]) if entry in SUBCOMMANDS and argv[:1] and re.fullmatch(r"[a-z]+", argv[0]) else ()


def test_documented_options_exist(tmp_path):
    found = [(src, entry, argv) for src in PAGES + ENTRY_POINTS for entry, argv in _commands(src)]
    entries = {entry for _, entry, _ in found}
    assert {"inference.py", "watch.py", "app.py", "tools/predict.py", "tools/reproduce.py"} <= entries, (
        entries
    )
    helps = _helps({(entry, _subcommand(entry, argv)) for _, entry, argv in found}, tmp_path)
    bad = []
    for src, entry, argv in found:
        text = helps[" ".join([entry, *_subcommand(entry, argv)])]
        known = set(re.findall(r"(?<![\w-])--[\w-]+", text))
        if not known:
            bad.append(f"{src.relative_to(REPO)}: {entry} printed no --help")
            continue
        for word in argv:
            flag = word.strip("[]").split("=")[0]
            if flag.startswith("--") and flag not in known:
                bad.append(f"{src.relative_to(REPO)}: {entry} has no option {flag}")
    assert not bad, "\n".join(bad)
