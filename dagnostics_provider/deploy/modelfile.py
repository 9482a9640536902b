"""The training prompt as an Ollama TEMPLATE, its stop sequences, and the ``Modelfile`` that carries them.

A fine-tuned model only answers well when it is asked in exactly the text it was trained on; a TEMPLATE written by
hand drifts from the training prompt by a newline or a marker, and the model then rambles and never stops. So the
template is derived mechanically from what training used: the prompt is rendered with sentinel strings in place of
the system and user content (through the tokenizer's own chat template, or through
:data:`~dagnostics_provider.prompt_format.PLAIN_TEMPLATE` for models without one) and the sentinels are replaced
with ``{{ .System }}`` and ``{{ .Prompt }}``. Ollama renders such a template for one system and one user message
as the training prompt, byte for byte, which :func:`render` lets anyone check.

The stop sequences come from the same renderings: the tokenizer's EOS, the marker that ends an assistant turn (from
:mod:`~dagnostics_provider.training.end_of_turn`, which evaluation stops on too) and the header that opens a user turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dagnostics_provider import prompt_format
from dagnostics_provider.training import end_of_turn as turns
from dagnostics_provider.training.sft_data import CHAT_TEMPLATE, PLAIN

# Strings no real prompt contains, so their positions in a rendering are where the content goes.
_SYSTEM_SENTINEL = "DAGNOSTICS-SYSTEM-8f3c1e"
_USER_SENTINEL = "DAGNOSTICS-USER-5b7d2a"

SYSTEM_ACTION = "{{ .System }}"
PROMPT_ACTION = "{{ .Prompt }}"
# Go templates start an action at "{{"; a literal one is printed by an action that outputs the string "{{".
LITERAL_BRACES_ACTION = '{{ "{{" }}'
_ACTIONS = re.compile(
    re.escape(SYSTEM_ACTION) + "|" + re.escape(PROMPT_ACTION) + "|" + re.escape(LITERAL_BRACES_ACTION)
)


class TemplateDerivationError(ValueError):
    """The training prompt cannot be expressed as an Ollama template with one system and one user slot."""


@dataclass(frozen=True)
class PromptTemplate:
    """The training prompt as a Go template, and the sequences that end the model's answer."""

    template: str
    stop: tuple[str, ...]


@dataclass(frozen=True)
class ModelfileSpec:
    """Everything an Ollama model needs besides its weights: what ``/api/create`` and a ``Modelfile`` both carry."""

    template: str
    system: str
    parameters: dict[str, Any] = field(default_factory=dict)


def chat_template_prompt(tokenizer: Any) -> PromptTemplate:
    """Derive the template from the tokenizer's chat template, as TRL rendered the training prompt.

    TRL renders a conversational prompt with ``add_generation_prompt=True``; the answer's end-of-turn marker is
    :func:`~dagnostics_provider.training.end_of_turn.marker`, which need not be the tokenizer's EOS (Qwen2.5).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateDerivationError("the tokenizer has no chat template; the model was trained with the plain prompt")
    messages = prompt_format.chat_messages("")
    messages[0]["content"], messages[1]["content"] = _SYSTEM_SENTINEL, _USER_SENTINEL
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    end_of_turn = turns.marker(tokenizer)
    return PromptTemplate(
        template=go_template(rendered),
        stop=_unique(tokenizer.eos_token, end_of_turn, _user_header(rendered, end_of_turn)),
    )


def plain_prompt(eos_token: str | None) -> PromptTemplate:
    """Derive the template from the plain prompt; TRL appended the tokenizer's EOS to every answer in training."""
    rendered = prompt_format.PLAIN_TEMPLATE.format(system=_SYSTEM_SENTINEL, user=_USER_SENTINEL)
    return PromptTemplate(template=go_template(rendered), stop=_unique(eos_token, _user_header(rendered, "")))


def prompt_template(prompt_style: str, tokenizer: Any) -> PromptTemplate:
    """The template for the prompt style training recorded (``training_info.json``'s ``prompt_style``)."""
    if prompt_style == CHAT_TEMPLATE:
        return chat_template_prompt(tokenizer)
    if prompt_style == PLAIN:
        return plain_prompt(tokenizer.eos_token)
    raise TemplateDerivationError(f"unknown prompt_style {prompt_style!r}; expected {CHAT_TEMPLATE} or {PLAIN}")


def go_template(rendered: str) -> str:
    """A prompt rendered with the sentinels, as a Go template with ``.System`` and ``.Prompt`` in their places."""
    before, between, after = _split(rendered)
    return _literal(before) + SYSTEM_ACTION + _literal(between) + PROMPT_ACTION + _literal(after)


def _split(rendered: str) -> tuple[str, str, str]:
    """The literal text before the system content, between it and the user content, and after the user content."""
    for sentinel, what in ((_SYSTEM_SENTINEL, "system"), (_USER_SENTINEL, "user")):
        count = rendered.count(sentinel)
        if count != 1:
            raise TemplateDerivationError(
                f"the prompt template renders the {what} message {count} times, not once; Ollama's template "
                "variables cannot reproduce it"
            )
    before, rest = rendered.split(_SYSTEM_SENTINEL)
    if _USER_SENTINEL not in rest:
        raise TemplateDerivationError("the prompt template renders the user message before the system message")
    between, after = rest.split(_USER_SENTINEL)
    return before, between, after


def render(template: str, *, system: str, prompt: str) -> str:
    """What Ollama sends the model for one system and one user message, for templates :func:`go_template` wrote.

    Only the three actions this module writes are understood; it is a check of the derivation, not a Go template
    engine.
    """
    values = {SYSTEM_ACTION: system, PROMPT_ACTION: prompt, LITERAL_BRACES_ACTION: "{{"}
    return _ACTIONS.sub(lambda match: values[match.group(0)], template)


def model_parameters(stop: tuple[str, ...], *, temperature: float, num_ctx: int) -> dict[str, Any]:
    """``PARAMETER`` values: the stop sequences, the analyzer's low temperature and the context window."""
    return {"stop": list(stop), "temperature": temperature, "num_ctx": num_ctx}


def modelfile_text(source: str, spec: ModelfileSpec, *, comment: str = "") -> str:
    """A ``Modelfile`` for ``ollama create -f``: FROM ``source`` (a folder or a GGUF file relative to it).

    Values go between triple quotes, which Ollama's parser takes verbatim (no escapes); a value that contains
    triple quotes itself cannot be written and is refused rather than silently cut.
    """
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"FROM {source}", f"TEMPLATE {_triple_quoted(spec.template)}", f"SYSTEM {_triple_quoted(spec.system)}"]
    for name, value in spec.parameters.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {name} {_parameter_value(item)}")
    return "\n".join(lines) + "\n"


def _literal(text: str) -> str:
    return text.replace("{{", LITERAL_BRACES_ACTION)


def _user_header(rendered: str, end_of_turn: str) -> str:
    """What opens a user turn (``<|im_start|>user``, ``### User:``): the text between the system and the user
    content without the end-of-turn marker. Empty where the system prompt is folded into the user turn (Gemma).
    """
    between = _split(rendered)[1].strip()
    return between.removeprefix(end_of_turn).strip() if end_of_turn else between


def _unique(*candidates: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for c in candidates if c))


def _triple_quoted(value: str) -> str:
    if '"""' in value:
        raise ValueError('a Modelfile value cannot contain """')
    return f'"""{value}"""'


def _parameter_value(value: Any) -> str:
    if isinstance(value, str):
        if '"' in value or "\n" in value:
            raise ValueError(f"a Modelfile PARAMETER cannot hold quotes or newlines: {value!r}")
        return f'"{value}"'
    return str(value)
