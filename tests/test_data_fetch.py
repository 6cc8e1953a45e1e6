"Data manifest and `medrepro data get`: fetch, layout, lock, checksums, resume, hand steps, and the refusal by reproduce (no network)."
import hashlib, http.server, json, shutil, subprocess, tarfile, threading
from pathlib import Path

import pytest, yaml

from medrepro.cli import main
from medrepro.core import MedreproError, repo_root
from medrepro.data import fetch as F
from medrepro.paper import discover_tables, select_tables

sha = lambda b: hashlib.sha256(b).hexdigest()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    "A git repository with two commits (the pinned one and a newer one) and a tar.gz archive with one top folder."
    repo = tmp_path / "upstream"; (repo / "data").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "data" / "train.csv").write_text("q,a\n1,A\n"); _git(repo, "add", "."); _git(repo, "commit", "-qm", "v1")
    pinned = _git(repo, "rev-parse", "HEAD")
    (repo / "data" / "train.csv").write_text("q,a\n1,B\n"); _git(repo, "commit", "-qam", "v2")
    top = tmp_path / "pack" / "bench-1.0" / "Test"; top.mkdir(parents=True)
    (top / "English.jsonl").write_text('{"question": "q"}\n')
    with tarfile.open(tmp_path / "bench.tar.gz", "w:gz") as t: t.add(tmp_path / "pack" / "bench-1.0", arcname="bench-1.0")
    return {"repo": repo, "pinned": pinned, "archive": tmp_path / "bench.tar.gz"}


def _manifest(tmp_path, releases: dict) -> Path:
    f = tmp_path / "manifest.yaml"
    f.write_text(yaml.safe_dump({"version": 1, "releases": releases}, allow_unicode=True))
    return f


def _git_release(up, **kw):
    return {"title": "toy git", "licence": "MIT", "source": {"kind": "git", "url": up["repo"].as_uri(), "commit": up["pinned"]},
            "pinned": True, "fetch": "auto", "into": "toygit", "files": {"toygit/data/train.csv": kw.get("sha")}}


def test_manifest_covers_every_table_path():
    "Every data file any table reads at the full tier comes from a release of the packaged manifest."
    m = F.load_manifest()
    uncovered = [(s.key, n.path) for s in discover_tables() for n in F.table_needs(s, "full", "/d") if F.release_of(n.path, m) is None]
    assert uncovered == []
    assert {"cmexam", "medqa", "medmcqa", "pubmedqa", "mmlu", "cmmlu", "ceval", "cmb", "pharmacist_2023", "mmedbench",
            "xmedbench", "huatuo26m_encyclopedia", "huatuogpt2_sft", "huatuogpt2_pretrain", "mmed_ift"} <= set(m)
    for r in m.values():  # an unpinned release says why; a pinned git release names a full commit
        assert r.pinned or r.pin_note
        if r.pinned and r.kind == "git": assert len(r.source["commit"]) == 40


def test_manifest_is_package_data():
    "setup.py ships *.yaml from the package, so the manifest is installed with medrepro."
    assert "'*.yaml'" in (repo_root() / "setup.py").read_text() and F.manifest_file().exists()


def test_fetch_git_at_pinned_commit_layout_and_lock(tmp_path, upstream, capsys):
    m = _manifest(tmp_path, {"toygit": _git_release(upstream)})
    dest = tmp_path / "data"
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m)]) == 0
    f = dest / "toygit" / "data" / "train.csv"
    assert f.read_text() == "q,a\n1,A\n"  # the pinned commit, not the newer head
    lock = json.loads((dest / "manifest.lock.json").read_text())["releases"]["toygit"]
    assert lock["fetched"] == upstream["pinned"] and lock["files"]["toygit/data/train.csv"] == sha(f.read_bytes())
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m), "--check"]) == 0
    f.write_text("q,a\n1,C\n")  # the lock's hash now catches a changed file, though the manifest has none
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m), "--check"]) == 1
    assert "different" in capsys.readouterr().out


def test_failed_git_fetch_can_be_retried(tmp_path, upstream, capsys):
    "A clone that fails (wrong URL, no network) leaves no state that blocks the next attempt."
    bad = _git_release(upstream); bad["source"] = {**bad["source"], "url": (tmp_path / "nowhere").as_uri()}
    dest = tmp_path / "data"
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(_manifest(tmp_path, {"toygit": bad}))]) == 1
    assert "git fetch failed" in capsys.readouterr().err
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(_manifest(tmp_path, {"toygit": _git_release(upstream)}))]) == 0
    assert (dest / "toygit" / "data" / "train.csv").read_text() == "q,a\n1,A\n"


def test_fetch_archive_unpacks_into_layout(tmp_path, upstream):
    rel = {"title": "toy archive", "licence": "MIT", "source": {"kind": "url", "url": upstream["archive"].as_uri()},
           "pin_note": "test", "fetch": "auto", "into": "Bench", "strip_top": True, "files": {"Bench/Test/English.jsonl": None}}
    m, dest = _manifest(tmp_path, {"bench": rel}), tmp_path / "data"
    assert main(["data", "get", "bench", "--dest", str(dest), "--manifest", str(m)]) == 0
    assert (dest / "Bench" / "Test" / "English.jsonl").exists() and not (dest / "Bench" / "bench-1.0").exists()
    assert json.loads((dest / "manifest.lock.json").read_text())["releases"]["bench"]["fetched"] == upstream["archive"].as_uri()


def test_checksum_mismatch_is_an_error_unless_accepted(tmp_path, upstream, capsys):
    m, dest = _manifest(tmp_path, {"toygit": _git_release(upstream, sha="1" * 64)}), tmp_path / "data"
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m)]) == 1
    err = capsys.readouterr().err
    found = sha(b"q,a\n1,A\n")
    assert "toygit/data/train.csv" in err and "1" * 64 in err and found in err
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m), "--accept-version"]) == 0
    acc = json.loads((dest / "manifest.lock.json").read_text())["releases"]["toygit"]["accepted"]["toygit/data/train.csv"]
    assert acc["expected"] == "1" * 64 and acc["found"] == found
    assert main(["data", "get", "toygit", "--dest", str(dest), "--manifest", str(m), "--check"]) == 0  # accepted stays accepted


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    "Serves `payload` with Range support; the first response breaks off halfway (a dropped connection)."
    payload, ranges, cut = b"", [], True

    def do_GET(self):
        r = self.headers.get("Range")
        type(self).ranges.append(r)
        start = int(r.split("=")[1].rstrip("-")) if r else 0
        body = self.payload[start:]
        self.send_response(206 if r else 200)
        self.send_header("Content-Length", str(len(body)))
        if r: self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.end_headers()
        if type(self).cut:
            type(self).cut = False
            self.wfile.write(body[: len(body) // 2]); self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *a): pass


def test_interrupted_http_download_resumes(tmp_path):
    _RangeHandler.payload, _RangeHandler.ranges, _RangeHandler.cut = bytes(range(256)) * 2000, [], True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url, target = f"http://127.0.0.1:{srv.server_port}/data.bin", tmp_path / "dl" / "data.bin"
        with pytest.raises(MedreproError, match="run the same command again to resume"): F.download(url, target, progress=False)
        part = target.with_name("data.bin.part")
        half = part.stat().st_size
        assert 0 < half < len(_RangeHandler.payload) and not target.exists()
        F.download(url, target, progress=False)
        assert _RangeHandler.ranges == [None, f"bytes={half}-"]  # the second request asked only for the rest
        assert target.read_bytes() == _RangeHandler.payload and not part.exists()
    finally:
        srv.shutdown(); srv.server_close()


def test_partial_file_url_download_resumes(tmp_path):
    src = tmp_path / "src.bin"; src.write_bytes(b"abcdefghij" * 1000)
    target = tmp_path / "dl" / "src.bin"; target.parent.mkdir()
    target.with_name("src.bin.part").write_bytes(src.read_bytes()[:4321])
    F.download(src.as_uri(), target, progress=False)
    assert target.read_bytes() == src.read_bytes()


def test_hand_placed_file_is_verified_by_check(tmp_path, capsys):
    good = b'[{"question": "1"}]'
    rel = {"title": "exam", "licence": "unknown", "source": {"kind": "none"}, "pin_note": "not published", "fetch": "hand",
           "instructions": "write the exam to DEST/exam/exam.json", "files": {"exam/exam.json": sha(good)}}
    m, dest = _manifest(tmp_path, {"exam": rel}), tmp_path / "data"
    assert main(["data", "get", "exam", "--dest", str(dest), "--manifest", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"write the exam to {dest}/exam/exam.json" in out and "missing" in out
    (dest / "exam").mkdir(parents=True); (dest / "exam" / "exam.json").write_bytes(b"[]")
    assert main(["data", "get", "exam", "--dest", str(dest), "--manifest", str(m), "--check"]) == 1
    assert "different" in capsys.readouterr().out
    (dest / "exam" / "exam.json").write_bytes(good)
    assert main(["data", "get", "exam", "--dest", str(dest), "--manifest", str(m), "--check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_table_lists_exactly_what_it_needs(tmp_path, capsys):
    assert main(["data", "get", "--table", "guo2023/table2", "--check", "--dest", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    listed = [l.split()[1] for l in out.splitlines() if l.startswith("  ")]
    assert listed == ["CMExam/data/train.csv", "CMExam/data/test_with_annotations.csv"]
    assert "fix: medrepro data get --table guo2023/table2" in out and not list(tmp_path.iterdir())  # --check fetched nothing


def test_bad_arguments_exit_2(tmp_path):
    "Bad arguments: one line on stderr, exit 2, no traceback (through the real console script)."
    import os, sys
    env, script = {**os.environ, "PYTHONPATH": str(repo_root())}, Path(sys.executable).parent / "medrepro"
    for args, says in [([], "name releases"), (["cmexm"], "did you mean 'cmexam'"), (["--table", "guo2023/tabel2", "--check"], "did you mean 'guo2023/table2'")]:
        r = subprocess.run([str(script), "data", "get", *args, "--dest", str(tmp_path)], capture_output=True, text=True, env=env)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_bad_manifest_is_one_line(tmp_path, capsys):
    m = _manifest(tmp_path, {"x": {"title": "x", "licence": "x", "source": {"kind": "ftp"}, "fetch": "auto", "files": {}}})
    assert main(["data", "get", "x", "--manifest", str(m)]) == 1
    err = capsys.readouterr().err.strip()
    assert "source kind" in err and len(err.splitlines()) == 1


def test_reproduce_full_refuses_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDREPRO_DATA", str(tmp_path / "nodata"))
    runs = tmp_path / "runs"
    assert main(["reproduce", "--tier", "full", "--table", "guo2023/table2", "--runs-dir", str(runs), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "CMExam/data/train.csv" in err and "CMExam/data/test_with_annotations.csv" in err
    assert "medrepro data get --table guo2023/table2" in err and not runs.exists()  # nothing executed


def test_fallback_tier_stops_only_on_wrong_files(tmp_path):
    "A tier that falls back to bundled data (real) ignores missing releases but not a present file of another version."
    specs = select_tables(discover_tables(), tables=["guo2023/table3"])
    F.require_data(specs, "full", root=tmp_path, fallback=True)  # everything missing: fine for a fallback tier
    (tmp_path / "cmmlu/data/dev").mkdir(parents=True)
    (tmp_path / "cmmlu/data/dev/anatomy.csv").write_text("another version\n")
    with pytest.raises(MedreproError, match="anatomy.csv"): F.require_data(specs, "full", root=tmp_path, fallback=True)


def test_doc_data_section_matches_manifest():
    doc = (repo_root() / "docs" / "reproducing.md").read_text(encoding="utf-8")
    section = doc.split(F.DOC_START, 1)[1].split(F.DOC_END, 1)[0].strip()
    assert section == F.manifest_markdown(), "regenerate: python -c 'from medrepro.data.fetch import write_data_section; write_data_section(\"docs/reproducing.md\")'"


def test_hub_release_offline_is_one_line_error(tmp_path, monkeypatch, capsys):
    "A hub release that cannot be reached (offline here) fails with one line per release, never a traceback."
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rel = {"title": "hub", "licence": "x", "source": {"kind": "hub", "repo_id": "nobody/nothing", "revision": None},
           "pin_note": "test", "fetch": "auto", "into": "hub", "files": {"hub/a.json": None}}
    m = _manifest(tmp_path, {"hub": rel})
    assert main(["data", "get", "hub", "--dest", str(tmp_path / "d"), "--manifest", str(m)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hub: error: hub download of nobody/nothing failed") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_tier_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e: main(["data", "get", "--check", "--tier", "ful", "--dest", str(tmp_path)])
    assert e.value.code == 2


@pytest.mark.network
def test_real_fetch_of_a_pinned_release(tmp_path):
    "Fetches PubMedQA at its pinned commit from GitHub (needs the network; skipped by default)."
    rows = F.fetch_release(F.load_manifest()["pubmedqa"], tmp_path, progress=False)
    assert all(r.status in ("ok", "present") for r in rows)
    assert len(json.loads((tmp_path / "pubmedqa/data/test_ground_truth.json").read_text())) == 500
