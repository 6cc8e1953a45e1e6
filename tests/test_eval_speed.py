"""The fast evaluation paths change nothing beyond float rounding: shared-prefix caching against plain scoring, and
results independent of batch size and order, on the tiny model and on the real smollm2-135m."""
import pytest
import torch
from medrepro.core import MedreproError
from medrepro.data.records import MCQ
from medrepro.eval.generate import generate_texts
from medrepro.eval.loglik import score_continuations
from medrepro.eval.mcq import EvalConfig, build_prompts, evaluate

TOL = 1e-4  # float32: cached and uncached summed log-probs differ by rounding only (stated in nbs/40a_eval.batching.ipynb)
MODELS = ["tiny", "smollm2-135m"]


@pytest.fixture(scope="module", params=MODELS)
def lm(request):
    from medrepro.models import load_causal_lm, load_tokenizer
    return load_causal_lm(request.param).eval(), load_tokenizer(request.param)


def _questions(n, start=0):
    organs = ["liver", "kidney", "heart", "lung", "spleen", "thyroid"]
    return [MCQ(str(i), f"Which organ stores the fictional substance zorb-{i}?" + " Explain." * (i % 3),
                {k: organs[(i + j) % 6] + " gland" * (i % 2 and j == 1) for j, k in enumerate("ABCD"[: 3 + i % 2])},
                "ABC"[i % 3], language="en") for i in range(start, start + n)]


SHOTS = _questions(5, start=100)


def _drift(a, b):
    return max(abs(x["logprob"] - y["logprob"]) for s, t in zip(a.samples, b.samples) for x, y in zip(s["scores"], t["scores"]))


@pytest.mark.parametrize("scoring,shots", [("letter", SHOTS), ("letter", ()), ("option_text", SHOTS)])
def test_prefix_cache_matches_plain_scoring_within_tolerance(lm, scoring, shots):
    model, tok = lm
    qs = _questions(5)
    on = evaluate(model, qs, EvalConfig(scoring=scoring, shots=shots, prefix_cache="auto", n_boot=0, breakdowns=()), tokenizer=tok)
    off = evaluate(model, qs, EvalConfig(scoring=scoring, shots=shots, prefix_cache="off", n_boot=0, breakdowns=()), tokenizer=tok)
    assert on.protocol["prefix_cache_used"] and not off.protocol["prefix_cache_used"]
    if scoring == "letter":  # the shared prefix really ran once: the rows read fewer tokens
        assert on.protocol["tokens"]["prefix_tokens"] > 0 and on.protocol["tokens"]["tokens_run"] < off.protocol["tokens"]["tokens_run"]
    assert _drift(on, off) <= TOL
    assert [s["pred"] for s in on.samples] == [s["pred"] for s in off.samples]


def test_loglik_independent_of_batch_size_and_order(lm):
    model, tok = lm
    qs = _questions(9)
    runs = [evaluate(model, q, EvalConfig(shots=SHOTS, batch_tokens=bt, n_boot=0, breakdowns=()), tokenizer=tok)
            for q, bt in ((qs, None), (qs, 64), (qs[::-1], 100_000))]
    runs[2].samples.reverse()
    for r in runs[1:]:
        assert [s["pred"] for s in r.samples] == [s["pred"] for s in runs[0].samples] and _drift(r, runs[0]) <= TOL


def test_greedy_generation_independent_of_batch_size_order_and_prefix_cache(lm):
    model, tok = lm
    prompts = build_prompts(_questions(5), "mcq_en", (), tok if tok.chat_template else None)
    ref = generate_texts(model, tok, prompts, batch_size=1, max_new_tokens=12, prefix_cache="off")
    assert generate_texts(model, tok, prompts, batch_size=8, max_new_tokens=12) == ref
    assert generate_texts(model, tok, prompts[::-1], batch_tokens=300, max_new_tokens=12)[::-1] == ref


def test_greedy_generation_equals_transformers_generate(lm):
    model, tok = lm
    prompts = build_prompts(_questions(3), "mcq_en", SHOTS[:1], None)
    ours = generate_texts(model, tok, prompts, batch_size=4, max_new_tokens=10)
    for p, o in zip(prompts, ours):
        enc = tok(p, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=10, do_sample=False, pad_token_id=tok.pad_token_id or 0)
        assert o == tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_each_sequence_stops_at_its_own_end_of_turn_and_stop_string():
    from medrepro.models import load_causal_lm, load_tokenizer
    model, tok = load_causal_lm("smollm2-135m").eval(), load_tokenizer("smollm2-135m")
    prompts = build_prompts(_questions(3), "mcq_en", (), tok)  # chat: the model ends its turn with <|im_end|>
    long = generate_texts(model, tok, prompts, max_new_tokens=80)
    assert all("<|im_end|>" not in o for o in long)
    lengths = [len(tok(o, add_special_tokens=False).input_ids) for o in long]
    assert min(lengths) < 79  # at least one row ended its turn before the limit, while the batch ran on
    s = long[0][5:12]
    assert generate_texts(model, tok, prompts, max_new_tokens=80, stop=[s]) == [o.split(s)[0] for o in long]


def test_unknown_prefix_cache_mode_is_one_line_error(lm):
    model, tok = lm
    with pytest.raises(MedreproError, match="prefix_cache must be one of"):
        evaluate(model, _questions(2), EvalConfig(prefix_cache="on", n_boot=0), tokenizer=tok)


def test_cli_switches_the_prefix_cache_and_run_json_records_the_path(tmp_path):
    import json
    from medrepro.cli import main
    from medrepro.core import read_jsonl
    runs = {}
    for mode in ("auto", "off"):
        out = tmp_path / mode
        assert main(["eval", "run", "--model", "tiny", "--benchmark", "mmlu_medical", "--data", "smoke", "--mode", "loglik",
                     "--limit", "6", "--prefix-cache", mode, "--n-boot", "0", "--out", str(out)]) == 0
        runs[mode] = json.loads((out / "metrics.json").read_text())
        run = json.loads((out / "run.json").read_text())
        assert run["params"]["protocol"]["prefix_cache"] == mode and "prefix cache" in runs[mode]["eval_path"]
        runs[mode]["samples"] = list(read_jsonl(out / "samples.jsonl"))
    assert runs["auto"]["protocol"]["prefix_cache_used"] and not runs["off"]["protocol"]["prefix_cache_used"]
    assert runs["auto"]["eval_path"].startswith("prefix cache on") and runs["off"]["eval_path"].startswith("prefix cache off")
    assert [s["pred"] for s in runs["auto"]["samples"]] == [s["pred"] for s in runs["off"]["samples"]]
