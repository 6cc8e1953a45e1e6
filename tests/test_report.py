"""The results format and the HTML/Markdown report."""
import csv, html, re
from pathlib import Path

import pytest

from medrepro.cli import main
from medrepro.core import MedreproError, load_json, save_json
from medrepro.report import Results, collect_entries, pct, table_rows, write_report, TIER_NOTES

PUB = {"source": "Paper, Table 9", "rows": {"Model A": {"acc": 40.0, "f1": 38.5}, "Model <B>": {"acc": 61.6}}}


def make_results(d: Path, **kw) -> Results:
    r = Results("p1", "t1", "smoke", d / "p1" / "t1", published=PUB, title="A table")
    r.add("Model A", "acc", pct(0.4567), ci=(30.0, 55.5), n=50, protocol="loglik letters", extractor="-", **kw)
    return r


def test_pct_and_nan():
    assert pct(0.4567) == 45.67 and pct(None) is None and pct(float("nan")) is None and pct(1) == 100.0


def test_results_look_up_published_and_compute_delta(tmp_path):
    r = make_results(tmp_path)
    row = r.rows[0]
    assert row.published == 40.0 and row.delta == pytest.approx(5.67)
    assert r.add("Model A", "acc_per_letter", 10.0).published is None  # not in the paper: no number invented
    assert r.add("Unknown model", "acc", 1.0, published=2.0).delta == -1.0
    data = load_json(r.save())
    assert data["schema"] == 1 and data["published_source"] == "Paper, Table 9"
    assert data["rows"][0] == {**data["rows"][0], "row": "Model A", "value": 45.67, "ci_low": 30.0, "ci_high": 55.5, "n": 50}
    with open(tmp_path / "p1" / "t1" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["row"] == "Model A" and float(rows[0]["delta"]) == pytest.approx(5.67)


def test_unreproduced_published_rows_are_listed(tmp_path):
    r = make_results(tmp_path); r.save()
    e = collect_entries(tmp_path, [{"paper": "p1", "table": "t1", "published": PUB}])[0]
    rows = table_rows(e)
    assert [(x["row"], x["metric"], x["value"]) for x in rows] == [
        ("Model A", "acc", 45.67), ("Model A", "f1", None), ("Model <B>", "acc", None)]


def test_report_states_ok_failed_and_not_run_and_embeds_figures(tmp_path):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    r = make_results(tmp_path)
    fig, ax = plt.subplots(); ax.plot([1, 2]); r.add_figure(fig, "fig.png"); plt.close(fig)
    r.missing_part("the 13B row needs a GPU"); r.note("smoke numbers are noise")
    r.save()
    (tmp_path / "p1" / "t1" / "nb.ipynb").write_text("{}")
    save_json({"status": "ok", "seconds": 3.25, "git_sha": "abcdef0123456", "executed_notebook": "nb.ipynb"}, tmp_path / "p1" / "t1" / "run.json")
    save_json({"status": "failed", "seconds": 1.0, "error": "cell 3: ValueError: <bad & worse>"}, tmp_path / "p1" / "t2" / "run.json")
    tables = [{"paper": "p1", "table": "t1", "title": "A table", "published": PUB, "deviations": ["fewer questions"]},
              {"paper": "p1", "table": "t2", "title": "Broken"}, {"paper": "p2", "table": "t9", "title": "Never run", "published": PUB}]
    h, m = write_report(tmp_path, "smoke", tables)
    page = h.read_text()
    assert TIER_NOTES["smoke"][:40] in page and "1 of 3 tables ran successfully" in page
    assert page.count("data:image/png;base64,") == 1 and 'href="p1/t1/nb.ipynb"' in page
    assert "ValueError: &lt;bad &amp; worse&gt;" in page and "<bad" not in page  # escaped
    assert "Model &lt;B&gt;" in page and "+5.7" in page and "[30.0, 55.5]" in page
    assert "run time: 3.2 s" in page
    assert "the 13B row needs a GPU" in page and "fewer questions" in page and ">not run<" in page
    assert not re.search(r'src="(?!data:)', page)  # self-contained: no external images
    md = m.read_text()
    assert "| p1/t1 | A table | ok |" in md and "![fig.png](p1/t1/fig.png)" in md and "Model A | acc | 40.0 | 45.7 |" in md


def test_empty_runs_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MedreproError, match="nothing to report"):
        write_report(tmp_path, "full")


def test_report_command(tmp_path, capsys):
    make_results(tmp_path / "smoke").save()
    save_json({"status": "ok", "seconds": 1.0}, tmp_path / "smoke" / "p1" / "t1" / "run.json")
    fx = Path(__file__).resolve().parent / "fixtures" / "paper"
    assert main(["report", "--tier", "smoke", "--runs-dir", str(tmp_path), "--params-dir", str(fx / "params"), "--nbs-dir", str(fx / "nbs")]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (tmp_path / "smoke" / "report.html").read_text()
    assert "p1 / t1" in page and "demo / ok" in page  # a run found on disk and a known table not run
