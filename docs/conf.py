# Sphinx configuration of the documentation site; tools/docs.py stages the sources and runs Sphinx with `-c docs`.
import configparser, inspect, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # autodoc imports this checkout's medrepro
_cfg = configparser.ConfigParser(delimiters=["="]); _cfg.read(ROOT / "settings.ini", encoding="utf-8")
_ini = _cfg["DEFAULT"]

project, author, copyright = _ini["title"], _ini["author"], _ini["copyright"]
release = version = _ini["version"]
extensions = ["myst_nb", "sphinx.ext.autodoc"]
exclude_patterns = ["_extra", "_api_links.json"]
html_extra_path = []  # set in setup(): the report copies live in the staged source folder

# notebooks arrive executed (tools/docs.py runs them with a cache); myst-nb only renders
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False  # an override without a docstring must not show argparse's or torch's
autodoc_preserve_defaults = True  # show `seed=0`, not a repr of a computed default
add_module_names = False

html_theme = "sphinx_book_theme"
html_title = "medrepro"
html_static_path = ["_static"]
html_css_files = ["medrepro.css"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
    "use_fullscreen_button": False,
}
html_show_sourcelink = False
html_last_updated_fmt = None

_MD_CODE = re.compile(r"(?<![`\w])`([^`\n]+)`(?![`\w])")


def _links(app) -> dict:
    if not hasattr(app, "_medrepro_links"):
        f = Path(app.srcdir) / "_api_links.json"
        app._medrepro_links = json.loads(f.read_text(encoding="utf-8")) if f.exists() else {"anchors": {}, "modules": {}}
    return app._medrepro_links


_STAR = re.compile(r"(?<!\\)\*")


def _rst(text: str) -> str:
    "nbdev docstrings are markdown: `code` becomes an rst literal; an asterisk (**kw, x ** beta, ***) is text, not emphasis."
    parts = _MD_CODE.split(text)  # odd parts are code
    return "".join(f"``{p}``" if i % 2 else _STAR.sub(r"\\*", p) for i, p in enumerate(parts))


def _docments(obj) -> dict:
    "Argument comments (nbdev's docments) of a function or class, {} when there are none or no source."
    from fastcore.docments import docments
    try: d = docments(obj, full=True)
    except (TypeError, OSError, ValueError, SyntaxError, IndentationError, KeyError): return {}
    # a comment that names its argument ("# drop_last: why") need not say the name twice
    return {k: re.sub(rf"^{re.escape(k)}\s*:\s*", "", v["docment"]) for k, v in d.items() if v.get("docment")}


def process_docstring(app, what, name, obj, options, lines):
    "Docstrings are markdown-ish: `code` becomes rst literals; docments become :param: fields; add the notebook link."
    if what == "data": lines[:] = []  # a constant's "docstring" is its type's (dict, tuple); its comment is the directive's text
    for i, l in enumerate(lines): lines[i] = _rst(l)
    bases = [b for b in getattr(obj, "__bases__", ()) if b is not object] if what in ("class", "exception") else []
    if bases: lines[:0] = ["*Bases:* " + ", ".join(f":py:class:`~{b.__module__}.{b.__qualname__}`" for b in bases), ""]
    if what in ("function", "method", "class"):
        target = obj.__init__ if what == "class" and not _is_dataclass(obj) and "__init__" in vars(obj) else obj
        docs = _docments(target)
        fields = [f":param {k}: " + _rst(v) for k, v in docs.items() if k not in ("return", "self")]
        if "return" in docs: fields.append(":returns: " + _rst(docs["return"]))
        if fields: lines += [""] + fields
    if what in ("function", "class", "data", "exception"):  # module-level names; their methods share the link
        link = _notebook_link(app, name)
        if link: lines += ["", link]


def _is_dataclass(obj) -> bool: return hasattr(obj, "__dataclass_fields__")


def _notebook_link(app, name: str) -> str | None:
    links = _links(app)
    parts = name.split(".")
    for n in range(len(parts), 2, -1):  # the name itself, else the class that holds it
        href = links["anchors"].get(".".join(parts[:n]))
        if href: return f"*Defined in* `{href.split('#')[0][4:-5]} <../{href}>`__"
    return None


def setup(app):
    # Sphinx re-reads pages when config values change, not when this file's functions or the API links do
    import hashlib
    links = Path(app.srcdir) / "_api_links.json"
    stamp = hashlib.sha256(Path(__file__).read_bytes() + (links.read_bytes() if links.exists() else b"")).hexdigest()[:16]
    app.add_config_value("medrepro_docs_stamp", stamp, "env")
    def _extra(app, config):
        extra = Path(app.srcdir) / "_extra"
        config.html_extra_path = [str(extra)] if extra.exists() else []
    app.connect("config-inited", _extra)
    app.connect("autodoc-process-docstring", process_docstring)
