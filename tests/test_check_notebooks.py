"""Library notebooks read as tutorials: export cells of a screen or less, each followed by an example (tools/check_notebooks.py)."""
import json, subprocess, sys
from pathlib import Path

from tool_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
cn = load_tool("check_notebooks")


def test_the_repository_passes_the_check():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "check_notebooks.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _nb(path: Path, cells: list) -> Path:
    cells = [{"cell_type": t, "metadata": {}, "source": s, **({"outputs": [], "execution_count": None} if t == "code" else {})}
             for t, s in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_a_long_cell_and_a_missing_example_are_found_and_markdown_or_comments_do_not_count(tmp_path):
    long = "#| export\ndef big():\n" + "    x = 1\n" * cn.MAX_LINES
    nb = _nb(tmp_path / "nbs" / "33_x.ipynb", [
        ("code", "#| default_exp x"), ("code", "#| export\nimport os\nfrom pathlib import (Path,\n    PurePath)"),
        ("code", "#| export\ndef f(): return 1"), ("markdown", "prose"), ("code", "assert f() == 1"),  # example after prose: fine
        ("code", "#| export\ndef g(): return 2"), ("code", "# just a comment"), ("markdown", "more prose"),  # no example
        ("code", long), ("code", "big()")])
    a = cn.audit(nb)
    assert (a.n_export, a.longest) == (4, cn.MAX_LINES + 2)
    assert a.long_cells == [(8, cn.MAX_LINES + 2, "big")] and a.no_example == [(5, "g")]  # the import cell needs none
    assert cn.audit(_nb(tmp_path / "p.ipynb", [("code", "x = 1")])) is None  # a paper notebook exports nothing


def test_the_last_export_needs_an_example_too(tmp_path):
    a = cn.audit(_nb(tmp_path / "n.ipynb", [("code", "#| default_exp n"), ("code", "#| export\nA = 1")]))
    assert a.no_example == [(1, "A")]


def test_the_command_fails_on_a_problem_and_passes_once_it_is_fixed(tmp_path):
    bad = [("code", "#| default_exp x"), ("code", "#| export\ndef f(): return 1")]
    _nb(tmp_path / "nbs" / "33_x.ipynb", bad)
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "tools" / "check_notebooks.py"), "--root", str(tmp_path), *a],
                                    capture_output=True, text=True)
    out = run()
    assert out.returncode == 1 and "33_x.ipynb: cell 1 (f) has no example" in out.stdout
    _nb(tmp_path / "nbs" / "40b_eval.generate.ipynb", bad)  # no notebook is exempt, whatever its name
    out = run("--table")
    assert out.returncode == 1 and "40b_eval.generate.ipynb: cell 1 (f) has no example" in out.stdout
    assert "exempt" not in out.stdout and not hasattr(cn, "ALLOW") and not hasattr(cn, "DEBT")
    for name in ("33_x.ipynb", "40b_eval.generate.ipynb"): _nb(tmp_path / "nbs" / name, bad + [("code", "assert f() == 1")])
    assert cn.main(["--root", str(tmp_path)]) == 0
    _nb(tmp_path / "nbs" / "33_x.ipynb", bad + [("code", "assert f() == 1"), ("code", "#| export\ndef g(): return 1")])
    assert cn.main(["--root", str(tmp_path)]) == 1  # one more export without its example
