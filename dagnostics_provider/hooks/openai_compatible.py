"""Airflow hook for OpenAI-compatible chat servers: vLLM, llama.cpp's server, OpenAI itself and API gateways.

They all speak ``POST <base>/chat/completions`` with ``<base>`` ending in ``/v1``, but differ in how much of
structured output they support, so a server that refuses a JSON schema is asked again in plain JSON mode.
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
# How servers without json_schema support refuse it: vLLM and llama.cpp answer 400, some gateways 422.
_SCHEMA_REFUSED = (400, 422)


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
        # Learned from the first refusal, so later calls go straight to JSON mode.
        self._json_schema_supported = True

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
    ) -> ChatCompletion:
        """One chat completion; with ``json_schema`` the answer is constrained to it where the server can.

        Strict ``json_schema`` output is asked first; a server that refuses it (HTTP 400/422) is asked again,
        now and for the rest of this hook's life, with ``{"type": "json_object"}``, which only promises JSON, so
        callers validate the answer either way.
        """
        payload: dict[str, Any] = {"model": model or self.model, "messages": messages, "stream": False}
        if temperature is not None:
            payload["temperature"] = temperature
        if json_schema is not None and self._json_schema_supported:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
            }
            try:
                return self._complete(payload | {"response_format": response_format})
            except LLMHTTPError as exc:
                if exc.status_code not in _SCHEMA_REFUSED:
                    raise
                self.log.warning("%s refused a json_schema response format (%s); using JSON mode", self.base_url, exc)
                self._json_schema_supported = False
        if json_schema is not None:
            payload["response_format"] = {"type": "json_object"}
        return self._complete(payload)

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
