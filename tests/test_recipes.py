"""Recipes (params/train/*.yaml) and the tables that name them cannot disagree: batch arithmetic, data paths, tiers."""
import re
from pathlib import Path

import pytest

from medrepro import tables
from medrepro.core import (FIXTURE, RELEASE, TIERS, MedreproError, deep_merge, expand_recipes, load_yaml, recipe_stage,
                           release_paths, resolve_tier)
from medrepro.distrib import resolve_stage

ROOT = tables.params_root()
RECIPES = sorted(ROOT.glob("train/*.yaml"))
SPECS = tables.discover_tables()

# Which table parameter reads the data of which recipe entry: (recipe, data key, entry index or None for the whole list).
DATA_LINKS = {
    "guo2023/table2": {"train_file": ("train/guo_cmexam_full.yaml", "data", 0)},
    "guo2023/table3": {"ct_file": ("train/guo_pretrain.yaml", "data", 0), "cmexam_train": ("train/guo_cmexam_full.yaml", "data", 0)},
    "guo2023/table4": {"ct_file": ("train/guo_pretrain.yaml", "data", 0), "cmexam_train": ("train/guo_cmexam_full.yaml", "data", 0)},
    "guo2023/figure1": {"ct_file": ("train/guo_pretrain.yaml", "data", 0)},
    "huatuo2/ablation": {"sft_file": ("train/huatuo_one_stage.yaml", "data", 4)},
    "mmedift/ablation": {"stage1_file": ("train/mmed_two_stage.yaml", "data", 0),
                         "stage2_files": ("train/mmed_two_stage.yaml", "stage2_data", None)},
}


def stage_refs(spec) -> dict[str, dict]:
    "The table's parameters that name a recipe (shared keys and tier blocks alike)."
    blocks = [spec.base] + [b for b in spec.tiers.values() if "notebook" not in b]
    return {k: v for b in blocks for k, v in b.items() if isinstance(v, dict) and "recipe" in v}


def tiers_of(spec) -> list[str]:
    return [t for t in spec.tiers if "notebook" not in spec.tiers[t]]


def linked_paths(recipe_data, index):
    "The path(s) of a recipe's data entry, shaped like the table parameter (one path, or the whole list for None)."
    entries = recipe_data if index is None else [recipe_data[index]]
    paths = [e["path"] for e in entries]
    return paths if index is None else paths[0]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_batch_arithmetic(recipe):
    """Every tier of a recipe states its global batch, and batch_size x grad_accum x gpus gives it."""
    spec = load_yaml(recipe)
    tiers = [t for t in TIERS if t in spec]
    assert {"smoke", "full"} <= set(tiers), recipe
    for t in tiers:
        st = resolve_stage(spec, t)
        cfg = st["config"]
        assert "gpus" in st and "global_batch" in st, (recipe.name, t)
        assert cfg["batch_size"] * cfg.get("grad_accum", 1) * st["gpus"] == st["global_batch"], (recipe.name, t, cfg)


def test_every_table_that_trains_names_its_recipe_and_links_its_data():
    with_recipes = {s.key for s in SPECS if stage_refs(s)}
    assert with_recipes == set(DATA_LINKS)
    assert {Path(v["recipe"]).name for s in SPECS for v in stage_refs(s).values()} <= {r.name for r in RECIPES}


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
def test_every_table_resolves_at_every_tier_and_agrees_with_its_recipes(spec, tmp_path, monkeypatch):
    """Each stage's batch arithmetic is its recipe's at every tier; its data paths are the recipe's at full and real."""
    monkeypatch.setenv("MEDREPRO_DATA", str(tmp_path))  # an empty data root: the real tier picks the fixtures
    for tier in spec.tiers:
        params = tables.resolve_params(spec, tier)  # also checks names and types against the notebook
        if tier not in tiers_of(spec): continue
        raw = resolve_tier({**spec.base, **spec.tiers}, tier)
        for key, ref in raw.items():
            if not (isinstance(ref, dict) and "recipe" in ref): continue
            st = recipe_stage(ROOT / ref["recipe"], tier)
            got = params[key]
            assert got.get("batch_size") * got.get("grad_accum", 1) * st["gpus"] == st["global_batch"], (spec.key, tier, key, got)
            assert not set(got) & {"model", "output_dir", "save_steps"}, (spec.key, tier, key)  # each run sets these
        if tier in ("full", "real"):
            for param, (recipe, dkey, index) in DATA_LINKS.get(spec.key, {}).items():
                data = recipe_stage(ROOT / recipe, tier)[dkey]
                if tier == "full": assert params[param] == linked_paths(data, index), (spec.key, param)
                else:  # both pick the fixtures, each its own (a folder for a notebook, a `medrepro:` entry for a recipe)
                    assert not release_paths(params[param]) and not release_paths(data), (spec.key, param)


def test_the_real_tier_switches_tables_and_recipes_to_the_releases_together(tmp_path, monkeypatch):
    """With every full-tier data file present under the data root, the real tier reads exactly the full tier's paths."""
    monkeypatch.setenv("MEDREPRO_DATA", str(tmp_path))
    wanted = set()
    for spec in SPECS:
        wanted |= {p for v in (spec.tiers.get("full") or {}).values() for p in release_paths(v)}
    for r in RECIPES:
        wanted |= {p for v in (load_yaml(r).get("full") or {}).values() for p in release_paths(v)}
    for p in wanted:
        f = tmp_path.joinpath(*Path(p).parts[1:]); f.parent.mkdir(parents=True, exist_ok=True); f.write_text("")
    for spec in SPECS:
        if "real" not in spec.tiers: continue
        real, full = tables.resolve_params(spec, "real"), tables.resolve_params(spec, "full")
        for param, (recipe, dkey, index) in DATA_LINKS.get(spec.key, {}).items():
            assert real[param] == full[param] == linked_paths(recipe_stage(ROOT / recipe, "real")[dkey], index)
        assert set(tables.data_sources(spec, "real").values()) <= {RELEASE}


HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")  # org/name: a paper's model on the hub


def _strings(x):
    if isinstance(x, str): yield x
    elif isinstance(x, dict):
        for v in x.values(): yield from _strings(v)
    elif isinstance(x, list):
        for v in x: yield from _strings(v)


@pytest.mark.parametrize("spec", [s for s in SPECS if "real" in s.tiers], ids=[s.key for s in SPECS if "real" in s.tiers])
def test_real_tier_uses_smollm2_and_cpu_sizes(spec, tmp_path, monkeypatch):
    """No paper model, no API, training at most 30 steps of <= 256 tokens, at most 100 questions per benchmark."""
    monkeypatch.setenv("MEDREPRO_DATA", str(tmp_path))
    real = tables.resolve_params(spec, "real")
    hub = [s for s in _strings(real) if HUB_ID.match(s) and not s.startswith(("data/", "medrepro/", "train/"))]
    assert not hub, hub
    assert "openai" not in set(_strings(real)), spec.key
    if spec.key != "huatuo2/sft_share":  # the one table without a model: it draws a sampling order
        assert "smollm2-135m" in set(_strings(real)), spec.key
    for key, v in real.items():
        if key in stage_refs(spec):
            assert 0 < v.get("max_steps", -1) <= 30 and v["seq_len"] <= 256, (spec.key, key, v)
    if real.get("limit") is not None: assert real["limit"] <= 100


def test_every_table_that_runs_a_model_has_a_real_block():
    assert [s.key for s in SPECS if "real" not in s.tiers] == []


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipes_resolve_at_every_tier_they_have(recipe):
    spec = load_yaml(recipe)
    for t in TIERS:
        if t in spec: resolve_stage(spec, t)
        else:
            with pytest.raises(MedreproError, match=f"no '{t}:' block"): resolve_stage(spec, t)


def test_expand_recipes_merges_overrides_over_the_tier():
    got = expand_recipes({"pretrain": {"recipe": "train/guo_pretrain.yaml", "seq_len": 32}}, "smoke", ROOT)["pretrain"]
    want = deep_merge(load_yaml(ROOT / "train/guo_pretrain.yaml")["config"], load_yaml(ROOT / "train/guo_pretrain.yaml")["smoke"]["config"])
    assert got == {**{k: v for k, v in want.items() if k not in ("model", "output_dir", "save_steps")}, "seq_len": 32}
