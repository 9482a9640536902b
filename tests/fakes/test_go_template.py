"""The fake's Go text/template parser accepts what Go accepts (Ollama's own templates, DAGnostics' derived ones) and
refuses, in Go's words, what Go refuses."""

from __future__ import annotations

import pytest

from dagnostics_provider.deploy import modelfile
from tests.fakes.go_template import BUILTIN_FUNCTIONS, GoTemplateError, parse

OLLAMA_FUNCTIONS = BUILTIN_FUNCTIONS | {"json", "currentDate", "yesterdayDate", "toTypeScriptType"}

# Verbatim from Ollama's template/*.gotmpl (MIT), the templates it picks for imported models.
CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
LLAMA3_INSTRUCT = """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""
MISTRAL_INSTRUCT = """[INST] {{ range $index, $_ := .Messages }}
{{- if eq .Role "system" }}{{ .Content }}

{{ else if eq .Role "user" }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>[INST] {{ end }}
{{- end }}"""
GEMMA3_INSTRUCT = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{- if and (eq $i 1) $.System }}
{{ $.System }}
{{ end }}
{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if $last }}<start_of_turn>model
{{ end }}
{{- end }}
"""
# Modelled on Ollama's tool-calling templates (command-r, llama3.1): continue, json, with/else with, comments.
TOOLS = """{{- /* tools first */ -}}
{{- if or .Tools .System }}<|system|>
{{- range $name, $property := .Tools }}{{ $name }}: {{ json $property }}, {{ end }}
{{- end }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ continue }}{{ end }}
{{- with .ToolCalls }}{{ range . }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}
{{- else with .Content }}{{ . }}
{{- else }}(empty){{ end }}
{{- end }}<|assistant|> {{ printf "%q" (currentDate) }}"""


@pytest.mark.parametrize("template", [CHATML, LLAMA3_INSTRUCT, MISTRAL_INSTRUCT, GEMMA3_INSTRUCT, TOOLS])
def test_ollamas_templates_parse(template):
    parse(template, OLLAMA_FUNCTIONS)


def test_the_templates_modelfile_writes_parse():
    """A literal "{{" is written as {{ "{{" }}: more "{{" than "}}", and valid Go."""
    template = (
        f"<|im_start|>system\n{modelfile.SYSTEM_ACTION}<|im_end|>\nopen {modelfile.LITERAL_BRACES_ACTION}\n"
        f"<|im_start|>user\n{modelfile.PROMPT_ACTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert template.count("{{") != template.count("}}")
    parse(template)


def test_definitions_and_calls_are_reported():
    parsed = parse('{{ define "turn" }}{{ .Role }}{{ end }}{{ template "turn" . }}{{ template "x" }}')
    assert parsed.definitions == ("turn",)
    assert parsed.calls_without_data == ("x",)  # Go accepts it; Ollama's template.Parse does not


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ if .System }}x", "template: :1: unexpected EOF"),
        ("{{ .Prompt", "template: :1: unclosed action"),
        ("{{ .Prompt }", 'template: :1: unexpected "}" in operand'),
        ("{{ if .X }}\n{{ .Y\n", "template: :3: unclosed action started at :2"),
        ("{{ range .Messages }}{{ .Content }}", "template: :1: unexpected EOF"),
        ("x{{ end }}", "template: :1: unexpected {{end}}"),
        ("{{ else }}", "template: :1: unexpected {{else}}"),
        ("{{ if .A }}a{{ else }}b{{ else }}c{{ end }}", "template: :1: expected end; found {{else}}"),
        ("{{ range .M }}a{{ else if .B }}b{{ end }}", "template: :1: unexpected <if> in input"),
        ("{{ upper .Prompt }}", 'template: :1: function "upper" not defined'),
        ("{{ $role }}", 'template: :1: undefined variable "$role"'),
        ("{{ if .A }}{{ $x := 1 }}{{ end }}{{ $x }}", 'template: :1: undefined variable "$x"'),
        ("{{ break }}", "template: :1: {{break}} outside {{range}}"),
        ("{{ if }}{{ end }}", "template: :1: missing value for if"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{ (.X }}", "template: :1: unclosed left paren"),
        ("{{ .X) }}", "template: :1: unexpected right paren"),
        ('{{ "a\\q" }}', "template: :1: invalid syntax"),
        ('{{ "open }}', "template: :1: unterminated quoted string"),
        ("{{ .X-}}", "template: :1: bad character U+002D '-'"),
        ("{{/* note */ }}", "template: :1: comment ends before closing delimiter"),
        ("{{/* note", "template: :1: unclosed comment"),
        ('{{ .Y | "x" }}', "template: :1: non executable command in pipeline stage 2"),
        ('{{ define "t" }}a{{ end }}{{ define "t" }}b{{ end }}', 'multiple definition of template "t"'),
        ("a\nb\n{{ end }}", "template: :3: unexpected {{end}}"),
    ],
)
def test_what_go_refuses_is_refused_with_gos_message(template, error):
    with pytest.raises(GoTemplateError) as refused:
        parse(template, OLLAMA_FUNCTIONS)
    assert error in str(refused.value)


def test_functions_are_the_servers():
    parse("{{ json .Tools }}", OLLAMA_FUNCTIONS)
    with pytest.raises(GoTemplateError, match='function "json" not defined'):
        parse("{{ json .Tools }}")


@pytest.mark.parametrize(
    "template",
    [
        "{{- .X -}}",
        "{{-3}}",  # no space after "-": the number -3, not a trim marker
        "{{ 1.5 }}{{ 0x1F }}{{ 017 }}{{ 1e3 }}{{ 'a' }}{{ 1_000 }}{{ `raw {{ }}` }}",
        "{{ with $x := .A }}{{ $x }}{{ else with .B }}{{ . }}{{ end }}",
        "{{ $x := 1 }}{{ $x = 2 }}{{ $x }}",
        "{{ (index .Messages 0).Content }}{{ $.System }}",
        '{{ block "b" . }}{{ .X }}{{ end }}',
        "text }} with a closing brace pair",
    ],
)
def test_what_go_accepts_is_accepted(template):
    parse(template, OLLAMA_FUNCTIONS)
