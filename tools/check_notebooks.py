"""Fail if a library notebook stops reading like a tutorial: an export cell longer than a screen, or one with no example.

    python tools/check_notebooks.py            # problems only; exit status 1 if there are any
    python tools/check_notebooks.py --table    # also one line per library notebook: export cells, longest, without example

A library notebook is one with `#| default_exp`. An export cell (`#| export`, `exports`, `exporti`) counts as a screen
when its source has at most MAX_LINES lines. Each export cell must be followed by an example before the next export
cell: a code cell that is not an export and holds code, not only comments (markdown in between is welcome). An export
cell that only imports needs no example: there is nothing of its own to show.
"""
from __future__ import annotations
import argparse, json, re, sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINES = 45  # one screen of a notebook; longer cells are read as scrolling code, not as a step of a tutorial

_IMPORT = re.compile(r"^(from\s+\S+\s+)?import\s")
_EXPORT = re.compile(r"^#\|\s*export[si]?\b", re.M)
_DEFAULT_EXP = re.compile(r"^#\|\s*default_exp\s", re.M)


@dataclass
class Audit:
    name: str                                          # notebook file name
    n_export: int = 0                                  # export cells
    longest: int = 0                                   # lines of the longest export cell
    long_cells: list = field(default_factory=list)     # (cell index, lines, first def/class) over MAX_LINES
    no_example: list = field(default_factory=list)     # (cell index, first def/class) not followed by an example

    @property
    def problems(self) -> list[str]:
        "One line per problem, naming the notebook, the cell and what it defines."
        return ([f"{self.name}: cell {i} ({what}) is {n} lines, over {MAX_LINES}" for i, n, what in self.long_cells]
                + [f"{self.name}: cell {i} ({what}) has no example cell before the next export" for i, what in self.no_example])


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _is_example(cell: dict) -> bool:
    "A code cell that is not an export and holds at least one line of code."
    if cell["cell_type"] != "code": return False
    src = _source(cell)
    if _EXPORT.search(src) or _DEFAULT_EXP.search(src): return False
    return any(l.strip() and not l.lstrip().startswith("#") for l in src.splitlines())


def _only_imports(src: str) -> bool:
    "Whether a cell's code is imports only (parenthesised continuation lines included)."
    code = [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return all(_IMPORT.match(l) or l[:1].isspace() for l in code)


def _defines(src: str) -> str:
    "The first name a cell defines, to point at it in a message."
    m = re.search(r"^(?:async\s+)?(?:def|class)\s+(\w+)|^([A-Za-z_]\w*)\s*[:=]", src, re.M)
    return (m.group(1) or m.group(2)) if m else "no definition"


def audit(path: Path) -> Audit | None:
    "The audit of one notebook, or None if it exports nothing (a paper notebook)."
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    if not any(c["cell_type"] == "code" and _DEFAULT_EXP.search(_source(c)) for c in cells): return None
    a, pending = Audit(path.name), None  # pending: the export cell still waiting for its example
    for i, c in enumerate(cells):
        src = _source(c)
        if c["cell_type"] == "code" and _EXPORT.search(src):
            if pending is not None: a.no_example.append(pending)
            n = len(src.splitlines())
            a.n_export, a.longest = a.n_export + 1, max(a.longest, n)
            if n > MAX_LINES: a.long_cells.append((i, n, _defines(src)))
            pending = None if _only_imports(src) else (i, _defines(src))
        elif pending is not None and _is_example(c): pending = None
    if pending is not None: a.no_example.append(pending)
    return a


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    p.add_argument("--table", action="store_true", help="print one line per library notebook")
    args = p.parse_args(argv)
    audits = [a for nb in sorted((args.root / "nbs").glob("*.ipynb")) if (a := audit(nb))]
    if args.table:
        print(f"{'notebook':34} {'exports':>7} {'longest':>7} {'no example':>10}")
        for a in audits: print(f"{a.name:34} {a.n_export:7} {a.longest:7} {len(a.no_example):10}")
    failed = [msg for a in audits for msg in a.problems]
    for msg in failed: print(msg)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
