"""Training throughput: medrepro's trainer vs a plain transformers Trainer loop, packing vs padding efficiency.

Same model, data, batch, sequence length and steps for both, measured in one run (each variant in its own child
process so peak memory is its own; variants interleaved and repeated, median reported, because the machine is
shared). When CUDA is present, also records LoRA and QLoRA tokens/s and peak GPU memory for a randomly
initialised ~1B-parameter Llama.

    nice -n 10 .venv/bin/python bench/bench_train.py [--model small] [--steps 20] [--reps 3] [--out bench/results/train.json]

With `--model smollm2-135m` (the real pretrained model) the comparison is LoRA and QLoRA (4-bit NF4 through
bitsandbytes, on the CPU here) instead of full training: medrepro's `train_pretrain(method=...)` against a plain
transformers Trainer with a peft LoRA adapter (and a bitsandbytes 4-bit base for QLoRA) built by hand, same rows,
rank, targets, optimizer and steps. Writes bench/results/train_smollm2.json (about 10 minutes on 2 shared cores; rows of 128 tokens, 4 steps):

    nice -n 10 .venv/bin/python bench/bench_train.py --model smollm2-135m
"""
from __future__ import annotations
import argparse, json, multiprocessing as mp, os, platform, random, resource, statistics, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1"); os.environ.setdefault("PYTHONWARNINGS", "ignore")

WORDS = ("patient presents with fever cough dyspnoea hypertension diabetes insulin metformin aspirin warfarin heparin "
         "myocardial infarction troponin electrocardiogram renal hepatic dose mg daily twice contraindicated "
         "pregnancy infection antibiotic penicillin allergy 高血压 糖尿病 胰岛素 阿司匹林 患者 发热 咳嗽 治疗 诊断").split()


def make_docs(n: int, seed: int = 0) -> list[str]:
    "Continual-training documents with a long-tailed length distribution (like encyclopedia QA + articles)."
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(max(5, int(rng.lognormvariate(3.8, 0.9))))) for _ in range(n)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _threads(args) -> None:
    import torch
    torch.set_num_threads(args.threads)  # one thread: CPU time ~ compute, robust to other jobs on a shared machine


def run_medrepro(args, q):
    "medrepro's train_pretrain: packed rows, per-document position ids."
    _threads(args)
    from medrepro.data.records import Document
    from medrepro.train import train_pretrain
    docs = [Document(str(i), t, source="encyclopedia") for i, t in enumerate(make_docs(args.docs))]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = train_pretrain(docs, model=args.model, output_dir=d, seq_len=args.seq, batch_size=args.batch,
                           max_steps=args.steps, lr=1e-4, warmup_ratio=0.0, optim="adamw_torch", method=args.method,
                           lora_r=LORA_R, lora_alpha=LORA_ALPHA, merge=False, dtype=_dtype(args),
                           compute_dtype="bfloat16" if _dtype(args) == "bf16" else "float32",
                           gradient_checkpointing=_gc(args), logging_steps=args.steps, report_to="none", seed=0)
        wall = time.perf_counter() - t0
    tokens = args.steps * args.batch * args.seq
    q.put({"tokens_per_s": tokens / r.metrics["runtime_s"], "tokens_per_cpu_s": tokens / r.metrics["cpu_s"],
           "real_tokens_per_s": r.metrics["tokens_per_s"],
           "train_s": r.metrics["runtime_s"], "end_to_end_s": wall, "peak_rss_mb": _peak_rss_mb(),
           "packing_efficiency": r.metrics["packing_efficiency"], "steps": r.metrics["steps"], **_gpu_peak()})


def run_plain(args, q, reset_positions: bool = True):
    """A minimal transformers Trainer loop with no medrepro code: tokenise, concatenate, chunk into rows.

    With `reset_positions` the rows carry position ids restarting after every EOS (the same attention work as
    medrepro: no cross-document attention); without, documents attend across boundaries (the naive loop)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    _threads(args)
    from medrepro.models import resolve_model_id  # only to find the same model folder on disk
    path = resolve_model_id(args.model)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(path)
    ids, pos = [], []
    for t in make_docs(args.docs):
        d = tok(t)["input_ids"] + [tok.eos_token_id]
        ids += d; pos += list(range(len(d)))
    n = len(ids) - len(ids) % args.seq
    ds = []
    for i in range(0, n, args.seq):
        row = {"input_ids": ids[i:i + args.seq], "labels": ids[i:i + args.seq]}
        if reset_positions:
            row["position_ids"] = _row_pos(pos[i:i + args.seq])
        ds.append(row)
    collate = lambda b: {k: torch.tensor([x[k] for x in b]) for k in b[0]}
    model = plain_model(path, args.method, _dtype(args), _gc(args))
    with tempfile.TemporaryDirectory() as d:
        ta = TrainingArguments(output_dir=d, per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=1e-4,
                               lr_scheduler_type="cosine", logging_steps=args.steps, save_strategy="no", report_to=[],
                               use_cpu=not _cuda(), seed=0, disable_tqdm=True, optim="adamw_torch", bf16=_dtype(args) == "bf16",
                               gradient_checkpointing=_gc(args), gradient_checkpointing_kwargs={"use_reentrant": False})
        tr = Trainer(model=model, args=ta, train_dataset=ds, data_collator=collate)
        t1, c1 = time.perf_counter(), time.process_time(); tr.train()
        train_s, cpu_s = time.perf_counter() - t1, time.process_time() - c1
    tokens = args.steps * args.batch * args.seq
    q.put({"tokens_per_s": tokens / train_s, "tokens_per_cpu_s": tokens / cpu_s, "train_s": train_s, "end_to_end_s": time.perf_counter() - t0,
           "peak_rss_mb": _peak_rss_mb(), **_gpu_peak()})


def _dtype(args) -> str: return getattr(args, "dtype", "fp32")  # bf16: mixed precision, 4-bit layers compute in bf16 (GPU)
def _gc(args) -> bool: return getattr(args, "gradient_checkpointing", False)


def _gpu_peak() -> dict:
    "Peak GPU memory of this (child) process, when it used a GPU."
    import torch
    return {"peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3)} if torch.cuda.is_available() else {}


LORA_R, LORA_ALPHA = 16, 32  # the adapter of both loops


def plain_model(path: str, method: str, dtype: str = "fp32", gradient_checkpointing: bool = False):
    "The model a plain loop trains: as loaded (full), or wrapped by peft by hand (LoRA; QLoRA on a bitsandbytes 4-bit base)."
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    if method == "full": return AutoModelForCausalLM.from_pretrained(path)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    if method == "qlora":
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=q, device_map={"": "cuda:0" if _cuda() else "cpu"})
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    else: model = AutoModelForCausalLM.from_pretrained(path)
    return get_peft_model(model, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules="all-linear", task_type="CAUSAL_LM"))


def _row_pos(p: list[int]) -> list[int]:
    "Positions within a row: a document continued from the previous row restarts at 0 at the row start."
    out, k = [], 0
    for j, x in enumerate(p):
        k = 0 if (j == 0 or x == 0) else k + 1
        out.append(k)
    return out


def run_plain_naive(args, q):
    run_plain(args, q, reset_positions=False)


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def efficiencies(args) -> dict:
    "Non-pad fraction of trained tokens: medrepro packing vs padding each document (dynamic padding per batch)."
    from medrepro.data.format import encode_document, pack
    from medrepro.data.records import Document
    from medrepro.models import load_tokenizer
    tok = load_tokenizer(args.model)
    enc = [encode_document(Document(str(i), t), tok) for i, t in enumerate(make_docs(args.docs))]
    pk = pack(enc, args.seq, tok.pad_token_id, split=True)
    lens = [min(len(e["input_ids"]), args.seq) for e in enc]
    padded = sum(max(lens[i:i + args.batch]) * len(lens[i:i + args.batch]) for i in range(0, len(lens), args.batch))
    return {"packing_efficiency": round(pk.efficiency, 4), "padding_baseline_efficiency": round(sum(lens) / padded, 4),
            "documents": len(enc), "tokens": sum(len(e["input_ids"]) for e in enc), "packed_rows": len(pk.rows)}


def _child(fn, args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(); p = ctx.Process(target=fn, args=(args, q)); p.start()
    res = q.get(timeout=1800); p.join()
    return res


def gpu_section(args) -> dict:
    "LoRA and QLoRA tokens/s and peak GPU memory on a randomly initialised ~1B-parameter Llama (CUDA only)."
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from medrepro.data.records import Document
    from medrepro.models import load_tokenizer
    from medrepro.train import train_pretrain
    tok = load_tokenizer("small")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=16, num_key_value_heads=8, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    out = {"device": torch.cuda.get_device_name(0)}
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
        out["parameters"] = sum(p.numel() for p in m.parameters())
        m.save_pretrained(f"{d}/m"); tok.save_pretrained(f"{d}/m"); del m
        docs = [Document(str(i), t) for i, t in enumerate(make_docs(4000))]
        for method in ("lora", "qlora"):
            torch.cuda.reset_peak_memory_stats()
            r = train_pretrain(docs, model=f"{d}/m", output_dir=f"{d}/{method}", method=method, lora_r=16, lora_alpha=32,
                               seq_len=1024, batch_size=4, max_steps=args.gpu_steps, dtype="bf16", compute_dtype="bfloat16",
                               gradient_checkpointing=True, merge=False, report_to="none", logging_steps=args.gpu_steps)
            out[method] = {"tokens_per_s": round(args.gpu_steps * 4 * 1024 / r.metrics["runtime_s"], 1),
                           "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                           "seq_len": 1024, "batch_size": 4, "steps": args.gpu_steps}
    return out


def paired_ratio(runs: dict) -> float:
    "Median over repeats of medrepro/plain wall throughput, each pair measured back to back (cancels slow load drift)."
    return round(statistics.median(m["tokens_per_s"] / p["tokens_per_s"] for m, p in zip(runs["medrepro"], runs["plain"])), 3)


def real_model_main(args) -> int:
    "LoRA and QLoRA on a real pretrained model: medrepro's trainer vs a plain Trainer + peft (+ bitsandbytes) loop."
    from medrepro.core import package_versions, save_json
    from medrepro.models import model_provenance, resolve_model_id
    resolve_model_id(args.model)  # convert once, outside the timed children
    methods = (args.methods or "lora,qlora").split(",")
    out = args.out or "bench/results/train_smollm2.json"
    res = {"what": "LoRA/QLoRA continual-training throughput on a real pretrained model, same rows/batch/seq/steps/adapter; "
                   "tokens/s = batch*seq*steps / trainer.train() wall seconds; tokens/cpu_s uses the process's CPU time; "
                   "peak RSS of each run's own child process",
           "model": args.model, "model_provenance": model_provenance(args.model), "steps": args.steps,
           "batch_size": args.batch, "seq_len": args.seq, "documents": args.docs, "repeats": args.reps,
           "lora_r": LORA_R, "lora_alpha": LORA_ALPHA, "target_modules": "all-linear", "torch_threads": args.threads,
           "device": "cuda" if _cuda() else "cpu", "cpu_threads": os.cpu_count()}
    for method in methods:
        args.method = method
        runs = {"medrepro": [], "plain": []}
        for rep in range(args.reps):  # interleaved, so load from other users hits both alike
            for name, fn in (("plain", run_plain), ("medrepro", run_medrepro)):
                runs[name].append(_child(fn, args)); print(method, rep, name, {k: round(v, 2) for k, v in runs[name][-1].items()}, flush=True)
        med = lambda name, k: statistics.median(r[k] for r in runs[name])
        res[method] = {"medrepro_tokens_per_s": round(med("medrepro", "tokens_per_s"), 1),
                       "plain_tokens_per_s": round(med("plain", "tokens_per_s"), 1),
                       "ratio": round(med("medrepro", "tokens_per_s") / med("plain", "tokens_per_s"), 3),
                       "ratio_paired_median": paired_ratio(runs),
                       "medrepro_tokens_per_cpu_s": round(med("medrepro", "tokens_per_cpu_s"), 1),
                       "plain_tokens_per_cpu_s": round(med("plain", "tokens_per_cpu_s"), 1),
                       "ratio_cpu_time": round(med("medrepro", "tokens_per_cpu_s") / med("plain", "tokens_per_cpu_s"), 3),
                       "medrepro_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["medrepro"]), 1),
                       "plain_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["plain"]), 1),
                       "all_runs": runs}
    res.update({"versions": package_versions(), "python": platform.python_version(),
                "load_average_1m_5m_15m": list(os.getloadavg()),
                "note": "plain = transformers Trainer on rows made by tokenising, concatenating and chunking the same "
                        "documents, position ids restarting at each document; its adapter built by hand with peft "
                        "(LoraConfig all-linear; QLoRA: BitsAndBytesConfig nf4 + double quantisation, float32 compute, "
                        "prepare_model_for_kbit_training). medrepro = train_pretrain(method=...). Wall-clock numbers on a "
                        "shared 2-core machine vary between repeats; the CPU-time ratio is the steadier estimate."})
    save_json(res, out)
    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "all_runs"} if isinstance(v, dict) and "all_runs" in v else v)
                      for k, v in res.items() if k not in ("versions",)}, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="small"); ap.add_argument("--steps", type=int, help="default 20 (4 for smollm2-135m)")
    ap.add_argument("--batch", type=int, default=4); ap.add_argument("--seq", type=int, help="default 256 (128 for smollm2-135m)")
    ap.add_argument("--docs", type=int, help="default 3000 (300 for smollm2-135m)"); ap.add_argument("--reps", type=int, help="default 3 (2 for smollm2-135m)")
    ap.add_argument("--threads", type=int, default=1); ap.add_argument("--gpu-steps", type=int, default=20); ap.add_argument("--out", help="default bench/results/train.json (train_smollm2.json for smollm2-135m)")
    ap.add_argument("--methods", help="comma-separated: full (default), or lora,qlora (default for smollm2-135m)")
    args = ap.parse_args()
    from medrepro.core import package_versions, save_json
    from medrepro.models import is_pretrained_name, model_provenance, resolve_model_id
    real = is_pretrained_name(args.model)
    args.steps, args.reps = args.steps or (4 if real else 20), args.reps or (2 if real else 3)
    args.seq, args.docs = args.seq or (128 if real else 256), args.docs or (300 if real else 3000)
    if real: return real_model_main(args)
    args.method = "full"
    resolve_model_id(args.model)  # build once, outside the timed children
    runs = {"medrepro": [], "plain": [], "plain_naive": []}
    for rep in range(args.reps):  # interleaved, so load from other users hits all alike
        for name, fn in (("plain", run_plain), ("medrepro", run_medrepro), ("plain_naive", run_plain_naive)):
            runs[name].append(_child(fn, args)); print(rep, name, {k: round(v, 2) for k, v in runs[name][-1].items()}, flush=True)
    res["gpu"] = gpu_section(args) if _cuda() else {"skipped": "no CUDA device on this machine"}
    save_json(res, args.out or "bench/results/train.json")
    print(json.dumps({k: v for k, v in res.items() if k not in ("all_runs", "versions")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
