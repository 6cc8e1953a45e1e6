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
    assert "| p1/t1 | A table | ok |" in md and "![fig.png](p1/t1/fig.png)" in md
    # a pivot: one line per paper row, published | ours [CI] | delta per metric; the protocol once, above it
    assert "| row | acc: paper | acc: ours | acc: delta | f1: paper |" in md  # f1: nobody measured it, one column
    assert "| Model A | 40.0 | 45.7 [30.0, 55.5] | +5.7 | 38.5 |" in md
    assert md.count("loglik letters") == 1 and page.count("loglik letters") == 1
    assert "The paper's rows not reproduced here" in page and "| row | acc |\n|---|---|\n| Model <B> | 61.6 |" in md


def _finding_run(d: Path, verdicts: list) -> list:
    r = make_results(d)
    r.tier = "mini"
    for i, v in enumerate(verdicts):
        r.add_finding(f"claim {i}", v, effect=-17.0 if v is False else 26.3, ci=(-24.8, -9.2) if v is False else (15.1, 37.6),
                      n=3, positive=0 if v is False else 3, test="a minus b")
    r.save()
    save_json({"status": "ok", "seconds": 1.0}, d / "p1" / "t1" / "run.json")
    return [{"paper": "p1", "table": "t1", "title": "A table", "published": PUB, "claim": "the table's claim"},
            {"paper": "p2", "table": "t2", "title": "Untested", "claim": "a claim nobody tested"}]


def test_a_not_reproduced_finding_is_never_counted_as_zero(tmp_path):
    # the summary once said "parts not reproduced: 0" beside a note saying a finding was NOT reproduced
    from medrepro.report import SUMMARY_COLUMNS, _summary_rows, finding_counts
    tables = _finding_run(tmp_path, [True, False])
    entries = collect_entries(tmp_path, tables)
    assert finding_counts(entries[0]) == {"reproduced": 1, "NOT reproduced": 1, "undetermined": 0}
    row = dict(zip(SUMMARY_COLUMNS, _summary_rows(entries)[0]))
    assert row["findings NOT reproduced"] == "1" and row["findings reproduced"] == "1"
    untested = dict(zip(SUMMARY_COLUMNS, _summary_rows(entries)[1]))
    assert untested["findings NOT reproduced"] == "-"  # nothing tested is not "0 failed"
    h, m = write_report(tmp_path, "mini", tables)
    page, md = h.read_text(), m.read_text()
    assert "Findings: 1 reproduced, 1 NOT reproduced, 0 undetermined, 1 not tested (of 3 claims)" in page
    assert page.index("<h2>Findings</h2>") < page.index("<h2>Tables</h2>")  # the panel opens the report
    assert "| p1/t1 | claim 1 | NOT reproduced | -17.0 [-24.8, -9.2], 0/3 seeds | mini |" in md
    assert "| p2/t2 | a claim nobody tested | not run |  | mini |" in md
    assert "| p1/t1 | A table | ok | 1.0 s | 1 | 1 | 1 | 0 |" in md


def test_undetermined_findings_are_counted_apart(tmp_path):
    from medrepro.report import finding_counts
    entries = collect_entries(tmp_path, _finding_run(tmp_path, [None]))
    assert finding_counts(entries[0]) == {"reproduced": 0, "NOT reproduced": 0, "undetermined": 1}
    assert "undetermined" in write_report(tmp_path, "mini", [])[0].read_text()


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


def test_every_tier_has_a_note_for_readers():
    """A report of any tier opens with what its numbers can and cannot show."""
    from medrepro.core import TIERS
    from medrepro.report import TIER_NOTES
    assert set(TIERS) <= set(TIER_NOTES), set(TIERS) - set(TIER_NOTES)
