"""A real kill-and-resume: `medrepro unify` in a subprocess, SIGKILLed mid-run, started again."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from llm_server import serve
from medrepro.core import read_jsonl, write_jsonl
from medrepro.data.llm import mock_responder
from medrepro.data.pipeline import rejected_path

N = 60


def responder(messages):
    """The mock, except that documents whose number ends in 7 get a question that is far too long."""
    text = messages[0]["content"]
    if messages[0]["role"] == "user" and "7] " in text:
        return "Why " * 60 + "?"
    return mock_responder(messages)


def doc_of(messages) -> str:
    text = "\n".join(m["content"] for m in messages)
    i = text.find("[doc")
    return text[i + 1:i + 8]  # "doc0042"


def recorded_ids(out):
    rows = []
    for p in (out, rejected_path(out)):
        if p.exists():
            for line in p.read_text(encoding="utf-8").splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut by the kill
                    continue
                rows.append(r["input_id"] if "input_id" in r else r["meta"]["input_id"])
    return rows


def ready(out, srv, kill_after):
    done = set(recorded_ids(out))
    with srv.lock:
        paid_open = sum(e["status"] == 200 and doc_of(e["messages"]) not in done for e in srv.log)
    return len(done) >= kill_after and paid_open >= 4


@pytest.mark.parametrize("kill_after", [1, 20])
def test_sigkill_then_resume(tmp_path, kill_after):
    docs = tmp_path / "docs.jsonl"
    write_jsonl([{"id": f"doc{i:04d}", "text": f"[doc{i:04d}] Drug X{i} lowers blood pressure. It is taken daily.",
                  "source": "web"} for i in range(N)], docs)
    out, cache = tmp_path / "pairs.jsonl", tmp_path / "cache.sqlite"
    cmd = [sys.executable, "-c", "import sys; from medrepro.cli import main; sys.exit(main())", "unify",
           "--input", str(docs), "--format", "jsonl", "--out", str(out), "--cache", str(cache),
           "--backend", "openai", "--model", "m", "--api-key-env", "", "--concurrency", "2", "--chunk-size", "8",
           "--no-progress"]
    srv = serve(responder, latency=0.02)
    with srv as url:
        p = subprocess.Popen(cmd + ["--base-url", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.time()
        # kill once `kill_after` documents are recorded AND replies for unrecorded documents have been paid for
        while not ready(out, srv, kill_after) and p.poll() is None and time.time() - t0 < 60:
            time.sleep(0.005)
        assert p.poll() is None, "the run finished before it could be killed"
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        finished = set(recorded_ids(out))
        assert kill_after <= len(finished) < N
        first_run = len(srv.log)
        r = subprocess.run(cmd + ["--base-url", url], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        second = srv.log[first_run:]
    ids = recorded_ids(out)
    assert sorted(ids) == [f"doc{i:04d}" for i in range(N)]  # none lost, none duplicated
    assert Counter(i[-1] for i in read_ids_rejected(out)) == {"7": 6}  # 7, 17, ..., 57 were filtered
    # finished documents cost nothing the second time: not one request mentions them
    assert not [e for e in second if doc_of(e["messages"]) in finished]
    # a reply paid for in the first run is never requested again (only killed in-flight ones may be)
    paid = Counter(json.dumps([e["messages"], e["seed"]]) for e in srv.log if e["status"] == 200)
    assert sum(n - 1 for n in paid.values()) <= 2  # at most the requests in flight at the kill (concurrency 2)
    assert "already done" in r.stdout and "failed 0" in r.stdout
    # the killed run is in the history with what it had spent when its last chunk was written; the report sums both
    runs = json.loads(pathlib.Path(f"{out}.run.json").read_text())["runs"]
    assert [r["outcome"] for r in runs] == ["killed", "complete"] and runs[1]["usage"]["requests"] == len(second)
    if kill_after == 20:  # two chunks of 8 were written (and the entry saved) before the kill
        assert 0 < runs[0]["usage"]["requests"] <= first_run
    report = json.loads(pathlib.Path(f"{out}.report.json").read_text())
    assert report["all_runs"]["invocations"] == 2
    assert report["all_runs"]["requests"] == runs[0]["usage"]["requests"] + runs[1]["usage"]["requests"]


def read_ids_rejected(out):
    return [r["input_id"] for r in read_jsonl(rejected_path(out))]
