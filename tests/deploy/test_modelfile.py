"""The Ollama TEMPLATE reproduces the training prompt byte for byte, for every kind of prompt a model is trained on."""

from __future__ import annotations

import re

import pytest

from dagnostics_provider import prompt_format
from dagnostics_provider.deploy import modelfile
from dagnostics_provider.deploy.bundle import TemplateMismatch, check_template, training_prompt
from dagnostics_provider.training import end_of_turn, model_loading
from tests.training import tiny_models

# Llama 3 style: BOS in the template, headers around the role, end-of-turn token after each message.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Gemma style: no system role; the system prompt is folded into the first user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] + '\n\n' %}"
    "{% set messages = messages[1:] %}{% else %}{% set prefix = '' %}{% endif %}"
    "{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def chatml(tmp_path_factory, offline):
    return model_loading.load_tokenizer(str(tiny_models.llama(tmp_path_factory.mktemp("llama"))))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory, offline):
    return model_loading.load_tokenizer(str(tiny_models.gpt2(tmp_path_factory.mktemp("gpt2"))))


def training_examples(count: int = 12) -> list[str]:
    """Log contexts of real dataset rows (the user turn minus its header)."""
    return [row["input"].removeprefix(prompt_format.INPUT_HEADER) for row in tiny_models.rows(count, seed=3)]


def assert_renders_training_prompt(template: str, style: str, tokenizer) -> None:
    for context in [*training_examples(), "", "{{ .Prompt }} {{ literal braces }}\n\n"]:
        system, user = prompt_format.INSTRUCTION, prompt_format.render_input(context)
        assert modelfile.render(template, system=system, prompt=user) == training_prompt(style, tokenizer, context)


def test_chat_template_renders_exactly_the_training_prompt(chatml):
    prompt = modelfile.chat_template_prompt(chatml)
    assert prompt.template == (
        "<|im_start|>system\n{{ .System }}<|im_end|>\n"
        "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert prompt.stop == ("<|im_end|>", "<|im_start|>user")
    context = training_examples(1)[0]
    trl_prompt = chatml.apply_chat_template(
        prompt_format.chat_messages(context), tokenize=False, add_generation_prompt=True
    )
    rendered = modelfile.render(
        prompt.template, system=prompt_format.INSTRUCTION, prompt=prompt_format.render_input(context)
    )
    assert rendered == trl_prompt
    assert_renders_training_prompt(prompt.template, modelfile.CHAT_TEMPLATE, chatml)


def test_an_end_of_turn_marker_that_is_not_eos_is_a_stop_sequence(tmp_path, offline):
    """Qwen2.5: EOS is <|endoftext|>, yet every turn ends with <|im_end|>, which a trained model writes instead."""
    qwen = model_loading.load_tokenizer(str(tiny_models.llama(tmp_path / "qwen", eos="<|endoftext|>")))
    prompt = modelfile.chat_template_prompt(qwen)
    assert prompt.stop == ("<|endoftext|>", "<|im_end|>", "<|im_start|>user")
    # Evaluation stops on the same marker, as a token id beside EOS.
    assert end_of_turn.marker(qwen) == "<|im_end|>"
    assert end_of_turn.stop_token_ids(qwen, "<|im_end|>") == [
        qwen.eos_token_id,
        qwen.convert_tokens_to_ids("<|im_end|>"),
    ]
    assert_renders_training_prompt(prompt.template, modelfile.CHAT_TEMPLATE, qwen)


def test_plain_prompt_renders_exactly_the_training_prompt(gpt2):
    prompt = modelfile.prompt_template(modelfile.PLAIN, gpt2)
    assert prompt.template == "### System:\n{{ .System }}\n\n### User:\n{{ .Prompt }}\n\n### Assistant:\n"
    assert prompt.stop == ("<|endoftext|>", "### User:")
    for context in training_examples():
        rendered = modelfile.render(
            prompt.template, system=prompt_format.INSTRUCTION, prompt=prompt_format.render_input(context)
        )
        assert rendered == prompt_format.render_plain_prompt(context)


@pytest.mark.parametrize(
    ("chat_template", "stop"),
    [
        (LLAMA3_TEMPLATE, ("<|im_end|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>")),
        (GEMMA_TEMPLATE, ("<|im_end|>", "<end_of_turn>")),  # the user header holds the system prompt: not a stop
    ],
    ids=["llama3", "gemma"],
)
def test_other_chat_templates_are_derived_mechanically(chatml, chat_template, stop):
    chatml.chat_template = chat_template
    try:
        prompt = modelfile.chat_template_prompt(chatml)
        assert prompt.stop == stop
        assert_renders_training_prompt(prompt.template, modelfile.CHAT_TEMPLATE, chatml)
        check_template(prompt.template, modelfile.CHAT_TEMPLATE, chatml)
    finally:
        chatml.chat_template = tiny_models.CHATML_TEMPLATE


def test_literal_braces_in_a_chat_template_are_escaped_for_go(chatml):
    chatml.chat_template = tiny_models.CHATML_TEMPLATE.replace("'<|im_start|>'", "'{{<|im_start|>'")
    try:
        prompt = modelfile.chat_template_prompt(chatml)
        assert '{{ "{{" }}<|im_start|>system' in prompt.template
        assert_renders_training_prompt(prompt.template, modelfile.CHAT_TEMPLATE, chatml)
    finally:
        chatml.chat_template = tiny_models.CHATML_TEMPLATE


def test_a_template_that_changes_the_content_is_refused(chatml):
    chatml.chat_template = tiny_models.CHATML_TEMPLATE.replace("message['content']", "message['content'] | trim")
    try:
        prompt = modelfile.chat_template_prompt(chatml)  # sentinels have nothing to trim
        with pytest.raises(TemplateMismatch, match="does not reproduce the training prompt"):
            check_template(prompt.template, modelfile.CHAT_TEMPLATE, chatml)
    finally:
        chatml.chat_template = tiny_models.CHATML_TEMPLATE


def test_a_template_without_the_system_message_cannot_be_derived(chatml):
    chatml.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    try:
        with pytest.raises(modelfile.TemplateDerivationError, match="renders the system message 0 times"):
            modelfile.chat_template_prompt(chatml)
    finally:
        chatml.chat_template = tiny_models.CHATML_TEMPLATE


def parse_modelfile(text: str) -> dict[str, list[str]]:
    """Ollama's reading of a Modelfile: triple-quoted values verbatim, quoted ones unquoted, comments skipped."""
    commands: dict[str, list[str]] = {}
    pattern = r'^(FROM|TEMPLATE|SYSTEM|PARAMETER)\s+(?:(\w+)\s+)?("""(?s:.*?)"""|"[^"\n]*"|[^\n]*)$'
    for match in re.finditer(pattern, text, re.MULTILINE):
        command, name, value = match.groups()
        value = value[3:-3] if value.startswith('"""') else value.strip('"')
        commands.setdefault(name or command, []).append(value)
    return commands


def test_modelfile_carries_template_system_and_parameters(chatml):
    prompt = modelfile.chat_template_prompt(chatml)
    spec = modelfile.ModelfileSpec(
        template=prompt.template,
        system=prompt_format.INSTRUCTION,
        parameters=modelfile.model_parameters(prompt.stop, temperature=0.1, num_ctx=4096),
    )
    parsed = parse_modelfile(modelfile.modelfile_text(".", spec, comment="two\nlines"))
    assert parsed == {
        "FROM": ["."],
        "TEMPLATE": [prompt.template],
        "SYSTEM": [prompt_format.INSTRUCTION],
        "stop": ["<|im_end|>", "<|im_start|>user"],
        "temperature": ["0.1"],
        "num_ctx": ["4096"],
    }
    with pytest.raises(ValueError, match='cannot contain """'):
        modelfile.modelfile_text(".", modelfile.ModelfileSpec(template='say """hi"""', system=""))
