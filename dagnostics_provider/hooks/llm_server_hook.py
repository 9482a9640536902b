"""What the Ollama and OpenAI-compatible hooks share: arguments, lazily resolved settings, the HTTP session.

Both describe "an LLM server somewhere" the same way (a connection, or explicit arguments, or the ``[dagnostics]
llm_*`` options) and differ only in how a connection maps to settings and in the API they speak; subclasses
implement :meth:`_resolve_settings` and their API calls.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import requests

from dagnostics_provider.hooks.connection_forms import form_widgets, ui_field_behaviour
from dagnostics_provider.hooks.llm_http import new_session

try:
    from airflow.sdk import BaseHook
except ImportError:  # Airflow before the Task SDK
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]


class LLMServerHook(BaseHook):
    """Base of the LLM hooks; ``connection_form`` is the connection type's form declaration."""

    connection_form: ClassVar[dict[str, Any]]
    server_name: ClassVar[str]

    def __init__(
        self, conn_id: str, *, base_url: str | None = None, model: str | None = None, timeout: float | None = None
    ) -> None:
        super().__init__()
        setattr(self, self.conn_name_attr, conn_id)  # Airflow reads the connection id under this name
        self._base_url = base_url
        self._model = model
        self._timeout = timeout

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui_field_behaviour(cls.connection_form)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return form_widgets(cls.connection_form)

    @cached_property
    def settings(self) -> Any:
        """Resolved on first use, not in ``__init__``, so building a hook never touches the connection store."""
        settings = self._resolve_settings()
        self.log.debug(
            "%s at %s, model %s, timeout %gs (from %s)",
            self.server_name,
            settings.base_url,
            settings.model,
            settings.timeout,
            settings.source,
        )
        return settings

    def _resolve_settings(self) -> Any:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    def get_conn(self) -> requests.Session:
        return self._session

    @cached_property
    def _session(self) -> requests.Session:
        return new_session(self.settings.api_key)
