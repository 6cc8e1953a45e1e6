"""Benchmark: HuatuoGPT-II unification of 1,000 documents against the loopback OpenAI-compatible server.

The server (tests/llm_server.py, the deterministic `mock` responder) runs in its own process and answers every
request after 50 ms of injected latency, standing in for a remote API. Runs of the same 1,000 documents (two calls
each, so 2,000 successful requests in every uncached run):

1. concurrency 1, empty cache;
2. concurrency 16, empty cache;
3. concurrency 16 again into a fresh output file, with run 2's cache: every reply comes from the cache;
4. concurrency 16 against a second server that misbehaves: 5% 429 (Retry-After 0.05 s), 5% 500, 3% garbage (HTML
   instead of JSON), 1% hangs (3 s, past the client's 2 s timeout); fresh cache, the CLI's retry defaults;
5. run 4 with a first retry wait of 0.2 s instead of the CLI's 1 s (`--retry-base-delay 0.2`, as in the trials
   that motivated this benchmark): what is left of the ratio is then the extra requests themselves;
6. the same faults with the staged scheduler (all question calls of a chunk, then all answer calls, one chunk at a
   time): the obvious alternative, measured in the same session.

`fault_ratio` = run 4 / run 2: what the faults cost in wall time for the same number of successful requests
(`fault_ratio_fast_retry` = run 5 / run 2).
Each run's output is checked for lost and duplicated documents. Writes bench/results/unify.json.
Run it niced: `nice .venv/bin/python bench/bench_unify.py [--docs 1000] [--latency 0.05]`.
"""
from __future__ import annotations
import argparse, json, os, platform, subprocess, sys, tempfile, time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from medrepro.core import run_metadata, save_json, write_jsonl  # noqa: E402
from medrepro.data.llm import OpenAIBackend  # noqa: E402
from medrepro.core import read_jsonl  # noqa: E402
from medrepro.data.pipeline import read_inputs, rejected_path, run_pipeline  # noqa: E402
from medrepro.data.unify import UnifyConfig, unify_documents  # noqa: E402

FAULTS = {"429": 0.05, "500": 0.05, "nonjson": 0.03, "timeout": 0.01}  # the fault mix of runs 4 and 5
HANG_S, TIMEOUT_S = 3.0, 2.0


def make_docs(n: int, path: Path) -> None:
    "n short documents, alternating English and Chinese, over the five source types."
    src = ["web", "literature", "encyclopedia", "books", "sft"]
    rows = []
    for i in range(n):
        text = (f"Drug X{i} lowers blood pressure in adults with stage {i % 3 + 1} hypertension. It is taken once daily "
                f"with food, and the dose is {5 * (i % 4 + 1)} mg." if i % 2 == 0 else
                f"药物{i}可降低{i % 3 + 1}期高血压成人患者的血压。每日随餐服用一次，剂量为{5 * (i % 4 + 1)}毫克。")
        rows.append({"id": f"doc{i:05d}", "text": text, "source": src[i % 5]})
    write_jsonl(rows, path)


def check(out: Path, ids: list[str]) -> tuple[int, int]:
    "(lost, duplicated) documents in an output."
    got = [r["meta"]["input_id"] for r in read_jsonl(out)] if out.exists() else []
    if rejected_path(out).exists(): got += [r["input_id"] for r in read_jsonl(rejected_path(out))]
    c = Counter(got)
    return len(set(ids) - set(c)), sum(n - 1 for n in c.values() if n > 1)


def run(docs, url: str, out: Path, cache: Path, concurrency: int, timeout: float = 10, staged: bool = False,
        base_delay: float = 1.0) -> dict:
    be = OpenAIBackend("bench-model", url, api_key_env=None, concurrency=concurrency, cache=cache, timeout=timeout,
                       base_delay=base_delay)
    if staged: be.independent_requests = False  # chains in lock step, one chunk at a time: the staged scheduler
    t = time.perf_counter()
    s = run_pipeline(docs, lambda ch: unify_documents(ch, be, UnifyConfig()), out, backend=be,
                     chunk_size=max(16, 4 * concurrency), ahead=1 if staged else None, progress=False)
    dt = time.perf_counter() - t
    be.close()
    lost, dup = check(out, [d.id for d in docs])
    return {"seconds": round(dt, 3), "accepted": s.accepted, "rejected": sum(s.rejected.values()), "failed": s.failed,
            "requests": s.usage["requests"], "succeeded_requests": s.usage["succeeded"],
            "transient_failures": s.usage["transient"], "cached_replies": s.cached,
            "lost": lost, "duplicated": dup}


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "llm_server.py"), *args], stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "unify.json"))
    ap.add_argument("--retry-base-delay", type=float, default=1.0, help="first backoff wait of the faulty runs (the CLI default)")
    ap.add_argument("--skip-serial", action="store_true", help="reuse the recorded concurrency-1 run (it takes ~2 minutes)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_unify_"))
    make_docs(a.docs, tmp / "docs.jsonl")
    docs = read_inputs(tmp / "docs.jsonl", "jsonl")
    server, url = start_server(str(a.latency))
    faulty, furl = start_server(str(a.latency), "--faults", ",".join(f"{k}={v}" for k, v in FAULTS.items()), "--hang", str(HANG_S))
    try:
        r1 = run(docs, url, tmp / "c1.jsonl", tmp / "cache1.sqlite", 1) if not a.skip_serial else None
        print("concurrency 1:", r1, flush=True)
        r16 = run(docs, url, tmp / "c16.jsonl", tmp / "cache16.sqlite", 16)
        print("concurrency 16:", r16, flush=True)
        rc = run(docs, url, tmp / "cached.jsonl", tmp / "cache16.sqlite", 16)
        print("cached rerun:", rc, flush=True)
        rf = run(docs, furl, tmp / "faulty.jsonl", tmp / "cache_f.sqlite", 16, timeout=TIMEOUT_S, base_delay=a.retry_base_delay)
        print("faults, pipelined:", rf, flush=True)
        rq = run(docs, furl, tmp / "faulty_fast.jsonl", tmp / "cache_q.sqlite", 16, timeout=TIMEOUT_S, base_delay=0.2)
        print("faults, pipelined, 0.2 s retry wait:", rq, flush=True)
        rs = run(docs, furl, tmp / "staged.jsonl", tmp / "cache_s.sqlite", 16, timeout=TIMEOUT_S, staged=True,
                 base_delay=a.retry_base_delay)
        print("faults, staged:", rs, flush=True)
    finally:
        for p in (server, faulty): p.terminate(); p.wait()
    if r1 is None:  # --skip-serial: keep the recorded concurrency-1 run
        r1 = json.loads(Path(a.out).read_text())["runs"]["concurrency_1"]
    res = {
        "documents": a.docs, "calls_per_document": 2, "injected_latency_s": a.latency,
        "seconds_concurrency_1": r1["seconds"], "seconds_concurrency_16": r16["seconds"],
        "speedup": round(r1["seconds"] / r16["seconds"], 2),
        "seconds_cached_rerun": rc["seconds"],
        "cache_speedup": round(r1["seconds"] / rc["seconds"], 1),   # uncached concurrency-1 run / cached rerun
        "cache_speedup_vs_concurrency_16": round(r16["seconds"] / rc["seconds"], 1),
        "cached_rerun_requests": rc["requests"],
        "faults": {**FAULTS, "hang_s": HANG_S, "client_timeout_s": TIMEOUT_S, "retry_base_delay_s": a.retry_base_delay},
        "seconds_faulty": rf["seconds"], "seconds_faulty_fast_retry": rq["seconds"], "seconds_faulty_staged": rs["seconds"],
        "fault_ratio": round(rf["seconds"] / r16["seconds"], 3),
        "fault_ratio_fast_retry": round(rq["seconds"] / r16["seconds"], 3),
        "fault_ratio_staged": round(rs["seconds"] / r16["seconds"], 3),
        "fault_ratio_target": 1.3,
        "lost": sum(r["lost"] for r in (r1, r16, rc, rf, rq, rs)), "duplicated": sum(r["duplicated"] for r in (r1, r16, rc, rf, rq, rs)),
        "runs": {"concurrency_1": r1, "concurrency_16": r16, "cached_rerun": rc, "faulty": rf, "faulty_fast_retry": rq,
                 "faulty_staged": rs},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "platform": platform.platform()},
        "definitions": {"speedup": "seconds_concurrency_1 / seconds_concurrency_16",
                        "cache_speedup": "seconds_concurrency_1 / seconds_cached_rerun (same 1,000 documents, all replies cached)",
                        "fault_ratio": "seconds_faulty / seconds_concurrency_16: same documents, same 2,000 successful requests, "
                                       "concurrency 16, the fault mix above (pipelined chains, overlapping chunks)",
                        "fault_ratio_fast_retry": "the same with --retry-base-delay 0.2",
                        "fault_ratio_staged": "the same with the staged scheduler (question calls, then answer calls, chunk by chunk)",
                        "lost": "input documents missing from the output (accepted + rejected files), summed over the runs",
                        "duplicated": "extra occurrences of a document in the output, summed over the runs"},
        "run": {k: v for k, v in run_metadata({"docs": a.docs, "latency": a.latency}).items() if k in ("git_sha", "git_dirty", "time_utc", "versions", "python")},
    }
    save_json(res, a.out)
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
