"""data.pipeline and the endpoint guards: scheduling, ordered writes, run history, circuit breaker, masking."""
import io, json, contextlib, socket, threading, time

import pytest

from llm_server import serve
from medrepro.cli import main
from medrepro.core import UsageError, read_jsonl, write_jsonl
from medrepro.data.llm import ERROR_CHARS, FunctionBackend, OpenAIBackend, mock_responder
from medrepro.data.pipeline import read_history, read_inputs, rejected_path, report_path, run_pipeline
from medrepro.data.records import Document
from medrepro.data.unify import UnifyConfig, unify_documents

MSG = [{"role": "user", "content": "hi"}]


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main(argv)
        except SystemExit as e: rc = e.code
    return rc, out.getvalue(), err.getvalue()


def dead_url() -> str:
    "A loopback port nobody listens on."
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return f"http://127.0.0.1:{port}/v1"


def docs_file(tmp_path, n=40):
    p = tmp_path / "docs.jsonl"
    write_jsonl([{"id": f"d{i:03d}", "text": f"[d{i:03d}] Drug X{i} lowers blood pressure. It is taken daily.", "source": "web"}
                 for i in range(n)], p)
    return p


# ------------------------------------------------------------------ endpoint failure
def test_dead_endpoint_trips_the_breaker_within_seconds(tmp_path):
    out = tmp_path / "o.jsonl"
    t = time.time()
    rc, so, err = run(["unify", "--input", str(docs_file(tmp_path)), "--format", "jsonl", "--out", str(out), "--backend", "openai",
                       "--model", "m", "--base-url", dead_url(), "--api-key-env", "", "--cache", "none", "--no-progress",
                       "--concurrency", "4", "--max-consecutive-failures", "5"])  # default retry delay (1 s): the halt ends the waits
    assert rc == 3 and time.time() - t < 8, err
    assert "unreachable: " in err and "run the same command again to resume" in err and "Traceback" not in err
    runs = read_history(out)
    assert runs[-1]["outcome"] == "halted" and runs[-1]["usage"]["requests"] <= 5 + 4 * 2  # the 5, plus requests in flight
    assert read_jsonl(out) == [] and rejected_path(out).exists()  # nothing recorded: a rerun does every input


def test_401_stops_the_run_at_once_with_the_server_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDREPRO_TEST_WRONG_KEY", "sk-wrong-key-000")
    srv = serve(mock_responder, api_key="sk-right-key-111")
    with srv as url:
        rc, so, err = run(["unify", "--input", str(docs_file(tmp_path)), "--format", "jsonl", "--out", str(tmp_path / "o.jsonl"),
                           "--backend", "openai", "--model", "m", "--base-url", url, "--api-key-env", "MEDREPRO_TEST_WRONG_KEY",
                           "--cache", "none", "--no-progress", "--concurrency", "2"])
    assert rc == 3 and "HTTP 401: invalid api key" in err and "$MEDREPRO_TEST_WRONG_KEY" in err
    assert len(srv.log) <= 2 * 4 and "sk-wrong-key" not in so + err  # the requests already in flight, no more


@pytest.mark.parametrize("fault,retried", [("429", True), ("500", True), ("503", True), ("timeout", True), ("disconnect", True),
                                           ("400", False), ("401", False)])
def test_only_what_can_succeed_is_retried(fault, retried):
    srv = serve(mock_responder, faults=[fault], hang=1.0)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, timeout=0.5, base_delay=0.01, max_retries=2)
        r = b.chat(MSG)
    assert r.ok == retried and len(srv.log) == (2 if retried else 1)


def test_404_halts_with_a_hint():
    srv = serve(mock_responder, faults=["404"])
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, max_retries=3)
        r = b.chat(MSG)
        assert not r.ok and r.attempts == 1 and "HTTP 404" in r.error and "--base-url" in r.error and b.halted
        assert b.chat([{"role": "user", "content": "other"}]).error.startswith("not sent:") and len(srv.log) == 1


def test_an_answer_between_failures_resets_the_breaker():
    faults = ["disconnect", "disconnect", None, "disconnect", "disconnect", None] * 3
    srv = serve(mock_responder, faults=faults)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, base_delay=0.0, max_retries=3, max_consecutive_failures=3)
        assert all(b.chat([{"role": "user", "content": f"q{i}"}]).ok for i in range(6)) and b.halted is None


# ------------------------------------------------------------------ masking
def test_a_key_straddling_every_cut_is_masked(monkeypatch):
    key = "sk-test-SECRETVALUE-0123456789abcdef"
    monkeypatch.setenv("MEDREPRO_TEST_KEY", key)
    def leaky(messages):  # a server that echoes the key (and the header) in its error text
        n = int(messages[-1]["content"])
        raise RuntimeError("x" * n + (key if n % 2 else f"Bearer {key}") + " trailing words")
    srv = serve(leaky, api_key=key)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env="MEDREPRO_TEST_KEY", max_retries=0, concurrency=8)
        res = b.chat_many([[{"role": "user", "content": str(n)}] for n in range(ERROR_CHARS + 5)])
    subs = {key[i:i + 6] for i in range(len(key) - 5)}  # every 6-character piece of the key
    for r in res:
        assert not r.ok and "HTTP 500" in r.error and not any(s in r.error for s in subs), r.error
    assert sum("***" in r.error for r in res) > ERROR_CHARS // 2  # the mask itself survives the cut where it fits


# ------------------------------------------------------------------ scheduling and ordered writes
def slow_responder(slow_doc: str, log: list, delay: float = 0.6):
    def fn(messages):
        text = messages[-1]["content"] if messages[0]["role"] == "user" else messages[0]["content"]
        is_q = messages[0]["role"] == "user"
        if is_q and f"[{slow_doc}]" in text: time.sleep(delay)
        log.append((time.monotonic(), "q" if is_q else "a", text[text.find("[d") + 1:text.find("[d") + 5]))
        return mock_responder(messages)
    return fn


def test_answers_start_as_soon_as_their_question_is_ready(tmp_path):
    log = []
    docs = read_inputs(docs_file(tmp_path, 12), "jsonl")
    be = FunctionBackend(slow_responder("d000", log), name="slow", concurrency=4)
    res = unify_documents(docs, be, UnifyConfig())
    q_slow = next(t for t, k, d in log if k == "q" and d == "d000")
    assert sum(1 for t, k, d in log if k == "a" and t < q_slow) >= 5  # other documents' answers did not wait for d000
    assert [o.id for o in res.outcomes] == [d.id for d in docs] and len(res.records) == 12


def test_chunks_overlap_and_writes_stay_in_order(tmp_path):
    log = []
    docs = read_inputs(docs_file(tmp_path, 16), "jsonl")
    be = FunctionBackend(slow_responder("d000", log), name="slow", concurrency=4)
    out = tmp_path / "o.jsonl"
    s = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, chunk_size=2, progress=False)
    q_slow = next(t for t, k, d in log if k == "q" and d == "d000")
    later = {d for t, k, d in log if k == "a" and t < q_slow}
    assert len(later - {"d001"}) >= 4  # documents of later chunks were done while chunk 0 waited
    assert s.accepted == 16 and [r["meta"]["input_id"] for r in read_jsonl(out)] == [d.id for d in docs]


def test_lock_step_for_a_batching_backend(tmp_path):
    calls = []
    class Batching(FunctionBackend):
        independent_requests = False
        def _generate(self, conversations, params):
            calls.append(len(conversations)); yield from super()._generate(conversations, params)
    docs = read_inputs(docs_file(tmp_path, 6), "jsonl")
    res = unify_documents(docs, Batching(mock_responder, name="b", concurrency=4))
    assert calls == [6, 6] and len(res.records) == 6  # one batch of questions, one of answers


# ------------------------------------------------------------------ run history and settings
UNIFY_FN = ["--backend", "function", "--model", "mock", "--no-progress"]


def test_history_keeps_every_invocation_and_the_report_sums_them(tmp_path):
    out, inp = tmp_path / "o.jsonl", docs_file(tmp_path, 6)
    base = ["unify", "--input", str(inp), "--format", "jsonl", "--out", str(out), "--cache", str(tmp_path / "c.sqlite"), *UNIFY_FN]
    assert run(base + ["--limit", "3"])[0] == 0 and run(base)[0] == 0 and run(base)[0] == 0
    runs = read_history(out)
    assert [r["summary"]["done"] for r in runs] == [3, 3, 0] and [r["outcome"] for r in runs] == ["complete"] * 3
    assert [r["usage"]["requests"] for r in runs] == [6, 6, 0]
    rep = json.loads(report_path(out).read_text())
    assert rep["all_runs"]["invocations"] == 3 and rep["all_runs"]["requests"] == 12 and rep["output"]["accepted_inputs"] == 6
    assert rejected_path(out).exists() and rejected_path(out).read_text() == ""  # written even when nothing was rejected


def test_other_generation_settings_are_refused_unless_forced(tmp_path):
    out, inp = tmp_path / "o.jsonl", docs_file(tmp_path, 4)
    base = ["unify", "--input", str(inp), "--format", "jsonl", "--out", str(out), "--cache", "none", "--no-progress", "--backend", "function"]
    assert run(base + ["--model", "mock", "--limit", "2"])[0] == 0
    rc, so, err = run(base + ["--model", "mock", "--max-question-chars", "100"])
    assert rc == 2 and "config.max_question_chars: 180 -> 100" in err and "--force-settings" in err and len(read_history(out)) == 1
    rc, so, err = run(base + ["--model", "mock", "--language", "zh"])
    assert rc == 2 and "config.language: 'auto' -> 'zh'" in err
    assert run(base + ["--model", "mock", "--concurrency", "3", "--chunk-size", "5"])[0] == 0  # scheduling is not a generation setting
    rc, so, err = run(base + ["--model", "mock", "--language", "en", "--force-settings"])
    runs = read_history(out)
    assert rc == 0 and runs[-1]["forced_settings"] == {"config.language": {"before": "auto", "now": "en"}}


def test_unify_jsonl_goes_through_the_loaders(tmp_path):
    p = tmp_path / "docs.jsonl"
    rows = [json.dumps({"id": f"d{i}", "text": f"Drug {i} lowers blood pressure."}) for i in range(8)]
    p.write_bytes(("\ufeff" + "\n".join(rows) + "\n\n" + '{"id": "d9"}\n').encode())  # BOM, a blank line, no text on line 10
    rc, so, err = run(["unify", "--input", str(p), "--format", "jsonl", "--source-type", "web", "--out", str(tmp_path / "o.jsonl"),
                       "--cache", "none", *UNIFY_FN])
    assert rc == 1 and f"{p}:row 9 (line 10): missing field 'text'" in err
    p.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode())
    rc, so, err = run(["unify", "--input", str(p), "--format", "jsonl", "--source-type", "web", "--out", str(tmp_path / "o.jsonl"),
                       "--cache", "none", *UNIFY_FN])
    assert rc == 0 and "8 accepted" in so


def test_two_runs_cannot_share_an_output_nor_a_history(tmp_path):
    out = tmp_path / "o.jsonl"
    started, release = threading.Event(), threading.Event()
    def blocking(m):
        started.set(); release.wait(5); return mock_responder(m)
    be = FunctionBackend(blocking, name="blocking")
    docs = [Document("a", "Drug A lowers blood pressure.", source="web")]
    t = threading.Thread(target=run_pipeline, args=(docs, lambda ch: unify_documents(ch, be), out), kwargs={"backend": be, "progress": False})
    t.start(); started.wait(5)
    with pytest.raises(Exception, match="another run is writing this output"):
        run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    release.set(); t.join()
    assert [r["outcome"] for r in read_history(out)] == ["complete"]


def test_another_model_is_refused(tmp_path):
    out, inp = tmp_path / "o.jsonl", docs_file(tmp_path, 2)
    with serve(mock_responder) as url:
        base = ["unify", "--input", str(inp), "--format", "jsonl", "--out", str(out), "--cache", "none", "--no-progress",
                "--backend", "openai", "--base-url", url, "--api-key-env", ""]
        assert run(base + ["--model", "model-a", "--limit", "1"])[0] == 0
        rc, so, err = run(base + ["--model", "model-b"])
    assert rc == 2 and "model: 'model-a' -> 'model-b'" in err and len(read_jsonl(out)) == 1


def test_a_hung_request_is_raced_by_a_copy():
    srv = serve(mock_responder, faults=lambda n, body: "timeout" if n == 30 else None, hang=4.0)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=4, timeout=10)
        assert all(r.ok for r in b.chat_many([[{"role": "user", "content": f"warm {i}"}] for i in range(30)]))
        t = time.time()
        r = b.chat([{"role": "user", "content": "the hung one"}])
        took = time.time() - t
    assert r.ok and took < 3 and r.attempts == 2, took  # the copy answered long before the 4 s hang ended
    assert b.usage.transient == {"hedged": 1} and b.usage.requests == 32
