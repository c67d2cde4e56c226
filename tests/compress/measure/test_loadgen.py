"""The load generator: SLO parsing, Poisson arrivals, statistics, and streaming against a loopback server.

The server here is a small stdlib HTTP server that streams server-sent events the way an
OpenAI-compatible server does (chunked transfer, ``data:`` lines, a usage event, ``[DONE]``),
with known delays, so the client's timings can be checked against them.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compress.errors import RuntimeFailure, UserInputError
from compress.measure import loadgen
from compress.measure.loadgen import RequestResult, Slo

FIRST_S = 0.15  # the server's delay before the first token
GAP_S = 0.05  # and between tokens


class _Streaming(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        body = json.dumps({"data": [{"id": "tiny"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request.get("model") != "tiny":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(FIRST_S)
        for i in range(request["max_tokens"]):
            if i:
                time.sleep(GAP_S)
            self._chunk(b"data: " + json.dumps({"choices": [{"index": 0, "text": f"t{i}"}]}).encode() + b"\n\n")
        usage = {"choices": [], "usage": {"completion_tokens": request["max_tokens"]}}
        self._chunk(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Streaming)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_slo_parses_and_rejects_bad_text():
    assert Slo.parse("ttft_ms=500,itl_ms=50") == Slo(500.0, 50.0)
    for bad in ("ttft_ms=500", "ttft=1,itl_ms=2", "ttft_ms=x,itl_ms=2", "ttft_ms=0,itl_ms=2"):
        with pytest.raises(UserInputError):
            Slo.parse(bad)


def test_base_url_accepts_the_v1_suffix_or_not():
    assert loadgen.base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert loadgen.base_url("127.0.0.1:8000") == "http://127.0.0.1:8000"
    with pytest.raises(UserInputError):
        loadgen.base_url("ftp://x")


def test_poisson_gaps_have_the_mean_of_the_rate():
    arrivals = loadgen.poisson_arrivals_s(4000, rate_per_s=4.0, seed=1)
    gaps = [b - a for a, b in zip([0.0, *arrivals], arrivals)]
    # exponential gaps of mean 1/rate = 0.25 s; the mean of 4000 has a standard error of 0.004
    assert statistics.fmean(gaps) == pytest.approx(0.25, abs=0.02)
    assert loadgen.poisson_arrivals_s(5, 4.0, seed=1) == arrivals[:5]  # seeded: reproducible


def test_summary_counts_goodput_against_the_slo():
    def done(ttft, e2e, tokens):
        return RequestResult(sent_s=0, ok=True, ttft_s=ttft, e2e_s=e2e, output_tokens=tokens,
                             chunk_times_s=[ttft + i * (e2e - ttft) / (tokens - 1) for i in range(tokens)])

    rs = [done(0.1, 0.5, 5),  # TPOT 100 ms: good at itl_ms=150
          done(0.1, 1.3, 5),  # TPOT 300 ms: too slow
          done(2.0, 2.4, 5),  # TTFT 2 s: too late
          RequestResult(sent_s=0, error="HTTP 500")]
    s = loadgen.summarize(rs, wall_s=4.0, slo=Slo(ttft_ms=1000, itl_ms=150))
    assert (s["good"], s["failed"]) == (1, 1)
    assert s["goodput_req_s"] == pytest.approx(0.25) and s["request_throughput_req_s"] == pytest.approx(0.75)
    assert s["throughput_tok_s"] == pytest.approx(15 / 4.0)
    assert s["tpot_ms"] == pytest.approx([100.0, 300.0, 100.0])
    with pytest.raises(RuntimeFailure):
        loadgen.summarize([RequestResult(sent_s=0, error="refused")], 1.0, Slo(1, 1))


def test_a_streamed_request_is_timed_token_by_token(server):
    assert loadgen.served_model(server) == "tiny"
    r = loadgen.stream_completion(server, "tiny", [1, 2, 3], max_tokens=4)
    assert r.ok and r.output_tokens == 4 and len(r.chunk_times_s) == 4
    assert FIRST_S <= r.ttft_s < FIRST_S + 0.5
    assert all(GAP_S * 0.8 <= gap < GAP_S + 0.5 for gap in r.itl_s)
    assert loadgen.stream_completion(server, "other", "x", 2).error.startswith("HTTP 404")


def test_closed_loop_runs_requests_concurrently(server):
    one = FIRST_S + 3 * GAP_S  # one request of 4 tokens
    results, wall = loadgen.closed_loop(server, "tiny", [[1]] * 4, concurrency=4, max_tokens=4)
    assert len(results) == 4 and all(r.ok for r in results)
    assert one <= wall < 2 * one + 0.3  # together, not one after another (4 x one)
    _, serial = loadgen.closed_loop(server, "tiny", [[1]] * 2, concurrency=1, max_tokens=4)
    assert serial >= 2 * one


def test_open_loop_sends_at_the_arrival_times(server):
    results, wall = loadgen.open_loop(server, "tiny", [[1]] * 3, rate_per_s=20.0, max_tokens=2, seed=0)
    arrivals = loadgen.poisson_arrivals_s(3, 20.0, seed=0)
    assert len(results) == 3 and all(r.ok for r in results)
    sent = sorted(r.sent_s for r in results)
    offsets = [t - sent[0] for t in sent]
    expected = [a - arrivals[0] for a in arrivals]
    assert offsets == pytest.approx(expected, abs=0.05)
    assert wall >= arrivals[-1] + FIRST_S
