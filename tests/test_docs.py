"""The documentation site (tools/docs.py): a build of two notebooks, checked on the built pages."""
import importlib, json, re, subprocess, sys
from pathlib import Path
import pytest

from tool_loader import load_tool

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ["20_samplers", "93_guo2023_figure1"]  # a library notebook and a paper notebook, both drawing a figure


docs = load_tool("docs")  # registered by name: the executor's worker processes look its functions up by module name


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    dest, runs = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("runs")
    (runs / "mini").mkdir(); (runs / "mini" / "report.html").write_text("<html><body><h1>REPORT-MARKER</h1></body></html>")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "docs.py"), "--dest", str(dest), "--runs", str(runs), "--only", *SUBSET],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return dest / "html"


def _draws_figure(nb: Path) -> bool:
    "Whether a cell that the docs build runs calls matplotlib or a plot_ helper."
    flags = docs.skip_flags()
    for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and not set(docs.directives(src)) & flags and re.search(r"\bplt\.|\.plot\(|\bplot_\w*\(", src):
            return True
    return False


def test_every_notebook_has_a_page_with_outputs(site):
    for stem in SUBSET:
        page = (site / "nbs" / f"{stem}.html").read_text(encoding="utf-8")
        assert "cell_output" in page, f"{stem}: no outputs on its page"
    assert "Samplers" in (site / "index.html").read_text(encoding="utf-8")  # the sidebar group


def test_figures_appear_where_notebooks_draw_them(site):
    drawn = [s for s in SUBSET if _draws_figure(ROOT / "nbs" / f"{s}.ipynb")]
    assert drawn, "the subset should contain a notebook that draws a figure"
    for stem in drawn:
        page = (site / "nbs" / f"{stem}.html").read_text(encoding="utf-8")
        imgs = re.findall(r'<img[^>]+src="\.\./(_images/[^"]+\.png)"', page)
        assert imgs, f"{stem} draws a figure but its page shows none"
        assert all((site / i).stat().st_size > 1000 for i in imgs)


def test_paper_page_links_its_params_file(site):
    page = (site / "nbs" / "93_guo2023_figure1.html").read_text(encoding="utf-8")
    assert "../params/guo2023/figure1.html" in page
    assert "guo2023" in (site / "params" / "guo2023" / "figure1.html").read_text(encoding="utf-8")


def test_api_pages_exist_with_docments_and_notebook_links(site):
    modules = {docs.default_exp(docs.read_nb(p)) for p in docs.notebooks()} - {None}
    assert modules
    for m in modules: assert (site / "api" / f"medrepro.{m}.html").exists(), m
    for m in modules:  # every public name has an entry
        page, mod = (site / "api" / f"medrepro.{m}.html").read_text(encoding="utf-8"), importlib.import_module(f"medrepro.{m}")
        missing = [n for n in mod.__all__ if f'id="medrepro.{m}.{n}"' not in page]
        assert not missing, f"medrepro.{m}: no API entry for {missing}"
    api = (site / "api" / "medrepro.samplers.html").read_text(encoding="utf-8")
    import medrepro.samplers as s
    from fastcore.docments import docments
    comment = docments(s.OrderSampler.__init__)["drop_last"]
    assert comment and comment.split(":")[-1].strip()[:30] in api  # the argument's comment is on the API page
    href = "../nbs/20_samplers.html#medrepro.samplers.OrderSampler"
    assert href in api
    assert 'id="medrepro.samplers.OrderSampler"' in (site / "nbs" / "20_samplers.html").read_text(encoding="utf-8")


def test_latest_report_is_embedded(site):
    page = (site / "report.html").read_text(encoding="utf-8")
    assert 'src="reports/mini.html"' in page and "runs/mini/report.html" in page
    assert "REPORT-MARKER" in (site / "reports" / "mini.html").read_text(encoding="utf-8")
    assert 'href="report.html"' in (site / "index.html").read_text(encoding="utf-8")  # in the sidebar


def test_smoke_run_outputs_are_used_only_when_current(tmp_path):
    from medrepro.tables import discover_tables
    specs = {s.notebook.name: s for s in discover_tables()}
    src = ROOT / "nbs" / "93_guo2023_figure1.ipynb"
    out = tmp_path / "smoke" / "guo2023" / "figure1"; out.mkdir(parents=True)
    nb = json.loads(src.read_text(encoding="utf-8"))
    (out / src.name).write_text(json.dumps(nb))
    lib = docs.library_fingerprint()
    run = {"status": "ok", "library_fingerprint": lib, "paper": "guo2023", "table": "figure1"}
    (out / "run.json").write_text(json.dumps(run))
    assert docs.smoke_run(src, specs, lib, tmp_path)[0] == out / src.name
    assert docs.smoke_run(src, specs, "another-library", tmp_path) is None
    (out / "run.json").write_text(json.dumps({**run, "status": "failed"}))
    assert docs.smoke_run(src, specs, lib, tmp_path) is None
    (out / "run.json").write_text(json.dumps(run))
    next(c for c in nb["cells"] if c["cell_type"] == "code")["source"] = "changed = True"
    (out / src.name).write_text(json.dumps(nb))
    assert docs.smoke_run(src, specs, lib, tmp_path) is None  # the notebook changed since that run


def test_run_figures_close_a_page_that_shows_none_inline(tmp_path):
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    run = tmp_path / "run"; run.mkdir()
    fig, ax = plt.subplots(); ax.plot([0, 1]); fig.savefig(run / "curve.png"); plt.close(fig)
    (run / "results.json").write_text(json.dumps({"figures": ["curve.png", "gone.png"]}))
    nb = {"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "outputs": []}], "metadata": {}}
    (run / "93_x.ipynb").write_text(json.dumps(nb))
    keep = set()
    cells = docs.run_figures(run / "93_x.ipynb", nb, tmp_path / "src" / "_run_figures" / "93_x", keep)
    assert len(cells) == 1 and "](_run_figures/93_x/curve.png)" in cells[0]["source"] and "gone.png" not in cells[0]["source"]
    assert keep == {tmp_path / "src" / "_run_figures" / "93_x" / "curve.png"}
    nb["cells"][0]["outputs"] = [{"output_type": "display_data", "data": {"image/png": "..."}}]
    assert docs.run_figures(run / "93_x.ipynb", nb, tmp_path / "f", set()) == []  # figures inline already


def _notebook(tmp: Path, cells: list[str]) -> Path:
    nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
                    for i, s in enumerate(cells)],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp / "80_broken.ipynb"; p.write_text(json.dumps(nb)); return p


def test_failing_notebook_names_notebook_and_cell(tmp_path):
    nb = _notebook(tmp_path, ["x = 1", "#| slow\nraise RuntimeError('slow cells are skipped')", "1 / 0"])
    with pytest.raises(docs.DocsError) as e:
        docs.execute_all([nb], tmp_path / "cache", 1, 120, {}, log=lambda s: None)
    msg = str(e.value)
    assert "80_broken.ipynb" in msg and "cell 3" in msg and "ZeroDivisionError" in msg
    assert "skipped" not in msg  # the slow cell did not run
    assert not (tmp_path / "cache" / "80_broken.ipynb").exists()  # nothing cached from a failed run
