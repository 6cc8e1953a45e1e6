"""Every params/<paper>/<table>.yaml against its notebook: keys, smoke defaults, the full tier (prepare-only), published numbers."""
import ast, json
from pathlib import Path

import pytest

from medrepro import paper, tables

SPECS = tables.discover_tables()
IDS = [s.key for s in SPECS]


def test_there_are_tables_for_every_paper():
    assert {s.paper for s in SPECS} >= {"guo2023", "huatuo2", "mmedift"}


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_params_file_matches_its_notebook(spec):
    """Notebook exists, has a parameters cell, every tier resolves, base+smoke documents every parameter."""
    assert tables.check_spec(spec) == []


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_notebook_defaults_are_the_smoke_values(spec):
    """A student running the notebook by hand gets exactly the smoke tier."""
    defaults = {k: v["value"] for k, v in tables.notebook_parameters(spec.notebook).items() if k not in tables.DRIVER_KEYS}
    smoke = tables.resolve_params(spec, "smoke")
    norm = lambda x: json.loads(json.dumps(x))  # tuples -> lists, 1e-3 == 0.001
    assert norm(defaults) == norm(smoke)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_full_tier_resolves_and_parameterises_without_executing(spec, tmp_path):
    r = paper.run_table(spec, "full", tmp_path, prepare_only=True, kernel="python3")
    assert r.status == "prepared", r.error
    nb = json.loads((r.out_dir / spec.notebook.name).read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    src = "".join(injected[0]["source"])
    values = {t.id: ast.literal_eval(n.value) for n in ast.parse(src).body if isinstance(n, ast.Assign) for t in n.targets}
    assert values["tier"] == "full"
    full = tables.resolve_params(spec, "full")
    assert json.loads(json.dumps(values, default=str)) == json.loads(json.dumps({**full, "tier": "full", "out_dir": str(r.out_dir)}))
    assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")  # nothing ran


@pytest.mark.parametrize("spec", [s for s in SPECS if "mini" in s.tiers], ids=[s.key for s in SPECS if "mini" in s.tiers])
def test_mini_tier_resolves_without_executing(spec, tmp_path):
    r = paper.run_table(spec, "mini", tmp_path, prepare_only=True, kernel="python3")
    assert r.status == "prepared", r.error
    assert (r.out_dir / spec.notebook_for("mini").name).exists()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_published_numbers_are_numbers_with_a_source(spec):
    pub = spec.published
    assert pub.get("source"), f"{spec.params_file}: published.source says where the numbers come from"
    for row, metrics in (pub.get("rows") or {}).items():
        assert isinstance(metrics, dict) and metrics, (row, metrics)
        for metric, v in metrics.items():
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 100, (row, metric, v)


def test_every_paper_notebook_has_a_params_file():
    nbs = Path(tables.notebooks_root())
    used = {s.notebook_for(t).name for s in SPECS for t in s.tiers} | {s.notebook.name for s in SPECS}
    paper_nbs = {p.name for p in nbs.glob("9*.ipynb")}
    assert paper_nbs and paper_nbs <= used, paper_nbs - used


@pytest.mark.parametrize("name", sorted(p.name for p in Path(tables.notebooks_root()).glob("9*.ipynb")))
def test_paper_notebooks_are_committed_clean(name):
    """No executed outputs in nbs/ (STYLE rule 5) and no export: paper notebooks are not library code."""
    nb = json.loads((Path(tables.notebooks_root()) / name).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c["outputs"] or c["execution_count"] for c in code)
    assert not any("default_exp" in "".join(c["source"]) or "#| export" in "".join(c["source"]) for c in code)
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# ")
