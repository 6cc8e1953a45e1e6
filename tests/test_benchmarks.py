"""Benchmark registry: every spec resolves, loads its smoke fixture, and records a version."""
import shutil, subprocess, sys, warnings
import pytest
from medrepro.core import MedreproError, UnknownNameError
from medrepro.data.benchmarks import (BENCHMARKS, BENCHMARK_GROUPS, BenchmarkSpec, benchmark_path, fewshot_for,
                                      fixtures_dir, get_benchmark, load_benchmark, load_fewshot)
from medrepro.data.records import MCQ
from medrepro.eval.benchmarks import check_specs

REQUIRED = ["cmexam_test", "medqa_usmle_4opt", "medqa_mcmle", "medmcqa_dev", "pubmedqa", "mmlu_medical", "cmmlu_medical",
            "ceval_medical", "cmb", "pharmacist_2023"] + [f"mmedbench_{l}" for l in ("en", "zh", "ja", "fr", "ru", "es")]


def test_every_paper_benchmark_has_a_spec():
    assert set(REQUIRED) <= set(BENCHMARKS.names())
    for group in BENCHMARK_GROUPS.values():
        assert set(group) <= set(BENCHMARKS.names())


def test_specs_reference_existing_templates_extractors_metrics_and_fixtures():
    assert check_specs() == []


@pytest.mark.parametrize("name", sorted(BENCHMARKS.names()))
def test_smoke_load(name):
    spec = get_benchmark(name)
    qs = load_benchmark(name, smoke=True)
    assert qs and all(isinstance(q, MCQ) and q.validate() for q in qs)
    assert {q.language for q in qs} == {spec.language}
    if spec.subjects:
        assert {q.meta["subject"] for q in qs} <= set(spec.subjects)
    rec = spec.record()
    assert rec["name"] == name and rec["version"] and len(rec["fingerprint"]) == 12


def test_unknown_benchmark_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'cmexam_test'"):
        get_benchmark("cmexam_tset")


def test_fingerprint_changes_with_any_field():
    s = get_benchmark("mmlu_medical")
    other = BenchmarkSpec(**{**s.__dict__, "subjects": s.subjects[:-1]})
    assert other.fingerprint != s.fingerprint and BenchmarkSpec(**s.__dict__).fingerprint == s.fingerprint


def test_default_location_and_missing_file(tmp_path):
    with pytest.raises(MedreproError, match="not found; put the original release there"):
        load_benchmark("medmcqa_dev", data_dir=tmp_path)
    target = tmp_path / get_benchmark("medmcqa_dev").path
    target.parent.mkdir(parents=True)
    shutil.copyfile(fixtures_dir() / "medmcqa" / "dev.json", target)
    with pytest.warns(UserWarning, match="published split has 4183"):
        qs = load_benchmark("medmcqa_dev", data_dir=tmp_path)
    assert [q.answer_str for q in qs] == ["B", "D", "A", "B", "C"]
    assert benchmark_path("medmcqa_dev", data_dir=tmp_path) == target
    assert len(load_benchmark("medmcqa_dev", path=target, limit=2)) == 2


def test_pubmedqa_ground_truth_resolved_beside_the_data_file(tmp_path):
    d = tmp_path / "pubmedqa" / "data"
    d.mkdir(parents=True)
    for f in ("ori_pqal.json", "test_ground_truth.json"):
        shutil.copyfile(fixtures_dir() / "pubmedqa" / f, d / f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs = load_benchmark("pubmedqa", data_dir=tmp_path)
    assert [q.id for q in qs] == ["90000002", "90000003"]
    (d / "test_ground_truth.json").unlink()
    with pytest.raises(Exception, match="test_ground_truth.json"):
        load_benchmark("pubmedqa", data_dir=tmp_path)


def test_subjects_select_files(tmp_path):
    src = fixtures_dir() / "mmlu" / "test"
    full = tmp_path / "mmlu" / "data" / "test"
    shutil.copytree(src, full)
    with pytest.raises(Exception, match="not found"):   # the full spec needs all six medical subjects
        load_benchmark("mmlu_medical", data_dir=tmp_path)
    for s in ("college_biology", "medical_genetics", "professional_medicine"):
        shutil.copyfile(src / "anatomy_test.csv", full / f"{s}_test.csv")
    shutil.copyfile(src / "anatomy_test.csv", full / "virology_test.csv")   # not a medical subject: must be ignored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs = load_benchmark("mmlu_medical", data_dir=tmp_path)
        every = load_benchmark("mmlu", data_dir=tmp_path)
    assert "virology" not in {q.meta["subject"] for q in qs} and len(qs) == 8 + 9
    assert "virology" in {q.meta["subject"] for q in every}


def test_fewshot_pool_excludes_scored_questions():
    test = load_benchmark("mmlu_medical", smoke=True)
    pool = load_fewshot("mmlu_medical", smoke=True)
    leaked = [q for q in pool if q.question in {t.question for t in test}]
    assert [q.id for q in leaked] == ["clinical_knowledge/1"]          # the fixture repeats a test row, as upstream MMLU does
    kept = load_fewshot("mmlu_medical", smoke=True, exclude=test)
    assert [q.id for q in pool if q not in kept] == ["clinical_knowledge/1"]
    shots = fewshot_for(test[0], pool + [test[0]], 3)
    assert test[0] not in shots and shots[0].meta["subject"] == test[0].meta["subject"] and len(shots) == 3
    with pytest.raises(MedreproError, match="no bundled few-shot source"):
        load_fewshot("cmexam_test", smoke=True)


def test_module_imports_without_prompts_module():
    code = ("import sys; sys.modules['medrepro.data.prompts'] = None\n"
            "import medrepro.data.benchmarks as b; print(len(b.BENCHMARKS))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and int(r.stdout) >= len(REQUIRED), r.stderr
