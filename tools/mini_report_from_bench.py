"""Render the `mini` tier's report from the recorded benchmark (bench/results/minimed.json), without training.

Usage: .venv/bin/python tools/mini_report_from_bench.py [--runs-dir /tmp/mini_from_bench] [--bench bench/results/minimed.json]

Each table's rows and findings go through the code `99b_minimed_table.ipynb` uses (`mini_block`, `record_block`),
from the summaries the benchmark recorded, so the page shows what `medrepro reproduce --tier mini` would show for the
same numbers in seconds instead of minutes. Each run.json says where its numbers came from.
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", default="/tmp/mini_from_bench", help="folder to write <tier>/<paper>/<table> runs and the report into")
    p.add_argument("--bench", default=str(ROOT / "bench" / "results" / "minimed.json"), help="bench_minimed.py results file")
    a = p.parse_args(argv)
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from medrepro.core import save_json
    from medrepro.minimed_experiments import mini_block, mini_tables, plot_conditions, record_block, recorded_summary
    from medrepro.paper import discover_tables, report_tables, table_results
    from medrepro.report import write_report
    bench = json.loads(Path(a.bench).read_text())
    tier_dir = Path(a.runs_dir) / "mini"
    for name, t in mini_tables().items():
        paper, table = name.split("/")
        summary = recorded_summary(bench, t)
        res = table_results(paper, table, "mini", tier_dir / paper / table)
        block = mini_block(t, summary)
        n = summary[t.findings[0].better]["n_seeds"]
        record_block(res, t, block, n)
        ax = plot_conditions(summary, [c for _, c in t.rows], t.findings[0].metric, title=f"MiniMed: {t.findings[0].claim}")
        res.add_figure(ax.figure, "minimed.png"); plt.close(ax.figure)
        res.note(f"Read from {Path(a.bench).name} (recorded {bench['seconds_total']:.0f} s run, machine: {bench['machine'].get('note', '')}); no notebook was executed.")
        res.save()
        save_json({"status": "ok", "seconds": None, "source": str(a.bench)}, tier_dir / paper / table / "run.json")
    h, m = write_report(tier_dir, "mini", report_tables(discover_tables()))
    print(h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
