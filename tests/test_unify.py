"""Unification, QA/MCQ generation and the CLIs, end to end against the loopback server."""
import json
from collections import Counter

import pytest

from llm_server import serve
from medrepro.cli import main
from medrepro.core import MedreproError, read_jsonl, write_jsonl
from medrepro.data.llm import FunctionBackend, OpenAIBackend, mock_responder
from medrepro.data.records import MCQ, Document
from medrepro.models import embedded_model_dir
from medrepro.data.pipeline import read_inputs, rejected_path, repair_tail, report_path, run_pipeline
from medrepro.data.unify import (PRIORITIES, QAConfig, UnifyConfig, check_answer, check_question, generate_qa,
                                 unify_documents)

EN = [Document(f"e{i}", f"[doc{i:04d}] Drug X{i} lowers blood pressure. It is taken once daily with food.", source="web")
      for i in range(3)]
ZH = [Document(f"z{i}", f"[doc{i + 10:04d}] 药物{i}可以降低血压。每日服用一次，随餐服用。", source="books") for i in range(2)]


def http(url, **kw):
    return OpenAIBackend("m", url, **{"api_key_env": None, "max_retries": 2, "base_delay": 0.01, "timeout": 2.0, **kw})


def test_unify_over_http_with_provenance_and_language():
    srv = serve(mock_responder)
    with srv as url:
        outs = unify_documents(EN + ZH, http(url, concurrency=4)).outcomes
    assert [o.status for o in outs] == ["ok"] * 5 and len(srv.log) == 10  # two calls per document
    p = outs[0].records[0]
    assert p["meta"]["document_id"] == "e0" and p["source"] == "web" and p["priority"] == 32 and p["language"] == "en"
    z = outs[3].records[0]
    assert z["language"] == "zh" and z["priority"] == PRIORITIES["books"] == 4 and "降低血压" in z["output"]
    # the question call sees ~400 characters, the answer call has the text as a hidden (system) reference
    q_req = [e for e in srv.log if e["messages"][0]["role"] == "user"]
    a_req = [e for e in srv.log if e["messages"][0]["role"] == "system"]
    assert len(q_req) == len(a_req) == 5 and all(e["messages"][1]["content"].endswith(("?", "？")) for e in a_req)
    assert any("请用中文" in e["messages"][0]["content"] for e in q_req)  # zh prompt for zh documents


def test_forced_language_and_truncation():
    seen = []
    def rec(m):
        seen.append(m)
        return "这是什么药？" if m[0]["role"] == "user" else "这是一种降压药。"
    long = Document("L", "Aspirin " * 200, source="literature")
    out = unify_documents([long], FunctionBackend(rec), UnifyConfig(language="zh")).outcomes[0]
    assert out.status == "ok" and out.records[0]["language"] == "zh"
    q_text = seen[0][0]["content"].split("<<<\n")[1].split("\n>>>")[0]
    a_text = seen[1][0]["content"].split("<<<\n")[1].split("\n>>>")[0]
    assert len(q_text) == 400 and len(a_text) == 600


def filtering_responder(m):
    """Misbehaves per document marker: long/mentioning/empty/wrong-language questions or answers."""
    text = m[0]["content"]
    if m[0]["role"] == "user":  # question call
        if "[long]" in text: return "Why " * 60 + "?"
        if "[qtext]" in text: return "What does the passage say about aspirin?"
        if "[qempty]" in text: return "   "
        if "[qzh]" in text: return "阿司匹林有什么作用？"
        if "[multi]" in text: return "What is aspirin?\nAnd why?"
        return "What does aspirin do?"
    if "[aref]" in text: return "According to the text, aspirin inhibits platelets."
    if "[aempty]" in text: return ""
    return "Aspirin inhibits platelet aggregation."


def test_filters_retries_and_report(tmp_path):
    tags = ["long", "qtext", "qempty", "qzh", "multi", "aref", "aempty", "fine"]
    docs = [Document(t, f"[{t}] Aspirin inhibits platelets.", source="web") for t in tags]
    srv = serve(filtering_responder)
    with srv as url:
        be = http(url, concurrency=3)
        res = unify_documents(docs, be)
        outs, rej = res.outcomes, res.report["filtered_replies"]
        assert [p.meta["document_id"] for p in res.pairs] == ["fine"] and res.report["rejected_by_rule"]["question_empty"] == 1
        got = {o.id: (o.status, o.reason) for o in outs}
        assert got == {"long": ("rejected", "question_too_long"), "qtext": ("rejected", "question_mentions_text"),
                       "qempty": ("rejected", "question_empty"), "qzh": ("rejected", "question_wrong_language"),
                       "multi": ("rejected", "question_malformed"), "aref": ("rejected", "answer_mentions_reference"),
                       "aempty": ("rejected", "answer_empty"), "fine": ("ok", None)}
        # 2 retries per call: each rejected call was asked 3 times, with new seeds and a higher temperature
        asked = Counter(e["messages"][0]["content"].split("]")[0].split("[")[-1] for e in srv.log)
        assert asked["long"] == 3 and asked["aref"] == 1 + 3 and asked["fine"] == 2
        assert {e["seed"] for e in srv.log} == {None, 1, 2} and {e["temperature"] for e in srv.log} == {0.0, 0.7}
        assert rej["question_too_long"] == 3 and rej["answer_mentions_reference"] == 3
        # the report over a written output: counts per rule, with examples
        out = tmp_path / "pairs.jsonl"
        s = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    rep = json.loads(report_path(out).read_text())
    assert s.accepted == 1 and sum(s.rejected.values()) == 7
    assert rep["output"]["rejected_by_rule"]["question_too_long"] == 1 and rep["output"]["accepted_inputs"] == 1
    ex = rep["output"]["examples"]["answer_mentions_reference"][0]
    assert ex["input_id"] == "aref" and ex["stage"] == "answer" and "According to the text" in ex["reply"]


def test_filter_functions():
    assert check_question("问题：高血压如何治疗？", "zh") == ("高血压如何治疗？", None)
    assert check_question("x" * 180 + "?", "en")[1] == "question_too_long"
    assert check_question("y" * 179 + "?", "en")[0] is not None
    for a in ["As mentioned in the passage, rest.", "Based on the provided material, rest.", "文中提到应休息。", "根据参考资料，应休息。"]:
        assert check_answer(a, "zh" if "文" in a or "资料" in a else "en")[1] == "answer_mentions_reference", a
    assert check_answer("Rest and fluids help most viral infections.", "en") == ("Rest and fluids help most viral infections.", None)


def test_unknown_source_fails_before_any_request():
    srv = serve(mock_responder)
    with srv as url, pytest.raises(MedreproError, match="source type 'forum' has no priority"):
        unify_documents([Document("a", "text", source="forum")], http(url))
    assert srv.log == []


def test_generate_qa_and_mcq_over_http():
    srv = serve(mock_responder)
    with srv as url:
        be = http(url, concurrency=2)
        qa = generate_qa(EN + ZH, be, QAConfig(kind="qa")).outcomes
        mcqs, report = generate_qa(EN + ZH, be, QAConfig(kind="mcq"))
        mcq = generate_qa(EN + ZH, be, QAConfig(kind="mcq")).outcomes
    assert all(isinstance(q, MCQ) for q in mcqs) and report["accepted"] == 5 and report["rejected_by_rule"] == {}
    assert all(o.status == "ok" for o in qa + mcq)
    assert qa[0].records[0]["meta"]["method"] == "mmed-ift-qa" and qa[0].records[0]["id"] == "e0-0"
    q = MCQ.from_dict(mcq[3].records[0]).validate()
    assert q.language == "zh" and q.answer == {"A"} and q.meta["document_id"] == "z0"


@pytest.mark.parametrize("reply,rule", [
    ('{"question": "Which?", "options": {"A": "x", "B": "y"}, "answer": "C"}', "invalid_mcq"),
    ('{"question": "Which?", "options": {"A": "x", "B": ""}, "answer": "A"}', "invalid_mcq"),
    ('{"question": "", "options": {"A": "x", "B": "y"}, "answer": "A"}', "invalid_mcq"),
    ('{"question": "Which?", "options": {"A": "x"}, "answer": "A"}', "invalid_mcq"),
    ("Sorry, I cannot help with that.", "malformed_json"),
    ('{"question": "Which?", "options": {"A": "x", "B": "y"}, "answer": "B"}', None),
])
def test_mcq_validation(reply, rule):
    be = FunctionBackend(lambda m: "A condensed summary." if m[0]["content"].startswith("Condense") else reply, name=reply)
    o = generate_qa([Document("d", "Aspirin text.", source="web")], be, QAConfig(kind="mcq", language="en")).outcomes[0]
    assert (o.reason or "").split(":")[0] == (rule or "") and (o.status == "ok") == (rule is None)


def test_qa_json_is_parsed_leniently():
    reply = 'Here you go:\n```json\n[{"question": "What is X?", "answer": "A drug."}, {"question": "", "answer": "z"}]\n```'
    be = FunctionBackend(lambda m: "Summary." if "ondense" in m[0]["content"] else reply, name="fenced")
    o = generate_qa([Document("d", "X is a drug.", source="web")], be, QAConfig(language="en")).outcomes[0]
    assert o.status == "ok" and [r["instruction"] for r in o.records] == ["What is X?"]  # the empty item dropped


def test_failed_items_are_retried_by_the_next_run(tmp_path):
    out = tmp_path / "o.jsonl"
    docs = EN
    bad = serve(mock_responder, faults=lambda n, b: "500" if "[doc0001]" in json.dumps(b, ensure_ascii=False) else None)
    with bad as url:
        be = http(url, cache=tmp_path / "c.sqlite", max_retries=1)
        s1 = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    assert s1.failed == 1 and s1.failures[0][0] == "e1" and "HTTP 500" in s1.failures[0][2]
    assert {r["meta"]["input_id"] for r in read_jsonl(out)} == {"e0", "e2"}
    good = serve(mock_responder)
    with good as url:
        be = http(url, cache=tmp_path / "c.sqlite")
        s2 = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    assert s2.skipped_done == 2 and s2.done == 1 and len(good.log) == 2  # only e1's two calls
    assert sorted(r["meta"]["input_id"] for r in read_jsonl(out)) == ["e0", "e1", "e2"]


def test_duplicate_input_ids_are_refused(tmp_path):
    with pytest.raises(MedreproError, match="unique"):
        run_pipeline([EN[0], EN[0]], lambda ch: [], tmp_path / "o.jsonl", progress=False)


def test_repair_tail(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    assert repair_tail(p) == 6 and p.read_bytes() == b'{"a": 1}\n{"a": 2}\n' and repair_tail(p) == 0
    p.write_bytes(b'{"partial')
    repair_tail(p)
    assert p.read_bytes() == b""


def test_read_inputs(tmp_path):
    (tmp_path / "d.txt").write_text("one\n\ntwo\n", encoding="utf-8")
    assert [(d.id, d.text) for d in read_inputs(tmp_path / "d.txt")] == [("0", "one"), ("2", "two")]
    write_jsonl([{"id": "a", "text": "t", "source": "web"}, {"text": ""}], tmp_path / "d.jsonl")
    with pytest.raises(MedreproError, match=r"d.jsonl:row 2 \(line 2\): empty document"):
        read_inputs(tmp_path / "d.jsonl", "jsonl")
    with pytest.raises(MedreproError, match="no such file or folder"):
        read_inputs(tmp_path / "missing.txt")


def _all_written(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_cli_unify_generate_translate_never_write_the_key(tmp_path, monkeypatch, capsys):
    key = "sk-medrepro-TESTKEY-9f8e7d6c5b4a"
    encoder = str(embedded_model_dir("tiny"))  # built once in the real home, before MEDREPRO_HOME points at tmp
    monkeypatch.setenv("MEDREPRO_TEST_API_KEY", key)
    monkeypatch.setenv("MEDREPRO_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs.jsonl"
    write_jsonl([d.to_dict() for d in EN + ZH], docs)
    out = tmp_path / "out"
    srv = serve(mock_responder, api_key=key, faults=["429", "500", "nonjson"])
    with srv as url:
        common = ["--backend", "openai", "--model", "gpt-test", "--base-url", url, "--api-key-env", "MEDREPRO_TEST_API_KEY",
                  "--concurrency", "3", "--retry-base-delay", "0.01", "--timeout", "5"]
        rc = main(["unify", "--input", str(docs), "--format", "jsonl", "--out", str(out / "pairs.jsonl"), *common])
        assert rc == 0
        rc = main(["generate-qa", "--input", str(docs), "--format", "jsonl", "--kind", "mcq", "--limit", "2",
                   "--out", str(out / "mcq.jsonl"), *common])
        assert rc == 0
        rc = main(["translate", "--input", str(out / "pairs.jsonl"), "--to", "fr", "--encoder", encoder,
                   "--out", str(out / "fr.jsonl"), *common])
        assert rc == 0
    printed = capsys.readouterr()
    assert "5 done (5 accepted" in printed.out and "failed 0" in printed.out and "fr: kept" in printed.out
    assert all(e["authorized"] for e in srv.log) and sum(e["fault"] is not None for e in srv.log) == 3
    assert len(read_jsonl(out / "pairs.jsonl")) == 5 and len(read_jsonl(out / "mcq.jsonl")) == 2
    # the mock translates by identity: English "French" passes the script check and a perfect cycle; Chinese does not
    assert len(read_jsonl(out / "fr.jsonl")) == 3
    assert [r["reason"] for r in read_jsonl(out / "fr.jsonl.rejected.jsonl")] == ["wrong_language"] * 2
    run = json.loads((out / "pairs.jsonl.run.json").read_text())["runs"][-1]
    assert run["params"]["api_key_env"] == "MEDREPRO_TEST_API_KEY" and run["backend"]["key_present"] is True
    files = _all_written(tmp_path)
    assert any(p.suffix == ".sqlite" for p in files) and len(files) >= 12, files
    for p in files:  # outputs, reports, run records, the cache (and its WAL), everything
        assert key.encode() not in p.read_bytes(), p
    assert key not in printed.out + printed.err


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "d.txt").write_text("text\n", encoding="utf-8")
    rc = main(["unify", "--input", str(tmp_path / "d.txt"), "--out", str(tmp_path / "o.jsonl"),
               "--backend", "function", "--model", "mock"])
    err = capsys.readouterr().err
    assert rc == 1 and "source type None has no priority" in err and len(err.strip().splitlines()) == 1


def test_cli_unify_with_local_tiny_model(tmp_path, capsys):
    (tmp_path / "d.txt").write_text("Aspirin inhibits platelets.\n高血压患者应限盐。\n", encoding="utf-8")
    rc = main(["unify", "--input", str(tmp_path / "d.txt"), "--out", str(tmp_path / "o.jsonl"), "--source-type", "web",
               "--backend", "hf", "--model", "tiny", "--batch-size", "2", "--cache", str(tmp_path / "c.sqlite"),
               "--retries", "0", "--max-tokens-question", "16", "--max-tokens-answer", "24", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "2 inputs: 2 done" in out  # a random-weight model: its replies are mostly filtered, but all recorded
    rep = json.loads(report_path(tmp_path / "o.jsonl").read_text())
    assert rep["output"]["accepted_inputs"] + rep["output"]["rejected_inputs"] == 2
    assert rep["this_run"]["usage"]["completion_tokens"] > 0


def test_fixture_corpus_through_the_cli(fixtures, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    rc = main(["unify", "--input", str(fixtures / "unify" / "docs.jsonl"), "--format", "jsonl", "--out", str(out),
               "--backend", "function", "--model", "mock", "--cache", "none", "--no-progress"])
    assert rc == 0 and "8 done (8 accepted" in capsys.readouterr().out
    pairs = {r["meta"]["document_id"]: r for r in read_jsonl(out)}
    assert {k: v["priority"] for k, v in pairs.items()} == {
        "web-001": 32, "web-002": 32, "lit-001": 16, "lit-002": 16, "enc-001": 8, "enc-002": 8, "book-001": 4, "sft-001": 1}
    assert pairs["web-002"]["language"] == "zh" and pairs["web-001"]["language"] == "en"
    assert all(p["meta"]["source_type"] == p["source"] and p["meta"]["prompt_version"] for p in pairs.values())


def test_generate_qa_and_translate_with_local_tiny_model(fixtures, tmp_path, capsys):
    common = ["--backend", "hf", "--model", "tiny", "--cache", str(tmp_path / "c.sqlite"), "--retries", "0",
              "--max-tokens", "16", "--limit", "2", "--no-progress"]
    rc = main(["generate-qa", "--input", str(fixtures / "unify" / "docs.jsonl"), "--format", "jsonl",
               "--out", str(tmp_path / "qa.jsonl"), *common])
    assert rc == 0 and "2 inputs: 2 done" in capsys.readouterr().out  # noise from a random model: recorded as rejected
    write_jsonl([{"id": "p1", "instruction": "What is metformin?", "output": "A biguanide.", "language": "en"}],
                tmp_path / "pairs.jsonl")
    rc = main(["translate", "--input", str(tmp_path / "pairs.jsonl"), "--to", "zh", "--out", str(tmp_path / "tr.jsonl"),
               "--encoder", "tiny", *common])
    assert rc == 0 and "zh: kept" in capsys.readouterr().out


@pytest.mark.parametrize("text,lang,ok", [
    ("高血压患者应限制食盐摄入。", "zh", True), ("Patients should limit salt (NaCl).", "zh", False),
    ("高血圧の患者は塩分を控えるべきです。", "ja", True), ("高血压患者应限盐。", "ja", False),
    ("高血圧の患者は塩分を控えるべきです。", "zh", False),
    ("Пациентам следует ограничить соль.", "ru", True), ("Patients should limit salt.", "ru", False),
    ("Les patients doivent limiter le sel.", "fr", True), ("患者应限盐。", "es", False), ("anything", "xx", True),
])
def test_language_control_by_script(text, lang, ok):
    from medrepro.data.unify import language_ok
    assert language_ok(text, lang) is ok


def test_multi_record_input_cut_by_a_kill_is_redone(tmp_path):
    out = tmp_path / "qa.jsonl"
    be = FunctionBackend(lambda m: "Summary." if m[0]["content"].startswith("Condense") else
                         json.dumps([{"question": f"Q{k}?", "answer": f"A{k}."} for k in range(3)]), name="three")
    docs = [Document(f"d{i}", f"Text {i}.", source="web") for i in range(3)]
    run_pipeline(docs[:2], lambda ch: generate_qa(ch, be, QAConfig(language="en")), out, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    assert len(lines) == 6 and json.loads(lines[-1])["meta"]["input_records"] == 3
    out.write_text("".join(lines[:4]) + lines[4][:10])  # killed while writing d1's records: 1 whole, 1 partial
    s = run_pipeline(docs, lambda ch: generate_qa(ch, be, QAConfig(language="en")), out, progress=False)
    assert s.skipped_done == 1 and s.done == 2
    got = Counter(json.loads(l)["meta"]["input_id"] for l in out.read_text().splitlines())
    assert got == {"d0": 3, "d1": 3, "d2": 3}


def test_unify_refuses_non_documents(tmp_path, capsys):
    write_jsonl([{"id": "p", "instruction": "Q?", "output": "A."}], tmp_path / "pairs.jsonl")
    rc = main(["unify", "--input", str(tmp_path / "pairs.jsonl"), "--format", "records", "--out", str(tmp_path / "o.jsonl"),
               "--backend", "function", "--model", "mock"])
    assert rc == 1 and "gives Pair records; this command needs documents" in capsys.readouterr().err


def test_two_runs_cannot_write_one_output(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "o.jsonl"
    with open(f"{out}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the output
        with pytest.raises(MedreproError, match="another run is writing"):
            run_pipeline(EN, lambda ch: unify_documents(ch, FunctionBackend(mock_responder)), out, progress=False)
    s = run_pipeline(EN, lambda ch: unify_documents(ch, FunctionBackend(mock_responder)), out, progress=False)
    assert s.done == 3  # released: the next run proceeds
