"""Compare two MiniMed results files (bench_minimed.py), e.g. the same code on two machines: verdicts and per-seed gaps.

Usage: .venv/bin/python tools/compare_minimed.py bench/results/minimed.json bench/results/minimed_epyc.json

Prints each finding's verdict in both files (the params files' `mini:` findings, recomputed from each file's
summaries) and, per condition, the largest per-seed gap in medical and general accuracy over the seeds both ran.
Exit status 1 when a verdict differs between the two files.
"""
import argparse, json, sys
from pathlib import Path


def seed_gaps(a: dict, b: dict, metric: str) -> dict[str, float]:
    "condition -> largest |a - b| of `metric` over the seeds both files ran (per_seed values)."
    out: dict[str, float] = {}
    for seed in set(a["per_seed"]) & set(b["per_seed"]):
        for c in set(a["per_seed"][seed]) & set(b["per_seed"][seed]):
            x, y = a["per_seed"][seed][c].get(metric), b["per_seed"][seed][c].get(metric)
            if x is not None and y is not None: out[c] = max(out.get(c, 0.0), abs(x - y))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="first results file")
    p.add_argument("b", help="second results file")
    args = p.parse_args(argv)
    from medrepro.minimed_experiments import mini_block, mini_tables, recorded_summary, verdict_text
    a, b = (json.loads(Path(f).read_text()) for f in (args.a, args.b))
    for f, r in ((args.a, a), (args.b, b)): print(f"{Path(f).name}: {r['machine'].get('cpu_model', 'CPU not recorded')}")
    differ = 0
    for name, t in mini_tables().items():
        va, vb = (mini_block(t, recorded_summary(r, t))["findings"] for r in (a, b))
        for fa, fb in zip(va, vb):
            same = fa["reproduced"] == fb["reproduced"]
            differ += not same
            print(f"{'  ' if same else '!!'} {name}: {fa['claim']}\n     {verdict_text(fa)}\n     {verdict_text(fb)}")
    for metric in ("medical", "general"):
        gaps = seed_gaps(a, b, metric)
        print(f"largest per-seed gap in {metric} accuracy: " + ", ".join(f"{c} {100 * g:.1f}" for c, g in sorted(gaps.items(), key=lambda kv: -kv[1])))
    print(f"{differ} verdict(s) differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
