"""Evaluation by log-likelihood and generation on the tiny model, outputs, re-scoring and the CLI."""
import json, math, pathlib, subprocess, sys
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from medrepro.core import MedreproError
from medrepro.data.records import MCQ, RecordError
from medrepro.eval.generate import generate_texts
from medrepro.eval.loglik import encode_pair, score_continuations
from medrepro.eval.mcq import EvalConfig, evaluate, evaluate_benchmark, read_predictions, rescore, write_eval

BIN = pathlib.Path(sys.executable).parent / "medrepro"


@pytest.fixture(scope="module")
def tiny():
    from medrepro.models import load_causal_lm, load_tokenizer
    return load_causal_lm("tiny").eval(), load_tokenizer("tiny")


def _questions(n=12):
    import random
    rng = random.Random(1)
    return [MCQ(str(i), f"Which organ makes factor {i}?" + " Explain." * (i % 4),
                {k: f"organ {k.lower()}{'x' * (i % 3)}" for k in "ABCD"[: 3 + i % 2]}, rng.choice("ABC"),
                language="en", meta={"meta_info": "step1" if i % 2 else "step2&3"}) for i in range(n)]


def _naive_logprob(model, tok, ctx, cont):
    c, t = encode_pair(tok, ctx, cont)
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([c + t])).logits[0].float(), -1)
    return sum(float(lp[len(c) - 1 + j, t[j]]) for j in range(len(t)))


def test_scores_equal_unbatched_reference_and_do_not_depend_on_batch_size(tiny):
    model, tok = tiny
    reqs = [(f"Question {i}: pick one.{' pad' * i}\nAnswer:", c) for i in range(5) for c in (" A", " B", " organ b", " E")]
    ref = [_naive_logprob(model, tok, *r) for r in reqs]
    for bs in (1, 3, 16):
        got = score_continuations(model, tok, reqs, batch_size=bs)
        assert all(abs(g[0] - r) < 1e-4 for g, r in zip(got, ref)), bs


def test_encode_many_equals_the_tokenizers_own_ids(tiny):
    from medrepro.eval.batching import encode_many
    _, tok = tiny
    texts = ["Question: x\nAnswer: E", "答案：B", " leading space", ""]
    assert encode_many(tok, texts) == tok(texts).input_ids
    tok(texts, padding=True)  # leaves padding switched on in the backend; encode_many must not pad
    assert encode_many(tok, texts) == tok(texts).input_ids


def test_one_row_per_question_even_with_a_two_token_letter(tiny):
    from medrepro.eval.loglik import _groups, _rows
    _, tok = tiny
    assert len(tok(" E").input_ids) == 2 and len(tok(" A").input_ids) == 1  # the tiny tokenizer splits " E"
    reqs = [("Question: q\nAnswer:", f" {k}") for k in "ABCDE"] + [("Question: r\nAnswer:", f" {k}") for k in "ABCD"]
    rows = _rows(_groups(tok, reqs), 1024)
    assert len(rows) == 2 and sorted(i for r in rows for i, _, _ in r.items) == list(range(9))


def test_shared_prefix_and_context_cache_change_nothing(tiny):
    model, tok = tiny
    shared = "The following are questions. " * 6
    # " A"/" E" share one row; " organ ..." options need their own rows -> the context-cache path
    reqs = [(shared + f"Question {i}{'!' * i}\nAnswer:", c) for i in range(3) for c in (" A", " E", " organ", " organ b12", " liver")]
    reqs += [("Short context", " x y z"), ("Short context", " w")]
    ref = [_naive_logprob(model, tok, *r) for r in reqs]
    for bs in (2, 64):
        a = score_continuations(model, tok, reqs, batch_size=bs, prefix_cache="auto")
        b = score_continuations(model, tok, reqs, batch_size=bs, prefix_cache="off")
        assert all(abs(x[0] - y[0]) < 1e-4 and x[1:] == y[1:] for x, y in zip(a, b))
        assert all(abs(x[0] - r) < 1e-4 for x, r in zip(a, ref))


@pytest.mark.parametrize("scoring", ["letter", "option_text"])
def test_loglik_predictions_independent_of_batch_size(tiny, scoring):
    model, tok = tiny
    qs = _questions(8)
    runs = [evaluate(model, qs, EvalConfig(scoring=scoring, batch_size=bs, n_boot=0), tokenizer=tok) for bs in (1, 32)]
    preds = [[s["pred"] for s in r.samples] for r in runs]
    assert preds[0] == preds[1]
    for a, b in zip(runs[0].samples, runs[1].samples):
        assert all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(a["scores"], b["scores"]))


def test_option_text_uses_char_normalised_argmax(tiny):
    model, tok = tiny
    r = evaluate(model, _questions(6), EvalConfig(scoring="option_text", n_boot=0), tokenizer=tok)
    for s in r.samples:
        best = max(s["scores"], key=lambda c: c["logprob"] / c["n_chars"])
        assert s["pred"] == best["letter"] and s["step"] == "loglik_option_text"
        assert math.isclose(best["score"], best["logprob"] / best["n_chars"])
    r_none = evaluate(model, _questions(6), EvalConfig(scoring="option_text", norm="none", n_boot=0), tokenizer=tok)
    for s in r_none.samples:
        assert s["pred"] == max(s["scores"], key=lambda c: c["logprob"])["letter"]


def test_generation_batching_and_stop_strings(tiny):
    model, tok = tiny
    prompts = ["Question: a\nAnswer:", "Question: a much longer question here\nAnswer:", "问题：什么？\n答案："]
    a = generate_texts(model, tok, prompts, batch_size=1, max_new_tokens=10)
    b = generate_texts(model, tok, prompts, batch_size=3, max_new_tokens=10)
    assert a == b and all(isinstance(x, str) for x in a)
    cut = generate_texts(model, tok, prompts, batch_size=3, max_new_tokens=10, stop=[a[0][2:4]] if len(a[0]) > 3 else ["\n"])
    assert len(cut[0]) <= len(a[0])


def test_generate_mode_records_every_decision(tiny):
    model, tok = tiny
    qs = _questions(6)
    r = evaluate(model, qs, EvalConfig(mode="generate", max_new_tokens=6, extractor="huatuo2", n_boot=20), tokenizer=tok)
    for s, q in zip(r.samples, qs):
        assert set(s) >= {"id", "prompt", "output", "pred", "step", "gold", "correct"} and s["id"] == q.id
        assert s["step"] in ("statement", "option_text", "letter", "unparsed")
        assert (s["pred"] is None) == (s["step"] == "unparsed") and s["correct"] == (s["pred"] == s["gold"])
    assert r.metrics["unparsed"] == sum(s["pred"] is None for s in r.samples)
    assert r.protocol["mode"] == "generate" and r.protocol["extractor"] == "huatuo2" and r.protocol["max_new_tokens"] == 6


def test_reason_loglik_scores_the_options_after_the_models_own_chain(tiny):
    from medrepro.data.prompts import get_template
    model, tok = tiny
    qs = _questions(4)
    first = generate_texts(model, tok, [evaluate(model, qs[:1], EvalConfig(n_boot=0), tokenizer=tok).samples[0]["prompt"]], max_new_tokens=12)[0]
    cue = first.strip()[3:8] or "So the answer is"  # a piece of what the model writes, so at least one chain reaches it
    reason = EvalConfig(mode="reason_loglik", cue={"en": cue}, scoring="option_text", norm="none", max_new_tokens=12, n_boot=0)
    r = evaluate(model, qs, reason, tokenizer=tok)
    assert r.protocol["mode"] == "reason_loglik" and r.protocol["cue"] == {"en": cue} and r.samples[0]["reached_cue"]
    delim = get_template("mcq_en").delimiter
    for s, q in zip(r.samples, qs):
        chain = s["chain"].split(cue)[0].rstrip()
        ctx = s["prompt"] + chain + (" " if chain and cue[:1].isascii() and cue[:1].isalpha() else "") + cue
        ref = [lp for lp, _, _ in score_continuations(model, tok, [(ctx, delim + v) for v in q.options.values()])]
        assert [c["logprob"] for c in s["scores"]] == pytest.approx(ref, abs=1e-4)
        assert s["pred"] == max(zip(ref, q.options), key=lambda t: t[0])[1]
    with pytest.raises(MedreproError, match="cue"):
        evaluate(model, qs, EvalConfig(mode="reason_loglik"), tokenizer=tok)
    with pytest.raises(MedreproError, match="no reasoning cue for language 'en'"):
        evaluate(model, qs, EvalConfig(mode="reason_loglik", cue={"zh": "故答案为"}), tokenizer=tok)


def test_template_per_language(tiny):
    model, tok = tiny
    qs = _questions(2) + [MCQ("z1", "哪个器官产生胰岛素？", {"A": "胰腺", "B": "肝脏"}, "A", language="zh")]
    r = evaluate(model, qs, EvalConfig(template={"en": "mcq_en_short", "zh": "mcq_zh"}, n_boot=0), tokenizer=tok)
    assert r.samples[0]["prompt"].startswith("Question: ") and r.samples[2]["prompt"].startswith("以下是医学考试")
    assert set(r.protocol["templates"]) == {"mcq_en_short", "mcq_zh"}
    with pytest.raises(MedreproError, match="no template for language 'zh'"):
        evaluate(model, qs, EvalConfig(template={"en": "mcq_en"}, n_boot=0), tokenizer=tok)


def test_shots_and_chat_change_the_prompt_and_are_recorded(tiny):
    model, tok = tiny
    qs = _questions(3)
    r = evaluate(model, qs[1:], EvalConfig(shots=qs[:1], chat=True, n_boot=0), tokenizer=tok)
    assert r.protocol["shots"] == 1 and r.protocol["shot_ids"] == ["0"] and r.protocol["chat_template"]
    assert r.samples[0]["prompt"].startswith("<|user|>") and qs[0].question in r.samples[0]["prompt"]


def test_bad_input_is_reported(tiny):
    model, tok = tiny
    bad = MCQ("q9", "stem", {"A": "x", "B": ""}, "A", source="demo.csv")
    with pytest.raises(RecordError, match="q9.*no text"):
        evaluate(model, [bad], tokenizer=tok)
    with pytest.raises(MedreproError, match="mode"):
        evaluate(model, _questions(2), EvalConfig(mode="logits"), tokenizer=tok)
    with pytest.raises(MedreproError, match="tokenizer"):
        evaluate(model, _questions(2))
    with pytest.raises(MedreproError, match="config must be an EvalConfig"):
        evaluate(model, _questions(2), {"mode": "loglik"}, tokenizer=tok)


def test_config_from_a_protocol_dict_rejects_unknown_keys_and_bad_values():
    c = EvalConfig.from_dict({"mode": "generate", "max_new_tokens": 16, "stop": ["\n"], "metrics": ["accuracy"]}, where="t.yaml")
    assert (c.mode, c.max_new_tokens, c.token_budget) == ("generate", 16, 8 * 256) and EvalConfig.from_dict(None) == EvalConfig()
    with pytest.raises(MedreproError) as e:
        EvalConfig.from_dict({"mode": "generate", "max_tokens": 16}, where="params/guo2023/table2.yaml (smoke): protocol")
    msg = str(e.value)
    assert msg.startswith("params/guo2023/table2.yaml (smoke): protocol: unknown evaluation setting 'max_tokens'")
    assert "allowed: mode, scoring" in msg and "max_new_tokens" in msg and "\n" not in msg
    for bad, what in (({"mode": "logits"}, "mode must be one of"), ({"norm": "bytes"}, "norm must be one of"),
                      ({"batch_size": 0}, "batch_size must be an integer >= 1"), ({"n_boot": 1.5}, "n_boot must be an integer"),
                      ({"mode": "generate", "extractor": "guo"}, "unknown answer extractor 'guo'"),
                      ({"template": "mcq_xx"}, "unknown prompt template"), ({"shots": 5}, "shots must be a list"),
                      ({"dtype": "int8"}, "dtype must be one of")):
        with pytest.raises(MedreproError, match="^t.yaml: " + what):
            EvalConfig.from_dict(bad, where="t.yaml")
    assert EvalConfig().updated(batch_size=2).token_budget == 512
    with pytest.raises(MedreproError, match="batch_size"):
        EvalConfig().updated(batch_size=-1)


def test_write_eval_outputs(tiny, tmp_path):
    model, tok = tiny
    r = evaluate(model, _questions(8), EvalConfig(n_boot=50), tokenizer=tok)
    write_eval(r, tmp_path, benchmark={"name": "demo", "version": "1"})
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["benchmark"]["version"] == "1" and m["protocol"]["mode"] == "loglik" and m["protocol"]["scoring"] == "letter"
    assert "templates" in m["protocol"] and "versions" in m["run"] and len(m["accuracy_ci"]) == 2
    assert (tmp_path / "run.json").exists()
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["gold"]


# ---------- re-scoring saved outputs and the CLI ----------

def _cmexam_reference(csv_path, outputs):
    """An independent transcription of CMExam's reference parse + metric (pandas + sklearn, as its script does)."""
    import pandas as pd
    df = pd.read_csv(csv_path)
    preds = []
    for i, row in df.iterrows():
        res = outputs.get(str(i))
        if not isinstance(res, str) or res == "":
            preds.append("无答案"); continue
        text = res.split("\n")[0].strip() if "解释" in res else res
        found = []
        for op in row["Options"].split("\\n"):
            op_id, op_content = op.split()[0], op.split()[1]
            if op_id in text or op_content in text: found.append(op_id)
        preds.append("".join(found) if found else "无答案")
    gold = df["Answer"].tolist()
    acc = sum(p == g for p, g in zip(preds, gold)) / len(gold)
    return acc, precision_recall_fscore_support(gold, preds, average="weighted", zero_division=0)[2]


def _run_cli(*args):
    """The console script in a subprocess (one-line errors, exit codes as a user sees them)."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)


def _main(capsys, *args):
    """The same CLI in-process (fast): (exit code, stdout)."""
    from medrepro.cli import main
    rc = main(list(args))
    return rc, capsys.readouterr().out


def test_eval_score_reproduces_cmexam_reference_weighted_f1(fixtures):
    data, preds = fixtures / "eval" / "cmexam_mini.csv", fixtures / "eval" / "cmexam_mini_outputs.jsonl"
    r = _run_cli("eval", "score", "--format", "cmexam", "--data", str(data), "--predictions", str(preds),
                 "--extractor", "cmexam", "--json", "--n-boot", "50")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    acc, f1 = _cmexam_reference(data, read_predictions(preds))
    assert got["n"] == 12 and math.isclose(got["accuracy"], acc) and math.isclose(got["f1_weighted"], f1, abs_tol=1e-12)
    assert got["unparsed"] == got["steps"].get("unparsed", 0) >= 1


def test_eval_score_guo2023_f1_matches_sklearn_on_its_own_predictions(fixtures, tmp_path, capsys):
    data, preds = fixtures / "eval" / "cmexam_mini.csv", fixtures / "eval" / "cmexam_mini_outputs.jsonl"
    rc, out = _main(capsys, "eval", "score", "--format", "cmexam", "--data", str(data), "--predictions", str(preds),
                    "--json", "--n-boot", "50", "--out", str(tmp_path))
    assert rc == 0
    got = json.loads(out)
    rows = [json.loads(l) for l in (tmp_path / "samples.jsonl").read_text().splitlines()]
    gold, pred = [s["gold"] for s in rows], [s["pred"] or "无答案" for s in rows]
    assert math.isclose(got["f1_weighted"], precision_recall_fscore_support(gold, pred, average="weighted", zero_division=0)[2])
    assert set(got) >= {"n", "accuracy", "f1_weighted", "unparsed", "steps"} and got["extractor"] == "guo2023"
    # hand-checked: 9 of 12 right under guo2023 (row 7 is empty -> unparsed; row 8 says A for AC; row 11 "第2周" is C, gold B)
    assert got["accuracy"] == 9 / 12 and got["unparsed"] == 1
    assert [s["correct"] for s in rows] == [True] * 7 + [False, False, True, True, False]


def test_eval_score_errors_are_one_line(fixtures, tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "0", "output": "A"}\n{"id": "999", "output": "B"}\n')
    r = _run_cli("eval", "score", "--format", "cmexam", "--data", str(fixtures / "eval" / "cmexam_mini.csv"), "--predictions", str(bad))
    assert r.returncode == 1 and "not in the data" in r.stderr and "Traceback" not in r.stderr
    bad.write_text('{"id": "0"}\n')
    r = _run_cli("eval", "score", "--format", "cmexam", "--data", str(fixtures / "eval" / "cmexam_mini.csv"), "--predictions", str(bad))
    assert r.returncode == 1 and "line 1" in r.stderr


def test_rescore_counts_missing_predictions():
    qs = _questions(5)
    r = rescore(qs, {"0": "A", "1": ""}, n_boot=10)
    assert r.metrics["n"] == 2 and r.metrics["missing_predictions"] == 3 and r.metrics["unparsed"] == 1


def test_eval_run_cli_on_a_data_file(fixtures, tmp_path, capsys):
    rc, out = _main(capsys, "eval", "run", "--model", "tiny", "--format", "cmexam", "--data", str(fixtures / "eval" / "cmexam_mini.csv"),
                    "--limit", "5", "--scoring", "option_text", "--n-boot", "20", "--out", str(tmp_path))
    assert rc == 0 and "accuracy" in out
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n"] == 5 and m["protocol"]["scoring"] == "option_text" and m["protocol"]["template"] == "auto"
    assert "mcq_zh" in m["protocol"]["templates"] and m["benchmark"]["format"] == "cmexam"
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 5

    rc, _ = _main(capsys, "eval", "run", "--model", "tiny", "--format", "cmexam", "--data", str(fixtures / "eval" / "cmexam_mini.csv"),
                  "--limit", "3", "--mode", "reason_loglik", "--cue", "故答案为", "--scoring", "option_text", "--max-new-tokens", "6",
                  "--n-boot", "0", "--out", str(tmp_path / "reason"))
    p = json.loads((tmp_path / "reason" / "metrics.json").read_text())["protocol"]
    assert rc == 0 and p["mode"] == "reason_loglik" and p["cue"] == "故答案为" and p["max_new_tokens"] == 6

# ---------- registered benchmarks (bundled smoke fixtures) ----------

def test_benchmark_kshot_uses_per_subject_shots_never_the_question(tiny):
    from medrepro.data.benchmarks import get_benchmark
    model, tok = tiny
    r = evaluate_benchmark(model, "mmlu_medical", {"mode": "loglik", "n_boot": 20}, tokenizer=tok, path="smoke", limit=6)
    spec = get_benchmark("mmlu_medical")
    assert r.protocol["shots"] == spec.n_shots == 5 and r.protocol["benchmark"]["version"] == spec.version
    for s in r.samples:
        assert len(s["shot_ids"]) == 5 and s["prompt"].count("Answer:") == 6
        q_text = s["prompt"].rsplit("Question: ", 1)[1]
        assert s["prompt"].count(q_text) == 1  # the question is not among its own shots


def test_pubmedqa_prompt_carries_the_abstract(tiny):
    model, tok = tiny
    r = evaluate_benchmark(model, "pubmedqa", {"mode": "loglik", "scoring": "option_text", "n_boot": 10}, tokenizer=tok, path="smoke",
                           limit=3)
    assert all(s["prompt"].count("Abstract: ") == 1 for s in r.samples) and set(r.metrics) >= {"accuracy", "accuracy_ci"}


def test_eval_run_cli_benchmark_smoke_generate(tmp_path, capsys):
    rc, out = _main(capsys, "eval", "run", "--model", "tiny", "--benchmark", "cmexam_test", "--data", "smoke", "--limit", "4",
                    "--max-new-tokens", "4", "--n-boot", "10", "--out", str(tmp_path))
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["benchmark"]["name"] == "cmexam_test" and m["protocol"]["mode"] == "generate" and m["protocol"]["extractor"] == "guo2023"
    assert m["protocol"]["max_new_tokens"] == 4 and m["n"] == 4 and "mcq_zh" in m["protocol"]["templates"]


def test_guessing_step_reports_strict_accuracy_too():
    q = MCQ("0", "Which?", {"A": "维生素A", "B": "维生素C"}, "A", language="zh")
    r = rescore([q, MCQ("1", "Which?", {"A": "x", "B": "y"}, "B")], {"0": "维生素", "1": "B"}, n_boot=10)
    assert r.samples[0]["step"] == "levenshtein_tie" and r.samples[0]["correct"]  # the tie went to A, which is right by luck
    assert r.metrics["accuracy"] == 1.0 and r.metrics["accuracy_strict"] == 0.5 and r.metrics["guessed"] == 1


@pytest.mark.gpu
def test_loglik_on_cuda_matches_cpu():
    qs = _questions(10)
    cpu = evaluate("tiny", qs, EvalConfig(device="cpu", n_boot=0))
    gpu = evaluate("tiny", qs, EvalConfig(device="cuda", n_boot=0, batch_size=4))
    assert gpu.protocol["device"].startswith("cuda")
    assert [s["pred"] for s in cpu.samples] == [s["pred"] for s in gpu.samples]
    for a, b in zip(cpu.samples, gpu.samples):
        assert all(abs(x["logprob"] - y["logprob"]) < 1e-3 for x, y in zip(a["scores"], b["scores"]))


def test_chat_prompt_and_answer_match_the_training_formatter(tiny):
    from medrepro.data.format import render_pair
    from medrepro.data.prompts import mcq_to_pair
    model, tok = tiny
    for q in (_questions(1)[0], MCQ("z", "哪个？", {"A": "甲", "B": "乙"}, "B", language="zh")):
        prompt, answer = render_pair(mcq_to_pair(q), "chat", tok)
        r = evaluate(model, [q], EvalConfig(chat=True, template="auto", n_boot=0), tokenizer=tok)
        assert r.samples[0]["prompt"] == prompt and answer == ("" if q.language == "zh" else " ") + q.answer_str
