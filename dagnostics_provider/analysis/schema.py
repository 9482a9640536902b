"""The analysis schema: what every analyzer returns, what reviewers correct and what the model is trained on.

One pydantic model serves as validator (for LLM answers, review forms and dataset rows) and as the source of the
JSON schema that constrains Ollama's structured output, so the three can never drift apart.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Category(str, enum.Enum):
    resource_error = "resource_error"
    data_quality = "data_quality"
    dependency_failure = "dependency_failure"
    configuration_error = "configuration_error"
    permission_error = "permission_error"
    timeout_error = "timeout_error"
    unknown = "unknown"


class Severity(str, enum.Enum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)

# The taxonomy, exactly as docs/categories.md defines it (a test keeps the two equal).  Rules, the analyzer prompt,
# the review form and the corpus labels all use these words, so that reviewers, rules and a fine-tuned model learn
# one meaning per category.  The definitions are short because every prompt and training example carries them; the
# examples are what the review form and the docs add for people.
CATEGORY_DEFINITIONS: dict[str, str] = {
    Category.timeout_error.value: "a time limit was hit, whatever was slow",
    Category.resource_error.value: "the platform ran out of or fought over memory, disk, CPU, quota or locks",
    Category.permission_error.value: "credentials were refused or the identity lacks a right",
    Category.configuration_error.value: "a setting the team controls points at something wrong or absent",
    Category.dependency_failure.value: (
        "a service, external job, package or runtime the task relies on failed or is missing"
    ),
    Category.data_quality.value: "the data itself is wrong, or an expected input file, key or column is missing",
    Category.unknown.value: "a bug in the task's own code, or nothing identifiable",
}
CATEGORY_EXAMPLES: dict[str, str] = {
    Category.timeout_error.value: (
        "execution_timeout, sensor timeout, SSH/HTTP read timeout, statement timeout, pod startup timeout"
    ),
    Category.resource_error.value: (
        "OOM, SIGKILL/-9, exit 137, disk full, CPU starvation, lost heartbeats/zombies, quotas and rate limits, "
        "deadlocks and lock-wait timeouts, platform or container shutdown (SIGTERM)"
    ),
    Category.permission_error.value: (
        "HTTP 401/403, AccessDenied, authentication failed, locked account, not authorized to assume a role, "
        "file permission denied"
    ),
    Category.configuration_error.value: (
        'undefined Airflow connection or Variable, wrong host name, unset credentials (user "None"), a database, '
        "schema, table or column never created, invalid kube-config, wrong script path or mount, invalid arguments, "
        "clock skew"
    ),
    Category.dependency_failure.value: (
        "service refusing or unreachable, DNS failure of an external host, HTTP 5xx, a failed Spark/EMR/Livy/dbt "
        "Cloud job or pod process, Python package or Java runtime missing on the worker"
    ),
    Category.data_quality.value: (
        "type or format mismatch, bad values, nulls or duplicates failing checks, corrupt or truncated file, "
        "missing input file or column"
    ),
    Category.unknown.value: "KeyError, TypeError or NameError in the task's code, SQL syntax error, a deliberate fail",
}
SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)

# Bounds keep one junk answer from filling the store; a real analysis is far below them. They are enforced when an
# answer is parsed; only those up to GRAMMAR_BOUND_LIMIT also travel in the schema sent to servers (json_schema).
MAX_MESSAGE_CHARS = 2_000
MAX_REASONING_CHARS = 4_000
MAX_ERROR_LINES = 20
MAX_LINE_CHARS = 2_000
MAX_ACTIONS = 10
# The largest repetition bound (maxLength, maxItems...) a server may turn into grammar; see json_schema().
GRAMMAR_BOUND_LIMIT = 1_000
_REPETITION_BOUNDS = ("maxLength", "minLength", "maxItems", "minItems")


class AnalysisResult(BaseModel):
    """A structured diagnosis of one failed task."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    error_message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The root-cause error line")
    category: str = Field(json_schema_extra={"enum": list(CATEGORIES)})
    severity: str = Field(json_schema_extra={"enum": list(SEVERITIES)})
    confidence: float = Field(ge=0.0, le=1.0)
    reasoning: str = Field(default="", max_length=MAX_REASONING_CHARS)
    error_lines: list[str] = Field(default_factory=list, max_length=MAX_ERROR_LINES)
    suggested_actions: list[str] = Field(default_factory=list, max_length=MAX_ACTIONS)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        """Drop what no database stores: NUL characters and lone surrogates (an LLM or a log can produce both)."""
        if isinstance(data, dict):
            return {key: _storable(value) for key, value in data.items()}
        return data

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
        return value

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str) -> str:
        if value not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        return value

    @field_validator("error_lines", "suggested_actions")
    @classmethod
    def _bounded_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            if len(line) > MAX_LINE_CHARS:
                raise ValueError(f"a line is longer than {MAX_LINE_CHARS} characters")
        return value

    def to_json(self) -> str:
        """Compact JSON in field order: the exact text a fine-tuned model is trained to produce."""
        return json.dumps(self.model_dump(), ensure_ascii=False, separators=(",", ":"))


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


class InvalidAnalysis(ValueError):
    """An answer that is not a valid analysis; the message says what is wrong, briefly."""


def json_schema() -> dict[str, Any]:
    """JSON schema of :class:`AnalysisResult` as servers get it (Ollama ``format``, OpenAI ``response_format``).

    Ollama and llama.cpp-based servers compile the schema into a grammar, where ``maxLength: N`` becomes a rule
    repeated N times, and llama.cpp refuses large repetitions: Ollama 0.14-0.24 any bound above 2000, newer builds
    when (rules repeated x bound) reaches 2000, which a one-field schema hits between 1000 (measured to work) and
    1500 (measured to fail). The refusal is an HTTP 500 for every request, so one generous bound (4000 characters
    of reasoning) silently turned every analysis into a fallback. Bounds above :data:`GRAMMAR_BOUND_LIMIT` (the
    largest measured to compile) are therefore left out of what is sent; :func:`parse_analysis` still enforces
    every bound of :class:`AnalysisResult` on the answer. The small ones stay (``maxItems`` 20 and 10): they cap
    how many lines the model generates, which checking after the fact cannot.
    """
    schema = AnalysisResult.model_json_schema()
    schema.pop("title", None)
    schema["required"] = list(AnalysisResult.model_fields)
    return _within_grammar_limit(schema)


def _within_grammar_limit(node: Any) -> Any:
    """``node`` without repetition bounds above :data:`GRAMMAR_BOUND_LIMIT`, at any depth."""
    if isinstance(node, list):
        return [_within_grammar_limit(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: _within_grammar_limit(value)
        for key, value in node.items()
        if not (key in _REPETITION_BOUNDS and isinstance(value, int) and value > GRAMMAR_BOUND_LIMIT)
    }


def parse_analysis(payload: str | bytes | dict[str, Any]) -> AnalysisResult:
    """Validate an analysis given as JSON text or a dict; raise :class:`InvalidAnalysis` with a short reason."""
    if isinstance(payload, (str, bytes)):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise InvalidAnalysis(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidAnalysis(f"expected a JSON object, got {type(payload).__name__}")
    try:
        return AnalysisResult.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidAnalysis(problems) from None
