"""The load generator: SLO parsing, Poisson arrivals, statistics, and streaming against the
loopback server of conftest.py (known delays, so the client's timings can be checked)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from compress.errors import RuntimeFailure, UserInputError
from compress.measure import loadgen
from compress.measure.loadgen import RequestResult, Slo


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


def test_a_streamed_request_is_timed_token_by_token(sse_server):
    server, first_s, gap_s = sse_server.url, sse_server.first_s, sse_server.gap_s
    assert loadgen.served_model(server) == "tiny"
    r = loadgen.stream_completion(server, "tiny", [1, 2, 3], max_tokens=4)
    assert r.ok and r.output_tokens == 4 and len(r.chunk_times_s) == 4
    # The first token waits first_s, each next one gap_s (three times shorter): a gap timed from
    # the request's start instead of the previous token would be longer than the first wait.
    assert r.ttft_s >= first_s and all(gap >= gap_s * 0.8 for gap in r.itl_s)
    assert max(r.itl_s) < r.ttft_s and len(r.itl_s) == 3
    assert loadgen.stream_completion(server, "other", "x", 2).error.startswith("HTTP 404")


def test_closed_loop_runs_requests_concurrently(sse_server):
    server, first_s, gap_s = sse_server.url, sse_server.first_s, sse_server.gap_s
    one = first_s + 3 * gap_s  # one request of 4 tokens
    results, wall = loadgen.closed_loop(server, "tiny", [[1]] * 4, concurrency=4, max_tokens=4)
    assert len(results) == 4 and all(r.ok for r in results)
    _, serial = loadgen.closed_loop(server, "tiny", [[1]] * 4, concurrency=1, max_tokens=4)
    # One after another the four take 4 x one; together about one. Compared with each other,
    # not with a fixed bound, so a loaded machine slows both alike.
    assert serial >= 4 * one and one <= wall < serial / 2


def test_open_loop_sends_at_the_arrival_times(sse_server):
    server, first_s = sse_server.url, sse_server.first_s
    results, wall = loadgen.open_loop(server, "tiny", [[1]] * 3, rate_per_s=20.0, max_tokens=2, seed=0)
    arrivals = loadgen.poisson_arrivals_s(3, 20.0, seed=0)
    assert len(results) == 3 and all(r.ok for r in results)
    due = sorted(r.due_s for r in results)
    assert [d - due[0] for d in due] == pytest.approx([a - arrivals[0] for a in arrivals], abs=1e-9)
    # never sent before its arrival time (a loaded machine may send it later)
    assert all(r.sent_s >= r.due_s for r in results)
    assert wall >= arrivals[-1] + first_s


def test_bench_measures_a_running_endpoint(sse_server, tiny_llama, tmp_path):
    from compress import results
    from compress.measure import bench

    path = tmp_path / "endpoint.jsonl"
    bench(model=str(tiny_llama), endpoint=sse_server.url + "/v1", results_path=path, concurrency="1,2", rate=20.0,
          serve_requests=3, pp=16, tg=4, slo="ttft_ms=100,itl_ms=1000", log=lambda line: None)
    stored = results.load(path)
    assert {r["test"] for r in stored} == {"serve-c1", "serve-c2", "serve-rate20"}
    assert {r["runtime"] for r in stored} == {"openai-endpoint"} and {r["status"] for r in stored} == {"ok"}
    goodput = [r for r in stored if r["metric"] == "goodput_req_s"]
    # the server's first token comes after 150 ms: no request meets a 100 ms TTFT
    assert [r["value"] for r in goodput] == [0.0, 0.0, 0.0]
    ttft = [r for r in stored if r["metric"] == "ttft_ms"]
    assert all(r["stats"]["n"] == 3 and r["stats"]["min"] >= sse_server.first_s * 1000 for r in ttft)


class _Hostile:
    """A loopback TCP server that answers every connection with ``reply`` (bytes), then, with
    ``drip``, one more byte every 0.2 s until the client hangs up."""

    def __init__(self, reply: bytes, drip: bool = False):
        import socket

        self.reply, self.drip = reply, drip
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        try:
            conn.recv(65536)
            conn.sendall(self.reply)
            while self.drip:
                time.sleep(0.2)
                conn.sendall(b"x")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


_DRIP_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"


def test_a_server_that_drips_one_byte_at_a_time_meets_the_deadline():
    server = _Hostile(_DRIP_HEADERS, drip=True)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeFailure, match=r"/v1/models sent no whole reply within 1 s") as err:
            loadgen.served_model(server.url, timeout_s=1.0)
        assert time.monotonic() - started < 3 and "\n" not in str(err.value)
        started = time.monotonic()
        result = loadgen.stream_completion(server.url, "tiny", "x", 4, timeout_s=1.0)
        assert not result.ok and result.error == "no whole reply within 1 s"
        assert time.monotonic() - started < 3
    finally:
        server.close()


@pytest.mark.parametrize(("reply", "expected"), [
    (b"\x00\x01\x1b[31mBINARY\xff\xfe" * 20, r"cannot reach .*/v1/models \(.*\\\\x1b\[31mBINARY"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[1, 2, 3]", r"answered HTTP 200 with '\[1, 2, 3\]': expected a JSON object"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n{\"data\": [{\"id\": 12}]}  ", r"expected a JSON object whose 'data' lists models"),
])
def test_a_reply_of_the_wrong_shape_is_one_printable_line(reply, expected):
    server = _Hostile(reply)
    try:
        with pytest.raises(RuntimeFailure, match=expected) as err:
            loadgen.served_model(server.url, timeout_s=2.0)
        line = str(err.value)
        assert line.isprintable() and len(line) < 400
    finally:
        server.close()


def test_a_load_run_sends_nothing_after_its_deadline(sse_server):
    results, _ = loadgen.closed_loop(sse_server.url, "tiny", [[1]] * 3, concurrency=1, max_tokens=2,
                                     run_timeout_s=0.1)
    assert sum(r.ok for r in results) == 1 and len(results) == 3
    assert all(r.error.startswith("not sent: the load run passed") for r in results if not r.ok)


def test_bench_command_with_tests_serve_runs_no_open_loop(sse_server, tiny_llama, tmp_path):
    import os
    import subprocess
    import sys

    from typer.testing import CliRunner

    import cli
    from compress import results

    path = tmp_path / "closed.jsonl"
    common = ["bench", "--model", str(tiny_llama), "--endpoint", sse_server.url, "--results", str(path),
              "--serve-requests", "2", "--pp", "16", "--tg", "3"]
    ran = CliRunner().invoke(cli.app, [*common, "--tests", "serve", "--concurrency", "1"])
    assert ran.exit_code == 0, ran.output
    assert {r["test"] for r in results.load(path)} == {"serve-c1"}

    # as a user runs it: a rate the chosen tests would ignore is one clear line, not a traceback
    root = Path(cli.__file__).resolve().parent
    refused = subprocess.run([sys.executable, str(root / "cli.py"), *common, "--tests", "serve", "--rate", "4"],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(root)})
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "error: --rate sets the open-loop test serve-rate, which the tests to run leave out (they are serve): "
        "add serve-rate to --tests or drop --rate"]
    assert {r["test"] for r in results.load(path)} == {"serve-c1"}  # nothing more was measured
