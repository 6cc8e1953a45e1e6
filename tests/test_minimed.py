"""MiniMed: the world is deterministic, well-formed, free of shortcuts, and readable by the real loaders."""
import dataclasses
import json
import re

import pytest
from tool_loader import load_tool

from medrepro.core import MedreproError
from medrepro.minimed import (FACT_TEMPLATES, MEDICAL_RELATIONS, QUESTION_TYPES, WorldConfig, build, build_cmd,
                              build_minimed_tokenizer, encyclopedia, encyclopedia_pairs, general_questions,
                              load_world, make_world, medical_questions, name_strings, template_responder)

SMALL = WorldConfig(n_diseases=20, n_cities=16)


@pytest.fixture(scope="module")
def world():
    return make_world(7, SMALL)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(7, tmp_path_factory.mktemp("mm") / "w", SMALL)


def test_same_seed_same_world_files(built, tmp_path):
    again = build(7, tmp_path / "again", SMALL)
    assert (again / "manifest.json").read_text() == (built / "manifest.json").read_text()
    other = build(8, tmp_path / "other", SMALL)
    assert json.loads((other / "manifest.json").read_text())["files"] != json.loads((built / "manifest.json").read_text())["files"]


def test_seeds_share_the_general_world_and_the_model(built, tmp_path):
    # one base model serves every seed: the general corpus, its questions, the tokenizer and the initial weights
    # must be byte-identical across seeds, while the medical facts differ
    other = build(8, tmp_path / "other", SMALL)
    a, b = (json.loads((p / "manifest.json").read_text())["files"] for p in (built, other))
    shared = ("model/", "general/", "mmlu/", "cmmlu/")
    assert {k: v for k, v in a.items() if k.startswith(shared)} == {k: v for k, v in b.items() if k.startswith(shared)}
    assert any(k.startswith("model/") for k in a) and any(k.startswith("general/") for k in a)
    assert a["encyclopedia/medical_zh.txt"] != b["encyclopedia/medical_zh.txt"]
    w7, w8 = load_world(built), load_world(other)
    assert w7.to_dict()["cities"] == w8.to_dict()["cities"]
    assert {n.en for n in w7.names()} == {n.en for n in w8.names()}  # one name inventory, dealt out anew
    drug = lambda w: {d.name.en: d.drug.en for d in w.diseases}
    assert drug(w7) != drug(w8)
    other_general = make_world(7, WorldConfig(n_diseases=20, n_cities=16, general_seed=1))  # a different general world
    assert other_general.to_dict()["cities"] != w7.to_dict()["cities"]


def test_world_roundtrip_and_unique_names(world, built):
    assert load_world(built).to_dict() == world.to_dict()
    names = world.names()
    assert len({n.en for n in names}) == len({n.zh for n in names}) == len(names)
    with pytest.raises(MedreproError): make_world(0, WorldConfig(n_diseases=3))


def test_split_by_disease_and_complications_stay_in_split(world):
    for d in world.diseases:
        assert world.disease(d.complication).split == d.split and d.complication != d.key
    test = medical_questions(world, "zh", "test")
    assert test and {q.meta["split"] for q in test} == {"test"}
    train_names = {d.name.zh for d in world.diseases if d.split == "train"}
    assert not any(n in q.question for q in test for n in train_names)


def test_distractors_from_the_answers_split(world):
    for lang in ("zh", "en"):
        for q in medical_questions(world, lang):
            if q.meta["qtype"] in ("drug", "drug_by_pathogen", "complication_drug"):
                pool = {d.drug(lang) for d in world.diseases if d.split == q.meta["split"]}
                assert set(q.options.values()) <= pool


def test_no_document_states_two_facts(world):
    # a multi-hop shortcut needs two facts in one document; every document names exactly two entities
    names = [n for n in name_strings(world) if not n.startswith(" ")]
    pat = re.compile("|".join(map(re.escape, names)))
    for doc in encyclopedia(world):
        assert len(pat.findall(doc.text)) == 2, doc.text


def test_forms_redraw_distractors_not_facts(world):
    one, four = medical_questions(world, "zh", "test"), medical_questions(world, "zh", "test", forms=4)
    assert len(four) == 4 * len(one) and [q.id for q in four[:len(one)]] == [q.id for q in one]  # form 0 = the files
    assert len({q.id for q in four}) == len(four) and {q.meta.get("form", 0) for q in four} == {0, 1, 2, 3}
    base = {q.id: q for q in one}
    later = [(q, base[q.id.rsplit("-f", 1)[0]]) for q in four[len(one):]]
    assert all(q.options[q.answer_str] == o.options[o.answer_str] and q.question == o.question for q, o in later)
    assert sum(q.options != o.options for q, o in later) > 0.9 * len(later)  # fresh distractors or order almost always
    pool = {d.drug.zh for d in world.diseases if d.split == "test"}
    assert all(set(q.options.values()) <= pool for q, _ in later if q.meta["qtype"] == "drug")


def test_paraphrases_and_hops(world):
    assert all(len(v[lang]) == 6 for r, v in FACT_TEMPLATES.items() if r in MEDICAL_RELATIONS for lang in v)
    assert {qt.hops for qt in QUESTION_TYPES} == {1, 2, 3}
    q = next(q for q in medical_questions(world, "en") if q.meta["hops"] == 3)
    assert q.explanation.count(".") == 4 and q.options[q.answer_str] in q.explanation  # three chain facts + conclusion


def test_every_name_is_one_token(world):
    tok = build_minimed_tokenizer(world)
    assert all(len(tok(s)["input_ids"]) == 1 for s in name_strings(world))
    text = medical_questions(world, "zh")[0].explanation + " " + general_questions(world, "en")[0].question
    assert tok.decode(tok(text)["input_ids"]) == text
    name = world.cities[0].country.en  # after a space it is the same token as at a sentence start: facts transfer
    assert tok(" " + name)["input_ids"][-1] == tok(name)["input_ids"][0] and not any(s.startswith(" ") for s in name_strings(world))


def test_explanations_start_from_the_clue(world):
    q = next(q for q in medical_questions(world, "en") if q.meta["qtype"] == "complication_pathogen_by_symptom")
    d = next(d for d in world.diseases if d.key == q.meta["disease"])
    # read left to right, the chain starts from the symptom the question names, then reaches the disease
    assert q.explanation.startswith(d.symptom.en) and q.explanation.index(d.symptom.en) < q.explanation.index(d.name.en)
    assert q.explanation.endswith(f"So the answer is {q.options[q.answer_str]}.")


def test_cmexam_csv_layout(built):
    import csv
    with open(built / "cmexam" / "test.csv", encoding="utf-8") as f: rows = list(csv.reader(f))
    assert rows[0][:4] == ["Question", "Options", "Answer", "Explanation"] and len(rows[0]) == 9
    assert "\\n" in rows[1][1] and "\n" not in rows[1][1] and rows[1][1].startswith("A ")
    mmlu = (built / "mmlu" / "test" / "minimed_geography_test.csv").read_text().splitlines()
    assert len(next(csv.reader(mmlu[:1]))) == 6 and mmlu[0][-1] in "ABCD"


def test_loaders_read_the_world(built, world):
    sources = pytest.importorskip("medrepro.data.sources")
    got = sources.load_mcq("cmexam", built / "cmexam" / "test.csv")
    want = medical_questions(world, "zh", "test")
    assert [(q.question, q.options, q.answer_str) for q in got] == [(q.question, q.options, q.answer_str) for q in want]
    en = sources.load_mcq("medqa", built / "medqa" / "test.jsonl")
    assert [q.answer_str for q in en] == [q.answer_str for q in medical_questions(world, "en", "test")]
    gen = sources.load_mcq("mmlu", built / "mmlu" / "test" / "minimed_geography_test.csv")
    assert [q.question for q in gen] == [q.question for q in general_questions(world, "en", "test")]
    docs = sources.load("text", built / "encyclopedia" / "medical_zh.txt").records
    assert [d.text for d in docs] == [d.text for d in encyclopedia(world, ["zh"])]


def test_model_folder_loads(built):
    from medrepro.models import count_parameters, load_causal_lm, load_tokenizer
    model, tok = load_causal_lm(built / "model"), load_tokenizer(built / "model")
    assert model.config.vocab_size == len(tok) and tok.pad_token_id is not None and tok.eos_token_id is not None
    assert 5e5 < count_parameters(model) < 2e6


def test_template_backend_unifies_documents(world):
    from medrepro.data.llm import FunctionBackend
    docs = encyclopedia(world, ["en"])[:6]
    backend = FunctionBackend(template_responder(world))
    qs = backend.chat_many([[{"role": "user", "content": f"Write a question about: <<<{d.text}>>>"}] for d in docs])
    ans = backend.chat_many([[{"role": "system", "content": f"Reference: <<<{d.text}>>>"}, {"role": "user", "content": q.text}]
                             for d, q in zip(docs, qs)])
    want = encyclopedia_pairs(world, docs)
    assert [(q.text, a.text) for q, a in zip(qs, ans)] == [(p.instruction, p.output) for p in want]
    assert [p.output for p in want] == [d.text for d in docs]  # the answer keeps the document's wording (six per fact)
    bad = backend.chat_many([[{"role": "user", "content": "no fact here"}]])[0]
    assert bad.text is None and "no MiniMed fact" in bad.error


def test_build_cmd(tmp_path, capsys):
    assert build_cmd(["--seed", "1", "--out", str(tmp_path / "w"), "--diseases", "13", "--cities", "8"]) == 0
    assert "MiniMed world seed 1" in capsys.readouterr().out and (tmp_path / "w" / "model" / "config.json").exists()


def _tiny():
    from dataclasses import replace
    from medrepro.minimed_experiments import MiniConfig
    return replace(MiniConfig().quick(), world=WorldConfig(n_diseases=12, n_cities=8, n_countries=4, n_rivers=4),
                   base_epochs=1, ft_epochs=1, conditions=("ft_only",))


def test_same_seed_same_numbers(tmp_path, monkeypatch):
    from medrepro.minimed_experiments import run_seed
    monkeypatch.setenv("MEDREPRO_HOME", str(tmp_path / "home"))
    strip = lambda r: {c: {k: v for k, v in m.items() if k != "seconds"} for c, m in r.items()}
    a = run_seed(5, _tiny(), root=tmp_path / "a", log=None)
    b = run_seed(5, _tiny(), root=tmp_path / "b", log=None)
    assert set(a) == {"base", "ft_only"} and strip(a) == strip(b)
    assert 0 <= a["ft_only"]["medical"] <= 1 and "hop3" in a["ft_only"] and "general_en" in a["base"]
    # every type has one question per held-out disease and form: a hop's accuracy is the mean of its types'
    for h in (1, 2, 3):
        types = [a["ft_only"][f"type_{qt.name}"] for qt in QUESTION_TYPES if qt.hops == h]
        assert types and a["ft_only"][f"hop{h}"] == pytest.approx(sum(types) / len(types))


def test_steps_come_after_the_step_they_start_from():
    from dataclasses import replace
    from medrepro.minimed_experiments import MiniConfig, mini_steps, step_parent
    steps = mini_steps(MiniConfig())
    assert len(steps) == len(set(steps)) and steps[0] == "base"
    assert all(steps.index(step_parent(s)) < steps.index(s) for s in steps[1:])
    assert {"ct_ckpt1_ft", "ct_ckpt3_ft", "stage1_only", "replay"} <= set(steps) and "ct_ckpt4_ft" not in steps
    assert mini_steps(replace(MiniConfig(), conditions=("ft_only",))) == ["base", "ft_only"]
    with pytest.raises(MedreproError, match="unknown MiniMed condition"): mini_steps(replace(MiniConfig(), conditions=("nope",)))


def test_parallel_steps_give_the_serial_numbers(tmp_path, monkeypatch):
    from dataclasses import replace
    from medrepro.minimed_experiments import run_mini
    monkeypatch.setenv("MEDREPRO_HOME", str(tmp_path / "home"))
    cfg = replace(_tiny(), conditions=("ft_only", "ct_ft"))
    strip = lambda r: {s: {c: {k: v for k, v in m.items() if k != "seconds"} for c, m in x.items()} for s, x in r["per_seed"].items()}
    serial = run_mini((5, 6), cfg, root=tmp_path / "serial", workers=1, log=None)
    pooled = run_mini((5, 6), cfg, root=tmp_path / "pool", workers=2, log=None)
    assert strip(serial) == strip(pooled) and set(serial["per_seed"][5]) == {"base", "ct", "ft_only", "ct_ft"}


def test_summary_intervals_and_blocks():
    from medrepro.minimed_experiments import mini_block, mini_tables, summarize, t_interval
    m, lo, hi = t_interval([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6) and lo < 0.5 and hi > 0.7  # t(2) = 4.30 makes 3-seed intervals wide
    s = summarize({0: {"ft_only": {"medical": 0.25, "seconds": 1}, "ct_ft": {"medical": 0.6, "seconds": 2}},
                   1: {"ft_only": {"medical": 0.27, "seconds": 1}, "ct_ft": {"medical": 0.62, "seconds": 2}}})
    assert s["ct_ft"]["medical"]["values"] == [0.6, 0.62] and s["ct_ft"]["seconds"] == 2
    tables = mini_tables()
    assert mini_block(tables["guo2023/table2"], s)["findings"][0]["reproduced"] is True
    assert mini_block(tables["huatuo2/ablation"], s)["findings"][0]["reproduced"] is None  # its conditions did not run: no verdict
    one = summarize({0: {"ft_only": {"medical": 0.25, "seconds": 1}, "ct_ft": {"medical": 0.6, "seconds": 2}}})
    assert mini_block(tables["guo2023/table2"], one)["findings"][0]["reproduced"] is None  # one seed: no interval, no verdict
    assert all(t.findings and all(f.better and f.worse for f in t.findings) for t in tables.values())


# The MiniMed tables as they were defined in Python before the params files' `mini:` blocks held them:
# old name -> (params table, index of the finding). bench/results/minimed.json's `blocks` were computed from those.
OLD_TABLES = {"guo2023_table2": ("guo2023/table2", 0), "guo2023_table2_reasoning": ("guo2023/table2", 1),
              "guo2023_table3": ("guo2023/table3", 0), "forgetting": ("guo2023/table3", 1), "forgetting_seen": ("guo2023/table3", 2),
              "forgetting_replay": ("guo2023/table3", 3), "forgetting_replay_seen": ("guo2023/table3", 4),
              "guo2023_table4": ("guo2023/table4", 0), "huatuo2_one_stage": ("huatuo2/ablation", 0), "mmed_ift_ablation": ("mmedift/ablation", 0)}


def test_yaml_tables_resolve_to_the_recorded_config_and_verdicts():
    # the numbers must not change: every table's YAML-resolved configuration is the one bench/results/minimed.json ran,
    # its runs land in the same cache folder, and each old finding's verdict and effect come out the same
    import json, pathlib
    from dataclasses import asdict, replace
    from medrepro.minimed_experiments import MiniConfig, mini_block, mini_tables, recorded_summary, run_root
    bench = json.loads((pathlib.Path(__file__).resolve().parent.parent / "bench" / "results" / "minimed.json").read_text())
    tables = mini_tables()
    assert sorted(tables) == ["guo2023/table2", "guo2023/table3", "guo2023/table4", "huatuo2/ablation", "mmedift/ablation"]
    strip = lambda d: {k: v for k, v in d.items() if k != "conditions"}
    for name, t in tables.items():
        cfg = t.miniconfig()
        assert strip(json.loads(json.dumps(asdict(cfg)))) == strip(bench["config"]), name
        assert run_root(0, cfg) == run_root(0, MiniConfig())  # the same cached runs
    assert tables["mmedift/ablation"].conditions == ("stage2_only", "two_stage") and tables["mmedift/ablation"].more_seeds == 3
    for old, (name, i) in OLD_TABLES.items():
        t = tables[name]  # a results file written before the move keys its blocks by the old names, a later one by table
        was = bench["blocks"][old] if old in bench["blocks"] else bench["blocks"][name]["findings"][i]
        now = mini_block(t, recorded_summary(bench, t))["findings"][i]
        assert now["reproduced"] == was["reproduced"], old
        assert now["difference"]["mean"] == pytest.approx(was["difference"]["mean"], abs=1e-3), old  # summaries hold 4-digit values
        assert now["difference"]["ci"] == pytest.approx(was["difference"]["ci"], abs=2e-3), old
        rows = was.get("rows") or bench["blocks"][name]["rows"]
        assert {r["condition"] for r in rows} <= {c for _, c in t.rows}, old  # every old row is still shown


def test_mini_block_errors_name_the_file():
    from medrepro.minimed_experiments import mini_table
    ok = {"rows": {"a": "ft_only"}, "columns": {"acc": "medical"}}
    with pytest.raises(MedreproError, match=r"x.yaml \(mini\): unknown condition\(s\) \['nope'\]"):
        mini_table({**ok, "rows": {"a": "nope"}}, "x.yaml (mini)")
    with pytest.raises(MedreproError, match="findings\\[0\\] lacks worse"):
        mini_table({**ok, "findings": [{"claim": "c", "better": "ft_only"}]}, "x.yaml (mini)")
    with pytest.raises(MedreproError, match="unknown MiniConfig setting"):
        mini_table({**ok, "config": {"ft_epoch": 3}}, "x.yaml (mini)")
    with pytest.raises(MedreproError, match="'rows:' must be a non-empty mapping"):
        mini_table({"columns": {"acc": "medical"}}, "x.yaml (mini)")
    assert mini_table({**ok, "config": {"ft_epochs": 3}}).miniconfig().ft_epochs == 3


@pytest.mark.slow
def test_mini_tier_effect_sizes():
    """The papers' qualitative findings at the `mini` tier (3 seeds, minutes of CPU; reuses cached runs).

    The bars are the issue's (a pilot's figures); a failure here is a finding to report, never to hide.
    """
    from medrepro.minimed_experiments import MiniConfig, mini_tables, run_mini, table_run
    shared = run_mini((0, 1, 2), MiniConfig())
    s = shared["summary"]
    mmed = table_run(mini_tables()["mmedift/ablation"], (0, 1, 2), MiniConfig(), shared=shared)["summary"]  # 6 seeds (more_seeds)
    mean = lambda c, m="medical", s=s: s[c][m]["mean"]
    hi = lambda c, m="medical", s=s: s[c][m]["ci"][1]
    checks = {  # every bar is checked and every miss reported, not just the first
        "fine-tuning alone stays near chance (25%)": mean("ft_only") < 0.35,
        "Guo & Hua: CT then FT >> FT alone": mean("ct_ft") > hi("ft_only") + 0.2,
        "Table 3: rising over checkpoints": mean("ct_ft") > mean("ct_ckpt1_ft"),
        "forgetting after CT": mean("ct", "general") < mean("base", "general") - 0.2,
        "replay prevents most of it": mean("replay", "general") > hi("ct", "general"),
        "... on what the base model knew (seen cities)": mean("replay", "general_seen") > hi("ct", "general_seen"),
        "one-stage learns the domain": mean("one_stage") > hi("ft_only") + 0.2,
        "... while keeping general knowledge": mean("one_stage", "general") > mean("ct", "general"),
        "HuatuoGPT-II: one stage beats CT then FT": mean("one_stage") > hi("ct_ft"),
        "MMed-IFT: two-stage beats stage 2 alone (6 seeds)": mean("two_stage", s=mmed) > hi("stage2_only", s=mmed),
    }
    missed = [k for k, ok in checks.items() if not ok]
    assert not missed, f"bars not met: {missed}"


def test_more_seeds_run_only_the_tables_own_conditions():
    from medrepro.minimed_experiments import MiniConfig, mini_steps, mini_tables, table_run, table_seeds
    tables = mini_tables()
    spec = tables["mmedift/ablation"]
    assert spec.conditions == ("stage2_only", "two_stage")  # 'ct' and 'stage1_only' are steps those two train
    assert table_seeds(spec, [0, 1, 2]) == [0, 1, 2, 3, 4, 5]
    assert table_seeds(tables["guo2023/table2"], [0, 1, 2]) == [0, 1, 2]
    steps = mini_steps(dataclasses.replace(MiniConfig(), conditions=spec.conditions))
    assert sorted(steps) == ["base", "ct", "stage1_only", "stage2_only", "two_stage"]  # no fine-tuning, replay or one-stage run
    shared = {"seeds": [0, 1, 2], "summary": {}}
    assert table_run(tables["guo2023/table2"], [0, 1, 2], shared=shared) is shared  # tables without more seeds train nothing


def test_sft_share_mini_block_is_the_one_stage_mix(tmp_path, monkeypatch):
    # the mini SFT-share figure must draw the order the one-stage run trained on: same sources, order, weights and repeats
    import pathlib
    from collections import Counter
    import yaml
    from medrepro.minimed_experiments import MiniConfig, mini_data, one_stage_records
    monkeypatch.setenv("MEDREPRO_HOME", str(tmp_path / "home"))
    root = pathlib.Path(__file__).resolve().parent.parent
    block = yaml.safe_load((root / "params" / "huatuo2" / "sft_share.yaml").read_text())["mini"]
    c = MiniConfig()
    recs, pr = one_stage_records(mini_data(0, c), 0, c)
    counts = Counter(r.source for r in recs)
    assert list(block["source_counts"].items()) == list(counts.items())  # sources listed in the run's order
    assert block["priorities"] == pr and block["seed"] == 0
    assert (block["sft_epochs"], block["domain_epochs"]) == (c.one_stage_sft_epochs, c.one_stage_domain_epochs)


def test_compare_minimed_gaps_and_the_two_recorded_machines(capsys):
    # the per-seed gap is taken over the seeds and conditions both files ran, as an absolute difference
    cmp = load_tool("compare_minimed")
    a = {"per_seed": {"0": {"ct_ft": {"medical": 0.5}, "base": {"medical": 0.3}}, "1": {"ct_ft": {"medical": 0.4}}}}
    b = {"per_seed": {"0": {"ct_ft": {"medical": 0.42}}, "1": {"ct_ft": {"medical": 0.45}}, "2": {"ct_ft": {"medical": 0.9}}}}
    assert cmp.seed_gaps(a, b, "medical") == pytest.approx({"ct_ft": 0.08})
    # the same code on two CPUs: the docs say some verdicts differ between the two recorded files; this keeps them honest
    import pathlib
    res = pathlib.Path(__file__).resolve().parent.parent / "bench" / "results"
    assert cmp.main([str(res / "minimed.json"), str(res / "minimed_epyc.json")]) == 1
    out = capsys.readouterr().out
    flipped = [l for l in out.splitlines() if l.startswith("!!")]
    assert any("mmedift/ablation" in l for l in flipped) and any("forgets less general knowledge" in l for l in flipped)
    assert "AMD EPYC" in out  # the second file names its CPU
