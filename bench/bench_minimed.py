"""MiniMed `mini` tier benchmark: every condition for several seeds, timed; writes bench/results/minimed.json.

Usage: nice .venv/bin/python bench/bench_minimed.py [--seeds 0,1,2] [--root DIR] [--out FILE]

The tables are the params files' `mini:` blocks (`mini_tables()`). A table with `more_seeds` (MMed-IFT's ablation)
also runs its own conditions on further seeds; they are recorded under "more_seeds" and its block is read from them.

The numbers repeat exactly on the same machine with the same --threads (and the base run's `base_threads`). On
another CPU they differ (floating-point kernels round differently, and training from scratch carries that into the
model), by more than a few points on single seeds, and a finding whose interval is narrow can flip: compare a run
with the results file of its own machine. The file records the CPU model and torch's kernel level for that reason;
add what else ran on the machine with --note.

Without --root every step (world, base model, continual training, conditions) runs from scratch in a fresh
temporary folder, so the total time includes the shared steps once. Timings depend on the machine's load: say
what the machine was doing when you quote them (the file records the load average before and after).
"""
import argparse, json, os, platform, sys, tempfile, time
from dataclasses import replace
from pathlib import Path


def cpu_model() -> str:
    "The CPU's model name (Linux /proc/cpuinfo; elsewhere what `platform` knows): results are only comparable on one."
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"): return line.split(":", 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--root", default=None, help="runs folder (reused when it holds finished seeds); default: fresh temp folder")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "minimed.json"), help="results file")
    p.add_argument("--workers", type=int, default=None, help="processes training steps in parallel (default: one per core)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker (1: no OpenMP spinning on busy cores)")
    p.add_argument("--conditions", default="", help="comma-separated subset of MiniConfig.conditions (default: all)")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. what else ran on the machine)")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    torch.set_num_threads(a.threads)
    from medrepro.core import save_json
    from medrepro.minimed_experiments import MiniConfig, mini_block, mini_tables, run_mini, table_run, verdict_text
    seeds = [int(s) for s in a.seeds.split(",")]
    root = Path(a.root) if a.root else Path(tempfile.mkdtemp(prefix="minimed-bench-"))
    os.environ.setdefault("MEDREPRO_HOME", str(root / "home"))  # worlds are built (and timed) inside the run too
    load0, t0 = os.getloadavg(), time.perf_counter()
    cfg = MiniConfig()
    if a.conditions: cfg = replace(cfg, conditions=tuple(a.conditions.split(",")))
    res = run_mini(seeds, cfg, root, workers=a.workers, threads=a.threads)
    s = res["summary"]
    tables = mini_tables()
    # tables whose effect needs more worlds (`more_seeds`): their own conditions on further seeds, timed too
    more = {t: table_run(spec, seeds, cfg, root, shared=res, workers=a.workers, threads=a.threads)
            for t, spec in tables.items() if spec.more_seeds and set(spec.conditions) <= set(cfg.conditions)}
    total = time.perf_counter() - t0
    blocks = {t: mini_block(spec, more[t]["summary"] if t in more else s) for t, spec in tables.items()}
    out = {
        "benchmark": "minimed mini tier: all conditions; the base model once for all seeds, the other shared steps once per seed",
        "seeds": seeds, "seconds_total": round(total, 1),
        "machine": {"cpus": os.cpu_count(), "threads": a.threads, "workers": a.workers or os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "note": a.note},
        "conditions": s,  # per condition and metric: mean, 95% interval and the per-seed values (paired verdicts need them)
        "more_seeds": {t: {"seeds": r["seeds"], "seconds": r["seconds"], "conditions": r["summary"]} for t, r in more.items()},
        "blocks": blocks,  # each table's rows and paired verdicts, read from its own run where it has more seeds
        "per_seed": res["per_seed"], "config": res["config"],
    }
    save_json(out, a.out)
    print(f"{len(seeds)} seeds in {total:.0f} s -> {a.out}")
    for t, b in out["blocks"].items():
        for f in b["findings"]: print(f"  {t}: {f['claim']}: {verdict_text(f)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
