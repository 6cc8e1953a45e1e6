"""Build the documentation site: every notebook executed with its outputs, an API reference, static HTML, offline.

`python tools/docs.py` (or `./run.sh docs`) writes the site to _docs/html/index.html. Three steps:
1. execute the notebooks (two at a time) into _docs/cache, skipping cells flagged like nbdev_test skips them;
   a notebook is re-run only when its code or the library changed, so a rebuild with nothing changed takes seconds;
2. stage the Sphinx sources in _docs/src: home page from the README, one page per notebook, parameter files,
   the latest report, the API reference (one page per module);
3. run Sphinx (myst-nb renders the notebooks, autodoc the API) with docs/conf.py.
docs/site.md explains the choices.
"""
from __future__ import annotations
import argparse, ast, configparser, hashlib, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout's medrepro, whatever the venv's editable install points at

GROUPS = {"0": "Core", "1": "Data", "2": "Samplers", "3": "Models and training", "4": "Evaluation",
          "5": "Report and driver", "6": "Report and driver", "7": "MiniMed", "9": "Papers"}
SKIP_TAG = "skip-execution"  # nbclient leaves cells with this tag unexecuted
HIDE = {"hide": "remove-cell", "echo: false": "remove-input", "output: false": "remove-output"}
# stderr lines about the machine, not the notebook (no ipywidgets, no optional kernels, a deprecation inside
# transformers, jupyter's transport): left off the pages; everything else on stderr stays
NOISE = re.compile(r"TqdmWarning: IProgress not found|Failed to load CPU gemm_4bit_forward|"
                   r"transformers/\S+\.py:\d+: FutureWarning|\[IPKernelApp\] WARNING")


class DocsError(Exception): pass


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


def skip_flags() -> set[str]:
    "Cell flags that nbdev_test skips (settings.ini tst_flags); the docs build skips the same cells."
    return set(settings().get("tst_flags", "").split())


def directives(src: str) -> list[str]:
    "The `#| ...` lines at the top of a cell, without the marker."
    out = []
    for line in src.splitlines():
        if line.startswith("#|"): out.append(line[2:].strip())
        elif line.strip(): break
    return out


def strip_directives(src: str) -> str:
    lines = src.splitlines(); i = 0
    while i < len(lines) and (lines[i].startswith("#|") or not lines[i].strip()): i += 1
    return "\n".join(lines[i:])


def group_of(stem: str) -> str: return GROUPS.get(stem[:1], "Other")


def notebooks(only: list[str] | None = None) -> list[Path]:
    "The numbered notebooks of nbs/, in numbered order; `only` keeps the stems (or prefixes) named."
    nbs = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if re.match(r"\d\d", p.name))
    if only:
        nbs = [p for p in nbs if any(p.stem == o or p.stem.startswith(o) for o in only)]
        missing = [o for o in only if not any(p.stem == o or p.stem.startswith(o) for p in nbs)]
        if missing: raise DocsError(f"--only: no notebook in nbs/ matches {', '.join(missing)}")
    return nbs


def read_nb(p: Path) -> dict: return json.loads(p.read_text(encoding="utf-8"))


def write_if_changed(p: Path, text: str) -> None:
    "Leave unchanged files alone so Sphinx re-reads only what changed."
    if p.exists() and p.read_text(encoding="utf-8") == text: return
    p.parent.mkdir(parents=True, exist_ok=True); p.write_text(text, encoding="utf-8")


def library_fingerprint() -> str:
    from medrepro.paper import library_fingerprint as fp
    return fp()


def code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


# ---------- 1. execution ----------

def prepare(nb: dict, flags: set[str]) -> dict:
    "Tag the cells nbdev_test would skip so the executor skips them too."
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        d = directives("".join(c["source"]))
        tags = c.setdefault("metadata", {}).setdefault("tags", [])
        if any(x in flags for x in d) or "eval: false" in d:
            if SKIP_TAG not in tags: tags.append(SKIP_TAG)
        c["outputs"], c["execution_count"] = [], None
    return nb


def exec_key(nb: dict, lib: str) -> str:
    src = json.dumps([(c["source"], c.get("metadata", {}).get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"])
    return hashlib.sha256((src + lib).encode()).hexdigest()[:16]


def _first_error(nb: dict) -> tuple[int, dict, dict] | None:
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error": return i, c, o
    return None


def execute_one(src: str, dest: str, key: str, timeout: int) -> tuple[str, float, str]:
    "Run one notebook in a fresh kernel (cwd nbs/, like nbdev_test); return (name, seconds, error or '')."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as outputs, not Agg's nothing
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"): os.environ[k] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false"); os.environ.setdefault("TQDM_DISABLE", "1")
    name, t0 = Path(src).name, time.time()
    nb = nbformat.reads(json.dumps(prepare(read_nb(Path(src)), skip_flags())), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "nbs")}})
    err = ""
    try: client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as e:
        hit = _first_error(nb)
        if hit:
            i, cell, o = hit
            first = next((l for l in strip_directives("".join(cell["source"])).splitlines() if l.strip()), "")
            err = f"nbs/{name}: cell {i + 1} (id {cell.get('id', '?')}) failed: {o['ename']}: {o['evalue']}\n    > {first}"
        else: err = f"nbs/{name}: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    secs = time.time() - t0
    if not err:
        nb.metadata["medrepro_docs"] = {"key": key, "seconds": round(secs, 1), "source": f"executed at its defaults by tools/docs.py"}
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
    return name, secs, err


def smoke_run(p: Path, specs: dict, lib: str, runs: Path) -> tuple[Path, dict] | None:
    "The executed notebook of a paper notebook's smoke-tier run, if it is current (same code, same library)."
    spec = specs.get(p.name)
    if spec is None: return None
    out = runs / "smoke" / spec.paper / spec.table
    run_f, nb_f = out / "run.json", out / p.name
    if not (run_f.exists() and nb_f.exists()): return None
    run = json.loads(run_f.read_text(encoding="utf-8"))
    if run.get("status") != "ok" or run.get("library_fingerprint") != lib: return None
    if code_cells(read_nb(nb_f)) != code_cells(read_nb(p)): return None
    return nb_f, run


def execute_all(nbs: list[Path], cache: Path, jobs: int, timeout: int, specs: dict, log=print,
                runs: Path = ROOT / "runs", force: bool = False) -> dict[str, Path]:
    "Executed notebook per stem: the cached one when its key matches, a current smoke run, or a fresh execution."
    lib, flags = library_fingerprint(), skip_flags()
    done, todo = {}, []
    for p in nbs:
        run = None if force else smoke_run(p, specs, lib, runs)
        if run: done[p.stem] = run[0]; continue
        key = exec_key(prepare(read_nb(p), flags), lib)
        dest = cache / f"{p.stem}.ipynb"
        if not force and dest.exists() and read_nb(dest).get("metadata", {}).get("medrepro_docs", {}).get("key") == key:
            done[p.stem] = dest
        else: todo.append((p, dest, key))
    if todo: log(f"[docs] executing {len(todo)} notebook(s), {jobs} at a time ({len(done)} unchanged)")
    errors = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
        futs = {ex.submit(execute_one, str(p), str(dest), key, timeout): (p, dest) for p, dest, key in todo}
        for f in as_completed(futs):
            (p, dest), (name, secs, err) = futs[f], f.result()
            if err: errors.append(err); log(f"[docs] FAILED {err}")
            else: done[p.stem] = dest; log(f"[docs]   {name}: {secs:.0f} s")
    if errors: raise DocsError(f"{len(errors)} notebook(s) failed:\n" + "\n".join(errors))
    return done


# ---------- 2. staging ----------

def _defined_names(src: str) -> list[str]:
    "Top-level names an export cell defines; `@patch def f(self: C)` defines C.f."
    try: tree = ast.parse(strip_directives(src))
    except SyntaxError: return []
    names = []
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            patched = any(getattr(d, "id", getattr(d, "attr", "")) == "patch" for d in getattr(n, "decorator_list", []))
            if patched and n.args.args and isinstance(n.args.args[0].annotation, ast.Name):
                names.append(f"{n.args.args[0].annotation.id}.{n.name}")
            else: names.append(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                names += [e.id for e in ast.walk(t) if isinstance(e, ast.Name)]
    return names


def default_exp(nb: dict) -> str | None:
    for c in nb["cells"]:
        for d in directives("".join(c["source"])) if c["cell_type"] == "code" else []:
            if d.startswith("default_exp"): return d.split(None, 1)[1].strip()
    return None


def quiet_stderr(outputs: list[dict]) -> list[dict]:
    "Drop NOISE lines (and the indented source line a warning prints under itself) from stderr outputs."
    out = []
    for o in outputs:
        if o.get("output_type") == "stream" and o.get("name") == "stderr":
            kept, drop_next = [], False
            for line in "".join(o["text"]).splitlines(keepends=True):
                if drop_next and line.startswith(" "): drop_next = False; continue
                drop_next = bool(NOISE.search(line))
                if not drop_next: kept.append(line)
            if not "".join(kept).strip(): continue
            o = {**o, "text": "".join(kept)}
        out.append(o)
    return out


def md_cell(text: str) -> dict:
    return {"cell_type": "markdown", "id": hashlib.sha1(text.encode()).hexdigest()[:8], "metadata": {}, "source": text}


def stage_notebook(stem: str, executed: Path, source: Path, flags: set[str], header: str) -> tuple[dict, dict]:
    "Notebook for the page: nbdev directives become myst-nb tags, export cells get anchors; returns (nb, anchors)."
    nb, src_nb = read_nb(executed), read_nb(source)
    mod = default_exp(src_nb)
    anchors, cells = {}, []
    for c in nb["cells"]:
        if c["cell_type"] != "code": cells.append(c); continue
        src = "".join(c["source"]); d = directives(src)
        tags = [t for t in c.get("metadata", {}).get("tags", []) if t != SKIP_TAG]
        tags += [HIDE[x] for x in d if x in HIDE]
        skipped = [x for x in d if x in flags or x == "eval: false"]
        body = strip_directives(src)
        if skipped: body = f"# not run for these pages ({', '.join(skipped)}); run it in Jupyter\n" + body
        if mod and "export" in d:
            names = _defined_names(src)
            ids = [f"medrepro.{mod}.{n}" for n in names if not n.startswith("_")]
            for i in ids: anchors.setdefault(i, f"nbs/{stem}.html#{i}")
            if ids: cells.append(md_cell("".join(f'<span id="{i}"></span>' for i in ids)))
        c["source"], c.setdefault("metadata", {})["tags"] = body, tags
        c["outputs"] = quiet_stderr(c.get("outputs", []))
        cells.append(c)
    cells.insert(_after_title(cells), md_cell(header))
    nb["cells"] = cells
    nb.setdefault("metadata", {}).pop("medrepro_docs", None)
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, anchors


def _after_title(cells: list[dict]) -> int:
    "Index just after the `# Title` cell and the `> summary` line (same cell or the next), where the header goes."
    md = lambda i: "".join(cells[i]["source"]).lstrip() if i < len(cells) and cells[i]["cell_type"] == "markdown" else ""
    t = next((i for i in range(len(cells)) if md(i).startswith("# ")), None)
    if t is None: return 0
    return t + 2 if "\n>" not in md(t) and md(t + 1).startswith(">") else t + 1


PATH_RE = re.compile(r"`((?:nbs/[\w.]+\.ipynb)|(?:params/[\w/]+\.yaml)|(?:docs/reproducing\.md))`")


def link_paths(text: str, staged: set[str], params: set[str], up: str = "") -> str:
    "Turn `nbs/X.ipynb`, `params/P/T.yaml` and `docs/reproducing.md` mentions into links to their pages."
    def sub(m):
        p = m.group(1)
        if p.startswith("nbs/") and Path(p).stem in staged: return f"[`{p}`]({up}{p})"
        if p.startswith("params/") and p in params: return f"[`{p}`]({up}{p[:-5]}.md)"
        if p == "docs/reproducing.md": return f"[`{p}`]({up}reproducing.md)"
        return m.group(0)
    text = text.replace("](docs/reproducing.md)", f"]({up}reproducing.md)")
    return PATH_RE.sub(sub, text)


def home_page(staged: set[str], params: set[str]) -> str:
    "The README up to its performance section: the opening, the two commands, the tiers, the table map."
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cut = readme.find("\n## Measured performance")
    text = readme[: cut if cut > 0 else len(readme)]
    text += ("\n## Reading these pages\n\nThe sidebar follows the library: core, data, samplers, models and training, "
             "evaluation, report and driver, MiniMed, then the paper notebooks. Every notebook page shows the outputs of "
             "a run; library pages link each exported name to its entry in the [API reference](api/index.md), and "
             "each API entry links back to the cell that defines it. [About this site](site.md) says how it is built.\n")
    return link_paths(text, staged, params)


def api_pages(src: Path, modules: dict[str, str], staged: set[str]) -> None:
    "One page per module (autodoc, in numbered order) and an index."
    lines = ["# API reference\n", "Every public name of `medrepro` (each module's `__all__`), from its docstring and the "
             "comments on its arguments. Each entry links to the notebook cell that defines it.\n"]
    by_group: dict[str, list[str]] = {}
    for mod, stem in modules.items(): by_group.setdefault(group_of(stem), []).append(mod)
    for g, mods in by_group.items():
        lines.append(f"\n## {g}\n")
        lines += [f"- [`medrepro.{m}`](medrepro.{m}.md): {_module_summary(m)}" for m in mods]
    toc = "\n".join(f"medrepro.{m}" for m in modules)
    lines.append(f"\n```{{toctree}}\n:hidden:\n\n{toc}\n```\n")
    write_if_changed(src / "api" / "index.md", "\n".join(lines))
    for mod, stem in modules.items():
        data = "".join(f"\n.. autodata:: medrepro.{mod}.{n}\n" + ("" if short else "   :no-value:\n") + (f"\n   {c}\n" if c else "")
                       for n, short, c in module_data(mod))
        write_if_changed(src / "api" / f"medrepro.{mod}.md",
                         f"# medrepro.{mod}\n\nDefined in " + (f"[`nbs/{stem}.ipynb`](../nbs/{stem}.ipynb)" if stem in staged else f"`nbs/{stem}.ipynb`") + ".\n\n"
                         f"```{{eval-rst}}\n.. automodule:: medrepro.{mod}\n   :members:\n   :undoc-members:\n```\n"
                         + (f"\n## Constants and registries\n\n```{{eval-rst}}\n{data}```\n" if data else ""))


def module_data(mod: str) -> list[tuple[str, bool, str]]:
    "Public names in `__all__` assigned a value that autodoc skips (not a function or class): (name, short value?, comment)."
    import importlib, inspect, io, tokenize
    module = importlib.import_module(f"medrepro.{mod}")
    documented = lambda o: inspect.isroutine(o) or inspect.isclass(o) or inspect.ismodule(o)  # autodoc's own members
    f = ROOT / "medrepro" / (mod.replace(".", "/") + ".py")
    text = f.read_text(encoding="utf-8"); tree = ast.parse(text)
    public = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", "") == "__all__" for t in n.targets)), [])
    comments = {t.start[0]: t.string.lstrip("# ").strip() for t in tokenize.generate_tokens(io.StringIO(text).readline)
                if t.type == tokenize.COMMENT}
    out = []
    for n in tree.body:
        if not isinstance(n, (ast.Assign, ast.AnnAssign)): continue
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
            pairs = [(t, n.value)]
            if isinstance(t, ast.Tuple):  # A, B = x, y
                vals = n.value.elts if isinstance(n.value, ast.Tuple) and len(n.value.elts) == len(t.elts) else [n.value] * len(t.elts)
                pairs = list(zip(t.elts, vals))
            for name, value in pairs:
                if isinstance(name, ast.Name) and name.id in public and not documented(getattr(module, name.id, None)):
                    seg = ast.get_source_segment(text, value) or ""
                    out.append((name.id, len(seg) <= 80 and "\n" not in seg, comments.get(n.lineno, "")))
    return out


def _module_summary(mod: str) -> str:
    f = ROOT / "medrepro" / (mod.replace(".", "/") + ".py")
    if not f.exists(): f = ROOT / "medrepro" / mod.replace(".", "/") / "__init__.py"
    try: doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError): doc = ""
    return doc.splitlines()[0] if doc else ""


def latest_reports(runs: Path) -> list[Path]:
    "runs/<tier>/report.html, newest first."
    return sorted(runs.glob("*/report.html"), key=lambda p: p.stat().st_mtime, reverse=True)


def report_page(src: Path, reports: list[Path]) -> str | None:
    if not reports: return None
    extra = src / "_extra" / "reports"
    if extra.exists(): shutil.rmtree(extra)
    extra.mkdir(parents=True)
    for r in reports: shutil.copy2(r, extra / f"{r.parent.name}.html")
    newest = reports[0]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(newest.stat().st_mtime))
    others = ", ".join(f'<a href="reports/{r.parent.name}.html">{r.parent.name}</a>' for r in reports[1:])
    text = (f"# Latest report\n\nThe newest report under `runs/`: `runs/{newest.parent.name}/report.html`, written {when} "
            f'by `medrepro report --tier {newest.parent.name}`. <a href="reports/{newest.parent.name}.html">Open it on its own page</a>.'
            + (f" Other tiers: {others}." if others else "") +
            f'\n\n<iframe src="reports/{newest.parent.name}.html" class="medrepro-report" title="report"></iframe>\n')
    write_if_changed(src / "report.md", text)
    return "report"


def stage(src: Path, executed: dict[str, Path], nbs: list[Path], specs: dict, runs: Path = ROOT / "runs") -> None:
    "Write every Sphinx source into `src` (changed files only) and remove pages that no longer exist."
    flags = skip_flags()
    keep: set[Path] = set()
    params_files = {str(s.params_file.relative_to(ROOT)): s for s in specs.values()}
    staged = {p.stem for p in nbs}
    for rel, spec in list(params_files.items()):
        users = [q.stem for q in nbs if q.name == spec.notebook.name or any(
            isinstance(t, dict) and t.get("notebook") == q.name for t in spec.tiers.values())]
        if not users: del params_files[rel]; continue  # its notebook is not in this build
        used = ", ".join(f"[`{u}`](../../nbs/{u}.ipynb)" for u in users)
        text = (f"---\norphan: true\n---\n# {rel}\n\n{spec.title or spec.key}. Used by {used}; run with "
                f"`medrepro reproduce --tier smoke|mini|full --table {spec.key}`.\n\n```yaml\n"
                + (ROOT / rel).read_text(encoding="utf-8").rstrip() + "\n```\n")
        out = src / (rel[:-5] + ".md"); write_if_changed(out, text); keep.add(out)
    anchors, modules = {}, {}
    for p in nbs:
        stem, src_nb = p.stem, read_nb(p)
        mod = default_exp(src_nb)
        if mod: modules[mod] = stem
        header = notebook_header(p, executed[stem], specs, mod, params_files)
        nb, a = stage_notebook(stem, executed[stem], p, flags, link_paths(header, staged, set(params_files), "../"))
        nb["cells"] += run_figures(executed[stem], nb, src / "nbs" / "_run_figures" / stem, keep)
        anchors.update(a)
        out = src / "nbs" / f"{stem}.ipynb"
        write_if_changed(out, json.dumps(nb, indent=1, ensure_ascii=False)); keep.add(out)
    # all modules always get API pages, whichever notebooks are built
    for p in notebooks():
        mod = default_exp(read_nb(p))
        if mod: modules.setdefault(mod, p.stem)
    modules = dict(sorted(modules.items(), key=lambda kv: kv[1]))
    api_pages(src, modules, staged); keep |= {src / "api" / "index.md"} | {src / "api" / f"medrepro.{m}.md" for m in modules}
    write_if_changed(src / "_api_links.json", json.dumps({"anchors": anchors, "modules": modules}, indent=1, sort_keys=True))
    notes = sorted(f.name for f in (ROOT / "docs").glob("*.md") if f.name not in ("reproducing.md", "site.md"))
    for name, rel in [("reproducing.md", "docs/reproducing.md"), ("site.md", "docs/site.md")] + [(f"notes/{n}", f"docs/{n}") for n in notes]:
        out = src / name; write_if_changed(out, link_paths((ROOT / rel).read_text(encoding="utf-8"), staged, set(params_files))); keep.add(out)
    report = report_page(src, latest_reports(runs))
    if report: keep.add(src / "report.md")
    elif (src / "report.md").exists(): (src / "report.md").unlink(); shutil.rmtree(src / "_extra", ignore_errors=True)
    write_if_changed(src / "index.md", home_page(staged, set(params_files)) + toctrees(nbs, report, [f"notes/{n[:-3]}" for n in notes]))
    keep.add(src / "index.md")
    for f in list(src.rglob("*.md")) + list(src.rglob("*.ipynb")) + list((src / "nbs" / "_run_figures").rglob("*.png")):
        if f not in keep and "_extra" not in f.parts: f.unlink()  # a notebook left out of this build drops its page


def run_figures(executed: Path, nb: dict, folder: Path, keep: set[Path]) -> list[dict]:
    "The figures a smoke run saved, as a closing cell, when its notebook shows none inline (`medrepro reproduce` runs under Agg)."
    res = executed.parent / "results.json"
    if "medrepro_docs" in read_nb(executed).get("metadata", {}) or not res.exists(): return []
    if any("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])): return []
    names = [n for n in json.loads(res.read_text(encoding="utf-8")).get("figures", []) if (executed.parent / n).exists()]
    if not names: return []
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        f = folder / Path(n).name
        if not f.exists() or f.read_bytes() != (executed.parent / n).read_bytes(): shutil.copy2(executed.parent / n, f)
        keep.add(f)
    imgs = "\n\n".join(f"![{Path(n).name}](_run_figures/{folder.name}/{Path(n).name})" for n in names)
    return [md_cell(f"## Figures saved by this run\n\nThe run's `results.json` lists them; `medrepro reproduce` draws "
                    f"without an inline backend, so they appear here rather than under their cells.\n\n{imgs}")]


def notebook_header(p: Path, executed: Path, specs: dict, mod: str | None, params_files: dict) -> str:
    "A line under the title: where the code lives and where the outputs come from."
    src_link = f"Source: `nbs/{p.name}`"
    if mod: return f"{src_link}, exported to `medrepro/{mod.replace('.', '/')}.py` ([API](../api/medrepro.{mod}.md))."
    uses = [r for r, s in params_files.items() if s.notebook.name == p.name or any(
        isinstance(t, dict) and t.get("notebook") == p.name for t in s.tiers.values())]
    meta = read_nb(executed).get("metadata", {})
    if "medrepro_docs" in meta: where = "the notebook's own `parameters` cell (the smoke defaults), executed when this site was built"
    else:
        run = json.loads((executed.parent / "run.json").read_text(encoding="utf-8"))
        where = (f"the smoke-tier run in `runs/smoke/{run.get('paper')}/{run.get('table')}/` "
                 f"({run.get('time_utc', '?')}, git {str(run.get('git_sha') or '?')[:10]})")
    params = ", ".join(f"`{u}`" for u in uses) or "none"
    return f"{src_link}. Parameters: {params}. Outputs below: {where}."


def toctrees(nbs: list[Path], report: str | None, notes: list[str] = ()) -> str:
    "The sidebar: one captioned toctree per part of the library, in numbered order."
    parts = [("Start here", ["reproducing"] + ([report] if report else []) + ["site"])]
    for p in nbs:
        g = group_of(p.stem)
        if not parts or parts[-1][0] != g: parts.append((g, []))
        parts[-1][1].append(f"nbs/{p.stem}")
    parts.append(("API reference", ["api/index"]))
    if notes: parts.append(("Notes", list(notes)))  # the other pages of docs/: measurements, dated notes
    return "".join(f"\n```{{toctree}}\n:hidden:\n:caption: {cap}\n\n" + "\n".join(docs) + "\n```\n" for cap, docs in parts)


# ---------- 3. sphinx ----------

def sphinx(src: Path, html: Path, doctrees: Path, jobs: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
           "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", str(jobs), "-c", str(ROOT / "docs"), "-d", str(doctrees), str(src), str(html)]
    r = subprocess.run(cmd, env=env)
    if r.returncode: raise DocsError(f"sphinx-build failed (exit {r.returncode}); its message is above")


def build(dest: Path, only: list[str] | None = None, jobs: int = 2, timeout: int = 900, log=print,
          runs: Path = ROOT / "runs", force: bool = False) -> Path:
    "Execute, stage and render; return the path of index.html."
    from medrepro.paper import discover_tables
    t0 = time.time()
    nbs = notebooks(only)
    specs = {s.notebook.name: s for s in discover_tables()}
    executed = execute_all(nbs, dest / "cache", jobs, timeout, specs, log, runs, force)
    t1 = time.time()
    stage(dest / "src", executed, nbs, specs, runs)
    sphinx(dest / "src", dest / "html", dest / "doctrees", jobs)
    log(f"[docs] {len(nbs)} notebook pages; executing {t1 - t0:.0f} s, rendering {time.time() - t1:.0f} s")
    return dest / "html" / "index.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/docs.py", description="Build the documentation site (static HTML, offline).")
    ap.add_argument("--dest", default=str(ROOT / "_docs"), help="build folder (git-ignored); the site is DEST/html/index.html")
    ap.add_argument("--only", nargs="+", metavar="STEM", help="build only these notebooks (stems or prefixes, e.g. 20_samplers 93)")
    ap.add_argument("--runs", default=str(ROOT / "runs"), help="where `medrepro reproduce` wrote its runs (smoke outputs, reports)")
    ap.add_argument("--force", action="store_true", help="execute every notebook again (e.g. after upgrading packages; the cache knows only code)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one cell may run")
    a = ap.parse_args(argv)
    try: index = build(Path(a.dest).resolve(), a.only, a.jobs, a.timeout, runs=Path(a.runs).resolve(), force=a.force)
    except DocsError as e: print(f"[docs] error: {e}", file=sys.stderr); return 1
    print(f"[docs] open {index}")
    return 0


if __name__ == "__main__": sys.exit(main())
