"""medrepro's module graph: no import circle (a lazy import inside a function counts too), and the detector can fail."""
import subprocess, sys
from pathlib import Path

from tool_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
mg = load_tool("module_graph")


def test_medrepro_has_no_import_circle():
    modules, edges = mg.module_edges(ROOT)
    assert {"medrepro.core", "medrepro.tables", "medrepro.report", "medrepro.paper"} <= set(modules)
    assert mg.find_cycles(modules, edges) == []


def test_report_sits_above_tables_and_below_the_driver():
    _, edges = mg.module_edges(ROOT)
    deps = lambda m: {e.dst for e in edges if e.src == m}
    assert "medrepro.tables" in deps("medrepro.report") and "medrepro.paper" not in deps("medrepro.report")
    assert deps("medrepro.tables") == {"medrepro.core"}
    assert not any(d.startswith("medrepro.eval") for d in deps("medrepro.data.benchmarks"))



def test_the_evaluation_engine_sits_below_its_orchestration():
    """Extraction, batching, generation and log-likelihood each do one job and never reach up into `eval.mcq`."""
    _, edges = mg.module_edges(ROOT)
    deps = lambda m: {e.dst for e in edges if e.src == m}
    assert deps("medrepro.eval.batching") == {"medrepro.core"}
    assert deps("medrepro.eval.generate") == deps("medrepro.eval.loglik") == {"medrepro.core", "medrepro.eval.batching"}
    assert deps("medrepro.eval.extract") == {"medrepro.core", "medrepro.data.records", "medrepro.eval.stats"}
    assert {"medrepro.eval.extract", "medrepro.eval.generate", "medrepro.eval.loglik"} <= deps("medrepro.eval.mcq")


def test_extraction_and_the_evaluation_cli_import_without_torch():
    """torch is imported inside the functions that run a model: re-scoring saved outputs never loads it."""
    code = "import sys, medrepro.eval.mcq, medrepro.eval.extract; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]

def _package(root: Path, files: dict) -> Path:
    for name, text in files.items():
        p = root / "medrepro" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_a_circle_through_a_lazy_relative_import_is_found(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "a.py": "from .sub.b import f\n",
                               "sub/__init__.py": "", "sub/b.py": "def f():\n    from ..a import g\n", "c.py": "from medrepro import a\n"})
    modules, edges = mg.module_edges(root)
    assert {(e.src, e.dst, e.lazy) for e in edges} == {("medrepro.a", "medrepro.sub.b", False), ("medrepro.sub.b", "medrepro.a", True),
                                                        ("medrepro.c", "medrepro.a", False)}
    assert mg.find_cycles(modules, edges) == [["medrepro.a", "medrepro.sub.b"]]
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "module_graph.py"), "--root", str(root)], capture_output=True, text=True)
    assert out.returncode == 1 and "circle: a <-> sub.b" in out.stdout


def test_imports_of_medrepro_inside_functions_say_why():
    """A medrepro import inside a function is allowed only with a comment on its line (which heavy dependency it defers)."""
    _, edges = mg.module_edges(ROOT)
    silent = []
    for e in edges:
        if not e.lazy: continue
        line = (ROOT / (e.src.replace(".", "/") + ".py")).read_text(encoding="utf-8").splitlines()[e.line - 1]
        if "#" not in line: silent.append(f"{e.src}:{e.line}: {line.strip()}")
    assert silent == []


_SNAPSHOT = """
import importlib, json, pkgutil, sys
import medrepro
from medrepro.core import Registry
owner = importlib.import_module(sys.argv[1])
regs = {k: v for k, v in vars(owner).items() if isinstance(v, Registry)}
before = {k: sorted(v.names()) for k, v in regs.items()}
for m in pkgutil.walk_packages(medrepro.__path__, "medrepro."):
    if not m.name.endswith("_modidx"): importlib.import_module(m.name)
print(json.dumps([before, {k: sorted(v.names()) for k, v in regs.items()}]))
"""


def test_importing_any_module_adds_nothing_to_another_modules_registry():
    """Each registry holds what its own module defines; importing every other module (e.g. the driver) adds nothing."""
    import json
    owners = sorted({e.src for e in mg.module_edges(ROOT)[1]} | {"medrepro.data.llm"})
    owners = [m for m in owners if "Registry(" in (ROOT / (m.replace(".", "/") + ".py")).read_text(encoding="utf-8")]
    assert "medrepro.data.llm" in owners and len(owners) >= 5
    for m in owners:
        out = subprocess.run([sys.executable, "-c", _SNAPSHOT, m], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        before, after = json.loads(out.stdout.splitlines()[-1])
        assert before == after, m
