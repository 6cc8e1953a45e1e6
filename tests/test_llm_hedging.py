"""OpenAIBackend under a slow or failing server: hedged copies, the cap on them, full-jitter backoff, slots by age;
and the pipeline's record of inputs that failed after every retry."""
import threading, time

from llm_server import serve
from medrepro.data.llm import ChatCache, FunctionBackend, OpenAIBackend, _Retryable, mock_responder, request_priority
from medrepro.data.pipeline import read_history, run_pipeline
from medrepro.data.records import Document
from medrepro.data.unify import unify_documents


def user(text: str) -> list[dict]: return [{"role": "user", "content": text}]


def hang_once(*marks: str):
    "A fault callable: the first request whose last message contains one of `marks` hangs; nothing else does."
    seen, lock = set(), threading.Lock()
    def fault(n, body):
        text = body["messages"][-1]["content"]
        with lock:
            for m in marks:
                if m in text and m not in seen: seen.add(m); return "timeout"
        return None
    return fault


def test_a_hung_request_gets_a_copy_while_every_slot_is_busy(tmp_path):
    srv = serve(mock_responder, faults=hang_once("HUNG"), latency=0.05, hang=4.0)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=2, timeout=10, cache=tmp_path / "c.sqlite")
        assert all(r.ok for r in b.chat_many([user(f"warm {i}") for i in range(24)]))  # latencies to set the deadline
        convs = [user("HUNG")] + [user(f"busy {i}") for i in range(20)]  # 20 more keep both slots and a queue busy
        done, t0 = {}, time.monotonic()
        res = b.chat_many(convs, on_result=lambda i, r: done.setdefault(i, time.monotonic() - t0))
        b.close()
    assert all(r.ok for r in res)
    assert done[0] < 1.5, done[0]               # the copy answered; the 4 s hang (and the 10 s timeout) were not waited out
    assert b.usage.transient == {"hedged": 1}   # one copy, no timeout, no failure
    assert res[0].attempts == 2 and b.usage.requests == 24 + 21 + 1
    assert sum("HUNG" in e["messages"][-1]["content"] for e in srv.log) == 2
    assert len(ChatCache(tmp_path / "c.sqlite")) == 24 + 21  # the reply was stored once


def test_copies_are_capped_and_can_be_switched_off():
    srv = serve(mock_responder, faults=hang_once("H1", "H2", "H3", "H4"), latency=0.2, hang=1.0)
    with srv as url:
        # three requests stall at once; one copy may run beyond `concurrency` (max_hedges=1): the other two wait
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=4, timeout=5, hedge_after=0.1, max_hedges=1)
        res = b.chat_many([user("H1"), user("H2"), user("H3")])
        off = OpenAIBackend("m", url, api_key_env=None, concurrency=4, timeout=5, hedge_after=0)  # never
        t = time.monotonic(); r = off.chat(user("H4"))
        took = time.monotonic() - t
    assert all(x.ok for x in res) and b.usage.transient == {"hedged": 1} and b.usage.requests == 4
    assert sorted(x.attempts for x in res) == [1, 1, 2]
    assert r.ok and r.attempts == 1 and off.usage.transient == {} and took >= 1.0  # the hang was waited out


def test_a_copy_that_stalls_too_is_raced_by_another():
    hangs = {"left": 2}
    def faults(n, body):  # the original and its first copy hang; the second copy answers
        if hangs["left"]: hangs["left"] -= 1; return "timeout"
        return None
    srv = serve(mock_responder, faults=faults, latency=0.0, hang=3.0)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=4, timeout=10, hedge_after=0.2, max_hedges=2)
        t = time.monotonic(); r = b.chat(user("twice unlucky"))
        took = time.monotonic() - t
    assert r.ok and r.attempts == 3 and took < 1.5, took
    assert b.usage.transient == {"hedged": 2} and len(srv.log) == 3


def test_the_copy_failing_gives_the_stalled_original_up_and_retries():
    fault = hang_once("X")
    def faults(n, body):  # the original hangs; its copy (the next request for X) gets a 500; the retry succeeds
        f = fault(n, body)
        if f is None and "X" in body["messages"][-1]["content"] and not faults.copy_failed:
            faults.copy_failed = True; return "500"
        return f
    faults.copy_failed = False
    srv = serve(mock_responder, faults=faults, latency=0.0, hang=4.0)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=2, timeout=10, hedge_after=0.2, base_delay=0.1)
        t = time.monotonic(); r = b.chat(user("X"))
        took = time.monotonic() - t
    assert r.ok and r.attempts == 3 and took < 1.5, took  # original + failed copy, then one retry; no 4 s wait
    assert b.usage.transient == {"hedged": 1, "http:500": 1}


def test_backoff_is_full_jitter_and_retry_after_wins():
    b = OpenAIBackend("m", "http://127.0.0.1:9/v1", api_key_env=None, base_delay=1.0, max_wait=5.0)
    isolated = [b._backoff(3, _Retryable("HTTP 500", None, "http:500")) for _ in range(300)]
    assert all(0 <= w < 1.0 for w in isolated) and max(isolated) > 0.9 and min(isolated) < 0.1  # no growth when healthy
    rate_limited = [b._backoff(2, _Retryable("HTTP 429", None, "http:429")) for _ in range(300)]
    assert all(0 <= w < 4.0 for w in rate_limited) and max(rate_limited) > 2.0  # a 429 says slow down: 2**attempt
    assert b._backoff(4, _Retryable("HTTP 429", 0.25, "http:429")) == 0.25    # the server's Retry-After, as given
    assert b._backoff(0, _Retryable("HTTP 503", 30.0, "http:503")) == 5.0     # capped at max_wait
    b._recent.extend([True] * 20)  # the endpoint as a whole is failing: waits grow with the attempt
    assert max(b._backoff(3, _Retryable("HTTP 500", None, "http:500")) for _ in range(300)) > 4.0


def test_older_inputs_get_the_next_slot_first():
    srv = serve(mock_responder, faults=lambda n, body: "timeout" if n == 0 else None, hang=0.6)
    with srv as url:
        b = OpenAIBackend("m", url, api_key_env=None, concurrency=1, timeout=5, hedge_after=0)
        blocker = threading.Thread(target=b.chat, args=(user("blocker"),)); blocker.start(); time.sleep(0.15)
        def ask(key):
            with request_priority(key): b.chat(user(f"key {key}"))
        ts = [threading.Thread(target=ask, args=(k,)) for k in (3.0, 1.0, 2.0)]
        for t in ts: t.start(); time.sleep(0.05)  # they queue for the one slot in the order 3, 1, 2
        for t in [blocker, *ts]: t.join(5)
    assert [e["messages"][-1]["content"] for e in srv.log] == ["blocker", "key 1.0", "key 2.0", "key 3.0"]


def test_an_input_that_fails_every_retry_is_recorded_and_resumed(tmp_path):
    broken = {"on": True}
    def fn(m):
        if broken["on"] and "Drug B" in m[-1]["content"]: raise RuntimeError("server down for B")
        return mock_responder(m)
    be = FunctionBackend(fn, name="flaky", concurrency=4)
    docs = [Document(k, f"Drug {k.upper()} lowers blood pressure in adults. It is taken daily.", source="web") for k in "abc"]
    out = tmp_path / "o.jsonl"
    s1 = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    assert s1.failed_ids == ["b"] and s1.accepted == 2 and s1.outcome == "failed_inputs"
    assert read_history(out)[-1]["summary"]["failed_ids"] == ["b"]  # on disk, not only in memory
    broken["on"] = False
    s2 = run_pipeline(docs, lambda ch: unify_documents(ch, be), out, backend=be, progress=False)
    assert s2.skipped_done == 2 and s2.accepted == 1 and s2.failed_ids == [] and s2.outcome == "complete"
