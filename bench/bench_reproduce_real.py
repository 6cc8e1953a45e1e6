"""Time `medrepro reproduce --tier real` (every table, SmolLM2-135M-Instruct on CPU) against its 20-minute budget.

Writes bench/results/reproduce_real.json: per table the status, seconds and data source (original release or bundled
fixture), the total wall time, and the machine: cores, load average before and after (the development machine is
shared, so a high load average means the seconds are pessimistic).

    python bench/bench_reproduce_real.py [--runs-dir DIR] [--table T ...] [--out FILE]
    python bench/bench_reproduce_real.py --collect PART.json PART.json ... [--out FILE]   # tables run in parts, one file
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 20 * 60  # the real tier's target on 2 CPU cores


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--table", action="append", default=[], help="only these tables (default: all)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "reproduce_real.json"))
    p.add_argument("--collect", nargs="+", default=None, help="merge the JSON files of runs over parts of the tables")
    p.add_argument("--tables-only", action="store_true", help="run nothing: record the tables of an existing --runs-dir")
    p.add_argument("--note", default="", help="with --collect: what a reader must know about how the parts ran")
    a = p.parse_args()
    if a.collect: return collect([json.loads(Path(f).read_text()) for f in a.collect], a.out, a.note)
    runs = Path(a.runs_dir or tempfile.mkdtemp(prefix="medrepro-real-"))
    cmd = [sys.executable, "-c", "import sys; from medrepro.cli import main; sys.exit(main(sys.argv[1:]))", "reproduce", "--tier", "real", "--force", "--runs-dir", str(runs)]
    cmd += [x for t in a.table for x in ("--table", t)]
    load0, t0 = os.getloadavg(), time.time()
    proc = (subprocess.CompletedProcess(cmd, None, "", "") if a.tables_only
            else subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True))
    wall, load1 = time.time() - t0, os.getloadavg()
    tables = {}
    for run in sorted((runs / "real").glob("*/*/run.json")):
        r = json.loads(run.read_text())
        tables[f"{r['paper']}/{r['table']}"] = {"status": r["status"], "seconds": r["seconds"], "error": r.get("error", ""),
                                                 "data_sources": r.get("data_sources", {})}
    sys.path.insert(0, str(ROOT))
    from medrepro.tables import discover_tables
    wanted = [s.key for s in discover_tables() if "real" in s.tiers and (not a.table or s.key in a.table or s.table in a.table)]
    out = {"command": " ".join(["medrepro"] + cmd[3:]), "exit_code": proc.returncode,
           "total_seconds": None if a.tables_only else round(wall, 1),
           "tables_seconds": round(sum(t["seconds"] for t in tables.values()), 1), "budget_seconds": BUDGET_S,
           "within_budget": None if a.tables_only else (wall <= BUDGET_S and not (set(wanted) - set(tables))), "tables": tables,
           "not_run": sorted(set(wanted) - set(tables)),
           "statuses": {s: sum(t["status"] == s for t in tables.values()) for s in {t["status"] for t in tables.values()}},
           "machine": {"cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                       "torch_threads": os.environ.get("OMP_NUM_THREADS", "default (one per core)"),
                       "load_average_before": None if a.tables_only else [round(x, 2) for x in load0],
                       "load_average_after": None if a.tables_only else [round(x, 2) for x in load1],
                       "shared": "the development machine is shared with other jobs; a load average above the core count "
                                 "means the seconds are pessimistic"},
           "note": "fixture numbers show the plumbing works, not a finding", "log_tail": proc.stderr[-3000:]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: out[k] for k in ("total_seconds", "within_budget", "statuses")}), f"-> {a.out}")
    return proc.returncode or 0


def collect(parts: list[dict], out_file: str, note: str = "") -> int:
    "One result file from runs over disjoint parts of the tables (e.g. two processes sharing the machine)."
    tables = {k: v for p in parts for k, v in p["tables"].items()}
    done = set(tables)
    out = {"parts": [{k: p[k] for k in ("command", "exit_code", "total_seconds", "machine", "not_run") if k in p} for p in parts],
           "tables": tables, "tables_seconds": round(sum(t["seconds"] for t in tables.values()), 1),
           "budget_seconds": BUDGET_S, "not_run": sorted({t for p in parts for t in p.get("not_run", [])} - done),
           "statuses": {s: sum(t["status"] == s for t in tables.values()) for s in {t["status"] for t in tables.values()}},
           "note": "tables_seconds is the sum of the tables' own seconds, i.e. the tier run one table after another; "
                   "the parts ran at the same time on the shared machine. Fixture numbers show the plumbing works, not a finding",
           "how_it_ran": note}
    out["within_budget"] = out["tables_seconds"] <= BUDGET_S and not out["not_run"]
    Path(out_file).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: out[k] for k in ("tables_seconds", "within_budget", "statuses", "not_run")}), f"-> {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
