"""How both LLM hooks reach their server: base URL and timeout settings, the session, and the HTTP exchange.

A misbehaving model can answer with megabytes of text and a stuck server can trickle bytes forever; both would
stall a worker's failure handling.  Every answer is therefore read as a stream, refused past a size limit and
past a deadline, and every ``requests`` exception is turned into one of the :mod:`llm_errors` classes here, once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from dagnostics_provider import __version__, config
from dagnostics_provider.hooks.llm_errors import (
    LLMError,
    LLMHTTPError,
    LLMInvalidResponse,
    LLMNotFound,
    LLMStreamError,
    LLMTimeout,
    LLMUnavailable,
)

MIB = 1024 * 1024
# A real analysis is a few KB; an answer this large is a runaway generation or the wrong server.
MAX_RESPONSE_BYTES = 4 * MIB
# One status line of a streamed operation; anything longer is not a status line.
MAX_LINE_BYTES = 64 * 1024
# Connecting is quick or hopeless: a long model timeout must not make a dead host take minutes to detect.
CONNECT_TIMEOUT_S = 10.0
_CHUNK_BYTES = 64 * 1024
_ERROR_TEXT_CHARS = 300


def base_url(host: str, *, port: int | None = None, default_port: int | None = None, default_path: str = "") -> str:
    """Normalise a connection's host (with or without scheme, port and path) into ``scheme://host:port/path``.

    As in the official Ollama client, a bare host gets ``default_port`` while a URL with a scheme keeps that
    scheme's own default port, so ``https://ollama.example.com`` means port 443.  User info in the URL is
    dropped: credentials belong in the connection's password, and the base URL appears in logs and reasons.
    """
    text = host.strip()
    has_scheme = "://" in text
    if not has_scheme:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {host!r}")
    hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netport = parts.port or port or (None if has_scheme else default_port)
    netloc = hostname if netport is None else f"{hostname}:{netport}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") or default_path, "", ""))


def config_timeout() -> float:
    """``[dagnostics] llm_timeout``, the timeout when neither arguments nor the connection set one."""
    timeout = positive_seconds(config.get_float("llm_timeout"), "[dagnostics] llm_timeout")
    if timeout is None:
        raise ValueError("[dagnostics] llm_timeout must be a positive number of seconds")
    return timeout


def positive_seconds(value: Any, what: str) -> float | None:
    """A positive number of seconds, or ``None`` when unset; junk raises so a typo does not mean "no timeout"."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return seconds


def new_session(api_key: str | None) -> requests.Session:
    """A session that keeps the connection alive between retries and sends the API key as a bearer token."""
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "User-Agent": f"dagnostics/{__version__}"})
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    payload: Any = None,
    data: IO[bytes] | None = None,
    limit: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """Send one request; return ``(status, body)`` for a 2xx answer, raise the matching :class:`LLMError` else.

    ``data`` is streamed from the file object as it is read, so uploading a multi-GB blob keeps memory flat.
    """
    connect_timeout = min(CONNECT_TIMEOUT_S, timeout)
    with (
        translated_errors(url, timeout),
        session.request(
            method, url, json=payload, data=data, timeout=(connect_timeout, timeout), stream=True
        ) as response,
    ):
        # The deadline starts with the answer, so a long upload does not count against it.
        deadline = time.monotonic() + timeout
        body = _read_body(response, url=url, limit=limit, deadline=deadline, timeout=timeout)
    _raise_for_status(response.status_code, body, url)
    return response.status_code, body


def request_json(session: requests.Session, method: str, url: str, *, timeout: float, payload: Any = None) -> Any:
    """:func:`exchange` for endpoints that answer one JSON document."""
    _, body = exchange(session, method, url, timeout=timeout, payload=payload)
    return parse_json(body, url)


def stream_json_lines(session: requests.Session, url: str, *, payload: Any, timeout: float) -> Iterator[dict]:
    """POST and yield each line of a newline-delimited JSON answer as it arrives.

    ``timeout`` bounds the wait for each line, not the whole stream, because long operations (quantizing a
    model) stream progress for many minutes.  An ``{"error": ...}`` line raises :class:`LLMStreamError`.
    """
    connect_timeout = min(CONNECT_TIMEOUT_S, timeout)
    with (
        translated_errors(url, timeout),
        session.post(url, json=payload, timeout=(connect_timeout, timeout), stream=True) as response,
    ):
        if response.status_code >= 400:
            body = _read_body(response, url=url, limit=MAX_RESPONSE_BYTES, deadline=None, timeout=timeout)
            _raise_for_status(response.status_code, body, url)
        pending = b""
        for chunk in response.iter_content(_CHUNK_BYTES):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > MAX_LINE_BYTES:
                raise LLMInvalidResponse(f"{url} streamed a line longer than {MAX_LINE_BYTES} bytes")
            for line in lines:
                if line.strip():
                    yield _stream_line(line, url)
        if pending.strip():
            yield _stream_line(pending, url)


def parse_json(body: bytes, url: str) -> Any:
    """Decode a JSON body, or say briefly what came instead (a proxy's HTML page, a truncated answer)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise LLMInvalidResponse(f"{url} answered with a body that is not JSON: {_clip(_text(body))!r}") from None


def server_error_text(body: bytes) -> str:
    """The server's own explanation from an error body, in the shapes Ollama, OpenAI and vLLM use."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # OpenAI, llama.cpp: {"error": {"message": ...}}
            error = error.get("message")
        if error is None:  # vLLM: {"object": "error", "message": ...}
            error = data.get("message")
        if isinstance(error, str) and error.strip():
            return _clip(error.strip())
    return _clip(_text(body).strip()) or "(empty body)"


@contextmanager
def translated_errors(url: str, timeout: float) -> Iterator[None]:
    """Turn ``requests`` exceptions raised inside the block into :class:`LLMError` subclasses."""
    try:
        yield
    except requests.ConnectTimeout:
        raise LLMUnavailable(f"cannot connect to {url} within {min(CONNECT_TIMEOUT_S, timeout):g}s") from None
    except requests.Timeout:
        raise LLMTimeout(f"timed out after {timeout:g}s waiting for {url}") from None
    except requests.ConnectionError as exc:
        # requests reports a read timeout in the middle of a streamed body as a ConnectionError.
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise LLMTimeout(f"timed out after {timeout:g}s waiting for {url}") from None
        raise LLMUnavailable(f"cannot connect to {url}: {_os_reason(exc)}") from None
    except requests.RequestException as exc:
        raise LLMError(f"request to {url} failed: {type(exc).__name__}: {_clip(str(exc))}") from None


def _read_body(response: requests.Response, *, url: str, limit: int, deadline: float | None, timeout: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(url, limit)
    body = bytearray()
    for chunk in response.iter_content(_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise _too_large(url, limit)
        if deadline is not None and time.monotonic() > deadline:
            raise LLMTimeout(f"timed out after {timeout:g}s reading the answer from {url}")
    return bytes(body)


def _raise_for_status(status: int, body: bytes, url: str) -> None:
    if status == 404:
        raise LLMNotFound(status, server_error_text(body), url)
    if status >= 400:
        raise LLMHTTPError(status, server_error_text(body), url)


def _stream_line(line: bytes, url: str) -> dict:
    item = parse_json(line, url)
    if not isinstance(item, dict):
        raise LLMInvalidResponse(f"{url} streamed a line that is not a JSON object: {_clip(_text(line))!r}")
    if item.get("error"):
        raise LLMStreamError(f"{url} reported an error: {_clip(str(item['error']))}")
    return item


def _too_large(url: str, limit: int) -> LLMInvalidResponse:
    return LLMInvalidResponse(f"{url} answered with more than {limit / MIB:g} MiB; refusing to read further")


def _os_reason(exc: requests.ConnectionError) -> str:
    """The operating system's words ("Connection refused") instead of urllib3's nested pool description."""
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return match.group(1).strip() if match else "connection failed"


def _text(body: bytes) -> str:
    return body[: _ERROR_TEXT_CHARS * 4].decode("utf-8", "replace")


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_TEXT_CHARS else text[:_ERROR_TEXT_CHARS] + "..."
