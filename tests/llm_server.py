"""A small OpenAI-compatible chat-completions server on 127.0.0.1, with fault injection, for tests and benchmarks.

Usage::

    from llm_server import serve, echo_responder

    srv = serve(echo_responder, faults=["429", "500"], latency=0.0)
    with srv as base_url:                       # e.g. "http://127.0.0.1:40123/v1"
        backend = OpenAIBackend("m", base_url, api_key_env=None)
        ...
    srv.log                                     # one dict per request received (see below)

`serve(responder, faults=None, *, latency=0.0, retry_after="0.05", hang=1.0, api_key=None)`:

- `responder(messages: list[dict]) -> str`: the deterministic reply to a conversation. An exception in it
  becomes a 500 response.
- `faults`: what goes wrong, either a list of fault names applied to the first requests in arrival order (then
  every request is normal), or a callable `(n, body) -> fault name | None` where `n` counts requests from 0 and
  `body` is the parsed request. Fault names:

  ``"429"``        429 Too Many Requests with a `Retry-After: <retry_after>` header
  ``"429-nohdr"``  429 without Retry-After
  ``"500"``, ``"502"``, ``"503"``   that status with a short JSON error body
  ``"400"``, ``"401"``, ``"403"``, ``"404"``   client errors (a client must NOT retry these)
  ``"timeout"``    sleeps `hang` seconds before answering normally (set the client timeout below it)
  ``"slow"``       200 whose body trickles out over `hang` seconds (defeats a per-read timeout, not a deadline)
  ``"truncated"``  200 with a Content-Length larger than the body, then the connection is closed
  ``"nonjson"``    200 with an HTML body
  ``"nochoices"``  200 with JSON that has no `choices`
  ``"disconnect"`` closes the connection without answering

- `latency`: seconds every request waits before it is answered (benchmarks use 0.05).
- `api_key`: when set, a request without `Authorization: Bearer <api_key>` gets 401.

`srv.log` entries: `{"n", "path", "model", "messages", "max_tokens", "temperature", "seed", "fault", "status",
"authorized"}` (no header values are stored). `srv.served(pred)` counts log entries with status 200 whose
messages satisfy `pred(messages)`. Usage in replies is counted in whitespace-separated words.
"""
from __future__ import annotations
import json, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["serve", "LLMServer", "echo_responder", "fault_mix"]


def echo_responder(messages: list[dict]) -> str:
    """Reply with the last message's content."""
    return messages[-1]["content"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def log_message(self, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK stall each reply ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: bytes, headers: dict | None = None, length: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        srv: LLMServer = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._send(400, b'{"error": "request body is not JSON"}')
        authorized = srv.api_key is None or self.headers.get("Authorization") == f"Bearer {srv.api_key}"
        with srv.lock:
            n = srv.count
            srv.count += 1
        fault = srv.fault_for(n, body)
        entry = {"n": n, "path": self.path, "model": body.get("model"), "messages": body.get("messages"),
                 "max_tokens": body.get("max_tokens"), "temperature": body.get("temperature"),
                 "seed": body.get("seed"), "fault": fault, "status": None, "authorized": authorized}
        with srv.lock:
            srv.log.append(entry)
        if srv.latency:
            time.sleep(srv.latency)
        if not self.path.endswith("/chat/completions"):
            entry["status"] = 404
            return self._send(404, b'{"error": "not found"}')
        if not authorized:
            entry["status"] = 401
            return self._send(401, b'{"error": {"message": "invalid api key"}}')
        if fault == "timeout":
            time.sleep(srv.hang)
            fault = None
        if fault == "disconnect":
            entry["status"] = 0
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in ("429", "429-nohdr"):
            entry["status"] = 429
            hdr = {"Retry-After": srv.retry_after} if fault == "429" else {}
            return self._send(429, b'{"error": {"message": "rate limited"}}', hdr)
        if fault in ("400", "401", "403", "404", "500", "502", "503"):
            entry["status"] = int(fault)
            return self._send(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
        if fault == "nonjson":
            entry["status"] = 200
            return self._send(200, b"<html><body>Bad gateway</body></html>")
        if fault == "nochoices":
            entry["status"] = 200
            return self._send(200, b'{"object": "chat.completion", "id": "x"}')
        try:
            text = srv.responder(body["messages"])
        except Exception as e:  # a broken responder is a server error
            entry["status"] = 500
            return self._send(500, json.dumps({"error": {"message": f"responder: {e}"}}).encode())
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        reply = json.dumps({"id": f"chatcmpl-{n}", "object": "chat.completion", "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                                      "total_tokens": prompt_words + len(text.split())}},
                           ensure_ascii=False).encode()
        if fault == "slow":  # headers at once, then the body a few bytes at a time over `hang` seconds
            entry["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            step = max(1, len(reply) // 20)
            try:
                for i in range(0, len(reply), step):
                    self.wfile.write(reply[i:i + step])
                    self.wfile.flush()
                    time.sleep(srv.hang / 20)
            except OSError:  # the client gave up
                self.close_connection = True
            return
        if fault == "truncated":
            entry["status"] = 200
            self.close_connection = True
            return self._send(200, reply[: len(reply) // 2], length=len(reply))
        entry["status"] = 200
        self._send(200, reply)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog (5) drops connections when many clients connect at once
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):  # a client that gave up (timeout test): expected, not news
            return
        super().handle_error(request, client_address)


class LLMServer:
    """The server; use as a context manager that yields the base URL (see the module docstring)."""

    def __init__(self, responder: Callable[[list[dict]], str], faults=None, *, latency: float = 0.0,
                 retry_after: str = "0.05", hang: float = 1.0, api_key: str | None = None):
        self.responder, self.faults, self.latency = responder, faults, latency
        self.retry_after, self.hang, self.api_key = str(retry_after), hang, api_key
        self.log: list[dict] = []
        self.count, self.lock = 0, threading.Lock()
        self._httpd = self._thread = None
        self.base_url = None

    def fault_for(self, n: int, body: dict) -> str | None:
        if callable(self.faults):
            return self.faults(n, body)
        return self.faults[n] if self.faults and n < len(self.faults) else None

    def served(self, pred: Callable[[list[dict]], bool] = lambda m: True) -> int:
        """Number of successful (200, not faulted) replies whose messages satisfy `pred`."""
        with self.lock:
            return sum(1 for e in self.log if e["status"] == 200 and e["fault"] is None and pred(e["messages"] or []))

    def start(self) -> str:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(responder: Callable[[list[dict]], str] = echo_responder, faults=None, **kw) -> LLMServer:
    """An `LLMServer` (not yet started); `with serve(...) as base_url:` runs it for the block."""
    return LLMServer(responder, faults, **kw)


def fault_mix(rates: dict[str, float], seed: int = 0) -> Callable[[int, dict], str | None]:
    """A `faults` callable drawing each request's fault at random: `rates` maps fault names to probabilities."""
    import random

    def pick(n: int, body: dict) -> str | None:
        u, acc = random.Random(seed * 1_000_003 + n).random(), 0.0
        for name, p in rates.items():
            acc += p
            if u < acc:
                return name
        return None
    return pick


def _main(argv: list[str]) -> None:
    """A standalone server for benchmarks and subprocess tests: python llm_server.py [latency] [--faults 429=0.05,...]."""
    import argparse
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from medrepro.data.llm import mock_responder
    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("latency", nargs="?", type=float, default=0.0)
    ap.add_argument("--faults", default="", help="fault=probability pairs, e.g. 429=0.05,500=0.05,nonjson=0.03,timeout=0.01")
    ap.add_argument("--hang", type=float, default=1.0, help="seconds a 'timeout' fault waits")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rates = {k: float(v) for k, v in (kv.split("=") for kv in a.faults.split(",") if kv)}
    with serve(mock_responder, faults=fault_mix(rates, a.seed) if rates else None, latency=a.latency, hang=a.hang) as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    _main(sys.argv[1:])
