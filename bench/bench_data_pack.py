"""Tokenise + pack throughput on generated continual-training text (fast tokenizer, datasets num_proc).

    nice -n 10 .venv/bin/python bench/bench_data_pack.py [--mb 100] [--num-proc 1,2] [--seq 1024] [--out bench/results/data_pack.json]

Generates ~MB megabytes of zh+en medical-looking documents, then times `medrepro.data.format.tokenize_and_pack`
(batched fast tokenisation + in-order packing with per-document position ids) for each num_proc. The size measured
is recorded in the output (bytes, documents, tokens).
"""
from __future__ import annotations
import argparse, json, os, platform, random, sys, time

os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # datasets' worker processes do the parallelism

EN = ("patient presents with fever cough dyspnoea hypertension diabetes insulin metformin aspirin warfarin heparin "
      "myocardial infarction troponin electrocardiogram renal hepatic dose mg daily twice contraindicated pregnancy "
      "infection antibiotic penicillin allergy the of and in is with for a to").split()
ZH = "高血压 糖尿病 胰岛素 阿司匹林 患者 发热 咳嗽 治疗 诊断 心肌梗死 肾功能 肝功能 剂量 每日 禁忌 妊娠 感染 抗生素 青霉素 过敏".split()


def make_text(mb: float, seed: int = 0) -> list[str]:
    "Documents totalling about `mb` megabytes of UTF-8 (70% English, 30% Chinese; long-tailed lengths)."
    rng, docs, size = random.Random(seed), [], 0
    while size < mb * 1e6:
        zh = rng.random() < 0.3
        words = [rng.choice(ZH if zh else EN) for _ in range(max(5, int(rng.lognormvariate(4.5, 0.8))))]
        d = ("" if zh else " ").join(words) + ("。" if zh else ".")
        docs.append(d); size += len(d.encode("utf-8"))
    return docs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0); ap.add_argument("--num-proc", default="1,2")
    ap.add_argument("--seq", type=int, default=1024); ap.add_argument("--model", default="small")
    ap.add_argument("--out", default="bench/results/data_pack.json")
    args = ap.parse_args()
    from datasets import Dataset, disable_caching
    from medrepro.core import package_versions, save_json
    from medrepro.data.format import tokenize_and_pack
    from medrepro.models import load_tokenizer
    disable_caching()  # time the work, not a cache hit
    tok = load_tokenizer(args.model)
    t0 = time.perf_counter(); docs = make_text(args.mb); gen_s = time.perf_counter() - t0
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    ds = Dataset.from_dict({"text": docs}); del docs
    runs = []
    for n in [int(x) for x in args.num_proc.split(",")]:
        t = time.perf_counter()
        rows = tokenize_and_pack(ds, tok, args.seq, num_proc=n if n > 1 else None)
        dt = time.perf_counter() - t
        pad = tok.pad_token_id
        import numpy as np
        real = int(np.count_nonzero(np.asarray(rows.with_format("numpy")["input_ids"]) != pad))  # outside the timing
        runs.append({"num_proc": n, "seconds": round(dt, 2), "mb_per_s": round(nbytes / 1e6 / dt, 2),
                     "tokens_per_s": round(real / dt, 0), "rows": len(rows), "tokens": int(real),
                     "packing_efficiency": round(real / (len(rows) * args.seq), 4)})
        print(runs[-1], flush=True)
    res = {"what": "tokenize_and_pack (fast tokenizer, datasets.map batched, num_proc) on generated text",
           "bytes_measured": nbytes, "mb_measured": round(nbytes / 1e6, 1), "documents": len(ds), "seq_len": args.seq,
           "tokenizer": f"medrepro embedded '{args.model}' byte-level BPE (fast)", "generate_text_s": round(gen_s, 1),
           "cpu_count": os.cpu_count(), "runs": runs, "versions": package_versions(), "python": platform.python_version(),
           "note": "machine shared with other jobs; 2 cores: num_proc > 2 cannot help here"}
    save_json(res, args.out)
    print(json.dumps({k: v for k, v in res.items() if k != "versions"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
