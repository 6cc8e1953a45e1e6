"""The reproduction driver: tier merge, unknown keys, papermill execution, skip-if-unchanged, failures, CLI."""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest

from medrepro import paper
from medrepro.cli import main
from medrepro.core import MedreproError, deep_merge, file_hash, load_json
from medrepro.tables import check_spec, load_spec, notebook_parameters, resolve_params

FIX = Path(__file__).resolve().parent / "fixtures" / "paper"


@pytest.fixture
def tables(tmp_path):
    """A private copy of the fixture params/ and nbs/ (tests edit them)."""
    shutil.copytree(FIX, tmp_path / "fx")
    return tmp_path / "fx"


def spec(tables, name="ok"):
    return load_spec(tables / "params" / "demo" / f"{name}.yaml", tables / "nbs")


def test_deep_merge_keeps_nested_base_keys_and_replaces_lists():
    base = {"train": {"lr": 1e-4, "steps": 10}, "models": ["a", "b"], "seed": 0}
    merged = deep_merge(base, {"train": {"steps": 2}, "models": ["c"]})
    assert merged == {"train": {"lr": 1e-4, "steps": 2}, "models": ["c"], "seed": 0}
    assert base["train"]["steps"] == 10  # the base is not mutated


def test_tiers_resolve_over_the_base(tables):
    s = spec(tables)
    assert resolve_params(s, "smoke") == {"n_points": 4, "label": "demo row", "data_file": None, "fail": False}
    assert resolve_params(s, "full")["n_points"] == 1000
    with pytest.raises(MedreproError, match="no 'mini:' block"):
        resolve_params(s, "mini")


def test_unknown_parameter_is_rejected_with_a_suggestion(tables):
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text().replace("  n_points: 1000", "  n_pionts: 1000"))
    with pytest.raises(MedreproError, match=r"unknown parameter 'n_pionts' \(did you mean 'n_points'\?\)") as e:
        resolve_params(spec(tables), "full")
    assert "ok.yaml (full)" in str(e.value)


def test_yaml_number_read_as_string_is_rejected(tables):
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text().replace("  n_points: 4", "  n_points: 1e4"))  # YAML 1.1: a string
    with pytest.raises(MedreproError, match="expected int"):
        resolve_params(spec(tables), "smoke")


def test_driver_keys_cannot_be_set_in_a_params_file(tables):
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text() + "out_dir: /tmp/elsewhere\n")
    with pytest.raises(MedreproError, match="set by the driver"):
        spec(tables)


def test_missing_notebook_key_is_an_error(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "t.yaml").write_text("title: x\nsmoke: {}\n")
    with pytest.raises(MedreproError, match="missing 'notebook:'"):
        load_spec(tmp_path / "p" / "t.yaml")


def test_parameters_tag_survives_nbdev_clean(tmp_path):
    """settings.ini keeps cell tags (allowed_cell_metadata_keys = tags); papermill needs `parameters`."""
    nb = tmp_path / "nb.ipynb"
    shutil.copy(FIX / "nbs" / "demo_table.ipynb", nb)
    raw = json.loads(nb.read_text())
    raw["cells"][1]["metadata"]["some_other_key"] = 1  # something nbdev_clean must drop
    nb.write_text(json.dumps(raw))
    root = Path(paper.__file__).resolve().parent.parent
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(nb)], cwd=root, check=True, timeout=120)
    cell = json.loads(nb.read_text())["cells"][1]
    assert cell["metadata"] == {"tags": ["parameters"]}
    assert set(notebook_parameters(nb)) == {"n_points", "data_file", "fail", "label", "tier", "out_dir"}


def test_notebook_without_parameters_cell_is_reported(tmp_path):
    raw = json.loads((FIX / "nbs" / "demo_table.ipynb").read_text())
    raw["cells"][1]["metadata"] = {}
    (tmp_path / "x.ipynb").write_text(json.dumps(raw))
    with pytest.raises(MedreproError, match="no cell tagged 'parameters'"):
        notebook_parameters(tmp_path / "x.ipynb")


def test_check_spec_flags_undocumented_notebook_parameters(tables):
    assert check_spec(spec(tables)) == []
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text().replace("label: demo row\n", ""))
    assert any("missing from base/smoke: label" in p for p in check_spec(spec(tables)))


def test_kernel_falls_back_to_python3():
    assert paper.pick_kernel("no-such-kernel-xyz") == "python3"
    assert paper.pick_kernel() in ("medrepro", "python3")


@pytest.fixture
def frozen_library(monkeypatch):
    """A fixed library fingerprint, so that someone editing medrepro/ in a shared checkout cannot make a run stale mid-test."""
    monkeypatch.setattr(paper, "library_fingerprint", lambda: "frozen")


def test_run_writes_results_figure_metadata_and_skips_when_unchanged(tables, tmp_path, frozen_library):
    data = tmp_path / "data.txt"
    data.write_text("abc")
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text().replace("data_file: null", f"data_file: {data}"))
    runs = tmp_path / "runs"
    r = paper.run_table(spec(tables), "smoke", runs)
    assert r.status == "ok", r.error
    out = runs / "smoke" / "demo" / "ok"
    assert r.out_dir == out
    res = load_json(out / "results.json")
    assert res["rows"][0]["value"] == 4.0 and res["rows"][0]["published"] == 50.0 and "3 characters" in res["rows"][0]["note"]
    assert (out / "line.png").stat().st_size > 0 and (out / "results.csv").exists() and (out / "demo_table.ipynb").exists()
    run = load_json(out / "run.json")
    assert run["status"] == "ok" and run["tier"] == "smoke" and run["params"] == {"n_points": 4, "label": "demo row", "data_file": str(data), "fail": False}
    assert run["data_hashes"] == {str(data): file_hash(data)} and run["git_sha"] is not None and run["versions"]["papermill"]
    assert "n_points: 4" in (out / "params.yaml").read_text()
    executed = json.loads((out / "demo_table.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    # unchanged inputs: skipped; changed data: re-run; --force: re-run
    assert paper.run_table(spec(tables), "smoke", runs).status == "skipped"
    data.write_text("abcd")
    assert paper.run_table(spec(tables), "smoke", runs).status == "ok"
    assert "4 characters" in load_json(out / "results.json")["rows"][0]["note"]
    assert paper.run_table(spec(tables), "smoke", runs).status == "skipped"
    assert paper.run_table(spec(tables), "smoke", runs, force=True).status == "ok"


def test_changed_parameter_reruns(tables, tmp_path, frozen_library):
    runs = tmp_path / "runs"
    assert paper.run_table(spec(tables), "smoke", runs).status == "ok"
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text().replace("  n_points: 4", "  n_points: 6"))
    assert paper.run_table(spec(tables), "smoke", runs).status == "ok"
    assert load_json(runs / "smoke" / "demo" / "ok" / "results.json")["rows"][0]["value"] == 6.0


def test_library_change_reruns(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "library_fingerprint", lambda: "v1")
    assert paper.run_table(spec(tables), "smoke", tmp_path).status == "ok"
    assert paper.run_table(spec(tables), "smoke", tmp_path).status == "skipped"
    monkeypatch.setattr(paper, "library_fingerprint", lambda: "v2")
    assert paper.run_table(spec(tables), "smoke", tmp_path).status == "ok"


def test_failure_is_recorded_and_leaves_no_stale_results(tables, tmp_path):
    runs = tmp_path / "runs"
    out = runs / "smoke" / "demo" / "broken"
    out.mkdir(parents=True)
    (out / "results.json").write_text("{}")  # from an older successful run
    r = paper.run_table(spec(tables, "broken"), "smoke", runs)
    assert r.status == "failed" and "RuntimeError: failing on purpose" in r.error
    assert not (out / "results.json").exists()
    run = load_json(out / "run.json")
    assert run["status"] == "failed" and "failing on purpose" in run["error"]
    assert paper.run_table(spec(tables, "broken"), "smoke", runs).status == "failed"  # failures are never 'unchanged'


def _kernel_dies(times: int, real):
    """A papermill.execute_notebook whose first `times` calls fail as a kernel does when its port was taken; then the real one."""
    calls = []
    def execute(*a, **kw):
        calls.append(a[0])
        if len(calls) <= times: raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*a, **kw)
    return execute, calls


def test_kernel_that_dies_at_start_up_is_started_again(tables, tmp_path, monkeypatch, frozen_library):
    import papermill
    execute, calls = _kernel_dies(1, papermill.execute_notebook)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    logged = []
    r = paper.run_table(spec(tables), "smoke", tmp_path / "runs", log=logged.append)
    assert r.status == "ok", r.error
    assert len(calls) == 2 and "kernel died at start-up (1/3)" in logged[0]
    assert load_json(r.out_dir / "run.json")["kernel_start_retries"] == 1
    assert load_json(r.out_dir / "results.json")["rows"][0]["value"] == 4.0


def test_a_real_port_collision_is_recognised_and_retried(tables, tmp_path, monkeypatch, frozen_library):
    """The failure CI saw: a kernel handed a port someone else holds dies at start-up; the table still runs."""
    import socket
    from jupyter_client.connect import LocalPortCache
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, handed = LocalPortCache.find_available_port, []
    def find(self, ip):  # the first port handed out is the taken one, as when another process grabbed it
        handed.append(taken.getsockname()[1] if not handed else real(self, ip))
        return handed[-1]
    monkeypatch.setattr(LocalPortCache, "find_available_port", find)
    logged = []
    try: r = paper.run_table(spec(tables), "smoke", tmp_path / "runs", log=logged.append)
    finally: taken.close()
    assert r.status == "ok", r.error
    assert load_json(r.out_dir / "run.json")["kernel_start_retries"] == 1 and "kernel died at start-up" in logged[0]


def test_kernel_start_up_is_tried_a_bounded_number_of_times(tables, tmp_path, monkeypatch, frozen_library):
    import papermill
    execute, calls = _kernel_dies(10, papermill.execute_notebook)
    monkeypatch.setattr(papermill, "execute_notebook", execute)
    r = paper.run_table(spec(tables), "smoke", tmp_path / "runs")
    assert r.status == "failed" and len(calls) == paper.KERNEL_START_TRIES == 3
    assert "Kernel died before replying to kernel_info (3 start-ups)" in r.error
    assert load_json(r.out_dir / "run.json")["kernel_start_retries"] == 2


def test_a_failing_cell_is_not_retried(tables, tmp_path, monkeypatch):
    import papermill
    calls = []
    real = papermill.execute_notebook
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: calls.append(a[0]) or real(*a, **kw))
    r = paper.run_table(spec(tables, "broken"), "smoke", tmp_path / "runs")
    assert r.status == "failed" and len(calls) == 1 and "failing on purpose" in r.error
    assert load_json(r.out_dir / "run.json")["kernel_start_retries"] == 0


def test_prepare_only_injects_parameters_without_executing(tables, tmp_path):
    r = paper.run_table(spec(tables), "full", tmp_path / "runs", prepare_only=True)
    assert r.status == "prepared"
    nb = json.loads((r.out_dir / "demo_table.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "n_points = 1000" in "".join(injected[0]["source"])
    assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert not (r.out_dir / "results.json").exists()


def test_cli_continues_past_failure_lists_it_and_exits_nonzero(tables, tmp_path, capsys, frozen_library):
    runs = tmp_path / "runs"
    args = ["reproduce", "--params-dir", str(tables / "params"), "--nbs-dir", str(tables / "nbs"), "--runs-dir", str(runs)]
    assert main(args + ["--jobs", "2"]) == 1
    cap = capsys.readouterr()
    assert "FAILED (1):" in cap.err and "demo/broken" in cap.err and "RuntimeError" in cap.err
    assert "[2/2]" in cap.err  # progress lines
    assert (runs / "smoke" / "demo" / "ok" / "results.json").exists()
    page = (runs / "smoke" / "report.html").read_text()
    assert "failing on purpose" in page and "data:image/png;base64," in page
    # only the good table, second time: skipped, exit 0
    assert main(args + ["--table", "ok"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_cli_list_and_unknown_table(tables, tmp_path, capsys):
    args = ["reproduce", "--params-dir", str(tables / "params"), "--nbs-dir", str(tables / "nbs"), "--runs-dir", str(tmp_path)]
    assert main(args + ["--list"]) == 0
    out = capsys.readouterr().out
    assert "demo/ok" in out and "smoke,full" in out and "not run" in out
    assert main(args + ["--table", "okk"]) == 1
    assert "unknown table 'okk'; did you mean 'ok'" in capsys.readouterr().err


def test_unavailable_tier_is_not_a_failure(tables, tmp_path, capsys):
    args = ["reproduce", "--params-dir", str(tables / "params"), "--nbs-dir", str(tables / "nbs"), "--runs-dir", str(tmp_path),
            "--tier", "mini", "--no-report"]
    assert main(args) == 0
    assert "not available at tier mini: demo/ok" in capsys.readouterr().out


def test_real_paper_tables_end_to_end_through_the_console_script(tmp_path):
    """`medrepro reproduce --tier smoke --table ...` on real paper tables: a figure that trains the tiny model, and a sampler figure."""
    exe = Path(sys.executable).parent / "medrepro"
    args = [str(exe), "reproduce", "--tier", "smoke", "--table", "guo2023/figure1", "--table", "sft_share", "--runs-dir", str(tmp_path)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[2/2]" in r.stderr and "2 ok" in r.stdout
    fig1 = tmp_path / "smoke" / "guo2023" / "figure1"
    res = load_json(fig1 / "results.json")
    first, last = (x["value"] for x in res["rows"][:2])
    assert res["tier"] == "smoke" and last < first  # the tiny model did learn its five sentences
    assert (fig1 / "figure1_loss.png").exists() and load_json(fig1 / "run.json")["status"] == "ok"
    share = load_json(tmp_path / "smoke" / "huatuo2" / "sft_share" / "results.json")
    by = {(x["row"], x["metric"]): x["value"] for x in share["rows"]}
    assert by[("beta 1.0", "sft share at 100%")] > 80 > by[("beta 1.0", "sft share at 20%")]  # SFT comes last
    page = (tmp_path / "smoke" / "report.html").read_text()
    assert "guo2023 / figure1" in page and "NOISE" in page and "not run" in page  # other tables listed as not run
    lib = load_json(fig1 / "run.json")["library_fingerprint"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    if paper.library_fingerprint() == lib:  # (in a shared checkout someone may edit the library in between: then it re-runs)
        assert again.stderr.count("skipped") == 2, again.stderr


def test_a_tier_block_may_name_its_own_self_contained_notebook(tables, tmp_path):
    f = tables / "params" / "demo" / "ok.yaml"
    f.write_text(f.read_text() + "mini:\n  notebook: demo_table.ipynb\n  n_points: 7\n")
    s = spec(tables)
    assert s.notebook_for("mini").name == "demo_table.ipynb" and check_spec(s) == []
    assert resolve_params(s, "mini") == {"n_points": 7}  # the base (label, ...) is not merged in
    r = paper.run_table(s, "mini", tmp_path / "runs")
    assert r.status == "ok", r.error
    row = load_json(r.out_dir / "results.json")["rows"][0]
    assert row["value"] == 7.0 and row["row"] == "demo row"  # the notebook's own default label
    f.write_text(f.read_text().replace("  n_points: 7", "  n_pionts: 7"))
    with pytest.raises(MedreproError, match="unknown parameter 'n_pionts'"):
        resolve_params(spec(tables), "mini")


def test_eval_rows_say_how_many_answers_were_guessed(tmp_path):
    from medrepro.report import Results, add_eval_rows
    res = Results("guo2023", "table2", "smoke", tmp_path)
    metrics = {"n": 6, "accuracy": 0.5, "accuracy_ci": [0.1, 0.9], "guessed": 2, "accuracy_strict": 0.25}
    row = add_eval_rows(res, "x", metrics, protocol={"mode": "generate", "extractor": "guo2023"}, note="unparsed 0")[0]
    assert row.note == "unparsed 0; guessed 2 (strict acc 25.0)" and row.value == 50.0
    row = add_eval_rows(res, "y", {"n": 6, "accuracy": 0.5}, protocol={"mode": "loglik"})[0]
    assert row.note == ""
