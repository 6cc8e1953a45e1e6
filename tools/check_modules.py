"""Fail if a module in medrepro/ has no notebook that exports it (modules are never hand-written)."""
import json, pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
exported = set()
for nb in (root / "nbs").rglob("*.ipynb"):
    for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
        m = re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
        if m: exported.add(m.group(1))
orphans = [str(p.relative_to(root)) for p in (root / "medrepro").rglob("*.py")
           if p.name not in ("__init__.py", "_modidx.py")
           and ".".join(p.relative_to(root / "medrepro").with_suffix("").parts) not in exported]
if orphans:
    sys.exit("[drift] modules with no notebook (write them in nbs/, never by hand): " + ", ".join(orphans))
