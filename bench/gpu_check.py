"""QLoRA on one GPU: medrepro's trainer vs a plain transformers + peft + bitsandbytes loop, tokens/s and peak memory.

Two models: the packaged pretrained smollm2-135m, and a randomly initialised Llama of about 1B parameters (SmolLM2's
vocabulary, TinyLlama-like shape). Each (model, loop) pair trains in its own child process, so its peak GPU memory
is its own; both loops get the same documents, rows, adapter (r=16, alpha=32, all linear layers), NF4 + double
quantisation, bf16 compute, gradient checkpointing and steps (see bench/bench_train.py, whose loops these are).
Called by bench/gpu_check.sh, which adds the real-model tests and the `accelerate launch` run to the same JSON.

    .venv/bin/python bench/gpu_check.py --out bench/results/gpu.json [--steps-log FILE]
    .venv/bin/python bench/gpu_check.py --device cpu --dry --out /tmp/gpu_dry.json   # tiny shapes, checks the code path
"""
from __future__ import annotations
import argparse, json, os, platform, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1"); os.environ.setdefault("PYTHONWARNINGS", "ignore")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_train import _child, run_medrepro, run_plain  # noqa: E402  (the same two loops as the CPU benchmark)

LLAMA_1B = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=16,
                num_key_value_heads=8)   # TinyLlama-1.1B's shape; with a 49,152 vocabulary about 1.2B parameters
LLAMA_DRY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def random_llama(folder: Path, shape: dict, dtype: str) -> int:
    "Save a seeded random Llama with smollm2-135m's tokenizer into `folder`; returns its parameter count."
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from medrepro.models import load_tokenizer
    tok = load_tokenizer("smollm2-135m")
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **shape)
    torch.manual_seed(0)
    m = LlamaForCausalLM(cfg).to(getattr(torch, dtype))
    n = sum(p.numel() for p in m.parameters())
    m.save_pretrained(folder); tok.save_pretrained(folder)
    return n


def compare(model: str, a) -> dict:
    "Plain loop, then medrepro's, on `model`; their figures and the ratios."
    ns = argparse.Namespace(model=model, method="qlora", docs=a.docs, seq=a.seq, batch=a.batch, steps=a.steps, threads=a.threads,
                            dtype="bf16" if a.device == "cuda" else "fp32", gradient_checkpointing=True)
    out = {"plain": _child(run_plain, ns), "medrepro": _child(run_medrepro, ns)}
    for k in out: out[k] = {x: (round(v, 3) if isinstance(v, float) else v) for x, v in out[k].items()}
    out["ratio_tokens_per_s"] = round(out["medrepro"]["tokens_per_s"] / out["plain"]["tokens_per_s"], 3)
    if "peak_gpu_memory_gb" in out["plain"]:
        out["ratio_peak_gpu_memory"] = round(out["medrepro"]["peak_gpu_memory_gb"] / out["plain"]["peak_gpu_memory_gb"], 3)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--dry", action="store_true", help="tiny shapes and two steps: checks the code path (CPU is fine)")
    p.add_argument("--steps", type=int, help="optimizer steps per run (default 20; 2 with --dry)")
    p.add_argument("--seq", type=int, help="row length (default 1024; 32 with --dry)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--steps-log", help="jsonl of the shell script's steps (tests, accelerate launch) to include")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu.json"))
    a = p.parse_args()
    import torch
    if a.device == "cuda" and not torch.cuda.is_available(): print("no CUDA device; use --device cpu --dry"); return 1
    if a.device == "cpu": os.environ["CUDA_VISIBLE_DEVICES"] = ""  # children inherit it: the trainers stay on the CPU
    a.steps, a.seq = a.steps or (2 if a.dry else 20), a.seq or (32 if a.dry else 1024)
    if a.dry: a.docs = min(a.docs, 200)
    from medrepro.core import package_versions, save_json
    from medrepro.models import count_parameters, load_causal_lm, model_provenance, resolve_model_id
    t0 = time.perf_counter()
    res = {"what": "QLoRA continual training, medrepro train_pretrain vs plain transformers Trainer + peft + bitsandbytes; "
                   "tokens/s = batch*seq*steps / trainer.train() seconds; peak GPU memory = torch.cuda.max_memory_allocated "
                   "of each run's own process",
           "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu", "dry": a.dry,
           "steps": a.steps, "seq_len": a.seq, "batch_size": a.batch, "compute": "bf16" if a.device == "cuda" else "fp32",
           "models": {}}
    resolve_model_id("smollm2-135m")  # convert once, outside the timed children
    res["models"]["smollm2-135m"] = {"parameters": count_parameters(load_causal_lm("smollm2-135m")),
                                     "provenance": model_provenance("smollm2-135m"), **compare("smollm2-135m", a)}
    print(json.dumps(res["models"]["smollm2-135m"], default=str)[:600], flush=True)
    with tempfile.TemporaryDirectory() as d:
        n = random_llama(Path(d), LLAMA_DRY if a.dry else LLAMA_1B, "bfloat16" if a.device == "cuda" else "float32")
        name = "llama-random-tiny" if a.dry else "llama-random-1b"
        res["models"][name] = {"parameters": n, **compare(d, a)}
        print(json.dumps(res["models"][name])[:600], flush=True)
    if a.steps_log and Path(a.steps_log).exists():
        res["steps_run"] = [json.loads(l) for l in Path(a.steps_log).read_text().splitlines() if l.strip()]
    res.update(seconds=round(time.perf_counter() - t0, 1), versions=package_versions(), python=platform.python_version())
    save_json(res, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
