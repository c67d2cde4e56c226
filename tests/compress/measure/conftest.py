"""A loopback server that streams completions like an OpenAI-compatible server, with known delays.

It speaks what the load generator reads (chunked transfer, server-sent ``data:`` lines, a
usage event, ``[DONE]``) and serves the one model ``tiny``, so the client's timings can be
checked against the delays here and ``--endpoint`` can be driven end to end without vLLM.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

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
def sse_server():
    """``.url`` of the loopback server, ``.first_s`` and ``.gap_s`` its delays; shut down after the module."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Streaming)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", first_s=FIRST_S, gap_s=GAP_S)
    httpd.shutdown()
    httpd.server_close()
