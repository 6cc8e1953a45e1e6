"""Print medrepro's module graph (which of its own modules each module imports) and fail on an import circle.

    python tools/module_graph.py             # one line per module: its imports (lazy ones, inside a function, marked *)
    python tools/module_graph.py --markdown  # the same as a Markdown list, plus the summary
    python tools/module_graph.py --lazy      # every import of a medrepro module inside a function, with its line

Exit status 1 if the graph (top-level and lazy imports alike) has a cycle: a lazy import hides a circle, it does not
remove it.
"""
from __future__ import annotations
import argparse, ast, sys
from dataclasses import dataclass
from pathlib import Path

PKG = "medrepro"

@dataclass(frozen=True)
class Edge:
    src: str      # importing module, e.g. 'medrepro.report'
    dst: str      # imported module, e.g. 'medrepro.tables'
    line: int
    lazy: bool    # inside a function (or class body), not at module level

def module_name(path: Path, root: Path) -> str:
    "'medrepro/data/llm.py' -> 'medrepro.data.llm' (a package's __init__ is the package)."
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__": parts.pop()
    return ".".join(parts)

def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    "The absolute module an ImportFrom names (relative levels resolved against `mod`)."
    if not node.level: return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))

def _targets(name: str, node: ast.AST, modules: set[str], mod: str, is_pkg: bool) -> list[str]:
    "The medrepro modules one import statement brings in (`from pkg import mod` names the submodule)."
    if isinstance(node, ast.Import): names = [a.name for a in node.names]
    else:
        base = _resolve(mod, is_pkg, node)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for n in names:
        while n and n not in modules: n = n.rpartition(".")[0]  # `import medrepro.data.llm as x` -> that module
        if n and n != PKG and n != mod and n not in out: out.append(n)  # the package root only holds __version__
    return out

def _walk(tree: ast.AST, lazy: bool = False):
    "Every import node with whether it sits inside a function or class."
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)): yield node, lazy
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        yield from _walk(node, inner)

def module_edges(root: Path) -> tuple[list[str], list[Edge]]:
    "All medrepro modules under `root` and every import between them."
    files = {module_name(p, root): p for p in sorted((root / PKG).rglob("*.py")) if p.name != "_modidx.py"}
    modules, edges = set(files), []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, lazy in _walk(tree):
            for dst in _targets(mod, node, modules, mod, path.name == "__init__.py"):
                edges.append(Edge(mod, dst, node.lineno, lazy))
    return sorted(m for m in modules if m != PKG), edges

def find_cycles(modules: list[str], edges: list[Edge]) -> list[list[str]]:
    "Strongly connected components of more than one module (Tarjan), each sorted: the import circles."
    adj = {m: sorted({e.dst for e in edges if e.src == m}) for m in modules}
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v: str) -> None:
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in adj.get(v, []):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    sys.setrecursionlimit(10_000)
    for m in modules:
        if m not in index: visit(m)
    return sorted(out)

def _short(m: str) -> str: return m[len(PKG) + 1:] if m.startswith(PKG + ".") else m

def graph_lines(modules: list[str], edges: list[Edge]) -> list[str]:
    "One line per module: `module -> imports` (a lazy-only import marked *)."
    lines = []
    for m in modules:
        deps = {}
        for e in edges:
            if e.src == m: deps[e.dst] = deps.get(e.dst, True) and e.lazy
        lines.append(f"{_short(m)} -> " + (", ".join(_short(d) + ("*" if lazy else "") for d, lazy in sorted(deps.items())) or "(none)"))
    return lines

def summary(modules: list[str], edges: list[Edge], cycles: list[list[str]]) -> list[str]:
    "Counts: modules, import statements (top-level / inside functions), cycles."
    lazy = [e for e in edges if e.lazy]
    out = [f"{len(modules)} modules; {len(edges)} imports of medrepro modules: {len(edges) - len(lazy)} at module level, "
           f"{len(lazy)} inside functions; {len(cycles)} import circle(s)"]
    out += ["circle: " + " <-> ".join(map(_short, c)) for c in cycles]
    return out

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parent.parent), help="repository root")
    p.add_argument("--markdown", action="store_true", help="print a Markdown list")
    p.add_argument("--lazy", action="store_true", help="list the imports inside functions")
    a = p.parse_args(argv)
    modules, edges = module_edges(Path(a.root))
    cycles = find_cycles(modules, edges)
    if a.lazy:
        for e in sorted((e for e in edges if e.lazy), key=lambda e: (e.src, e.line)):
            print(f"{e.src.replace('.', '/')}.py:{e.line}: {_short(e.dst)}")
    else:
        bullet = "- " if a.markdown else ""
        for line in graph_lines(modules, edges): print(bullet + (f"`{line}`" if a.markdown else line))
        print()
        for line in summary(modules, edges, cycles): print(bullet + line)
    return 1 if cycles else 0

if __name__ == "__main__": sys.exit(main())
