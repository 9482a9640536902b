"""A fake Ollama server that follows Ollama's REST API strictly, so code that would fail against Ollama fails here.

Implemented: ``GET|HEAD /api/version``, ``GET /api/tags``, ``POST /api/show``, ``POST /api/chat``,
``POST /api/generate``, ``HEAD|POST /api/blobs/sha256:<hex>``, ``POST /api/create``, ``POST /api/copy`` and
``DELETE /api/delete``, with Ollama's status codes, error texts (``{"error": "..."}``), NDJSON streaming (on by
default) and its habit of reporting create failures inside a stream that started with HTTP 200.

Scripting, for tests::

    with FakeOllama() as fake:                       # serves llama3.2:3b; FakeOllama(models=[...]) for others
        fake.answers["llama3.2:3b"] = lambda request: '{"error_message": ...}'   # request: the JSON body
        fake.delays["llama3.2:3b"] = 5.0            # seconds before answering (timeouts)
        fake.fail("/api/chat", status=500, error="boom", times=1)   # injected HTTP errors
        fake.fail_create("unsupported architecture", after=2)        # in-stream error after 2 statuses
        fake.corrupt_uploads(times=1)                # the next blob arrives damaged: 400 digest mismatch
        fake.stop()                                  # down: connections are refused; fake.start() brings it back
        fake.requests, fake.models["x:latest"].template, fake.blobs  # what happened
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.fakes.http_fake import FakeHTTPServer, Reply, Request, Stream

DEFAULT_MODEL = "llama3.2:3b"
DEFAULT_TEMPLATE = "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
QUANTIZATIONS = ("q4_0", "q4_1", "q4_k_m", "q4_k_s", "q5_0", "q5_1", "q5_k_m", "q5_k_s", "q6_k", "q8_0")
ROLES = ("system", "user", "assistant", "tool")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")
_STREAM_PIECE_CHARS = 16

Answer = Callable[[dict[str, Any]], str]


def canonical(name: str) -> str:
    """Ollama's reading of a model name: case-insensitive, ``:latest`` when no tag is given."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class FakeModel:
    """A model the fake serves; created models record what ``/api/create`` was given."""

    name: str
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    format: str = "gguf"
    template: str = DEFAULT_TEMPLATE
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    parent_model: str = ""
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    quantize: str | None = None
    modified_at: str = field(default_factory=_now)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.name, self.files, self.adapters, self.template]).encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": self.parent_model,
            "format": self.format,
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass
class _InjectedFailure:
    status: int
    error: str
    times: int | None


class OllamaAPIError(Exception):
    """Raised inside a handler to answer ``{"error": message}`` with ``status``, as Ollama's handlers do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeOllama(FakeHTTPServer):
    def __init__(self, models: tuple[str, ...] | list[str] = (DEFAULT_MODEL,), version: str = "0.12.0") -> None:
        super().__init__()
        self.version = version
        self.models: dict[str, FakeModel] = {}
        self.blobs: dict[str, bytes] = {}
        self.answers: dict[str, Answer] = {}
        self.delays: dict[str, float] = {}
        self._failures: dict[str, _InjectedFailure] = {}
        self._create_failure: tuple[str, int] | None = None
        self._corrupt_uploads = 0
        for name in models:
            self.add_model(name)

    # Scripting

    def add_model(self, name: str, **attributes: Any) -> FakeModel:
        model = FakeModel(name=canonical(name), **attributes)
        with self.lock:
            self.models[model.name] = model
        return model

    def fail(self, path: str, *, status: int = 500, error: str = "internal error", times: int | None = 1) -> None:
        """Answer requests to ``path`` with ``status`` and ``{"error": error}``, ``times`` times (None: always)."""
        self._failures[path] = _InjectedFailure(status, error, times)

    def fail_create(self, error: str, *, after: int = 2) -> None:
        """Make the next ``/api/create`` fail with ``error`` after ``after`` status lines (0: as an HTTP 500)."""
        self._create_failure = (error, after)

    def corrupt_uploads(self, *, times: int = 1) -> None:
        """Damage the next ``times`` blob uploads in transit (one byte flipped), as a broken link or proxy would."""
        self._corrupt_uploads = times

    def json_requests(self, path: str) -> list[dict[str, Any]]:
        return [r.json for r in self.requests_to(path)]

    # Routing

    def handle(self, request: Request) -> Reply | Stream:
        routes: dict[str, dict[str, Callable[[Request], Reply | Stream]]] = {
            "/api/version": {"GET": self._version, "HEAD": self._version},
            "/api/tags": {"GET": self._tags, "HEAD": self._tags},
            "/api/show": {"POST": self._show},
            "/api/chat": {"POST": self._chat},
            "/api/generate": {"POST": self._generate},
            "/api/create": {"POST": self._create},
            "/api/copy": {"POST": self._copy},
            "/api/delete": {"DELETE": self._delete},
        }
        path = request.path
        if path.startswith("/api/blobs/"):
            route = {"HEAD": self._head_blob, "POST": self._post_blob}
        elif path in routes:
            route = routes[path]
        else:
            return Reply(404, b"404 page not found", "text/plain")
        if request.method not in route:
            return Reply(405, b"405 method not allowed", "text/plain")
        injected = self._injected(path)
        if injected is not None:
            return injected
        try:
            return route[request.method](request)
        except OllamaAPIError as exc:
            return Reply(exc.status, {"error": exc.message})

    def _injected(self, path: str) -> Reply | None:
        with self.lock:
            failure = self._failures.get(path)
            if failure is None:
                return None
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[path]
        return Reply(failure.status, {"error": failure.error})

    # Server and models

    def _version(self, request: Request) -> Reply:
        return Reply(200, {"version": self.version})

    def _tags(self, request: Request) -> Reply:
        with self.lock:
            models = sorted(self.models.values(), key=lambda m: m.modified_at, reverse=True)
        entries = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": m.modified_at,
                "size": 1_000_000 + sum(len(self.blobs.get(d, b"")) for d in m.files.values()),
                "digest": m.digest,
                "details": m.details(),
            }
            for m in models
        ]
        return Reply(200, {"models": entries})

    def _show(self, request: Request) -> Reply:
        body = _json_body(request)
        name = _string(body, "model") or _string(body, "name")
        if not name:
            raise OllamaAPIError(400, "model is required")
        model = self._model(name)
        if model is None:
            raise OllamaAPIError(404, f"model '{name}' not found")
        return Reply(
            200,
            {
                "license": "",
                "modelfile": _modelfile(model),
                "parameters": _parameters_text(model.parameters),
                "template": model.template,
                "system": model.system,
                "details": model.details(),
                "model_info": {"general.architecture": model.family, "general.parameter_count": 3_212_749_888},
                "capabilities": ["completion"],
                "modified_at": model.modified_at,
            },
        )

    def _copy(self, request: Request) -> Reply:
        body = _json_body(request)
        source, destination = _string(body, "source"), _string(body, "destination")
        if not source or not _MODEL_NAME.match(source):
            raise OllamaAPIError(400, f'source "{source}" is invalid')
        if not destination or not _MODEL_NAME.match(destination):
            raise OllamaAPIError(400, f'destination "{destination}" is invalid')
        with self.lock:
            model = self._model(source)
            if model is None:
                raise OllamaAPIError(404, f'model "{source}" not found')
            duplicate = copy.deepcopy(model)
            duplicate.name, duplicate.modified_at = canonical(destination), _now()
            self.models[duplicate.name] = duplicate
        return Reply(200)

    def _delete(self, request: Request) -> Reply:
        body = _json_body(request)
        name = _string(body, "model") or _string(body, "name")
        if not name or not _MODEL_NAME.match(name):
            raise OllamaAPIError(400, f'name "{name}" is invalid')
        with self.lock:
            if self.models.pop(canonical(name), None) is None:
                raise OllamaAPIError(404, f"model '{name}' not found")
        return Reply(200)

    def _model(self, name: str) -> FakeModel | None:
        return self.models.get(canonical(name))

    # Inference

    def _chat(self, request: Request) -> Reply | Stream:
        body = _json_body(request)
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise OllamaAPIError(400, "json: cannot unmarshal messages into Go struct field ChatRequest.messages")
        for message in messages:
            _check_message(message)
        model = self._inference_model(body)
        if not messages:  # Ollama's documented way to load a model
            return self._reply(body, {"message": {"role": "assistant", "content": ""}}, done_reason="load")
        return self._answer(body, model, lambda text: {"message": {"role": "assistant", "content": text}})

    def _generate(self, request: Request) -> Reply | Stream:
        body = _json_body(request)
        for key in ("prompt", "system", "template", "suffix"):
            if key in body and not isinstance(body[key], str):
                raise OllamaAPIError(400, f"json: cannot unmarshal {key} into Go struct field GenerateRequest.{key}")
        model = self._inference_model(body)
        if not body.get("prompt"):
            return self._reply(body, {"response": ""}, done_reason="load")
        return self._answer(body, model, lambda text: {"response": text})

    def _inference_model(self, body: dict[str, Any]) -> FakeModel:
        if "model" in body and not isinstance(body["model"], str):
            raise OllamaAPIError(400, "json: cannot unmarshal model into Go struct field of type string")
        if "options" in body and not isinstance(body["options"], dict):
            raise OllamaAPIError(400, "json: cannot unmarshal options into Go struct field of type map[string]any")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise OllamaAPIError(400, "json: cannot unmarshal stream into Go struct field of type bool")
        if "keep_alive" in body and not isinstance(body["keep_alive"], (str, int, float)):
            raise OllamaAPIError(400, "json: cannot unmarshal keep_alive into Go struct field of type Duration")
        name = body.get("model") or ""
        if not name:
            raise OllamaAPIError(400, "model is required")
        model = self._model(name)
        if model is None:
            raise OllamaAPIError(404, f'model "{name}" not found, try pulling it first')
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            raise OllamaAPIError(500, f'invalid format: {json.dumps(fmt)!r}; expected "json" or a valid JSON Schema')
        return model

    def _answer(self, body: dict[str, Any], model: FakeModel, shape: Callable[[str], dict[str, Any]]) -> Reply | Stream:
        answer = next((fn for name, fn in self.answers.items() if canonical(name) == model.name), None)
        if answer is None:
            raise OllamaAPIError(500, f"fake ollama: no answer scripted for model '{model.name}'")
        self.pause(self.delays.get(model.name, 0.0))
        text = answer(body)
        if body.get("stream", True) is False:
            return self._reply(body, shape(text), done_reason="stop")
        pieces = [text[i : i + _STREAM_PIECE_CHARS] for i in range(0, len(text), _STREAM_PIECE_CHARS)]

        def lines() -> Iterator[dict[str, Any]]:
            for piece in pieces:
                yield {"model": body["model"], "created_at": _now(), **shape(piece), "done": False}
            yield {"model": body["model"], "created_at": _now(), **shape(""), **_final_stats("stop")}

        return Stream(lines())

    def _reply(self, body: dict[str, Any], content: dict[str, Any], *, done_reason: str) -> Reply:
        return Reply(200, {"model": body["model"], "created_at": _now(), **content, **_final_stats(done_reason)})

    # Blobs

    def _head_blob(self, request: Request) -> Reply:
        digest = _blob_digest(request.path)
        if digest not in self.blobs:
            raise OllamaAPIError(404, f'blob "{request.path.rsplit("/", 1)[-1]}" not found')
        return Reply(200)

    def _post_blob(self, request: Request) -> Reply:
        digest = _blob_digest(request.path)
        if digest in self.blobs:
            return Reply(200)
        body = request.body
        with self.lock:
            if self._corrupt_uploads and body:
                self._corrupt_uploads -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:]
        actual = f"sha256:{hashlib.sha256(body).hexdigest()}"
        if actual != digest:
            raise OllamaAPIError(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[digest] = body
        return Reply(201)

    # Create

    def _create(self, request: Request) -> Reply | Stream:
        body = _json_body(request)
        statuses, model = self._create_plan(body)
        failure, self._create_failure = self._create_failure, None
        if failure is not None:
            error, after = failure
            at = min(after, len(statuses) - 1)  # never after "success"
            statuses = [*statuses[:at], {"error": error, "code": 500}]
        statuses = _until_error(statuses)
        error = statuses[-1] if "error" in statuses[-1] else None
        # Ollama answers with an HTTP error while nothing has been streamed yet, or when not streaming at all.
        if error is not None and (len(statuses) == 1 or body.get("stream", True) is False):
            raise OllamaAPIError(error["code"], error["error"])
        if body.get("stream", True) is False:
            self._register(model)
            return Reply(200, {"status": "success"})

        def lines() -> Iterator[dict[str, Any]]:
            for status in statuses:
                if "error" in status:
                    yield {"error": status["error"]}
                    return
                if status["status"] == "success":
                    self._register(model)
                yield status

        return Stream(lines())

    def _register(self, model: FakeModel) -> None:
        with self.lock:
            self.models[model.name] = model

    def _create_plan(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], FakeModel]:
        """Validate a create request as Ollama does before it starts streaming; return the statuses and model."""
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise OllamaAPIError(400, "json: cannot unmarshal parameters into Go struct field of type map[string]any")
        if "typical_p" in parameters:
            raise OllamaAPIError(400, "typical_p is deprecated and cannot be set as a model parameter")
        files, adapters = _digest_map(body, "files"), _digest_map(body, "adapters")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            raise OllamaAPIError(400, "invalid model name")
        for kind, mapping in (("file", files), ("adapter", adapters)):
            for filename, digest in mapping.items():
                if _normal_digest(digest) not in self.blobs:
                    raise OllamaAPIError(400, f"blob not found for {kind} {filename} (digest {digest})")
        base_name = body.get("from")
        if not base_name and not files:
            raise OllamaAPIError(400, "neither 'from' or 'files' was specified")
        quantize = body.get("quantize")
        if quantize is not None and str(quantize).lower() not in QUANTIZATIONS:
            raise OllamaAPIError(400, f"unsupported quantization type {quantize}")
        base = self._model(base_name) if base_name else None
        if base_name and base is None:
            raise OllamaAPIError(500, "pull model manifest: file does not exist")

        model = FakeModel(
            name=canonical(name),
            family=base.family if base else "llama",
            parameter_size=base.parameter_size if base else "135M",
            quantization_level=str(quantize).upper() if quantize else (base.quantization_level if base else "F16"),
            format="gguf",
            template=body.get("template") or (base.template if base else DEFAULT_TEMPLATE),
            system=body.get("system") or (base.system if base else ""),
            parameters={**(base.parameters if base else {}), **parameters},
            parent_model=base.name if base else "",
            files=files,
            adapters=adapters,
            quantize=quantize,
        )
        statuses: list[dict[str, Any]] = []
        if files:
            gguf = any(name.endswith(".gguf") for name in files)
            statuses.append({"status": "parsing GGUF" if gguf else "converting model"})
        for digest in [*files.values(), *adapters.values()]:
            statuses.append({"status": f"using existing layer {_normal_digest(digest)}"})
        if quantize:
            statuses.append({"status": f"quantizing F16 model to {str(quantize).upper()}"})
        if "template" in body and model.template.count("{{") != model.template.count("}}"):
            statuses.append({"error": "template: unbalanced action delimiters", "code": 400})
        for layer in ("template", "system", "parameters"):
            if body.get(layer):
                digest = hashlib.sha256(json.dumps(body[layer]).encode()).hexdigest()
                statuses.append({"status": f"creating new layer sha256:{digest}"})
        statuses += [{"status": "writing manifest"}, {"status": "success"}]
        return _until_error(statuses), model


def _until_error(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama stops at the first error; its ``code`` becomes the HTTP status if nothing was streamed yet."""
    for index, status in enumerate(statuses):
        if "error" in status:
            return statuses[: index + 1]
    return statuses


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        raise OllamaAPIError(400, "missing request body")
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        raise OllamaAPIError(400, f"invalid character in request body: {exc}") from None
    if not isinstance(body, dict):
        raise OllamaAPIError(400, "json: cannot unmarshal array into Go value of type api.Request")
    return body


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise OllamaAPIError(400, f"json: cannot unmarshal {key} into Go struct field of type string")
    return value


def _check_message(message: Any) -> None:
    if not isinstance(message, dict):
        raise OllamaAPIError(400, "json: cannot unmarshal message into Go struct field of type api.Message")
    if not isinstance(message.get("role"), str) or message["role"] not in ROLES:
        raise OllamaAPIError(400, f"invalid message role: {message.get('role')!r}")
    if "content" in message and not isinstance(message["content"], str):
        raise OllamaAPIError(400, "json: cannot unmarshal content into Go struct field Message.content of type string")


def _digest_map(body: dict[str, Any], key: str) -> dict[str, str]:
    mapping = body.get(key) or {}
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise OllamaAPIError(400, f"json: cannot unmarshal {key} into Go struct field of type map[string]string")
    for filename, digest in mapping.items():
        if filename.startswith("/") or ".." in filename.split("/"):
            raise OllamaAPIError(400, "file path must be relative")
        if not _DIGEST.match(digest):
            raise OllamaAPIError(400, "invalid digest format")
    return dict(mapping)


def _normal_digest(digest: str) -> str:
    match = _DIGEST.match(digest)
    if match is None:
        raise OllamaAPIError(400, "invalid digest format")
    return f"sha256:{match.group(1).lower()}"


def _blob_digest(path: str) -> str:
    return _normal_digest(path.rsplit("/", 1)[-1])


def _final_stats(done_reason: str) -> dict[str, Any]:
    return {
        "done": True,
        "done_reason": done_reason,
        "total_duration": 5_043_500_667,
        "load_duration": 5_025_959,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 325_953_000,
        "eval_count": 290,
        "eval_duration": 4_709_213_000,
    }


def _parameters_text(parameters: dict[str, Any]) -> str:
    """``/api/show``'s ``parameters``: one ``name value`` line per value, lists expanded, strings quoted."""
    lines = []
    for key, value in parameters.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {json.dumps(item)}")
    return "\n".join(lines)


def _modelfile(model: FakeModel) -> str:
    source = model.parent_model or next(iter(model.files.values()), "")
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {model.name}",
        "",
        f"FROM {source}",
        f'TEMPLATE """{model.template}"""',
    ]
    if model.system:
        lines.append(f'SYSTEM """{model.system}"""')
    for key, value in model.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {json.dumps(item) if isinstance(item, str) else item}")
    lines += [f"ADAPTER {digest}" for digest in model.adapters.values()]
    return "\n".join(lines) + "\n"
