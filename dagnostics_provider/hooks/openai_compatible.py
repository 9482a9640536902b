"""Airflow hook for OpenAI-compatible chat servers: vLLM, llama.cpp's server, OpenAI itself and API gateways.

They all speak ``POST <base>/chat/completions`` with ``<base>`` ending in ``/v1``, but differ in how much of
structured output they support. OpenAI, vLLM and llama.cpp's own ``llama-server`` take a strict ``json_schema``;
llama-cpp-python's server refuses that type but constrains ``{"type": "json_object", "schema": ...}`` to the
schema (the JSON mode of Anyscale and Together); a server that refuses both is asked in plain JSON mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.exceptions import AirflowNotFoundException

from dagnostics_provider import config
from dagnostics_provider.hooks.connection_forms import OPENAI_COMPATIBLE_CONNECTION
from dagnostics_provider.hooks.llm_errors import LLMError, LLMHTTPError, LLMInvalidResponse
from dagnostics_provider.hooks.llm_http import base_url, config_timeout, positive_seconds, request_json
from dagnostics_provider.hooks.llm_server_hook import LLMServerHook

API_PATH = "/v1"
# How servers refuse a response format they do not support: vLLM and llama.cpp answer 400, some gateways 422.
_SCHEMA_REFUSED = (400, 422)
# llama-cpp-python's server answers its request validation errors with HTTP 500, naming the field.
_FORMAT_FIELD = "response_format"
# The ways of asking for structured output, most precise first; a hook steps down once per refusal.
JSON_SCHEMA, JSON_OBJECT_SCHEMA, JSON_OBJECT = "json_schema", "json_object+schema", "json_object"
_FORMATS = (JSON_SCHEMA, JSON_OBJECT_SCHEMA, JSON_OBJECT)


@dataclass(frozen=True)
class OpenAISettings:
    """Where the server is and how to use it, resolved once per hook."""

    base_url: str
    model: str
    timeout: float
    source: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ChatCompletion:
    """One ``/chat/completions`` answer: the first choice's content; ``raw`` is the whole response object."""

    content: str
    model: str
    raw: dict[str, Any]
    finish_reason: str | None = None


class OpenAICompatibleHook(LLMServerHook):
    """Talk to an OpenAI-compatible server described by an ``openai_compatible`` connection.

    Host is the base URL up to and including the API version (``https://api.openai.com/v1``); a host without
    a path gets ``/v1``.  Password is the API key, sent as a bearer token.  Extras: ``model``, ``timeout``.
    Without the connection, ``[dagnostics] openai_api_base`` and the ``llm_*`` options apply (and no key).
    """

    conn_name_attr = "openai_compatible_conn_id"
    default_conn_name = "openai_compatible_default"
    conn_type = "openai_compatible"
    hook_name = "OpenAI-compatible LLM"
    connection_form = OPENAI_COMPATIBLE_CONNECTION
    server_name = "OpenAI-compatible server"

    def __init__(
        self,
        openai_compatible_conn_id: str = default_conn_name,
        *,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(openai_compatible_conn_id, base_url=base_url, model=model, timeout=timeout)
        # Learned from refusals, so later calls go straight to the format the server accepts.
        self._format = JSON_SCHEMA

    def _resolve_settings(self) -> OpenAISettings:
        timeout = positive_seconds(self._timeout, "timeout")
        if self._base_url is not None:
            return OpenAISettings(
                base_url=base_url(self._base_url, default_path=API_PATH),
                model=self._model or config.get("llm_model"),
                timeout=timeout or config_timeout(),
                source="arguments",
            )
        try:
            conn = self.get_connection(self.openai_compatible_conn_id)
        except AirflowNotFoundException:
            if self.openai_compatible_conn_id != self.default_conn_name:
                self.log.warning(
                    "Connection %r does not exist; using [dagnostics] openai_api_base and llm_* options",
                    self.openai_compatible_conn_id,
                )
            return OpenAISettings(
                base_url=base_url(config.get("openai_api_base") or config.get("llm_base_url"), default_path=API_PATH),
                model=self._model or config.get("llm_model"),
                timeout=timeout or config_timeout(),
                source="[dagnostics] openai_api_base",
            )
        extras = conn.extra_dejson
        where = f"connection {self.openai_compatible_conn_id!r}"
        return OpenAISettings(
            base_url=base_url(conn.host or "localhost", port=conn.port, default_path=API_PATH),
            model=self._model or extras.get("model") or config.get("llm_model"),
            timeout=timeout or positive_seconds(extras.get("timeout"), f"{where} timeout") or config_timeout(),
            source=where,
            api_key=conn.password or None,
        )

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "response",
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> ChatCompletion:
        """One chat completion; with ``json_schema`` the answer is constrained to it where the server can.

        Strict ``json_schema`` output is asked first. A server that refuses it (HTTP 400/422, or a 500 naming
        ``response_format``) is asked again, now and for the rest of this hook's life, with ``{"type":
        "json_object", "schema": ...}``, and one that refuses that too with ``{"type": "json_object"}``, which only
        promises JSON, so callers validate the answer either way. ``max_tokens`` bounds the answer where given;
        without it the server decides (llama-cpp-python's generates until its context is full).
        """
        payload: dict[str, Any] = {"model": model or self.model, "messages": messages, "stream": False}
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if json_schema is None:
            return self._complete(payload)
        while True:
            chosen = self._format
            response_format = _response_format(chosen, json_schema, schema_name)
            try:
                return self._complete(payload | {"response_format": response_format})
            except LLMHTTPError as exc:
                if chosen == JSON_OBJECT or not _refuses_format(exc):
                    raise
                self._format = _FORMATS[_FORMATS.index(chosen) + 1]
                self.log.warning(
                    "%s refused the %s response format (%s); asking with %s",
                    self.base_url,
                    chosen,
                    exc,
                    self._format,
                )

    @property
    def response_format(self) -> str:
        """The structured-output request this hook sends now: json_schema, json_object+schema or json_object."""
        return self._format

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: ``/models`` answers and lists the configured model."""
        url = f"{self.base_url}/models"
        try:
            data = request_json(self.get_conn(), "GET", url, timeout=self.timeout)
        except (LLMError, ValueError) as exc:
            return False, str(exc)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return False, f"{url} answered without a model list"
        names = {str(entry.get("id")) for entry in entries if isinstance(entry, dict)}
        where = f"{self.base_url} (from {self.settings.source})"
        if self.model not in names:
            return False, f"{where} answers, but does not list model {self.model!r}"
        return True, f"{where} answers and lists model {self.model!r}"

    def _complete(self, payload: dict[str, Any]) -> ChatCompletion:
        url = f"{self.base_url}/chat/completions"
        data = request_json(self.get_conn(), "POST", url, timeout=self.timeout, payload=payload)
        choices = data.get("choices") if isinstance(data, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        message = choice.get("message")
        if not isinstance(message, dict):
            raise LLMInvalidResponse(f"{url} answered without choices[0].message")
        content = message.get("content")
        if not isinstance(content, str):
            refusal = message.get("refusal")
            raise LLMInvalidResponse(f"the model refused: {refusal}" if refusal else f"{url} answered without content")
        return ChatCompletion(
            content=content,
            model=str(data.get("model") or payload["model"]),
            raw=data,
            finish_reason=choice.get("finish_reason"),
        )


def _response_format(kind: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
    if kind == JSON_SCHEMA:
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if kind == JSON_OBJECT_SCHEMA:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _refuses_format(exc: LLMHTTPError) -> bool:
    """Whether an HTTP error refuses the response format, rather than the model, the key or the server's health."""
    return exc.status_code in _SCHEMA_REFUSED or (exc.status_code == 500 and _FORMAT_FIELD in exc.server_error)
