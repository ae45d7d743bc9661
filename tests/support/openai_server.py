"""A real HTTP server on 127.0.0.1 that speaks enough of the OpenAI API for tests and benchmarks.

Replies are scripted per test (status, body, delay, headers, streamed chunks, a stream cut off
mid-way), so the LLM code is exercised through litellm, the OpenAI SDK and a real socket:
timeouts, retries and bad replies behave as they would against a provider. Every request is
recorded. Used by ``tests/`` and ``bench/`` (dev only, never shipped in the package); never
listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass
class Reply:
    """One scripted response. ``content`` becomes the assistant message; ``body`` is raw."""

    status: int = 200
    content: str | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stream_chunks: list[str] | None = None  # for stream=true requests
    truncate_stream: bool = False  # stop without finish_reason or [DONE]
    prompt_tokens: int = 120
    completion_tokens: int = 60
    transcript: str | None = None  # for /v1/audio/transcriptions


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    received_at: float
    headers: dict[str, str]


Responder = Callable[[RecordedRequest], Reply]


def _completion(content: str, reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    payload = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here, not an error to print."""


class OpenAIStubServer:
    """``with OpenAIStubServer([Reply(...), ...]) as server: ... server.base_url ...``"""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        responder: Responder | None = None,
    ) -> None:
        self._script: deque[Reply] = deque(replies)
        self._responder = responder
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the server was serving at once
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> OpenAIStubServer:
        handler = self._handler_class()
        self._server = _QuietServer((HOST, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIStubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- serving ------------------------------------------------------------------------
    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        if self._responder is not None:
            return self._responder(request)
        return Reply(status=500, body='{"error": {"message": "no scripted reply left"}}')

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, a kept-alive
            # connection stalls ~40 ms per reply on the client's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send_json(200, {"object": "list", "data": [{"id": "stub-model"}]})
                else:
                    self._send_json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: dict[str, Any]
                if self.path.endswith("/audio/transcriptions"):
                    body = {"multipart_bytes": len(raw)}
                else:
                    try:
                        body = json.loads(raw or b"{}")
                    except json.JSONDecodeError:
                        body = {"unparsed": raw.decode("utf-8", "replace")}
                request = RecordedRequest(self.path, body, time.time(), dict(self.headers))
                reply = stub._next_reply(request)
                with stub._lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    # The client may have given up (a timeout test): nothing to do then.
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self._respond(request, reply)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _respond(self, request: RecordedRequest, reply: Reply) -> None:
                model = str(request.body.get("model", "stub-model"))
                if reply.status != 200 or reply.body is not None:
                    self._send_raw(
                        reply.status, reply.body or '{"error": {"message": "error"}}', reply.headers
                    )
                    return
                if request.path.endswith("/audio/transcriptions"):
                    self._send_json(200, {"text": reply.transcript or ""}, reply.headers)
                    return
                if request.body.get("stream"):
                    self._stream(model, reply)
                    return
                self._send_json(200, _completion(reply.content or "", reply, model), reply.headers)

            def _stream(self, model: str, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                chunks = reply.stream_chunks
                if chunks is None:
                    chunks = [reply.content or ""]
                self.wfile.write(_chunk(model, {"role": "assistant", "content": ""}, None))
                for piece in chunks:
                    self.wfile.write(_chunk(model, {"content": piece}, None))
                    self.wfile.flush()
                if not reply.truncate_stream:
                    self.wfile.write(_chunk(model, {}, "stop"))
                    self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _send_json(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                self._send_raw(status, json.dumps(payload), headers or {})

            def _send_raw(self, status: int, text: str, headers: dict[str, str]) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        return Handler
