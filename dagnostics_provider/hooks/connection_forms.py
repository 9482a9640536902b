"""The connection types DAGnostics registers, declared once as data.

Airflow 3.2+ reads connection forms declaratively from provider info (``conn-fields``, ``ui-field-behaviour``)
without importing hooks; older Airflow asks the hook classes.  Both read the declarations here, and this module
imports nothing from Airflow so ``get_provider_info()`` can use it while Airflow's configuration is still loading.
"""

from __future__ import annotations

from typing import Any

_TIMEOUT_FIELD = {
    "label": "Timeout (seconds)",
    "schema": {"type": ["number", "null"], "minimum": 1},
    "description": "How long to wait for one answer. Empty: [dagnostics] llm_timeout.",
}

OLLAMA_CONNECTION: dict[str, Any] = {
    "hook-class-name": "dagnostics_provider.hooks.ollama.OllamaHook",
    "hook-name": "Ollama",
    "connection-type": "ollama",
    "conn-fields": {
        "model": {
            "label": "Model",
            "schema": {"type": ["string", "null"]},
            "description": "Model tag to ask, e.g. llama3.2:3b or a deployed DAGnostics model. "
            "Empty: [dagnostics] llm_model.",
        },
        "timeout": _TIMEOUT_FIELD,
        "keep_alive": {
            "label": "Keep alive",
            "schema": {"type": ["string", "null"]},
            "description": "How long Ollama keeps the model loaded after a request (5m, 1h, -1 for always). "
            "Empty: the server's default.",
        },
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "login"],
        "relabeling": {"host": "Host or base URL", "password": "API key"},
        "placeholders": {
            "host": "http://localhost",
            "port": "11434",
            "password": "optional: sent as a bearer token (ollama.com, authenticating proxies)",
        },
    },
}

OPENAI_COMPATIBLE_CONNECTION: dict[str, Any] = {
    "hook-class-name": "dagnostics_provider.hooks.openai_compatible.OpenAICompatibleHook",
    "hook-name": "OpenAI-compatible LLM",
    "connection-type": "openai_compatible",
    "conn-fields": {
        "model": {
            "label": "Model",
            "schema": {"type": ["string", "null"]},
            "description": "Model name the server expects. Empty: [dagnostics] llm_model.",
        },
        "timeout": _TIMEOUT_FIELD,
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "login"],
        "relabeling": {"host": "Base URL", "password": "API key"},
        "placeholders": {
            "host": "https://api.openai.com/v1 or http://vllm.internal:8000/v1",
            "password": "API key, if the server needs one",
        },
    },
}


def ui_field_behaviour(connection: dict[str, Any]) -> dict[str, Any]:
    """The declaration's field behaviour in the shape ``BaseHook.get_ui_field_behaviour()`` returns."""
    behaviour = connection["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def form_widgets(connection: dict[str, Any]) -> dict[str, Any]:
    """The declaration's extra fields as the WTForms fields ``get_connection_form_widgets()`` returns.

    Imported lazily: workers without the web UI's packages never call this.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField

    return {
        name: StringField(lazy_gettext(field["label"]), widget=BS3TextFieldWidget(), description=field["description"])
        for name, field in connection["conn-fields"].items()
    }
