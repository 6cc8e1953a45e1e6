"""`medrepro data stats` through the real console script, for every format."""
import json, pathlib, subprocess, sys
import pytest

BIN = pathlib.Path(sys.executable).parent / "medrepro"
VALID = {  # format -> (fixture path, records, multi-answer questions)
    "cmexam": ("cmexam/test.csv", 6, 2), "medqa": ("medqa", 7, 0), "medmcqa": ("medmcqa/dev.json", 5, 0),
    "pubmedqa": ("pubmedqa/ori_pqal.json", 4, 0), "mmlu": ("mmlu/test", 8, 0), "cmmlu": ("cmmlu/test", 6, 0),
    "ceval": ("ceval/val", 5, 0), "pharmacist": ("pharmacist/exam.json", 5, 1), "mmedbench": ("mmedbench/Test", 9, 3),
    "xmedbench": ("xmedbench", 4, 2), "text": ("text/corpus.txt", 3, 0), "alpaca": ("alpaca/train.json", 3, 0),
    "sharegpt": ("sharegpt/conversations.jsonl", 4, 0), "jsonl": ("jsonl/docs.jsonl", 3, 0), "records": ("records/records.jsonl", 3, 0),
}
MALFORMED = {"cmexam": "cmexam/malformed/rows.csv", "medqa": "medqa/malformed/rows.jsonl", "medmcqa": "medmcqa/malformed/rows.json",
             "pubmedqa": "pubmedqa/malformed/ori_pqal_rows.json", "mmlu": "mmlu/malformed", "cmmlu": "cmmlu/malformed/genetics.csv",
             "ceval": "ceval/malformed/basic_medicine_val.csv", "pharmacist": "pharmacist/malformed/rows.jsonl",
             "mmedbench": "mmedbench/malformed/French.jsonl", "xmedbench": "xmedbench/malformed/fr.json",
             "text": "text/malformed/rows.jsonl", "alpaca": "alpaca/malformed/rows.jsonl", "sharegpt": "sharegpt/malformed/rows.jsonl",
             "jsonl": "jsonl/malformed/rows.jsonl", "records": "records/malformed/rows.jsonl"}


def stats(*args):
    return subprocess.run([str(BIN), "data", "stats", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_every_format_is_covered():
    from medrepro.data.sources import LOADERS
    assert sorted(VALID) == sorted(MALFORMED) == LOADERS.names()


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_stats_json_on_valid_fixture(fixtures, fmt):
    rel, n, multi = VALID[fmt]
    r = stats("--format", fmt, fixtures / rel, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)                           # exactly one JSON object: json.loads fails on anything extra
    assert {"records", "multi_answer", "skipped", "errors", "option_counts", "languages"} <= set(out)
    assert (out["records"], out["multi_answer"], out["skipped"], out["errors"]) == (n, multi, 0, [])
    assert sum(out["languages"].values()) == n


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_stats_malformed_fails_then_skips(fixtures, fmt):
    path = fixtures / MALFORMED[fmt]
    r = stats("--format", fmt, path)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and str(path) in r.stderr
    r = stats("--format", fmt, path, "--json", "--on-error", "skip")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["skipped"] == len(out["errors"]) >= 1 and out["records"] >= 1
    assert all(e["problem"] and e["file"].startswith(str(path)) for e in out["errors"])


def test_stats_text_report(fixtures):
    r = stats("--format", "cmexam", fixtures / "cmexam" / "malformed" / "rows.csv", "--on-error", "skip")
    assert r.returncode == 0
    assert "records       1" in r.stdout and "skipped       6" in r.stdout and "row 3 (line 4): empty question" in r.stdout
    r = stats("--format", "cmexam", fixtures / "cmexam" / "test.csv")
    assert "multi-answer  2" in r.stdout and "options       4: 1, 5: 5" in r.stdout and "zh: 6" in r.stdout


def test_stats_fatal_error_is_still_one_json_object(fixtures):
    r = stats("--format", "medmcqa", fixtures / "medmcqa" / "malformed" / "ambiguous.json", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["records"] == 0 and "cop_base" in out["errors"][0]["problem"]
    r = stats("--format", "medmcqa", fixtures / "medmcqa" / "malformed" / "ambiguous.json", "--json", "--option", "cop_base=1")
    assert r.returncode == 0 and json.loads(r.stdout)["info"]["cop_base"] == 1


def test_stats_subjects_and_bad_arguments(fixtures):
    r = stats("--format", "mmlu", fixtures / "mmlu" / "test", "--subject", "anatomy", "--json")
    assert json.loads(r.stdout)["records"] == 3
    r = stats("--format", "nope", fixtures / "mmlu" / "test")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "invalid choice" in r.stderr
    r = stats("--format", "cmexam", fixtures / "cmexam" / "test.csv", "--option", "bogus=1")
    assert r.returncode == 1 and "no option(s) bogus" in r.stderr


def test_stats_on_real_samples(shared_samples):
    r = stats("--format", "cmexam", shared_samples / "cmexam" / "val_sample15.csv", "--json")
    out = json.loads(r.stdout)
    assert out["records"] == 15 and out["multi_answer"] == 2 and out["option_counts"] == {"4": 1, "5": 14}


def test_stats_hub_offline_is_one_line_error():
    r = stats("--format", "medmcqa", "openlifescienceai/medmcqa", "--hub", "--split", "validation")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cannot load hub dataset 'openlifescienceai/medmcqa'" in r.stderr
