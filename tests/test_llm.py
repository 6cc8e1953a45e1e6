"""LLM backends against the loopback server: retries, Retry-After, timeouts, bad bodies, cache, accounting."""
import time

import pytest

from llm_server import echo_responder, serve
from medrepro.core import MedreproError
from medrepro.data.llm import (BACKENDS, ChatCache, FunctionBackend, HFBackend, OpenAIBackend, cache_key,
                               get_backend, mock_responder)

MSG = [{"role": "user", "content": "hello there"}]


def backend(url, **kw):
    kw = {"api_key_env": None, "max_retries": 3, "base_delay": 0.01, "timeout": 2.0, **kw}
    return OpenAIBackend("test-model", url, **kw)


@pytest.mark.parametrize("fault", ["500", "502", "503", "429-nohdr", "truncated", "nonjson", "nochoices", "disconnect"])
def test_transient_fault_is_retried(fault):
    srv = serve(echo_responder, faults=[fault])
    with srv as url:
        r = backend(url).chat(MSG)
    assert r.ok and r.text == "hello there" and r.attempts == 2
    assert [e["fault"] for e in srv.log] == [fault, None]


def test_retry_after_is_honoured():
    srv = serve(echo_responder, faults=["429"], retry_after="0.4")
    with srv as url:
        t = time.time()
        r = backend(url, base_delay=5.0).chat(MSG)  # without Retry-After the backoff would be >= 2.5 s
        dt = time.time() - t
    assert r.ok and r.attempts == 2 and 0.35 <= dt < 2.0


def test_timeout_then_success():
    srv = serve(echo_responder, faults=["timeout"], hang=2.0)
    with srv as url:
        t = time.time()
        r = backend(url, timeout=0.3).chat(MSG)
        dt = time.time() - t
    assert r.ok and r.attempts == 2 and dt < 1.5  # waiting for the hung reply would take 2 s


def test_whole_request_deadline_catches_a_trickling_server():
    srv = serve(echo_responder, faults=["slow"], hang=2.0)
    with srv as url:
        b = backend(url, timeout=0.4)
        t = time.time()
        r = b.chat(MSG)
        dt = time.time() - t
    assert r.ok and r.attempts == 2 and b.usage.transient == {"timeout": 1} and dt < 1.5


def test_final_error_after_retries():
    srv = serve(echo_responder, faults=lambda n, body: "503")
    with srv as url:
        b = backend(url, max_retries=2)
        r = b.chat(MSG)
    assert not r.ok and r.error.startswith("failed after 3 attempts: HTTP 503") and len(srv.log) == 3
    assert b.usage.failed == 1 and b.usage.requests == 3 and b.usage.retries == 2


def test_client_errors_are_not_retried():
    srv = serve(echo_responder, faults=["400"])
    with srv as url:
        r = backend(url).chat(MSG)
    assert not r.ok and r.error.startswith("HTTP 400") and r.attempts == 1 and len(srv.log) == 1


def test_connection_refused_is_a_clear_error():
    r = backend("http://127.0.0.1:9/v1", max_retries=1).chat(MSG)
    assert not r.ok and "connection error" in r.error and r.attempts == 2


def test_api_key_from_env_only(monkeypatch):
    key = "sk-test-SECRET-0123456789"
    srv = serve(echo_responder, api_key=key)
    with srv as url:
        r = backend(url, api_key_env="MEDREPRO_TEST_KEY").chat(MSG)  # not set: 401, not retried
        assert not r.ok and r.attempts == 1 and "HTTP 401" in r.error and "(is $MEDREPRO_TEST_KEY set?)" in r.error
        monkeypatch.setenv("MEDREPRO_TEST_KEY", key)
        b = backend(url, api_key_env="MEDREPRO_TEST_KEY")
        assert b.chat(MSG).ok
    assert key not in repr(b) and key not in str(b.describe()) and b.describe()["key_present"]
    assert [e["authorized"] for e in srv.log] == [False, True]


def test_bounded_concurrency_overlaps_requests():
    srv = serve(echo_responder, latency=0.2)
    with srv as url:
        b = backend(url, concurrency=6)
        t = time.time()
        res = b.chat_many([[{"role": "user", "content": f"q{i}"}] for i in range(12)])
        dt = time.time() - t
    assert [r.text for r in res] == [f"q{i}" for i in range(12)]  # results in input order
    assert 0.4 <= dt < 1.6  # 12 requests, 6 at a time, 0.2 s each: two waves (serial would be 2.4 s)


def test_cache_serves_repeats_and_dedupes(tmp_path):
    srv = serve(echo_responder)
    convs = [[{"role": "user", "content": c}] for c in ["a", "b", "a"]]
    with srv as url:
        b = backend(url, cache=tmp_path / "c.sqlite", price_per_mtok=(1e6, 2e6))
        first = b.chat_many(convs)
        assert len(srv.log) == 2 and not any(r.cached for r in first)  # "a" asked once
        again = b.chat_many(convs)
        assert len(srv.log) == 2 and all(r.cached for r in again) and [r.text for r in again] == ["a", "b", "a"]
        b.chat_many(convs, temperature=0.5)  # other generation parameters: a different request
        assert len(srv.log) == 4
    # a new backend on the same file (a new process, say) sees the same cache
    b2 = backend("http://127.0.0.1:9/v1", cache=tmp_path / "c.sqlite")
    assert all(r.cached for r in b2.chat_many(convs))
    assert b.usage.cached == 3 and b.usage.succeeded == 4
    assert b.usage.prompt_tokens == 4 and b.usage.cost == pytest.approx(4 * 1 + 4 * 2)  # one word in, one word out


def test_failures_are_not_cached(tmp_path):
    srv = serve(echo_responder, faults=["500", "500"])
    with srv as url:
        b = backend(url, cache=tmp_path / "c.sqlite", max_retries=1)
        assert not b.chat(MSG).ok
        r = b.chat(MSG)
    assert r.ok and not r.cached and len(ChatCache(tmp_path / "c.sqlite")) == 1


def test_seed_is_sent_and_keyed():
    srv = serve(echo_responder)
    with srv as url:
        b = backend(url)
        b.chat(MSG, seed=3)
    assert srv.log[0]["seed"] == 3
    assert cache_key("x", MSG, {"seed": 1}) != cache_key("x", MSG, {"seed": 2})


def test_function_backend_errors_and_concurrency():
    def fn(m):
        if "boom" in m[-1]["content"]:
            raise RuntimeError("boom")
        time.sleep(0.25)
        return "ok"
    b = FunctionBackend(fn, concurrency=4)
    t = time.time()
    res = b.chat_many([[{"role": "user", "content": c}] for c in ["a", "b", "boom", "d", "e"]])
    assert [r.ok for r in res] == [True, True, False, True, True] and "RuntimeError: boom" in res[2].error
    assert time.time() - t < 0.75  # 4 sleeps of 0.25 s at once (serial: 1.0 s)


def test_registry_and_unknown_kind():
    assert set(BACKENDS.names()) >= {"openai", "hf", "function"}
    assert get_backend("function", "mock").fn is mock_responder
    with pytest.raises(MedreproError, match="did you mean 'openai'"):
        get_backend("opneai", "m")
    with pytest.raises(MedreproError, match="not an http"):
        OpenAIBackend("m", "ftp://x")
    with pytest.raises(MedreproError, match="concurrency"):
        FunctionBackend(echo_responder, concurrency=0)


def test_hf_backend_batched_tiny(tmp_path):
    b = HFBackend("tiny", batch_size=2, cache=tmp_path / "c.sqlite")
    convs = [[{"role": "user", "content": c}] for c in ["发热", "cough", "头痛"]]
    res = b.chat_many(convs, max_tokens=6)
    assert all(r.ok and r.usage["completion_tokens"] <= 6 for r in res) and b.usage.succeeded == 3
    greedy_again = HFBackend("tiny", batch_size=3).chat_many(convs, max_tokens=6)  # other batching, same greedy text
    assert [r.text for r in greedy_again] == [r.text for r in res]
    assert all(r.cached for r in b.chat_many(convs, max_tokens=6))


def test_transient_failures_are_counted_by_kind():
    srv = serve(echo_responder, faults=["429", "500", "timeout", "nonjson"], hang=0.6)
    with srv as url:
        b = backend(url, timeout=0.3, max_retries=4)
        r = b.chat(MSG)
    assert r.ok and r.attempts == 5
    assert b.usage.transient == {"http:429": 1, "http:500": 1, "timeout": 1, "not_json": 1}
    assert b.usage.requests == 5 and b.usage.retries == 4 and b.usage.succeeded == 1


def test_retry_after_http_date():
    from email.utils import formatdate
    from medrepro.data.llm import _parse_retry_after
    assert 0 < _parse_retry_after(formatdate(time.time() + 3, usegmt=True)) <= 3
    assert _parse_retry_after("garbage") is None and _parse_retry_after(formatdate(time.time() - 5, usegmt=True)) == 0


@pytest.mark.gpu
def test_hf_backend_on_cuda_bf16():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    b = HFBackend("tiny", device="cuda", dtype="bfloat16", batch_size=4)
    res = b.chat_many([[{"role": "user", "content": c}] for c in ["发热", "cough", "头痛", "rash", "fatigue"]], max_tokens=8)
    assert all(r.ok for r in res) and b.usage.completion_tokens > 0
    assert next(b._lm.parameters()).device.type == "cuda"


def test_max_tokens_field_is_configurable():
    seen = []
    srv = serve(lambda m: "ok", faults=lambda n, body: seen.append(body) or None)
    with srv as url:
        backend(url, max_tokens_field="max_completion_tokens").chat(MSG, max_tokens=7)
    assert seen[0]["max_completion_tokens"] == 7 and "max_tokens" not in seen[0]
