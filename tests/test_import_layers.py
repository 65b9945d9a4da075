"""The import graph of the product code (holmesvau/, internvl_chat/), read from the source (every import statement,
also those inside functions): no circle, no module importing one of a higher layer, and the stand-ins of
holmesvau.testing reached by no product module except through the one function that offers them (app.py --tiny)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("holmesvau", "internvl_chat")

# Lowest first. A module may import its own layer or a lower one. A module listed by its package name covers the
# package's modules not listed on their own; a new module in none of these is not checked (only for circles).
LAYERS = [
    # files, rows, processes, frames
    ["holmesvau.files", "holmesvau.jsonl", "holmesvau.distributed", "holmesvau.output_guard", "holmesvau.download",
     "holmesvau.prefetch", "holmesvau.preprocess", "holmesvau.video_open", "holmesvau.video",
     "holmesvau.video_guard"],
    # the parts: model, scorer and sampler, data, metrics, plots
    ["holmesvau.model", "holmesvau.ats", "holmesvau.data", "holmesvau.eval", "holmesvau.frame_plan",
     "holmesvau.released", "holmesvau.anomaly_curve", "holmesvau.report.frames", "holmesvau.report.html",
     "holmesvau.report.schema", "holmesvau.report.localize"],
    # what puts them together
    ["holmesvau", "holmesvau.pipeline", "holmesvau.report", "holmesvau.predict", "holmesvau.cli"],
    # jobs and their command lines
    ["holmesvau.cli.inference", "holmesvau.cli.predict", "holmesvau.cli.evaluate", "holmesvau.reproduce",
     "holmesvau.demo", "holmesvau.live", "internvl_chat"],
    # stand-ins for tests and tools
    ["holmesvau.testing"],
]  # fmt: skip
STAND_IN_GATE = ("holmesvau.demo", "tiny_pipeline")  # the one product function that may use holmesvau.testing


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (REPO / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module, enclosing top-level function or "")}."""

    def resolve(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[tuple[str, str]]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for top in tree.body:
            where = top.name if isinstance(top, ast.FunctionDef | ast.ClassDef) else ""
            for node in ast.walk(top):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(parts + ([base] if base else []))
                    targets = [f"{base}.{a.name}" for a in node.names]
                else:
                    continue
                for t in targets:
                    r = resolve(t)
                    if r and r != name:
                        edges.add((r, where))
    return graph


def layer_of(name: str) -> int | None:
    best, depth = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            covers = name == n or (
                name.startswith(n + ".") and n != "holmesvau"
            )  # the root: its __init__ only
            if covers and n.count(".") > depth:
                best, depth = i, n.count(".")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    graph = {m: {t for t, _ in edges} for m, edges in imports(modules()).items()}
    assert "holmesvau.pipeline" in graph["holmesvau.predict"]  # the graph is read (a known edge)
    assert cycles(graph) == []


def test_no_module_imports_a_higher_layer():
    upward = []
    for m, edges in imports(modules()).items():
        lm = layer_of(m)
        for t, where in edges:
            lt = layer_of(t)
            if lm is not None and lt is not None and lt > lm and (m, where) != STAND_IN_GATE:
                upward.append(f"{m} (layer {lm}) imports {t} (layer {lt})")
    assert upward == []


def test_stand_ins_only_through_one_function():
    users = sorted(
        (m, where)
        for m, edges in imports(modules()).items()
        if not m.startswith("holmesvau.testing")
        for t, where in edges
        if t.startswith("holmesvau.testing")
    )
    assert users == [STAND_IN_GATE]


def test_a_circle_and_an_upward_import_are_found():
    """The checks themselves, on a made-up graph: a -> b -> c -> a is a circle; d alone is not."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("holmesvau.files") == 0 and layer_of("holmesvau.pipeline") > layer_of(
        "holmesvau.model.batch"
    )
    assert layer_of("holmesvau.report.analysis") > layer_of("holmesvau.report.frames")
