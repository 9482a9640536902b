"""A fake Ollama server that follows Ollama's REST API strictly, so code that would fail against Ollama fails here.

Implemented: ``GET|HEAD /api/version``, ``GET /api/tags``, ``POST /api/show``, ``POST /api/chat``,
``POST /api/generate``, ``HEAD|POST /api/blobs/sha256:<hex>``, ``POST /api/create``, ``POST /api/copy`` and
``DELETE /api/delete``, with Ollama's status codes, error texts (``{"error": "..."}``), NDJSON streaming (on by
default) and its habit of reporting create failures inside a stream that started with HTTP 200.

Checked against Ollama's source (types/model/name.go, convert/convert.go, fs/ggml/type.go, server/create.go,
server/routes.go, manifest/paths.go, template/template.go) and the llama.cpp it bundles, the fake also refuses what
a real server of its ``version`` refuses: model names outside name.go's rules; a ``format`` schema with repetition
bounds llama.cpp's grammar parser will not build (HTTP 500 on every chat); safetensors whose config.json names an
architecture that version's converter lacks (in-stream ``unsupported architecture "X"``); quantizations other than
ParseFileType's (in-stream, after the conversion, as Ollama does); templates Go's text/template cannot parse
(:mod:`tests.fakes.go_template`); and blob uploads named ``sha256-<hex>`` (the name is compared with the computed
``sha256:<hex>``), while reads accept both spellings as Ollama's blob store does. A model created from safetensors
records the rope base Ollama's converter would write (``rope_freq_base``).

Scripting, for tests::

    with FakeOllama() as fake:                       # serves llama3.2:3b; FakeOllama(models=[...], version=...)
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

from tests.fakes import go_template
from tests.fakes.http_fake import FakeHTTPServer, Reply, Request, Stream, cut_to_tokens

DEFAULT_MODEL = "llama3.2:3b"
DEFAULT_TEMPLATE = "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
DEFAULT_VERSION = "0.32.15"  # the newest release the rules below were checked against
# fs/ggml/type.go ParseFileType (v0.7 on), applied to the upper-cased value: Q4_K is read as Q4_K_M.
QUANTIZATIONS = ("F32", "F16", "BF16", "Q8_0", "Q4_K_S", "Q4_K_M", "Q4_K")
ROLES = ("system", "user", "assistant", "tool")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")
_STREAM_PIECE_CHARS = 16
Version = tuple[int, int, int]

# types/model/name.go: each part's longest length and the characters allowed after its first one (which must be an
# ASCII letter, digit or "_"); absent parts take these defaults.
_NAME_PARTS = {"host": (350, "._:-"), "namespace": (80, "_-"), "model": (80, "._-"), "tag": (80, "._-")}
_NAME_DEFAULTS = {"host": "registry.ollama.ai", "namespace": "library", "tag": "latest"}

# convert/convert.go's ConvertModel switch on config.json's architectures[0]: (first, last) release taking it.
_CONVERTERS: dict[str, tuple[Version, Version | None]] = {
    "LlamaForCausalLM": ((0, 3, 3), None),
    "MistralForCausalLM": ((0, 3, 3), (0, 6, 4)),
    "MixtralForCausalLM": ((0, 3, 3), None),
    "GemmaForCausalLM": ((0, 3, 3), None),
    "Gemma2ForCausalLM": ((0, 3, 7), None),
    "Gemma3ForCausalLM": ((0, 6, 0), None),
    "Gemma3ForConditionalGeneration": ((0, 6, 0), None),
    "Gemma3TextModel": ((0, 30, 0), None),
    "Gemma3nForConditionalGeneration": ((0, 9, 3), None),
    "Gemma4ForCausalLM": ((0, 20, 0), None),
    "Gemma4ForConditionalGeneration": ((0, 20, 0), None),
    "Phi3ForCausalLM": ((0, 3, 6), None),
    "Qwen2ForCausalLM": ((0, 5, 6), None),
    "Qwen2_5_VLForConditionalGeneration": ((0, 7, 0), None),
    "Qwen3VLForConditionalGeneration": ((0, 12, 7), None),
    "Qwen3VLMoeForConditionalGeneration": ((0, 12, 7), None),
    "Qwen3NextForCausalLM": ((0, 15, 5), None),
    "Qwen3_5ForConditionalGeneration": ((0, 17, 1), None),
    "Qwen3_5MoeForConditionalGeneration": ((0, 17, 1), None),
    "CohereForCausalLM": ((0, 5, 7), None),
    "Mistral3ForConditionalGeneration": ((0, 6, 5), None),
    "Ministral3ForCausalLM": ((0, 13, 3), None),
    "Llama4ForConditionalGeneration": ((0, 6, 7), None),
    "MllamaForConditionalGeneration": ((0, 7, 0), None),
    "GptOssForCausalLM": ((0, 11, 0), None),
    "Olmo3ForCausalLM": ((0, 13, 4), None),
    "DeepseekV3ForCausalLM": ((0, 13, 2), None),
    "DeepseekOCRForCausalLM": ((0, 13, 0), None),
    "Glm4MoeLiteForCausalLM": ((0, 14, 3), None),
    "GlmOcrForConditionalGeneration": ((0, 15, 5), None),
    "Lfm2ForCausalLM": ((0, 14, 3), None),
    "Lfm2MoeForCausalLM": ((0, 17, 1), None),
    "Lfm2VlForConditionalGeneration": ((0, 17, 1), None),
    "NemotronHForCausalLM": ((0, 17, 1), None),
    "NemotronH_Nano_VL_V2": ((0, 22, 0), None),
    "NemotronH_Nano_Omni_Reasoning_V3": ((0, 22, 0), None),
    "LagunaForCausalLM": ((0, 22, 0), None),
    "BertModel": ((0, 3, 7), None),
    "NomicBertModel": ((0, 13, 3), None),
    "NomicBertMoEModel": ((0, 13, 3), None),
}
# The GGUF architecture a converter writes (what /api/show calls the family), where it is not the class's stem.
_FAMILIES = {"MistralForCausalLM": "llama", "MixtralForCausalLM": "llama", "Gemma3ForCausalLM": "gemma3"}
# Converters that read only the top-level rope_theta; without it Llama's leaves llama.cpp's default (10 000) and
# Qwen2's writes 0 (convert_llama.go, convert_qwen2.go).
_ROPE_DEFAULTS = {"LlamaForCausalLM": 10_000.0, "MistralForCausalLM": 10_000.0, "MixtralForCausalLM": 10_000.0}
_ROPE_DEFAULTS["Qwen2ForCausalLM"] = 0.0

# llama.cpp's grammar parser (llama-grammar.cpp), which a JSON-schema `format` is compiled for: the bundled copy
# in Ollama 0.14-0.24 refuses repetitions above 2000; the llama.cpp of later releases also refuses (rules repeated
# x bound) >= 2000, which a one-field schema reaches above a bound of 1000 (1000 measured to work, 1500 to fail).
_REPETITION_KEYWORDS = ("maxLength", "minLength", "maxItems", "minItems")
_TOO_MANY_REPETITIONS = "number of repetitions exceeds sane defaults, please reduce the number of repetitions"
_TOO_MANY_RULES = (
    "number of rules that are going to be repeated multiplied by the new repetition exceeds sane defaults, please "
    "reduce the number of repetitions or rule complexity"
)
# template/template.go's FuncMap, by the release that added each function.
_TEMPLATE_FUNCTIONS: dict[str, Version] = {
    "json": (0, 0, 0),
    "currentDate": (0, 11, 1),
    "toTypeScriptType": (0, 11, 3),
    "yesterdayDate": (0, 13, 3),
}

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
    architecture: str = ""  # config.json's architectures[0], for a model converted from safetensors
    rope_freq_base: float | None = None  # the rope base its converter wrote (None: not converted here)
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
    def __init__(self, models: tuple[str, ...] | list[str] = (DEFAULT_MODEL,), version: str = DEFAULT_VERSION) -> None:
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
        if not valid_model_name(name):
            raise OllamaAPIError(400, "invalid model name")
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
        if not valid_model_name(source):
            raise OllamaAPIError(400, f'source "{source}" is invalid')
        if not valid_model_name(destination):
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
        if not valid_model_name(name):
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
        _check_options(body.get("options") or {})
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
        if isinstance(fmt, dict):
            self._check_grammar(fmt)
        return model

    def _check_grammar(self, schema: dict[str, Any]) -> None:
        """Refuse, as llama.cpp's grammar parser does, a schema whose repetition bounds it will not expand."""
        version = _version(self.version)
        if version < (0, 14, 0):  # the llama.cpp bundled before 0.14 had no limit
            return
        largest = max(_repetition_bounds(schema), default=0)
        if largest > 2000:
            raise OllamaAPIError(500, f"error parsing grammar: {_TOO_MANY_REPETITIONS}")
        if largest > 1000 and version > (0, 24, 99):
            raise OllamaAPIError(500, f"error parsing grammar: {_TOO_MANY_RULES}")

    def _answer(self, body: dict[str, Any], model: FakeModel, shape: Callable[[str], dict[str, Any]]) -> Reply | Stream:
        answer = next((fn for name, fn in self.answers.items() if canonical(name) == model.name), None)
        if answer is None:
            raise OllamaAPIError(500, f"fake ollama: no answer scripted for model '{model.name}'")
        self.pause(self.delays.get(model.name, 0.0))
        text, done_reason = _limit(answer(body), (body.get("options") or {}).get("num_predict"))
        if body.get("stream", True) is False:
            return self._reply(body, shape(text), done_reason=done_reason)
        pieces = [text[i : i + _STREAM_PIECE_CHARS] for i in range(0, len(text), _STREAM_PIECE_CHARS)]

        def lines() -> Iterator[dict[str, Any]]:
            for piece in pieces:
                yield {"model": body["model"], "created_at": _now(), **shape(piece), "done": False}
            yield {"model": body["model"], "created_at": _now(), **shape(""), **_final_stats(done_reason)}

        return Stream(lines())

    def _reply(self, body: dict[str, Any], content: dict[str, Any], *, done_reason: str) -> Reply:
        return Reply(200, {"model": body["model"], "created_at": _now(), **content, **_final_stats(done_reason)})

    # Blobs

    def _head_blob(self, request: Request) -> Reply:
        digest = request.path.rsplit("/", 1)[-1]
        if _blob_key(digest) not in self.blobs:
            raise OllamaAPIError(404, f'blob "{digest}" not found')
        return Reply(200)

    def _post_blob(self, request: Request) -> Reply:
        """Ollama stores the blob unless one is there, then compares the name given with ``sha256:<lower hex>``.

        So ``sha256-<hex>`` (its on-disk spelling) or upper-case hex is a digest mismatch for a new blob.
        """
        digest = request.path.rsplit("/", 1)[-1]
        if _blob_key(digest) in self.blobs:
            return Reply(200)
        body = request.body
        with self.lock:
            if self._corrupt_uploads and body:
                self._corrupt_uploads -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:]
        actual = f"sha256:{hashlib.sha256(body).hexdigest()}"
        if actual != digest:
            raise OllamaAPIError(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        self.blobs[actual] = body
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
        """Validate a create request as Ollama does before it starts streaming; return the statuses and model.

        The statuses end at the first failure Ollama only finds while creating (an architecture its converter
        lacks, a quantization it does not know, a template Go cannot parse), as an ``error`` entry.
        """
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise OllamaAPIError(400, "json: cannot unmarshal parameters into Go struct field of type map[string]any")
        if "typical_p" in parameters:
            raise OllamaAPIError(400, "typical_p is deprecated and cannot be set as a model parameter")
        files, adapters = _digest_map(body, "files"), _digest_map(body, "adapters")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not valid_model_name(name):
            raise OllamaAPIError(400, "invalid model name")
        for kind, mapping in (("file", files), ("adapter", adapters)):
            for filename, digest in mapping.items():
                if _blob_key(digest) not in self.blobs:
                    raise OllamaAPIError(400, f"blob not found for {kind} {filename} (digest {digest})")
        base_name = body.get("from")
        if not base_name and not files:
            raise OllamaAPIError(400, "neither 'from' or 'files' was specified")
        if base_name and not valid_model_name(str(base_name)):
            raise OllamaAPIError(400, "invalid model name")
        base = self._model(base_name) if base_name else None
        if base_name and base is None:
            raise OllamaAPIError(500, "pull model manifest: file does not exist")

        statuses, imported = self._import_files(files)
        quantize = body.get("quantize")
        model = FakeModel(
            name=canonical(name),
            family=imported.get("family") or (base.family if base else "llama"),
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
            architecture=imported.get("architecture", ""),
            rope_freq_base=imported.get("rope_freq_base"),
        )
        for digest in [*files.values(), *adapters.values()]:
            statuses.append({"status": f"using existing layer {digest}"})
        if quantize:
            statuses.append(_quantize_status(str(quantize), None if files else base))
        if body.get("template"):
            statuses += self._template_errors(str(body["template"]))
        for layer in ("template", "system", "parameters"):
            if body.get(layer):
                digest = hashlib.sha256(json.dumps(body[layer]).encode()).hexdigest()
                statuses.append({"status": f"creating new layer sha256:{digest}"})
        statuses += [{"status": "writing manifest"}, {"status": "success"}]
        return _until_error(statuses), model

    def _import_files(self, files: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Ollama's reading of ``files``: a GGUF is parsed; safetensors are converted by config.json's
        ``architectures[0]`` if this version's converter has it. Returns the statuses and what the model gets."""
        if not files:
            return [], {}
        if any(name.endswith(".gguf") for name in files):
            return [{"status": "parsing GGUF"}], {}
        if not any(name.endswith(".safetensors") for name in files):
            if any(self.blobs[_blob_key(digest)].startswith(b"GGUF") for digest in files.values()):
                return [{"status": "parsing GGUF"}], {}
            return [{"error": "unknown type", "code": 400}], {}
        statuses: list[dict[str, Any]] = [{"status": "converting model"}]
        config = self._config_json(files)
        if isinstance(config, str):
            return [*statuses, {"error": config, "code": 500}], {}
        architecture = config["architectures"][0]
        if not _converts(architecture, _version(self.version)):
            error = f'unsupported architecture "{architecture}"'
            if _version(self.version) < (0, 6, 4):  # the class was named in the error from 0.6.4
                error = "unsupported architecture"
            return [*statuses, {"error": error, "code": 500}], {}
        rope = config.get("rope_theta")  # top level only: the converters never read rope_parameters
        if not isinstance(rope, (int, float)) or rope <= 0:
            rope = _ROPE_DEFAULTS.get(architecture)
        imported = {"architecture": architecture, "family": _family(architecture), "rope_freq_base": rope}
        return statuses, imported

    def _config_json(self, files: dict[str, str]) -> dict[str, Any] | str:
        """config.json's settings with at least one architecture, or the error Ollama's converter gives."""
        if "config.json" not in files:
            return "open config.json: no such file or directory"
        try:
            config = json.loads(self.blobs[_blob_key(files["config.json"])])
        except ValueError as exc:
            return f"invalid character in config.json: {exc}"
        names = config.get("architectures") if isinstance(config, dict) else None
        if not isinstance(names, list) or not names or not isinstance(names[0], str):
            return "unknown architecture"
        return config

    def _template_errors(self, template: str) -> list[dict[str, Any]]:
        """Ollama's template.Parse: Go's parser with Ollama's functions, then its own check that every
        ``{{ template }}`` passes data; a failure is a 400 "template error: ..." in the stream."""
        version = _version(self.version)
        functions = go_template.BUILTIN_FUNCTIONS | {f for f, since in _TEMPLATE_FUNCTIONS.items() if since <= version}
        try:
            parsed = go_template.parse(template, functions)
        except go_template.GoTemplateError as exc:
            return [{"error": f"template error: {exc}", "code": 400}]
        if parsed.calls_without_data:
            return [{"error": "template error: undefined template specified", "code": 400}]
        return []


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


def _blob_key(digest: str) -> str:
    """The blob a digest names: Ollama's store reads ``sha256:`` and ``sha256-`` alike (manifest.BlobsPath), but
    keeps the hex as given, so upper-case hex names no stored (lower-case) blob on a case-sensitive disk."""
    match = _DIGEST.match(digest)
    if match is None:
        raise OllamaAPIError(400, "invalid digest format")
    return f"sha256:{match.group(1)}"


def valid_model_name(name: str) -> bool:
    """types/model/name.go: ParseName (missing parts from the defaults) then IsValid on every part."""
    parts = dict(_NAME_DEFAULTS)
    rest = name
    if rest.rfind(":") > rest.rfind("/"):
        rest, parts["tag"] = _cut_last(rest, ":")
    for kind in ("model", "namespace"):
        if "/" not in rest:
            parts[kind] = rest
            break
        rest, parts[kind] = _cut_last(rest, "/")
    else:
        parts["host"] = rest.split("://", 1)[-1]
    return all(_valid_name_part(kind, part) for kind, part in parts.items())


def _cut_last(text: str, separator: str) -> tuple[str, str]:
    """name.go's cutPromised: a side left empty by the separator becomes a placeholder that never validates."""
    before, _, after = text.rpartition(separator)
    return before or "!MISSING!", after or "!MISSING!"


def _valid_name_part(kind: str, part: str) -> bool:
    longest, allowed = _NAME_PARTS[kind]
    pattern = f"[A-Za-z0-9_][A-Za-z0-9{re.escape(allowed)}]*"
    return len(part) <= longest and re.fullmatch(pattern, part) is not None


def _version(text: str) -> Version:
    """``0.6.5-rc0`` → (0, 6, 5); a development build or anything unreadable counts as the newest."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", text.strip())
    parsed = (int(match[1]), int(match[2]), int(match[3])) if match else (0, 0, 0)
    return (10**6, 0, 0) if parsed == (0, 0, 0) else parsed


def _converts(architecture: str, version: Version) -> bool:
    releases = _CONVERTERS.get(architecture)
    if releases is None:
        return False
    first, last = releases
    return first <= version and (last is None or version <= last)


def _family(architecture: str) -> str:
    stem = re.sub(r"(ForCausalLM|ForConditionalGeneration|Model)$", "", architecture)
    return _FAMILIES.get(architecture, stem.lower())


def _quantize_status(quantize: str, base: FakeModel | None) -> dict[str, Any]:
    """fs/ggml/type.go ParseFileType on the upper-cased type, reached only once the weights are converted."""
    wanted = quantize.upper()
    if wanted not in QUANTIZATIONS:
        supported = "F32, F16, Q4_K_S, Q4_K_M, Q8_0"  # the list Ollama's message gives (BF16 is accepted too)
        return {"error": f"unsupported quantization type {wanted} - supported types are {supported}", "code": 500}
    if base is not None and base.quantization_level not in ("F16", "BF16", "F32"):
        return {"error": "quantization is only supported for F16, BF16 and F32 models", "code": 500}
    return {"status": f"quantizing F16 model to {wanted}"}


def _repetition_bounds(schema: Any) -> Iterator[int]:
    """Every maxLength/minLength/maxItems/minItems in a JSON schema, at any depth."""
    if isinstance(schema, list):
        for item in schema:
            yield from _repetition_bounds(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key in _REPETITION_KEYWORDS and isinstance(value, int):
                yield value
            else:
                yield from _repetition_bounds(value)


# Options whose JSON type Ollama checks (api.Options.FromMap): a wrong type fails the request with HTTP 500 from the
# scheduler; options it does not know are only logged, so they are ignored here too.
_INTEGER_OPTIONS = frozenset({"num_predict", "num_ctx", "num_keep", "seed", "top_k", "repeat_last_n"})
_FLOAT_OPTIONS = frozenset({"temperature", "top_p", "min_p", "typical_p", "repeat_penalty"})


def _check_options(options: dict[str, Any]) -> None:
    for key, value in options.items():
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in _INTEGER_OPTIONS and not number:
            raise OllamaAPIError(500, f'option "{key}" must be of type integer')
        if key in _FLOAT_OPTIONS and not number:
            raise OllamaAPIError(500, f'option "{key}" must be of type float32')


def _limit(text: str, num_predict: Any) -> tuple[str, str]:
    """The answer as ``num_predict`` leaves it (-1, the default, and -2 set no limit) and Ollama's done_reason."""
    text, cut = cut_to_tokens(text, None if num_predict is None else int(num_predict))
    return text, "length" if cut else "stop"


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
