"""Cycle-consistency translation: BLEU tokenisation, embedding score, filtering, retention, CLI resume."""
import json

import pytest

from llm_server import serve
from medrepro.cli import main
from medrepro.core import MedreproError, read_jsonl, write_jsonl
from medrepro.data.llm import FunctionBackend, OpenAIBackend
from medrepro.data.records import MCQ, Document, Pair
from medrepro.data.translate import (EmbeddingScorer, TranslateConfig, TranslationJob, bleu_tokenizer, cycle_bleu,
                                     cycle_scores, retention_report, translate_jobs)
from medrepro.data.pipeline import rejected_path


@pytest.fixture(scope="module")
def scorer():
    return EmbeddingScorer("tiny")


def payload(messages):
    return messages[0]["content"].rsplit("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]


def test_bleu_tokenisation_per_language():
    assert bleu_tokenizer("zh") == "zh" and bleu_tokenizer("en") == "13a" and bleu_tokenizer("fr") == "13a"
    assert bleu_tokenizer("ja") in ("ja-mecab", "char")  # char unless mecab-python3 + ipadic are installed
    # unsegmented Chinese: 13a sees one "word" and scores 0; the zh tokenizer scores shared characters
    o, b = "高血压患者应限制食盐摄入。", "高血压病人应限制食盐摄入。"
    assert cycle_bleu([o], [b], "zh")[0] > 0.4
    from sacrebleu.metrics import BLEU
    assert BLEU(tokenize="13a", effective_order=True).sentence_score(b, [o]).score == 0.0
    assert cycle_bleu(["日本の医療制度は複雑です。"], ["日本の医療制度は複雑です。"], "ja")[0] == pytest.approx(1.0)


def test_embedding_similarity(scorer):
    same, diff = scorer.similarity(["Aspirin inhibits platelets."] * 2, ["Aspirin inhibits platelets.", "完全不同的句子"])
    assert same == pytest.approx(1.0, abs=1e-4) and 0.0 <= diff < same
    mean = EmbeddingScorer("tiny", pooling="mean").similarity(["fever"], ["fever"])[0]
    assert mean == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(MedreproError):
        EmbeddingScorer("tiny", pooling="max")


def test_cycle_scores_weights(scorer):
    s = cycle_scores(["Aspirin inhibits platelet aggregation."], ["Aspirin is a drug."], "en", scorer,
                     TranslateConfig(bleu_weight=1.0, embedding_weight=0.0))[0]
    assert s["score"] == s["bleu"] < 0.5
    s2 = cycle_scores(["a b c"], ["a b c"], "en", None)[0]  # no encoder: BLEU only
    assert s2 == {"bleu": 1.0, "embedding": None, "score": 1.0}
    with pytest.raises(MedreproError, match="weights"):
        cycle_scores(["a"], ["a"], "en", scorer, TranslateConfig(bleu_weight=0, embedding_weight=0))


def lossy(messages):
    """Identity 'translation', except that the way back drops everything after the first sentence for [lossy] texts."""
    text = payload(messages)
    if "into English" in messages[0]["content"] and "[lossy]" in text:
        return text.split(". ")[0] + "."
    return text


def test_translate_jobs_keeps_and_rejects(scorer):
    recs = [Pair("p1", "What lowers blood pressure?", "Drug X lowers blood pressure. Take it daily with food."),
            Pair("p2", "[lossy] What lowers blood pressure?", "[lossy] Drug X lowers it. Take it daily with food and water."),
            MCQ("q1", "Which drug lowers blood pressure?", {"A": "Drug X", "B": "Drug Y"}, "A", "X is an antihypertensive."),
            Document("d1", "Hypertension is common.")]
    srv = serve(lossy)
    with srv as url:
        be = OpenAIBackend("m", url, api_key_env=None, concurrency=3)
        res = translate_jobs([TranslationJob(r, "fr") for r in recs], be, scorer)
        outs = res.outcomes
    assert [r.id for r in res.records] == ["p1-fr", "q1-fr", "d1-fr"] and res.report["rejected_by_rule"] == {"below_threshold": 1}
    st = {o.id: (o.status, o.reason) for o in outs}
    assert st == {"p1@fr": ("ok", None), "p2@fr": ("rejected", "below_threshold"), "q1@fr": ("ok", None),
                  "d1@fr": ("ok", None)}
    mcq = MCQ.from_dict(outs[2].records[0]).validate()
    assert mcq.language == "fr" and mcq.id == "q1-fr" and mcq.options == {"A": "Drug X", "B": "Drug Y"}
    assert mcq.meta["cycle"]["score"] >= 0.8 and mcq.meta["translated_from"] == "q1"
    assert "score" in outs[1].reply
    # every field went there and back: 2 + 2 fields (pairs), question + 2 options + explanation, 1 text
    assert len(srv.log) == 2 * (2 + 2 + 4 + 1)


def test_wrong_language_and_same_language_are_rejected(scorer):
    be = FunctionBackend(lambda m: payload(m), name="identity")  # "translating" English into Chinese by identity
    outs = translate_jobs([TranslationJob(Pair("p", "What is X?", "X is a drug."), "zh"),
                           TranslationJob(Pair("q", "What is Y?", "Y is a drug."), "en")], be, scorer,
                          TranslateConfig(retries=0)).outcomes
    assert [(o.status, o.reason) for o in outs] == [("rejected", "wrong_language"), ("rejected", "same_language")]


def test_translate_cli_retention_and_resume(tmp_path, capsys):
    tag = lambda i: "[lossy] " if i % 3 == 0 else ""
    recs = [Pair(f"p{i}", f"What is drug {i}?", f"{tag(i)}Drug {i} lowers blood pressure. It is taken daily with food "
                 "and plenty of water.") for i in range(6)]
    write_jsonl([r.to_dict() for r in recs], tmp_path / "pairs.jsonl")
    out = tmp_path / "tr.jsonl"
    srv = serve(lossy)
    with srv as url:
        args = ["translate", "--input", str(tmp_path / "pairs.jsonl"), "--to", "fr,es", "--out", str(out),
                "--backend", "openai", "--model", "m", "--base-url", url, "--api-key-env", "", "--encoder", "none",
                "--cache", str(tmp_path / "c.sqlite"), "--no-progress"]
        assert main(args + ["--limit", "3"]) == 0
        n1 = len(srv.log)
        assert main(args) == 0  # the first three records (x 2 languages) are already done
        assert len(srv.log) - n1 == 3 * 2 * 2 * 2  # 3 new records, 2 languages, 2 fields, there and back
    ret = json.loads((tmp_path / "tr.jsonl.retention.json").read_text())
    assert ret == retention_report(out)
    assert ret["fr"]["jobs"] == ret["es"]["jobs"] == 6 and ret["fr"]["kept"] == 4 and ret["fr"]["retention"] == pytest.approx(4 / 6, abs=1e-3)
    assert ret["fr"]["rejected"] == {"below_threshold": 2} and ret["fr"]["mean_score_kept"] == 1.0
    ids = [r["meta"]["input_id"] for r in read_jsonl(out)] + [r["input_id"] for r in read_jsonl(rejected_path(out))]
    assert sorted(ids) == sorted(f"p{i}@{l}" for i in range(6) for l in ("fr", "es"))
    assert "fr: kept 4/6" in capsys.readouterr().out
