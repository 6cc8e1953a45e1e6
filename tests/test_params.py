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


def _design_rows(start: str, n: int) -> list[list[str]]:
    "n rows of a Markdown table in the shared DESIGN.md, starting at the row whose first cell is `start`."
    design = Path("/work/shared/DESIGN.md")
    if not design.exists(): pytest.skip("the shared design notes are not on this machine")
    lines = [l.strip() for l in design.read_text().splitlines()]
    i = next(k for k, l in enumerate(lines) if l.startswith(f"| {start} |"))
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines[i:i + n]]


def test_pharmacist_table_is_complete_and_matches_the_design_notes():
    rows = tables.table_spec("huatuo2", "pharmacist").published["rows"]
    assert len(rows) == 14 and all(len(m) == 11 for m in rows.values())
    for cells in _design_rows("DISC-MedLLM", 14):
        name = {"GPT-4 (API)": "GPT-4", "ChatGPT (API)": "ChatGPT"}.get(cells[0], cells[0])
        assert list(rows[name].values()) == [float(c) for c in cells[1:]], name


def test_expert_evaluation_has_both_rounds_and_each_row_sums_to_100():
    rows = tables.table_spec("huatuo2", "pairwise").published["rows"]
    multi = [r for r in rows if r.endswith("(multi-round dialogue)")]
    assert len(rows) == 8 and len(multi) == 4
    assert all(sum(m.values()) == 100 for m in rows.values())


def test_sft_share_end_point_is_the_end_of_training():
    share = tables.table_spec("huatuo2", "sft_share").published["rows"]["beta 1.0"]
    assert share["sft share at 100%"] == 90.0 and share["sft share at 90%"] == 14.0
    assert not any("last" in k for k in share)  # the end point is not a last-10% average


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_tiers_evaluation_protocol_is_a_valid_eval_config(spec):
    """A misspelt or impossible evaluation setting in any tier fails here, not hours into a run."""
    from medrepro.eval.mcq import EvalConfig
    checked = 0
    for tier in spec.tiers:
        params = tables.resolve_params(spec, tier)
        protocols = {key: params[key] for key in ("protocol", "kshot_protocol") if key in params}
        for label, extra in (params.get("compare") or {}).items():  # protocols scored beside the paper's
            protocols[f"protocol + compare {label}"] = {**params["protocol"], **extra}
        for key, proto in protocols.items():
            proto = {k: v for k, v in proto.items() if k != "shots"}  # a benchmark protocol's shots is a count
            EvalConfig.from_dict(proto, where=f"params/{spec.key}.yaml ({tier}): {key}")
            checked += 1
    if any("protocol" in tables.resolve_params(spec, t) for t in spec.tiers): assert checked
