"""Airflow hook for an Ollama server: chat for analyses, blobs and model management for deployments.

Speaks Ollama's REST API (``/api/chat``, ``/api/tags``, ``/api/show``, ``/api/version``, ``/api/blobs``,
``/api/create``, ``/api/copy``, ``/api/delete``) with plain ``requests`` so workers need no extra client library,
and so every answer can be bounded in size and time (see :mod:`llm_http`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow.exceptions import AirflowNotFoundException

from dagnostics_provider import config
from dagnostics_provider.hooks.connection_forms import OLLAMA_CONNECTION
from dagnostics_provider.hooks.llm_errors import LLMError, LLMInvalidResponse, LLMNotFound, LLMUnavailable
from dagnostics_provider.hooks.llm_http import (
    base_url,
    config_timeout,
    exchange,
    positive_seconds,
    request_json,
    stream_json_lines,
)
from dagnostics_provider.hooks.llm_server_hook import LLMServerHook

# The names deployment code catches; the classes are shared with the OpenAI-compatible hook.
OllamaError = LLMError
OllamaUnavailable = LLMUnavailable

DEFAULT_PORT = 11434
# Quantizing or converting a model can go quiet for many minutes between two status lines.
CREATE_LINE_TIMEOUT_S = 3600.0
_HASH_CHUNK_BYTES = 1024 * 1024
_NUMBER = re.compile(r"-?\d+")
# Ollama's digest syntax (manifest.BlobsPath): "sha256:" or its on-disk spelling "sha256-", then 64 hex digits.
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class OllamaSettings:
    """Where the Ollama server is and how to use it, resolved once per hook."""

    base_url: str
    model: str
    timeout: float
    source: str
    keep_alive: str | int | None = None
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ChatResponse:
    """One non-streamed ``/api/chat`` answer; ``raw`` is the whole response object."""

    content: str
    model: str
    raw: dict[str, Any]
    done_reason: str | None = None
    total_duration_ns: int | None = None
    eval_count: int | None = None

    @property
    def finish_reason(self) -> str | None:
        """Why generation stopped, under the name the OpenAI-compatible and llama.cpp answers use (``"length"``)."""
        return self.done_reason


class OllamaHook(LLMServerHook):
    """Talk to an Ollama server described by an ``ollama`` connection, or by ``[dagnostics] llm_*`` without one.

    The connection's host may carry a scheme and path (``https://llm.example.com/ollama``); a bare host gets port
    11434 unless the connection sets another.  Extras: ``model``, ``timeout`` (seconds), ``keep_alive``.  The
    password, if set, is sent as a bearer token.  Passing ``base_url`` skips the connection entirely.
    """

    conn_name_attr = "ollama_conn_id"
    default_conn_name = "ollama_default"
    conn_type = "ollama"
    hook_name = "Ollama"
    connection_form = OLLAMA_CONNECTION
    server_name = "Ollama"

    def __init__(
        self,
        ollama_conn_id: str = default_conn_name,
        *,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(ollama_conn_id, base_url=base_url, model=model, timeout=timeout)

    def _resolve_settings(self) -> OllamaSettings:
        if self._base_url is not None:
            return OllamaSettings(
                base_url=base_url(self._base_url, default_port=DEFAULT_PORT),
                model=self._model or config.get("llm_model"),
                timeout=positive_seconds(self._timeout, "timeout") or config_timeout(),
                source="arguments",
            )
        try:
            conn = self.get_connection(self.ollama_conn_id)
        except AirflowNotFoundException:
            if self.ollama_conn_id != self.default_conn_name:
                self.log.warning("Connection %r does not exist; using [dagnostics] llm_* options", self.ollama_conn_id)
            return OllamaSettings(
                base_url=base_url(config.get("llm_base_url"), default_port=DEFAULT_PORT),
                model=self._model or config.get("llm_model"),
                timeout=positive_seconds(self._timeout, "timeout") or config_timeout(),
                source="[dagnostics] llm_base_url",
            )
        extras = conn.extra_dejson
        where = f"connection {self.ollama_conn_id!r}"
        return OllamaSettings(
            base_url=base_url(conn.host or "localhost", port=conn.port, default_port=DEFAULT_PORT),
            model=self._model or extras.get("model") or config.get("llm_model"),
            timeout=positive_seconds(self._timeout, "timeout")
            or positive_seconds(extras.get("timeout"), f"{where} timeout")
            or config_timeout(),
            source=where,
            keep_alive=_keep_alive(extras.get("keep_alive")),
            api_key=conn.password or None,
        )

    # Inference

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        format: dict[str, Any] | str | None = None,
        options: dict[str, Any] | None = None,
    ) -> ChatResponse:
        """One non-streamed chat turn; ``format`` is ``"json"`` or a JSON schema the answer must follow."""
        payload: dict[str, Any] = {"model": model or self.model, "messages": messages, "stream": False}
        if format is not None:
            payload["format"] = format
        if options:
            payload["options"] = options
        if self.settings.keep_alive is not None:
            payload["keep_alive"] = self.settings.keep_alive
        data = self._json("POST", "/api/chat", payload)
        message = data.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise LLMInvalidResponse(f"{self.base_url}/api/chat answered without message.content")
        return ChatResponse(
            content=content,
            model=str(data.get("model") or payload["model"]),
            raw=data,
            done_reason=data.get("done_reason"),
            total_duration_ns=data.get("total_duration"),
            eval_count=data.get("eval_count"),
        )

    # Server and model information

    def version(self) -> str:
        return str(self._json("GET", "/api/version").get("version", ""))

    def list_models(self) -> list[dict[str, Any]]:
        """The local models (``/api/tags`` entries: ``name``, ``model``, ``digest``, ``size``, ``details``)."""
        models = self._json("GET", "/api/tags").get("models")
        if not isinstance(models, list):
            raise LLMInvalidResponse(f"{self.base_url}/api/tags answered without a models list")
        return [m for m in models if isinstance(m, dict)]

    def show(self, model: str | None = None) -> dict[str, Any]:
        """Template, system prompt, parameters, modelfile and details of a model; :class:`LLMNotFound` if absent."""
        return self._json("POST", "/api/show", {"model": model or self.model})

    def has_model(self, model: str | None = None) -> bool:
        """Whether the server has the model, matching names the way Ollama does (``x`` means ``x:latest``)."""
        wanted = canonical_model_name(model or self.model)
        return any(canonical_model_name(str(m.get("name") or m.get("model"))) == wanted for m in self.list_models())

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: the server answers and has the configured model."""
        try:
            version = self.version()
            present = self.has_model()
        except (LLMError, ValueError) as exc:
            return False, str(exc)
        where = f"Ollama {version} at {self.base_url} (from {self.settings.source})"
        if not present:
            return False, (
                f"{where} answers, but has no model {self.model!r}: "
                f"run `ollama pull {self.model}` there or deploy the model first"
            )
        return True, f"{where} answers and has model {self.model!r}"

    # Deployment: blobs and models

    def blob_exists(self, digest: str) -> bool:
        digest = wire_digest(digest)
        try:
            exchange(self.get_conn(), "HEAD", f"{self.base_url}/api/blobs/{digest}", timeout=self.timeout)
        except LLMNotFound:
            return False
        return True

    def push_blob(self, path: str | Path, *, progress: Callable[[int, int], None] | None = None) -> str:
        """Upload a file as a blob unless the server has it already; return its ``sha256:<hex>`` digest.

        The file is hashed and then uploaded in chunks straight from disk, so memory stays flat for
        multi-GB weights.  ``progress(sent, total)`` is called as the chunks go out, for upload progress logs.
        """
        digest = file_digest(path)
        if self.blob_exists(digest):
            self.log.info("Ollama already has blob %s (%s)", digest, Path(path).name)
            return digest
        with open(path, "rb") as stream:
            data = stream if progress is None else _ProgressReader(stream, os.fstat(stream.fileno()).st_size, progress)
            exchange(self.get_conn(), "POST", f"{self.base_url}/api/blobs/{digest}", data=data, timeout=self.timeout)
        self.log.info("Uploaded %s to Ollama as blob %s", Path(path).name, digest)
        return digest

    def create(
        self,
        model: str,
        *,
        files: dict[str, str] | None = None,
        from_: str | None = None,
        adapters: dict[str, str] | None = None,
        template: str | None = None,
        system: str | None = None,
        parameters: dict[str, Any] | None = None,
        quantize: str | None = None,
    ) -> list[dict[str, Any]]:
        """Create (or replace) a model from uploaded blobs or an existing model; return every status line.

        ``files`` and ``adapters`` map file names to digests from :meth:`push_blob` (sent as ``sha256:<hex>``
        whatever spelling they were given in, see :func:`wire_digest`).  Ollama answers HTTP 200 as
        soon as it starts and reports later failures on a stream line, so every line is checked and a failure
        raises :class:`~dagnostics_provider.hooks.llm_errors.LLMStreamError`; a stream that ends without
        ``success`` raises :class:`LLMInvalidResponse`.
        """
        request: dict[str, Any] = {
            "model": model,
            "files": _wire_digests(files),
            "from": from_,
            "adapters": _wire_digests(adapters),
            "template": template,
            "system": system,
            "parameters": parameters,
            "quantize": quantize,
        }
        payload = {key: value for key, value in request.items() if value is not None} | {"stream": True}
        url = f"{self.base_url}/api/create"
        statuses = []
        for status in stream_json_lines(self.get_conn(), url, payload=payload, timeout=CREATE_LINE_TIMEOUT_S):
            self.log.info("Ollama create %s: %s", model, status.get("status"))
            statuses.append(status)
        if not statuses or statuses[-1].get("status") != "success":
            raise LLMInvalidResponse(f"{url} ended without reporting success for model {model!r}")
        return statuses

    def copy(self, source: str, destination: str) -> None:
        """Copy a model under another name (how a deployment moves the serving tag); 404 if ``source`` is absent."""
        payload = {"source": source, "destination": destination}
        exchange(self.get_conn(), "POST", f"{self.base_url}/api/copy", payload=payload, timeout=self.timeout)

    def delete(self, model: str) -> None:
        """Delete a model; :class:`LLMNotFound` if it does not exist."""
        payload = {"model": model}
        exchange(self.get_conn(), "DELETE", f"{self.base_url}/api/delete", payload=payload, timeout=self.timeout)

    def _json(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        data = request_json(self.get_conn(), method, url, timeout=self.timeout, payload=payload)
        if not isinstance(data, dict):
            raise LLMInvalidResponse(f"{url} answered with a JSON {type(data).__name__}, not an object")
        return data


class _ProgressReader:
    """A binary file that reports every chunk read from it; ``len()`` gives requests the Content-Length."""

    def __init__(self, stream: IO[bytes], total: int, progress: Callable[[int, int], None]) -> None:
        self._stream = stream
        self._total = total
        self._sent = 0
        self._progress = progress

    def __len__(self) -> int:
        return self._total

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        if chunk:
            self._sent += len(chunk)
            self._progress(self._sent, self._total)
        return chunk


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks: the name Ollama gives a blob."""
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def wire_digest(digest: str) -> str:
    """A SHA-256 ``digest`` as Ollama names the blobs it stores: ``sha256:`` and lower-case hex.

    Ollama's blob store also reads ``sha256-<hex>`` (its file name) and upper-case hex in some places, but an
    upload compares the computed ``sha256:<lower hex>`` with the name given and refuses any other spelling as a
    digest mismatch, and upper-case hex names no file on a case-sensitive disk; one spelling everywhere avoids
    both. Anything that is no SHA-256 digest is left as it is, for the server to refuse in its own words.
    """
    match = _DIGEST.fullmatch(digest.strip())
    return f"sha256:{match.group(1).lower()}" if match else digest


def _wire_digests(mapping: dict[str, str] | None) -> dict[str, str] | None:
    return None if mapping is None else {name: wire_digest(digest) for name, digest in mapping.items()}


def canonical_model_name(name: str) -> str:
    """Ollama's reading of a model name: case-insensitive, ``:latest`` when no tag is given."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _keep_alive(value: Any) -> str | int | None:
    """Ollama reads a bare number as seconds but parses a string as a Go duration, where ``"-1"`` is invalid."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return int(value)
    return value
