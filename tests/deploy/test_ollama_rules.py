"""Ollama's model-name and quantization rules, checked before a deployment does any work (no training needed)."""

from __future__ import annotations

import pytest

from dagnostics_provider.cli.main import main
from dagnostics_provider.deploy import ollama_deploy
from dagnostics_provider.hooks.ollama import OllamaHook
from dagnostics_provider.operators.deploy import OllamaDeployOperator
from tests.fakes import fake_ollama

# types/model/name.go: [host/][namespace/]model[:tag]; host 350 characters, the other parts 80.
VALID_NAMES = [
    "dagnostics-slm",
    "dagnostics-slm:v1.0",
    "team/dagnostics-slm:v1.0",
    "registry.example.com:5000/team/model.v2:2024.05_rc-1",
    "_private/_model:_tag",
    "m" * 80,
    "x:" + "t" * 80,
    "ns" * 40 + "/x",
    "h" * 350 + "/ns/m",
]
INVALID_NAMES = [
    "my.team/x",  # no "." in the namespace
    "m" * 81,
    "x:" + "t" * 81,
    "n" * 81 + "/x",
    "h" * 351 + "/ns/m",
    "x:",  # a promised tag must be there
    "/x",
    "ns/",
    "-model",  # parts start with a letter, digit or "_"
    "model:.tag",
    "a/b/c/d",  # at most host/namespace/model
    "mödel",  # ASCII only
    "model tag",
    "",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_names_ollama_accepts_are_accepted(name):
    assert ollama_deploy.check_model_name(name) == name
    assert fake_ollama.valid_model_name(name)  # the fake agrees


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_names_ollama_refuses_are_refused_with_the_reason(name):
    with pytest.raises(ValueError, match="is not a valid Ollama model name: the "):
        ollama_deploy.check_model_name(name)
    assert not fake_ollama.valid_model_name(name)


def test_the_namespace_rule_is_named():
    with pytest.raises(ValueError, match=r"the namespace 'my\.team' may not contain '\.'"):
        ollama_deploy.check_model_name("my.team/x")


@pytest.mark.parametrize("quantize", ["q8_0", "Q8_0", "q4_K_M", "q4_k_s", "f16", "F32", "bf16"])
def test_quantizations_ollama_applies_are_kept_as_given(quantize):
    assert ollama_deploy.check_quantize(quantize) == quantize


@pytest.mark.parametrize("quantize", ["q4_0", "q5_K_M", "q6_K", "q3_K_L", "iq4_xs", "int8", "fp16"])
def test_other_quantizations_are_refused_with_the_list(quantize):
    with pytest.raises(ValueError, match=r"not a quantization Ollama applies on create: use one of f32, .*q4_K_M"):
        ollama_deploy.check_quantize(quantize)


def test_no_quantization_is_none():
    assert ollama_deploy.check_quantize(None) is None and ollama_deploy.check_quantize(" ") is None


def test_the_rules_and_the_fake_list_ollamas_types():
    """fs/ggml/type.go's ParseFileType; the fake also takes its Q4_K alias, which we do not send."""
    from dagnostics_provider.deploy.ollama_rules import QUANTIZE_TYPES

    assert set(QUANTIZE_TYPES) == {"F32", "F16", "BF16", "Q8_0", "Q4_K_S", "Q4_K_M"}
    assert set(fake_ollama.QUANTIZATIONS) == set(QUANTIZE_TYPES) | {"Q4_K"}


def test_deploy_and_build_only_refuse_a_quantization_before_any_work(tmp_path):
    missing = tmp_path / "never-trained"  # nothing is read: the check comes first
    with pytest.raises(ValueError, match="not a quantization Ollama applies"):
        ollama_deploy.build_only(missing, quantize="q5_K_M")
    with pytest.raises(ValueError, match="not a quantization Ollama applies"):
        ollama_deploy.deploy(missing, OllamaHook(base_url="http://127.0.0.1:9"), quantize="q6_K")


def test_the_cli_refuses_a_quantization_while_parsing(capsys):
    for command in (["deploy-ollama", "models/x", "--quantize", "q5_K_M"], ["pipeline", "--quantize", "Q4_0"]):
        with pytest.raises(SystemExit) as exited:
            main(["training", *command])
        assert exited.value.code == 2
        assert "not a quantization Ollama applies on create" in capsys.readouterr().err


def test_the_operator_refuses_a_literal_quantization_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="not a quantization Ollama applies"):
        OllamaDeployOperator(task_id="deploy", model_dir="models/x", quantize="q5_K_M")
    templated = OllamaDeployOperator(task_id="deploy", model_dir="models/x", quantize="{{ params.quantize }}")
    assert templated.quantize == "{{ params.quantize }}"  # checked when the task runs, by deploy()
