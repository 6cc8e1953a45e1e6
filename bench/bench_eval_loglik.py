"""Log-likelihood MCQ scoring: medrepro vs EleutherAI lm-evaluation-harness (hf backend), same model, same prompts.

Both scorers get the same tiny model object, the same tokenizer and the same 500 fixture questions
(tests/fixtures/eval/mcq500.jsonl, written by tests/fixtures/eval/make_fixtures.py), rendered with medrepro's
`mcq_en` prompt; each question's candidates are the option letters " A", " B", ... (and, as a second table, the
option texts). medrepro runs `medrepro.eval.mcq.evaluate` with `EvalConfig(mode="loglik")`; lm-eval runs `HFLM.loglikelihood` on one
`Instance` per (question, option), its own request path with its own batching and caching. Timings are the best
of `--repeats` rounds after one warm-up, the two scorers alternating within each round so that load from other
processes on a shared machine hits both alike; torch is limited to `--threads` threads. Writes
bench/results/eval_loglik.json with medrepro_questions_per_s, lm_eval_questions_per_s, speedup and
prediction_agreement (fraction of questions where both pick the same option).

lm-eval is NOT a medrepro requirement. It was installed for this benchmark only, after checking with
`pip install --dry-run` that it changes no installed version of torch/transformers/datasets (it only adds packages):

    .venv/bin/pip install --dry-run -c constraints.txt lm-eval==0.4.13   # check: only additions
    .venv/bin/pip install -c constraints.txt lm-eval==0.4.13

Run (about a minute on 2 shared CPU cores):

    nice .venv/bin/python bench/bench_eval_loglik.py

On the real pretrained model (`--model smollm2-135m`, SmolLM2-135M-Instruct) the same comparison runs on the first
100 fixture questions with option letters, with option texts, and with letters after 5 solved examples (the same 5,
taken from the fixture after the scored questions, before every question); it writes
bench/results/eval_loglik_smollm2.json. The tiny model's numbers say little: its overhead dominates. The fixture
questions are synthetic (fictional substances) in MedQA-USMLE's format, so accuracy is at chance by construction:
the figures that matter are the prediction agreement and the speed.

    nice .venv/bin/python bench/bench_eval_loglik.py --model smollm2-135m
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch
from medrepro.core import read_jsonl, save_json, run_metadata
from medrepro.data.prompts import get_template, mcq_prompt
from medrepro.data.records import MCQ
from medrepro.eval.mcq import EvalConfig, evaluate
from medrepro.models import is_pretrained_name, load_causal_lm, load_tokenizer, model_provenance


def interleaved_best(fa, fb, repeats: int, warmup: bool = True):
    "Best wall time of each function over `repeats` rounds (after one warm-up each), alternating a and b every round."
    out_a, out_b = (fa(), fb()) if warmup else (None, None)
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter(); out_a = fa(); ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); out_b = fb(); tb.append(time.perf_counter() - t0)
    return (min(ta), ta, out_a), (min(tb), tb, out_b)


def medrepro_preds(model, tok, qs, scoring, batch_size, shots=()):
    config = EvalConfig(mode="loglik", scoring=scoring, template="mcq_en", batch_size=batch_size, shots=shots, n_boot=0, breakdowns=())
    r = evaluate(model, qs, config, tokenizer=tok)
    return [s["pred"] for s in r.samples]


def lm_eval_preds(lm, qs, scoring, shots=()):
    "lm-eval's choice for each question, with medrepro's `mcq_en` prompt (and `shots`) as the context."
    return lm_eval_choices(lm, qs, [mcq_prompt(q, "mcq_en", shots) for q in qs], scoring)


def lm_eval_choices(lm, qs, prompts, scoring):
    "lm-eval's HFLM.loglikelihood over every (prompt, option) pair; letters by log-prob, option texts by log-prob per character."
    from lm_eval.api.instance import Instance
    delim = get_template("mcq_en").delimiter
    reqs, owner = [], []
    for qi, (q, ctx) in enumerate(zip(qs, prompts)):
        for k, v in q.options.items():
            cont = delim + (k if scoring == "letter" else v.strip())
            reqs.append(Instance(request_type="loglikelihood", doc={}, arguments=(ctx, cont), idx=len(owner)))
            owner.append((qi, k, len(cont)))
    res = lm.loglikelihood(reqs, disable_tqdm=True)
    best: dict[int, tuple[float, str]] = {}
    for (qi, k, n), (lp, _) in zip(owner, res):
        score = lp if scoring == "letter" else lp / n  # acc_norm: divide by the continuation's length in characters
        if qi not in best or score > best[qi][0]: best[qi] = (score, k)
    return [best[i][1] for i in range(len(qs))]


def accuracy(preds, qs) -> float:
    return sum(p == q.answer_str for p, q in zip(preds, qs)) / len(qs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--n", type=int, help="questions (default 500; 100 for a pretrained model)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, help="timed rounds after the warm-up (default 5; 1 for a pretrained model)")
    p.add_argument("--shots", type=int, default=5, help="solved examples in the few-shot block (pretrained model only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="default bench/results/eval_loglik.json (eval_loglik_smollm2.json for smollm2-135m)")
    a = p.parse_args()
    real = is_pretrained_name(a.model)
    a.n = a.n or (100 if real else 500)
    a.repeats = a.repeats or (1 if real else 5)
    a.out = a.out or str(ROOT / "bench" / "results" / ("eval_loglik_smollm2.json" if a.model == "smollm2-135m" else "eval_loglik.json"))
    torch.set_num_threads(a.threads)
    from lm_eval.models.huggingface import HFLM
    import lm_eval
    pool = [MCQ.from_dict(d) for d in read_jsonl(ROOT / "tests" / "fixtures" / "eval" / "mcq500.jsonl")]
    qs, shots = pool[: a.n], pool[a.n: a.n + a.shots]
    tok, model = load_tokenizer(a.model), load_causal_lm(a.model).eval()
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=a.batch_size)
    result = {"model": a.model, "n_questions": len(qs), "batch_size": a.batch_size, "torch_threads": a.threads,
              "repeats": a.repeats, "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13",
              "model_provenance": model_provenance(a.model)}
    blocks = [("letter", "letter", ()), ("option_text", "option_text", ())]
    if real and a.shots: blocks.append((f"letter_{a.shots}shot", "letter", shots))
    for name, scoring, sh in blocks:
        if real:  # a pretrained model's full pass takes minutes: warm both scorers up on a few questions instead
            medrepro_preds(model, tok, qs[:8], scoring, a.batch_size, sh); lm_eval_preds(lm, qs[:8], scoring, sh)
        (t_m, ts_m, p_m), (t_l, ts_l, p_l) = interleaved_best(lambda: medrepro_preds(model, tok, qs, scoring, a.batch_size, sh),
                                                              lambda: lm_eval_preds(lm, qs, scoring, sh), a.repeats, warmup=not real)
        block = {"medrepro_seconds": t_m, "lm_eval_seconds": t_l, "medrepro_all_seconds": ts_m, "lm_eval_all_seconds": ts_l,
                 "medrepro_questions_per_s": len(qs) / t_m, "lm_eval_questions_per_s": len(qs) / t_l, "speedup": t_l / t_m,
                 "prediction_agreement": sum(x == y for x, y in zip(p_m, p_l)) / len(qs),
                 "medrepro_accuracy": accuracy(p_m, qs), "lm_eval_accuracy": accuracy(p_l, qs), "shots": len(sh)}
        print(name, json.dumps({k: round(v, 4) for k, v in block.items() if not isinstance(v, list)}), flush=True)
        if name == "letter": result.update(block)  # the headline numbers: option letters, one pass per question
        else: result[name] = block
    meta = run_metadata({"bench": "eval_loglik", **{k: v for k, v in vars(a).items() if k != "out"}})
    result["run"] = {k: meta.get(k) for k in ("git_sha", "git_dirty", "sha", "dirty", "versions", "python", "platform", "time_utc") if k in meta}
    result["cpu_count"] = os.cpu_count()
    result["load_average_1m_5m_15m"] = list(os.getloadavg())  # other processes on a shared machine slow both scorers
    save_json(result, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
