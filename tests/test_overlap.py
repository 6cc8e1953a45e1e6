"""Contamination check: n-gram overlap between training data and benchmark questions."""
import json, pathlib, subprocess, sys
import pytest
from medrepro.core import MedreproError
from medrepro.data.benchmarks import load_benchmark
from medrepro.data.overlap import ngram_overlap, overlap_cmd, record_text, tokenize
from medrepro.data.records import MCQ, Document, Pair

BIN = pathlib.Path(sys.executable).parent / "medrepro"
Q_EN = MCQ("q1", "A 61-year-old man has crushing chest pain for 40 minutes and ST elevation in leads II, III and aVF.",
           {"A": "LAD", "B": "RCA"}, "B")
Q_ZH = MCQ("q2", "男性，45岁。反复上腹痛5年，进食后缓解，夜间痛明显。最可能的诊断是", {"A": "胃溃疡", "B": "十二指肠溃疡"}, "B")
Q_SHORT = MCQ("q3", "Which hormone lowers blood glucose?", {"A": "Insulin", "B": "Glucagon"}, "A")
Q_TINY = MCQ("q4", "Koplik spots?", {"A": "Measles", "B": "Mumps"}, "A")


def test_tokenize_words_and_cjk_characters():
    assert tokenize("ST-elevation, 2.5 mm; 心电图") == ["st", "elevation", "2", "5", "mm", "心", "电", "图"]
    assert tokenize("Ｘ線") == ["x", "線"]


def test_verbatim_copy_is_flagged_paraphrase_is_not():
    train = [Document("d1", "Case: A 61-YEAR-OLD man has crushing chest pain for 40 minutes and ST elevation in leads II!"),
             Document("d2", "An older man with 40 minutes of chest pain had ST elevation inferiorly."),
             Document("d3", "复习资料：男性,45岁.反复上腹痛5年,进食后缓解,夜间痛明显。"),
             Pair("p1", "Which hormone lowers blood glucose?", "Insulin.")]
    r = ngram_overlap(train, {"en": [Q_EN], "zh": [Q_ZH], "short": [Q_SHORT, Q_TINY]}, n=13, min_tokens=5)
    d = r.to_dict()
    assert d["benchmarks"]["en"]["flagged_ids"] == ["q1"] and d["benchmarks"]["en"]["examples"][0]["train_id"] == "d1"
    assert 0 < d["benchmarks"]["en"]["examples"][0]["matched_fraction"] < 1        # the copy covers only part of the stem
    assert d["benchmarks"]["zh"]["flagged_ids"] == ["q2"]
    assert d["benchmarks"]["short"]["flagged_ids"] == ["q3"] and d["benchmarks"]["short"]["too_short"] == 1
    assert d["flagged"] == 3 and d["train_records"] == 4 and d["benchmarks"]["short"]["rate"] == 0.5


def test_clean_corpus_flags_nothing():
    train = ["Aspirin inhibits cyclooxygenase.", "心肌梗死的典型症状是胸痛。"] * 50
    r = ngram_overlap(train, {"b": [Q_EN, Q_ZH, Q_SHORT]}, n=8, min_tokens=4)
    assert r.benchmarks["b"]["flagged"] == 0 and r.benchmarks["b"]["examples"] == []


def test_shorter_n_catches_partial_copies():
    train = ["crushing chest pain for 40 minutes and ST elevation"]
    assert ngram_overlap(train, {"b": [Q_EN]}, n=13).benchmarks["b"]["flagged"] == 0
    assert ngram_overlap(train, {"b": [Q_EN]}, n=6).benchmarks["b"]["flagged"] == 1


def test_options_only_when_asked():
    q = MCQ("o", "Choose the drug.", {"A": "a long option text naming acetylsalicylic acid at low dose daily", "B": "none"}, "A")
    train = ["a long option text naming acetylsalicylic acid at low dose daily"]
    assert ngram_overlap(train, {"b": [q]}, n=5, min_tokens=3).benchmarks["b"]["flagged"] == 0
    assert ngram_overlap(train, {"b": [q]}, n=5, min_tokens=3, include_options=True).benchmarks["b"]["flagged"] == 1
    assert "acetylsalicylic" in record_text(q, include_options=True)
    with pytest.raises(MedreproError):
        ngram_overlap([], {"b": [q]}, n=0)


def test_overlap_cli_json(tmp_path):
    qs = load_benchmark("cmexam_test", smoke=True)
    corpus = tmp_path / "crawl.txt"
    corpus.write_text(f"无关的一行文本。\n真题回顾：{qs[1].question}（多选）\n", encoding="utf-8")
    r = subprocess.run([str(BIN), "data", "overlap", "--train", "text", str(corpus), "--benchmark", "cmexam_test", "--smoke",
                        "--test", "medqa", str(pathlib.Path(__file__).parent / "fixtures" / "medqa" / "US_4_options_test.jsonl"),
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["benchmarks"]["cmexam_test"]["flagged_ids"] == [qs[1].id] and d["flagged"] == 1
    assert d["train_records"] == 2 and any(k.startswith("medqa:") for k in d["benchmarks"])
    r = subprocess.run([str(BIN), "data", "overlap", "--train", "text", str(corpus)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--benchmark" in r.stderr


def test_overlap_cmd_rejects_non_mcq_test_sets(fixtures):
    with pytest.raises(MedreproError, match="multiple-choice"):
        overlap_cmd(["--train", "text", str(fixtures / "text" / "corpus.txt"), "--test", "alpaca", str(fixtures / "alpaca" / "train.json")])
