"""A real HTTP server in a background thread, the base of the fake LLM servers.

Hooks under test talk to it over real sockets with their real HTTP client, so connection refusals, timeouts,
chunked streams and keep-alive behave as they do against a real server.  Subclasses route requests to replies.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A complete answer: ``body`` is JSON-encoded unless it is ``bytes``; ``None`` sends no body."""

    status: int
    body: Any = None
    content_type: str = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Stream:
    """A chunked answer sent line by line as the iterable yields JSON objects (so delays can happen mid-stream)."""

    lines: Iterable[Any]
    status: int = 200
    content_type: str = "application/x-ndjson"


# The fakes have no tokenizer: they count one token per this many characters of a scripted answer.
CHARS_PER_TOKEN = 4


def cut_to_tokens(text: str, limit: int | None) -> tuple[str, bool]:
    """``text`` as a server's answer-token limit leaves it, and whether the limit cut it."""
    if limit is None or limit <= 0:
        return text, False
    keep = limit * CHARS_PER_TOKEN
    return (text, False) if len(text) <= keep else (text[:keep], True)


class FakeHTTPServer:
    """Start with ``with Fake() as fake:`` (or ``start()``/``stop()``); ``url`` is ``http://127.0.0.1:<port>``.

    ``stop()`` also cuts open keep-alive connections, so a stopped fake refuses connections exactly like a
    server that went down; ``start()`` again brings it back on the same port.  ``requests`` logs every request.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the fake server was never started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> FakeHTTPServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_class(self))
        server.daemon_threads = True
        server.handle_error = _quiet_handle_error(server.handle_error)  # type: ignore[method-assign]
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"fake-http-{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: stop accepting, wake sleeping handlers, and cut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._sockets_lock:
            open_sockets, self._sockets = self._sockets, set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause(self, seconds: float) -> None:
        """Sleep in a handler, but wake at once when the server stops."""
        self._stopping.wait(seconds)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def handle(self, request: Request) -> Reply | Stream:
        raise NotImplementedError


def _handler_class(fake: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60

        def setup(self) -> None:
            super().setup()
            with fake._sockets_lock:
                fake._sockets.add(self.connection)

        def finish(self) -> None:
            with fake._sockets_lock:
                fake._sockets.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._dispatch()

        do_POST = do_HEAD = do_DELETE = do_PUT = do_PATCH = do_GET

        def _dispatch(self) -> None:
            request = Request(
                method=self.command,
                path=urlsplit(self.path).path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self._read_body(),
            )
            fake.requests.append(request)
            try:
                try:
                    reply = fake.handle(request)
                except Exception as exc:  # a broken script in a test: say so instead of dropping the connection
                    reply = Reply(500, {"error": f"fake server error: {type(exc).__name__}: {exc}"})
                if isinstance(reply, Stream):
                    self._send_stream(reply)
                else:
                    self._send(reply)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                self.close_connection = True

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, reply: Reply) -> None:
            if reply.body is None:
                payload = b""
            elif isinstance(reply.body, bytes):
                payload = reply.body
            else:
                payload = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _send_stream(self, reply: Stream) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in reply.lines:
                data = json.dumps(line).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def _quiet_handle_error(default: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Clients that hang up (timeout tests) and servers stopped mid-request are expected here, not errors."""

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            default(request, client_address)

    return handle_error
