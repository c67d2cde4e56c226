"""A small load generator for OpenAI-compatible servers: streaming completions, closed and open loop.

Closed loop: ``concurrency`` clients each send their next request as soon as the previous one
ends (the load of a fixed number of users). Open loop: requests arrive at the times of a
Poisson process of a given rate whatever the server's state (the load of many independent
users), as in vLLM's ``benchmark_serving`` and Orca/DistServe's evaluations. Each request
streams (``stream: true``); the arrival time of every streamed chunk gives the time to first
token (TTFT), the inter-token latencies (ITL), the time per output token (TPOT: (end-to-end
minus TTFT) / (tokens - 1)) and the end-to-end latency.

Standard library only (``http.client`` in threads): the bench process stays free of any
server or client framework, and a thread per in-flight request is plenty at the bounded
concurrencies a bench uses.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from compress.errors import RuntimeFailure, UserInputError


@dataclass
class RequestResult:
    sent_s: float  # perf_counter when the request was sent
    ok: bool = False
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    chunk_times_s: list[float] = field(default_factory=list)  # arrival of each streamed chunk, from sent_s
    output_tokens: int = 0
    due_s: float | None = None  # open loop: perf_counter of the arrival time it was scheduled for

    @property
    def itl_s(self) -> list[float]:
        t = self.chunk_times_s
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.e2e_s is None or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class Slo:
    """A service-level objective: a request is good when its TTFT and its mean ITL (its TPOT) are within."""

    ttft_ms: float
    itl_ms: float

    @classmethod
    def parse(cls, text: str) -> Slo:
        """``ttft_ms=500,itl_ms=100``."""
        values: dict[str, float] = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            try:
                values[key.strip()] = float(value)
            except ValueError:
                raise UserInputError(f"--slo takes ttft_ms=<ms>,itl_ms=<ms>, got {text!r}") from None
        if set(values) != {"ttft_ms", "itl_ms"} or min(values.values()) <= 0:
            raise UserInputError(f"--slo takes positive ttft_ms=<ms>,itl_ms=<ms>, got {text!r}")
        return cls(values["ttft_ms"], values["itl_ms"])

    def met(self, r: RequestResult) -> bool:
        if not r.ok or r.ttft_s is None:
            return False
        tpot = r.tpot_s
        return r.ttft_s * 1000 <= self.ttft_ms and (tpot is None or tpot * 1000 <= self.itl_ms)


def base_url(url: str) -> str:
    """``http://host:port`` from an endpoint URL given with or without ``/v1``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserInputError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    path = parts.path.rstrip("/")
    path = path[: -len("/v1")] if path.endswith("/v1") else path
    return f"{parts.scheme}://{parts.netloc}{path}"


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout_s), parts.path


class DeadlinePassed(TimeoutError):
    """A request whose whole reply did not arrive within its deadline."""


@contextlib.contextmanager
def _deadline(conn: http.client.HTTPConnection, seconds: float) -> Iterator[None]:
    """End ``conn`` after ``seconds`` in all, whatever it is doing.

    A socket timeout bounds each read, not a reply: a server that sends one byte a second never
    trips it. A timer shuts the socket down instead, which ends any read blocked on it, and
    the read's error becomes :class:`DeadlinePassed`.
    """
    passed = threading.Event()

    def stop() -> None:
        passed.set()
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except (OSError, http.client.HTTPException, ValueError) as err:
        if passed.is_set():
            raise DeadlinePassed(f"no whole reply within {seconds:g} s") from None
        raise err
    finally:
        timer.cancel()
    if passed.is_set():
        raise DeadlinePassed(f"no whole reply within {seconds:g} s")


def shown(data: bytes | str, limit: int = 80) -> str:
    """What a server sent, for one line of an error: printable characters only, cut to ``limit``."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256 else "?" for c in text)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


#: The most of a non-streamed reply read (a model list is a few KiB).
MAX_REPLY_BYTES = 4 * 2**20


def get_json(url: str, path: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    """GET ``path`` and parse the reply as JSON (None where it is not JSON); the whole request,
    reply included, must end within ``timeout_s`` (:class:`DeadlinePassed` otherwise)."""
    status, body = get_body(url, path, timeout_s)
    try:
        return status, json.loads(body) if body else None
    except (ValueError, RecursionError):
        return status, None


def get_body(url: str, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET ``path``: the status and at most :data:`MAX_REPLY_BYTES` of the body, within ``timeout_s`` in all."""
    conn, prefix = _connection(url, timeout_s)
    try:
        with _deadline(conn, timeout_s):
            conn.request("GET", prefix + path)
            resp = conn.getresponse()
            return resp.status, resp.read(MAX_REPLY_BYTES)
    finally:
        conn.close()


def served_model(url: str, timeout_s: float = 10.0) -> str:
    """The first model id an OpenAI-compatible server lists at ``/v1/models``."""
    where = f"{url}/v1/models"
    try:
        status, body = get_body(url, "/v1/models", timeout_s)
    except DeadlinePassed as err:
        raise RuntimeFailure(f"{where} sent {err}: expected a running OpenAI-compatible server") from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        what = shown(str(err)) if isinstance(err, http.client.HTTPException) else str(err)
        raise RuntimeFailure(f"cannot reach {where} ({type(err).__name__}: {what}): expected a running "
                             "OpenAI-compatible server that speaks HTTP") from None
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        data = None
    models = data.get("data") if isinstance(data, dict) else None
    first = models[0] if isinstance(models, list) and models else None
    if status != 200 or not isinstance(first, dict) or not isinstance(first.get("id"), str) or not first["id"]:
        raise RuntimeFailure(f"{where} answered HTTP {status} with {shown(body)}: expected a JSON object whose "
                             "'data' lists models with an 'id' (an OpenAI-compatible server)")
    return first["id"]


def stream_completion(url: str, model: str, prompt: str | list[int], max_tokens: int,
                      timeout_s: float = 300.0) -> RequestResult:
    """One streaming ``/v1/completions`` request, timed chunk by chunk; the whole stream must end
    within ``timeout_s`` (else the request fails with that reason)."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
            # ignore_eos (a vLLM extension; other servers ignore it) fixes the output length.
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    result = RequestResult(sent_s=time.perf_counter())
    conn, prefix = _connection(url, timeout_s)
    try:
        with _deadline(conn, timeout_s):
            _stream(conn, prefix, body, result)
    except DeadlinePassed as err:
        result.ok, result.error = False, str(err)
    except (OSError, http.client.HTTPException, ValueError, RecursionError) as err:
        result.ok, result.error = False, f"{type(err).__name__}: {shown(str(err))}"
    finally:
        conn.close()
    return result


def _stream(conn: http.client.HTTPConnection, prefix: str, body: dict[str, Any], result: RequestResult) -> None:
    conn.request("POST", prefix + "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        result.error = f"HTTP {resp.status}: {shown(resp.read(200), 200)}"
        return
    usage_tokens = None
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if not isinstance(event, dict):
            raise ValueError(f"a stream event that is not a JSON object: {shown(data)}")
        if event.get("choices"):
            result.chunk_times_s.append(time.perf_counter() - result.sent_s)
        usage = event.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            usage_tokens = usage["completion_tokens"]
    result.e2e_s = time.perf_counter() - result.sent_s
    result.output_tokens = usage_tokens if usage_tokens is not None else len(result.chunk_times_s)
    result.ttft_s = result.chunk_times_s[0] if result.chunk_times_s else None
    result.ok = result.ttft_s is not None
    if not result.ok:
        result.error = "the stream carried no token"


#: The longest one load run may take; requests not sent by then fail with that reason.
RUN_TIMEOUT_S = 1800.0


def _not_sent(run_timeout_s: float) -> RequestResult:
    return RequestResult(sent_s=time.perf_counter(), error=f"not sent: the load run passed its {run_timeout_s:g} s deadline")


def closed_loop(url: str, model: str, prompts: Sequence[str | list[int]], concurrency: int, max_tokens: int,
                timeout_s: float = 300.0, run_timeout_s: float = RUN_TIMEOUT_S) -> tuple[list[RequestResult], float]:
    """Every prompt once, ``concurrency`` at a time; returns the results and the wall seconds.
    Each request ends within ``timeout_s``; none is sent after ``run_timeout_s``."""
    if concurrency < 1:
        raise UserInputError(f"concurrency must be at least 1, got {concurrency}")
    queue = list(prompts)
    lock = threading.Lock()
    results: list[RequestResult] = []
    stop_at = time.perf_counter() + run_timeout_s

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                if time.perf_counter() > stop_at:
                    results.extend(_not_sent(run_timeout_s) for _ in queue)
                    queue.clear()
                    return
                prompt = queue.pop(0)
            r = stream_completion(url, model, prompt, max_tokens, timeout_s)
            with lock:
                results.append(r)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(min(concurrency, len(prompts)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - started


def poisson_arrivals_s(n: int, rate_per_s: float, seed: int = 0) -> list[float]:
    """Arrival times (seconds from the start) of ``n`` requests of a Poisson process: exponential gaps."""
    if rate_per_s <= 0:
        raise UserInputError(f"the request rate must be positive, got {rate_per_s}")
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate_per_s)
        out.append(t)
    return out


def open_loop(url: str, model: str, prompts: Sequence[str | list[int]], rate_per_s: float, max_tokens: int,
              seed: int = 0, timeout_s: float = 300.0,
              run_timeout_s: float = RUN_TIMEOUT_S) -> tuple[list[RequestResult], float]:
    """Every prompt once, sent at Poisson arrival times whatever is still in flight.
    Each request ends within ``timeout_s``; none is sent after ``run_timeout_s``."""
    results: list[RequestResult] = []
    lock = threading.Lock()

    def send(prompt: str | list[int], due_s: float) -> None:
        r = stream_completion(url, model, prompt, max_tokens, timeout_s)
        r.due_s = due_s
        with lock:
            results.append(r)

    started = time.perf_counter()
    threads = []
    for prompt, at_s in zip(prompts, poisson_arrivals_s(len(prompts), rate_per_s, seed)):
        if at_s > run_timeout_s:
            with lock:
                results.append(_not_sent(run_timeout_s))
            continue
        delay = started + at_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=send, args=(prompt, started + at_s), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return results, time.perf_counter() - started


def summarize(results: Sequence[RequestResult], wall_s: float, slo: Slo) -> dict[str, Any]:
    """Per-request samples and totals of one load run (milliseconds, requests and tokens per second)."""
    ok = [r for r in results if r.ok]
    if not ok:
        errors = sorted({r.error or "?" for r in results})
        raise RuntimeFailure(f"no request of {len(results)} succeeded: {errors[0]}")
    good = [r for r in ok if slo.met(r)]
    tokens = sum(r.output_tokens for r in ok)
    return {
        "ttft_ms": [r.ttft_s * 1000 for r in ok],
        "itl_ms": [x * 1000 for r in ok for x in r.itl_s],
        "tpot_ms": [r.tpot_s * 1000 for r in ok if r.tpot_s is not None],
        "e2e_ms": [r.e2e_s * 1000 for r in ok],
        "request_throughput_req_s": len(ok) / wall_s,
        "throughput_tok_s": tokens / wall_s,
        "goodput_req_s": len(good) / wall_s,
        "requests": len(results), "failed": len(results) - len(ok), "good": len(good),
        "output_tokens": tokens, "wall_s": wall_s,
        "errors": sorted({r.error for r in results if r.error})[:3],
    }
