"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` and ``GET /v1/models``.

It checks what vLLM, llama.cpp and OpenAI check (bearer key, model, messages, ``response_format`` shape) and
answers errors in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``.  Scripting::

    with FakeOpenAI(api_key="sk-test") as fake:     # base URL for hooks: fake.url + "/v1"
        fake.answers["gpt-test"] = lambda request: "..."
        fake.supports_json_schema = False          # answer 400 to json_schema, like servers without it
        fake.supports_json_object_schema = False   # and 400 to {"type": "json_object", "schema": ...}
        fake.delays["gpt-test"] = 5.0
        fake.fail(status=500, error="...", times=1)  # the next chat request(s) answer that error
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.fakes.http_fake import FakeHTTPServer, Reply, Request, Stream, cut_to_tokens

DEFAULT_MODEL = "gpt-test"
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})


class FakeOpenAI(FakeHTTPServer):
    def __init__(self, models: tuple[str, ...] | list[str] = (DEFAULT_MODEL,), api_key: str | None = None) -> None:
        super().__init__()
        self.models = list(models)
        self.api_key = api_key
        self.supports_json_schema = True
        self.supports_json_object_schema = True
        self.answers: dict[str, Callable[[dict[str, Any]], str]] = {}
        self.delays: dict[str, float] = {}
        self._failures: list[tuple[int, str]] = []

    def fail(self, *, status: int = 500, error: str = "internal error", times: int = 1) -> None:
        """Answer the next ``times`` chat requests with ``status`` and ``error`` in OpenAI's error shape."""
        self._failures.extend([(status, error)] * times)

    def json_requests(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests_to("/v1/chat/completions")]

    def handle(self, request: Request) -> Reply | Stream:
        routes = {("POST", "/v1/chat/completions"): self._chat, ("GET", "/v1/models"): self._models}
        route = routes.get((request.method, request.path))
        if route is None:
            return _error(404, f"Unknown request URL: {request.method} {request.path}", code="unknown_url")
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        return route(request)

    def _models(self, request: Request) -> Reply:
        return Reply(
            200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]}
        )

    def _chat(self, request: Request) -> Reply:
        if self._failures:
            status, error = self._failures.pop(0)
            return Reply(status, {"error": {"message": error, "type": "server_error", "param": None, "code": None}})
        try:
            body = request.json
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "'messages' must be a non-empty array", param="messages")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
                return _error(400, "Invalid value for 'messages': each needs a valid role", param="messages")
            if not isinstance(message.get("content"), str):
                return _error(400, "Invalid type for 'messages[].content': expected a string", param="messages")
        refused = self._check_response_format(body.get("response_format"))
        if refused is not None:
            return refused
        if body.get("stream"):
            return _error(400, "fake openai: streaming is not implemented", param="stream")
        max_tokens = body.get("max_tokens")
        whole_number = isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
        if max_tokens is not None and (not whole_number or max_tokens < 1):
            return _error(400, "Invalid 'max_tokens': expected an integer of at least 1", param="max_tokens")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist", param="model", code="model_not_found")
        answer = self.answers.get(model)
        if answer is None:
            return Reply(
                500, {"error": {"message": f"fake openai: no answer scripted for {model}", "type": "server_error"}}
            )
        self.pause(self.delays.get(model, 0.0))
        content, cut = cut_to_tokens(answer(body), max_tokens)
        return Reply(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length" if cut else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 26, "completion_tokens": 290, "total_tokens": 316},
            },
        )

    def _check_response_format(self, response_format: Any) -> Reply | None:
        if response_format is None:
            return None
        if not isinstance(response_format, dict) or response_format.get("type") not in RESPONSE_FORMATS:
            return _error(400, "Invalid value for 'response_format.type'", param="response_format")
        if response_format["type"] == "json_object" and "schema" in response_format:
            if not self.supports_json_object_schema:
                return _error(400, "Unrecognized request argument: response_format.schema", param="response_format")
            return None
        if response_format["type"] != "json_schema":
            return None
        if not self.supports_json_schema:
            return _error(400, "response_format type json_schema is not supported", param="response_format")
        spec = response_format.get("json_schema")
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("schema"), dict)
        ):
            return _error(
                400, "Missing required parameter: 'response_format.json_schema.name/schema'", param="response_format"
            )
        return None
