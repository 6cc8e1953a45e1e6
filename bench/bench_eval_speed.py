"""Evaluation speed on a real model: medrepro vs lm-evaluation-harness (HF backend), same model, questions and prompts.

Four cases on `smollm2-135m` (SmolLM2-135M-Instruct, float32), each written as one object of
bench/results/eval_speed_smollm2.json:

- `fewshot5_letter`: MMLU/CMMLU-format 5-shot log-likelihood of the option letters. The 500 synthetic questions of
  tests/fixtures/eval/mcq500.jsonl are split into subjects by their verb ("produces", "stores", ...); each subject's
  first 5 questions are its solved examples (the dev split), later questions are asked (the test split);
- `zeroshot_letter`, `zeroshot_option_text`: zero-shot log-likelihood of the letters / option texts (acc_norm);
- `generate`: greedy generation in the model's chat template, at most 64 new tokens, stopped at end of turn
  (`<|im_end|>`), answers read by the `guo2023` extractor; lm-eval runs `generate_until`.

Prompts are medrepro's (`build_prompts`, template `mcq_en`); lm-eval gets the very same strings as `Instance`s.
Both engines run on the same model object with the same torch threads and the same nominal batch size; within
each round the two alternate (the first engine alternates between rounds) so that load from other processes on
a shared machine hits both alike; the load average is recorded. `speedup` = lm-eval seconds / medrepro seconds
(best round of each). The physical limit: a float32 matmul is timed on the same machine with the same threads,
and each case records the floating-point operations its tokens cannot avoid (2 x non-embedding parameters per
token the model reads, plus the output layer at each scored or generated position; attention left out, so this
is a lower bound) as seconds at that peak, against the measured seconds. The matmul is timed before every case
and at the end; the best of these is the peak (the machine under the least load).

lm-eval is not a medrepro requirement (see bench_eval_loglik.py for how it was installed). Run:

    nice .venv/bin/python bench/bench_eval_speed.py          # about 15 minutes on 2 CPU cores shared by other jobs
"""
from __future__ import annotations
import argparse, json, os, statistics, sys, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch
from medrepro.core import read_jsonl, run_metadata, save_json
from medrepro.data.prompts import get_template
from medrepro.data.records import MCQ
from medrepro.eval.extract import extract
from medrepro.eval.mcq import EvalConfig, build_prompts, evaluate
from medrepro.models import load_causal_lm, load_tokenizer

TARGETS = {"fewshot5_letter": 3.0, "zeroshot_letter": 1.3, "zeroshot_option_text": 3.0, "generate": 2.0}  # issue targets
WHY_MISSED = {  # read next to a missed target; the numbers themselves are in the case objects
    "generate": "the model answers in a few tokens, so the time is the prompts' forward pass: medrepro saves only the "
                "shared chat/instruction prefix (speedup_bound_from_tokens is what reading fewer tokens allows), and "
                "each decoding step reads all weights whatever the batch",
    "zeroshot_option_text": "the fixture's option texts are one or two tokens: lm-eval's one-token continuation cache "
                            "already runs each question once, so medrepro's lead is the shared instruction prefix and "
                            "less padding (speedup_bound_from_tokens); long option texts (real MedQA) give it more",
}


def matmul_peak(threads: int, n: int = 1024, repeats: int = 20) -> float:
    "Best float32 GFLOP/s of an n x n matmul with the given torch threads."
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def subjects(qs: list[MCQ]) -> tuple[list[MCQ], dict[str, list[MCQ]]]:
    "Test questions and 5 solved examples per subject (the subject is the question's verb)."
    verb = lambda q: q.question.split("Which organ ")[1].split()[0]
    dev: dict[str, list[MCQ]] = {}
    test = []
    for q in qs:
        if len(dev.setdefault(verb(q), [])) < 5: dev[verb(q)].append(q)
        else: test.append(q)
    return test, dev


def lm_eval_loglik(lm, qs, prompts, scoring):
    "lm-eval's choices (the comparison bench_eval_loglik.py makes), in this bench's (predictions, texts) shape."
    from bench_eval_loglik import lm_eval_choices  # bench/ is on sys.path when a bench script runs
    return lm_eval_choices(lm, qs, prompts, scoring), None


def lm_eval_generate(lm, qs, prompts, max_new):
    from lm_eval.api.instance import Instance
    reqs = [Instance(request_type="generate_until", doc={}, idx=i,
                     arguments=(p, {"until": [], "max_gen_toks": max_new, "do_sample": False})) for i, p in enumerate(prompts)]
    outs = lm.generate_until(reqs, disable_tqdm=True)
    return [extract(o, q, "guo2023").answer for o, q in zip(outs, qs)], outs


def medrepro_run(model, tok, qs, case, shots, batch_size, max_new):
    base = EvalConfig(template="mcq_en", batch_size=batch_size, n_boot=0, breakdowns=())
    if case == "generate":
        config = base.updated(mode="generate", chat=True, stop=[], max_new_tokens=max_new, extractor="guo2023")
    else:
        config = base.updated(mode="loglik", scoring="option_text" if case.endswith("option_text") else "letter",
                              shots=shots if case.startswith("fewshot") else ())
    return evaluate(model, qs, config, tokenizer=tok)


def timed(fn):
    t0 = time.perf_counter(); out = fn(); return time.perf_counter() - t0, out


def run_case(case, model, tok, lm, qs, shots, a, params_nonemb, vocab_x_hidden):
    prompts = build_prompts(qs, "mcq_en", shots if case.startswith("fewshot") else (), tok if case == "generate" else None)
    med = lambda: medrepro_run(model, tok, qs, case, shots, a.batch_size, a.max_new_tokens)
    lme = (lambda: lm_eval_generate(lm, qs, prompts, a.max_new_tokens)) if case == "generate" else \
          (lambda: lm_eval_loglik(lm, qs, prompts, "option_text" if case.endswith("option_text") else "letter"))
    tm, tl, load = [], [], []
    medrepro_run(model, tok, qs[:2], case, shots, a.batch_size, a.max_new_tokens)  # warm-up: first-call costs out of the timings
    (lm_eval_generate(lm, qs[:2], prompts[:2], a.max_new_tokens) if case == "generate" else lm_eval_loglik(lm, qs[:2], prompts[:2], "letter"))
    r = l = None
    for k in range(a.rounds):  # the engine that goes first alternates between rounds
        load.append(os.getloadavg()[0])
        for name in (("medrepro", "lm_eval") if k % 2 == 0 else ("lm_eval", "medrepro")):
            if name == "medrepro": t, r = timed(med); tm.append(t)
            else: t, l = timed(lme); tl.append(t)
    p_m = [s["pred"] for s in r.samples]
    p_l, texts_l = l
    gold = [q.answer_str for q in qs]
    acc = lambda p: sum(x == g for x, g in zip(p, gold)) / len(qs)
    sm, sl = min(tm), min(tl)
    tokens = r.protocol.get("tokens") or {}
    read = tokens.get("tokens_run", 0) + tokens.get("prefix_tokens", 0)  # every token medrepro's model read, padding not counted
    if case == "generate":  # lm-eval reads every prompt whole, then one token per generated token
        gen_tokens = sum(len(tok(s["output"], add_special_tokens=False).input_ids) + 1 for s in r.samples)  # + end of turn
        lm_read = sum(len(x) for x in tok(prompts).input_ids) + gen_tokens - len(qs)
        flops = read * 2 * params_nonemb + gen_tokens * 2 * vocab_x_hidden
    else:  # lm-eval reads each context once (its one-token cache), plus one row per multi-token continuation
        lm_read = sum(len(x) for x in tok(prompts).input_ids)
        flops = read * 2 * params_nonemb + len(qs) * 2 * vocab_x_hidden * (4 if case.endswith("option_text") else 1)
    out = {"case": case, "n_questions": len(qs), "medrepro_seconds": sm, "lm_eval_seconds": sl, "medrepro_all_seconds": tm,
           "lm_eval_all_seconds": tl, "speedup": sl / sm, "target_speedup": TARGETS[case],
           "target_met": sl / sm >= TARGETS[case], "prediction_agreement": sum(x == y for x, y in zip(p_m, p_l)) / len(qs),
           "medrepro_accuracy": acc(p_m), "lm_eval_accuracy": acc(p_l), "load_average_1m_per_round": load,
           "medrepro_protocol": {k: r.protocol.get(k) for k in ("prefix_cache", "prefix_cache_used", "batching", "batch_size",
                                                                "batch_tokens", "decoding", "tokens")},
           "tokens_model_must_read": read, "lm_eval_tokens_read_at_least": lm_read,
           "speedup_bound_from_tokens": lm_read / read, "flops_lower_bound": flops,
           "medrepro_tokens_per_s_per_core": read / sm / a.threads}
    if not out["target_met"]:
        out["missed_by"] = f"{TARGETS[case] / out['speedup']:.2f}x short of the target"
        if case in WHY_MISSED: out["why"] = WHY_MISSED[case]
    if case == "generate":
        same = [x == y for x, y in zip((s["output"] for s in r.samples), texts_l)]
        out["generated_texts_identical"] = sum(same) / len(qs)
        out["generated_tokens"] = gen_tokens
        out["texts_differing"] = [{"id": q.id, "medrepro": s["output"], "lm_eval": y}
                                  for q, s, y, e in zip(qs, r.samples, texts_l, same) if not e][:5]
    return out


def add_floor(out: dict, peak: float) -> None:
    "Seconds the case's unavoidable arithmetic takes at the matmul peak, and each engine's distance from it."
    floor = out["flops_lower_bound"] / (peak * 1e9)
    out.update(seconds_at_matmul_peak=floor, medrepro_seconds_over_floor=out["medrepro_seconds"] / floor,
               lm_eval_seconds_over_floor=out["lm_eval_seconds"] / floor)
    case = out["case"]
    print(case, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()
                            if not isinstance(v, (list, dict))}), flush=True)


DOC = ROOT / "docs" / "eval-speed.md"
DEFAULT_OUT = ROOT / "bench" / "results" / "eval_speed_smollm2.json"


def render_table(result: dict) -> str:
    "The docs table, from a result dict."
    f = lambda x, d=2: "" if x is None else f"{x:.{d}f}"
    lines = ["| case | questions | medrepro s | lm-eval s | speedup | target | agreement | medrepro acc | lm-eval acc "
             "| speedup allowed by tokens read | medrepro / floor | lm-eval / floor | medrepro tokens/s/core |", "|" + "---|" * 13]
    for case in TARGETS:
        c = result.get(case)
        if not c: continue
        lines.append(f"| {case} | {c['n_questions']} | {f(c['medrepro_seconds'], 1)} | {f(c['lm_eval_seconds'], 1)} "
                     f"| {f(c['speedup'])}x | {c['target_speedup']}x {'met' if c['target_met'] else 'missed'} "
                     f"| {f(c['prediction_agreement'])} | {f(c['medrepro_accuracy'], 3)} | {f(c['lm_eval_accuracy'], 3)} "
                     f"| {f(c.get('speedup_bound_from_tokens'))}x | {f(c['medrepro_seconds_over_floor'], 1)}x | {f(c['lm_eval_seconds_over_floor'], 1)}x "
                     f"| {f(c['medrepro_tokens_per_s_per_core'], 0)} |")
    la = result.get("load_average_1m_5m_15m_start", [])
    lines += ["", f"Matmul peak {f(result['matmul_peak_gflops_per_core'], 1)} GFLOP/s per core ({result['torch_threads']} "
              f"thread(s)); load average at the start {', '.join(f(x, 1) for x in la)} on {result.get('cpu_count')} cores."]
    if "generate" in result and "generated_texts_identical" in result["generate"]:
        lines.append(f"Generated texts identical in {f(result['generate']['generated_texts_identical'])} of the generation questions.")
    return "\n".join(lines)


def render_docs(result: dict, doc: Path = DOC) -> None:
    "Write the table between the markers of docs/eval-speed.md."
    text = doc.read_text()
    a, b = text.index("<!-- table:start -->") + len("<!-- table:start -->"), text.index("<!-- table:end -->")
    doc.write_text(text[:a] + "\n" + render_table(result) + "\n" + text[b:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n-fewshot", type=int, default=16, help="questions in the 5-shot case")
    p.add_argument("--n-zeroshot", type=int, default=48, help="questions in the zero-shot letter case")
    p.add_argument("--n-option-text", type=int, default=16, help="questions in the zero-shot option-text case")
    p.add_argument("--n-generate", type=int, default=16, help="questions in the generation case")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8, help="both engines' batch size (medrepro: rows of 256 tokens)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="1: on an oversubscribed machine, more threads wait on each other")
    p.add_argument("--cases", default=",".join(TARGETS))
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--render-only", action="store_true", help="only rewrite the docs table from --out")
    a = p.parse_args()
    if a.render_only: return render_docs(json.loads(Path(a.out).read_text()))
    torch.set_num_threads(a.threads)
    from lm_eval.models.huggingface import HFLM
    import lm_eval
    all_qs = [MCQ.from_dict(d) for d in read_jsonl(ROOT / "tests" / "fixtures" / "eval" / "mcq500.jsonl")]
    test, dev = subjects(all_qs)
    shots = lambda q: dev[q.question.split("Which organ ")[1].split()[0]]
    tok, model = load_tokenizer(a.model), load_causal_lm(a.model).eval()
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=a.batch_size, max_length=model.config.max_position_embeddings)
    emb = model.get_input_embeddings().weight
    params_nonemb = sum(x.numel() for x in model.parameters()) - emb.numel()  # tied output layer counted apart
    peaks = [matmul_peak(a.threads)]  # measured again before every case: the best one is the machine under the least load
    result = {"model": a.model, "torch_threads": a.threads, "batch_size": a.batch_size, "rounds": a.rounds,
              "lm_eval_version": getattr(lm_eval, "__version__", "0.4.13"), "params_non_embedding": params_nonemb,
              "targets": TARGETS, "load_average_1m_5m_15m_start": list(os.getloadavg()), "cpu_count": os.cpu_count()}
    n = {"fewshot5_letter": a.n_fewshot, "zeroshot_letter": a.n_zeroshot, "zeroshot_option_text": a.n_option_text,
         "generate": a.n_generate}
    for case in a.cases.split(","):
        peaks.append(matmul_peak(a.threads))
        result[case] = run_case(case, model, tok, lm, test[: n[case]], shots, a, params_nonemb, emb.numel())
    peaks.append(matmul_peak(a.threads))
    result.update(matmul_peak_gflops=max(peaks), matmul_peak_gflops_per_core=max(peaks) / a.threads, matmul_gflops_all=peaks)
    for case in a.cases.split(","): add_floor(result[case], max(peaks))
    result["load_average_1m_5m_15m_end"] = list(os.getloadavg())  # other processes on a shared machine slow both engines
    meta = run_metadata({"bench": "eval_speed", **{k: v for k, v in vars(a).items() if k != "out"}})
    result["run"] = {k: meta.get(k) for k in ("git_sha", "git_dirty", "sha", "dirty", "versions", "python", "platform", "time_utc") if k in meta}
    save_json(result, a.out)
    if Path(a.out).resolve() == DEFAULT_OUT.resolve(): render_docs(result)  # the docs show the recorded result only
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
