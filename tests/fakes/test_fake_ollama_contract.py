"""The fake follows Ollama's contract: the official ``ollama`` client works against it, and fails where it would.

If these pass, the hooks' tests against the fake say something about real Ollama.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import ollama
import pytest
import requests

from dagnostics_provider.analysis.schema import json_schema
from tests.fakes.fake_ollama import DEFAULT_MODEL, FakeOllama

ANSWER = json.dumps({"answer": "the sky is blue because of Rayleigh scattering"})


@pytest.fixture
def fake():
    with FakeOllama() as server:
        server.answers[DEFAULT_MODEL] = lambda request: ANSWER
        yield server


@pytest.fixture
def client(fake):
    return ollama.Client(host=fake.url, timeout=10)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


def test_list_and_show(client):
    assert [m.model for m in client.list().models] == [DEFAULT_MODEL]
    shown = client.show(DEFAULT_MODEL)
    assert shown.details.family == "llama"
    assert shown.template
    assert shown.modelinfo["general.architecture"] == "llama"


def test_show_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("missing:1b")
    assert caught.value.status_code == 404
    assert caught.value.error == "model 'missing:1b' not found"


def test_names_without_tag_mean_latest(fake, client):
    fake.add_model("tiny")
    assert client.show("tiny:latest").details.family == "llama"
    assert client.show("TINY").details.family == "llama"


def test_chat_with_schema_format(fake, client):
    response = client.chat(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "why?"}], format=json_schema(), stream=False
    )
    assert response.message.content == ANSWER
    assert response.done is True
    assert fake.json_requests("/api/chat")[0]["format"] == json_schema()


def test_chat_streams_by_default(client):
    parts = list(client.chat(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "why?"}], stream=True))
    assert len(parts) > 2
    assert "".join(p.message.content for p in parts) == ANSWER
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]


def test_num_predict_cuts_the_answer_with_done_reason_length(client):
    asked = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "why?"}], "stream": False}
    cut = client.chat(**asked, options={"num_predict": 3, "temperature": 0})
    assert (cut.message.content, cut.done_reason) == (ANSWER[:12], "length")
    whole = client.chat(**asked, options={"num_predict": -1})
    assert (whole.message.content, whole.done_reason) == (ANSWER, "stop")
    streamed = list(client.chat(**(asked | {"stream": True}), options={"num_predict": 3}))
    assert "".join(p.message.content for p in streamed) == ANSWER[:12]
    assert streamed[-1].done_reason == "length"


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        ({"num_predict": "many"}, 'option "num_predict" must be of type integer'),
        ({"num_predict": True}, 'option "num_predict" must be of type integer'),
        ({"temperature": "low"}, 'option "temperature" must be of type float32'),
    ],
)
def test_options_of_the_wrong_type_fail_like_ollama(client, options, refusal):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=False, options=options)
    assert (caught.value.status_code, caught.value.error) == (500, refusal)


def test_unknown_options_are_ignored_like_ollama(client):
    answer = client.chat(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=False, options={"no_such": "x"}
    )
    assert answer.message.content == ANSWER


def test_chat_with_unknown_model_says_pull_it(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="nope:7b", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert "try pulling it first" in caught.value.error


def test_chat_with_empty_messages_loads_the_model(client):
    response = client.chat(model=DEFAULT_MODEL, messages=[])
    assert response.done_reason == "load"


def test_generate(client):
    response = client.generate(model=DEFAULT_MODEL, prompt="why?", format="json")
    assert response.response == ANSWER


def test_create_from_uploaded_blob_then_copy_and_delete(fake, client, weights):
    digest = client.create_blob(weights)
    assert fake.blobs[digest] == weights.read_bytes()
    progress = client.create(
        "dagnostics-test",
        files={"model.gguf": digest},
        template="{{ .System }} {{ .Prompt }}",
        system="You analyse logs.",
        parameters={"temperature": 0.1, "stop": ["<|eot|>"]},
        quantize="q4_K_M",
        stream=True,
    )
    statuses = [p.status for p in progress]
    assert statuses[0] == "parsing GGUF"
    assert f"using existing layer {digest}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]

    shown = client.show("dagnostics-test")
    assert shown.template == "{{ .System }} {{ .Prompt }}"
    assert 'stop                           "<|eot|>"' in shown.parameters
    assert "SYSTEM" in shown.modelfile
    assert fake.models["dagnostics-test:latest"].quantize == "q4_K_M"

    assert client.copy("dagnostics-test", "dagnostics-test:v2").status == "success"
    assert {m.model for m in client.list().models} >= {"dagnostics-test:latest", "dagnostics-test:v2"}
    assert client.delete("dagnostics-test:v2").status == "success"
    assert "dagnostics-test:v2" not in fake.models


def test_create_from_a_model_with_adapters(fake, client, weights):
    adapter = client.create_blob(weights)
    client.create("tuned", from_=DEFAULT_MODEL, adapters={"adapter_model.safetensors": adapter})
    created = fake.models["tuned:latest"]
    assert created.parent_model == DEFAULT_MODEL
    assert created.adapters == {"adapter_model.safetensors": adapter}


def test_create_with_a_blob_never_uploaded_is_refused(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.create("broken", files={"model.gguf": "sha256:" + "0" * 64})
    assert caught.value.status_code == 400
    assert "blob not found" in caught.value.error


def test_create_with_a_malformed_digest_is_refused(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.create("broken", files={"model.gguf": "md5:abc"})
    assert caught.value.status_code == 400
    assert caught.value.error == "invalid digest format"


def test_create_failure_arrives_in_the_stream(fake, client, weights):
    digest = client.create_blob(weights)
    fake.fail_create("unsupported architecture", after=1)
    with pytest.raises(ollama.ResponseError, match="unsupported architecture"):
        list(client.create("broken", files={"model.gguf": digest}, stream=True))
    assert "broken:latest" not in fake.models


def test_create_failure_without_streaming_is_an_http_error(fake, client, weights):
    digest = client.create_blob(weights)
    fake.fail_create("out of disk space", after=2)
    with pytest.raises(ollama.ResponseError) as caught:
        client.create("broken", files={"model.gguf": digest})
    assert caught.value.status_code == 500
    assert caught.value.error == "out of disk space"


def test_blob_upload_with_the_wrong_digest_is_refused(client):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ollama.ResponseError) as caught:
        client._request_raw("POST", f"/api/blobs/{wrong}", content=b"not those bytes")
    assert caught.value.status_code == 400
    assert "digest mismatch" in caught.value.error


def test_blob_with_a_malformed_digest_is_refused(fake):
    assert requests.head(f"{fake.url}/api/blobs/sha256:xyz", timeout=5).status_code == 400
    response = requests.post(f"{fake.url}/api/blobs/latest", data=b"x", timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid digest format"}


def test_blob_head(fake, client, weights):
    digest = client.create_blob(weights)
    assert requests.head(f"{fake.url}/api/blobs/{digest}", timeout=5).status_code == 200
    assert requests.head(f"{fake.url}/api/blobs/sha256:{'1' * 64}", timeout=5).status_code == 404


def test_copy_and_delete_of_a_missing_model_are_404(client):
    with pytest.raises(ollama.ResponseError) as copied:
        client.copy("ghost", "ghost2")
    with pytest.raises(ollama.ResponseError) as deleted:
        client.delete("ghost")
    assert (copied.value.status_code, deleted.value.status_code) == (404, 404)


def test_requests_are_validated(fake):
    def post(path, body):
        return requests.post(f"{fake.url}{path}", json=body, timeout=5)

    assert post("/api/chat", {"messages": [{"role": "user", "content": "x"}]}).json() == {"error": "model is required"}
    bad_role = post("/api/chat", {"model": DEFAULT_MODEL, "messages": [{"role": "boss", "content": "x"}]})
    assert bad_role.status_code == 400
    bad_content = post("/api/chat", {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": 1}]})
    assert bad_content.status_code == 400
    assert post("/api/chat", {"model": DEFAULT_MODEL, "messages": {}}).status_code == 400
    assert post("/api/chat", {"model": DEFAULT_MODEL, "messages": [], "format": "yaml"}).status_code == 500
    assert requests.post(f"{fake.url}/api/show", timeout=5).json() == {"error": "missing request body"}
    assert requests.get(f"{fake.url}/api/nothing", timeout=5).status_code == 404
    assert requests.get(f"{fake.url}/api/chat", timeout=5).status_code == 405


def test_scripted_delay_and_failures(fake, client):
    fake.fail("/api/tags", status=503, error="server busy", times=1)
    with pytest.raises(ollama.ResponseError) as caught:
        client.list()
    assert (caught.value.status_code, caught.value.error) == (503, "server busy")
    assert client.list().models  # only once

    fake.delays[DEFAULT_MODEL] = 2.0
    slow = ollama.Client(host=fake.url, timeout=0.3)
    with pytest.raises(httpx.ReadTimeout):
        slow.chat(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}])


def test_a_stopped_fake_refuses_connections_and_comes_back(fake, client):
    client.list()  # leaves a keep-alive connection in the client's pool
    fake.stop()
    with pytest.raises(ConnectionError):
        client.list()
    fake.start()
    assert client.list().models


# What a real server of the fake's version refuses (issue 13): grammar bounds, names, quantizations, architectures,
# templates and digests, as Ollama's source and the llama.cpp it runs decide them.


def _schema_with(**bounds) -> dict:
    return {"type": "object", "properties": {"text": {"type": "string", **bounds}}, "required": ["text"]}


@pytest.mark.parametrize(
    ("version", "bounds", "refusal"),
    [
        ("0.12.0", {"maxLength": 4000}, None),  # the llama.cpp bundled before 0.14 had no limit
        ("0.14.0", {"maxLength": 2000}, None),
        ("0.14.0", {"maxLength": 2001}, "number of repetitions exceeds sane defaults"),
        ("0.24.0", {"minLength": 1, "maxLength": 1500}, None),
        ("0.32.15", {"maxLength": 1000}, None),
        ("0.32.15", {"maxLength": 1500}, "number of rules that are going to be repeated multiplied by the new"),
        ("0.32.15", {"maxLength": 4000}, "number of repetitions exceeds sane defaults"),
    ],
)
def test_format_schemas_with_large_repetition_bounds_fail_like_llama_cpp(fake, client, version, bounds, refusal):
    fake.version = version
    for ask in (
        lambda: client.chat(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "x"}], format=_schema_with(**bounds)
        ),
        lambda: client.generate(model=DEFAULT_MODEL, prompt="x", format=_schema_with(**bounds)),
    ):
        if refusal is None:
            ask()
            continue
        with pytest.raises(ollama.ResponseError) as refused:
            ask()
        assert refused.value.status_code == 500
        assert refused.value.error.startswith("error parsing grammar: ") and refusal in refused.value.error


def test_bounds_deep_in_the_schema_count_too(fake, client):
    schema = {
        "type": "object",
        "properties": {"lines": {"type": "array", "maxItems": 5000, "items": {"type": "string"}}},
    }
    with pytest.raises(ollama.ResponseError, match="exceeds sane defaults"):
        client.chat(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "x"}], format=schema)


@pytest.mark.parametrize("version", ["0.12.0", "0.14.0", "0.24.0", "0.32.15"])
def test_the_analysis_schema_is_accepted_by_every_grammar_limit(fake, client, version):
    fake.version = version
    response = client.chat(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "why?"}], format=json_schema(), stream=False
    )
    assert response.message.content == ANSWER


def test_the_schema_with_every_bound_of_the_model_is_refused(fake, client):
    """What json_schema() sent before: AnalysisResult's own schema, with maxLength 2000 and 4000."""
    from dagnostics_provider.analysis.schema import AnalysisResult

    with pytest.raises(ollama.ResponseError, match="exceeds sane defaults"):
        client.chat(model=DEFAULT_MODEL, messages=[], format=AnalysisResult.model_json_schema())


@pytest.mark.parametrize("name", ["my.team/model", "m" * 81, "x:", "-x", "a/b/c/d", "x:" + "t" * 81])
def test_names_outside_ollamas_rules_are_refused_everywhere(fake, client, weights, name):
    digest = client.create_blob(weights)
    with pytest.raises(ollama.ResponseError) as created:
        client.create(name, files={"model.gguf": digest})
    assert (created.value.status_code, created.value.error) == (400, "invalid model name")
    with pytest.raises(ollama.ResponseError) as copied:
        client.copy(DEFAULT_MODEL, name)
    assert (copied.value.status_code, copied.value.error) == (400, f'destination "{name}" is invalid')
    with pytest.raises(ollama.ResponseError) as deleted:
        client.delete(name)
    assert (deleted.value.status_code, deleted.value.error) == (400, f'name "{name}" is invalid')
    with pytest.raises(ollama.ResponseError) as shown:
        client.show(name)
    assert (shown.value.status_code, shown.value.error) == (400, "invalid model name")


@pytest.mark.parametrize("name", ["team/model.v2:2024.05", "m" * 80, "localhost:5000/team/m", "_m:_t"])
def test_names_within_ollamas_rules_are_accepted(fake, client, weights, name):
    client.create(name, files={"model.gguf": client.create_blob(weights)})
    client.copy(name, "copy")
    assert client.show(name).details.format == "gguf"
    client.delete(name)


@pytest.mark.parametrize("quantize", ["q4_K_M", "Q4_K_S", "q8_0", "f16", "F32", "bf16", "q4_k"])
def test_the_quantizations_ollama_knows_are_applied(fake, client, weights, quantize):
    client.create("q", files={"model.gguf": client.create_blob(weights)}, quantize=quantize)
    assert fake.models["q:latest"].quantization_level == quantize.upper()


@pytest.mark.parametrize("quantize", ["q4_0", "q5_K_M", "q6_K", "iq4_xs"])
def test_other_quantizations_fail_after_the_conversion(fake, client, weights, quantize):
    progress = client.create("q", files={"model.gguf": client.create_blob(weights)}, quantize=quantize, stream=True)
    statuses = []
    with pytest.raises(ollama.ResponseError) as refused:
        statuses.extend(p.status for p in progress)
    assert statuses[0] == "parsing GGUF"  # the failure comes late, inside the stream
    assert refused.value.error == (
        f"unsupported quantization type {quantize.upper()} - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"
    )
    assert "q:latest" not in fake.models


def _safetensors(client, tmp_path, config: dict) -> dict[str, str]:
    """A safetensors upload as the bundle makes it: weights, config.json, tokenizer."""
    files = {}
    for name, content in (
        ("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
        ("config.json", json.dumps(config).encode()),
        ("tokenizer.json", b'{"model": {}}'),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        files[name] = client.create_blob(path)
    return files


def test_safetensors_import_records_the_architecture_and_the_rope_base_ollama_uses(fake, client, tmp_path):
    top_level = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rope_theta": 100000.0}
    statuses = [p.status for p in client.create("top", files=_safetensors(client, tmp_path, top_level), stream=True)]
    assert statuses[0] == "converting model"
    created = fake.models["top:latest"]
    assert (created.architecture, created.family, created.rope_freq_base) == ("LlamaForCausalLM", "llama", 100000.0)

    # transformers 5 writes rope_theta only inside rope_parameters, which Ollama's converters never read.
    nested = {
        "architectures": ["LlamaForCausalLM"],
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
    }
    client.create("nested", files=_safetensors(client, tmp_path, nested))
    assert fake.models["nested:latest"].rope_freq_base == 10000.0  # llama.cpp's default for Llama
    qwen = {"architectures": ["Qwen2ForCausalLM"], "rope_parameters": {"rope_theta": 1000000.0}}
    client.create("qwen", files=_safetensors(client, tmp_path, qwen))
    assert (fake.models["qwen:latest"].family, fake.models["qwen:latest"].rope_freq_base) == ("qwen2", 0.0)


@pytest.mark.parametrize(
    ("version", "architecture", "error"),
    [
        ("0.32.15", "GPT2LMHeadModel", 'unsupported architecture "GPT2LMHeadModel"'),
        ("0.32.15", "Qwen3ForCausalLM", 'unsupported architecture "Qwen3ForCausalLM"'),
        ("0.6.5", "MistralForCausalLM", 'unsupported architecture "MistralForCausalLM"'),
        ("0.6.0", "GPT2LMHeadModel", "unsupported architecture"),
        ("0.6.4", "MistralForCausalLM", None),
        ("0.5.7", "Gemma3ForCausalLM", "unsupported architecture"),
    ],
)
def test_safetensors_of_an_architecture_the_converter_lacks_fail_in_the_stream(
    fake, client, tmp_path, version, architecture, error
):
    fake.version = version
    files = _safetensors(client, tmp_path, {"architectures": [architecture]})
    progress = client.create("converted", files=files, stream=True)
    if error is None:
        assert [p.status for p in progress][-1] == "success"
        return
    with pytest.raises(ollama.ResponseError) as refused:
        assert next(progress).status == "converting model"
        list(progress)
    assert refused.value.error == error
    assert "converted:latest" not in fake.models


def test_a_config_without_architectures_is_refused(fake, client, tmp_path):
    with pytest.raises(ollama.ResponseError, match="unknown architecture"):
        client.create("x", files=_safetensors(client, tmp_path, {"model_type": "llama"}))


@pytest.mark.parametrize(
    "template",
    [
        'system: {{ .System }} {{ "{{" }}literal\nuser: {{ .Prompt }}',  # what modelfile.py writes for a "{{"
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        "{{ if .System }}{{ .System }}{{ end }}{{ json .Tools }}{{ currentDate }}",
    ],
)
def test_templates_go_parses_are_kept(fake, client, weights, template):
    client.create("t", files={"model.gguf": client.create_blob(weights)}, template=template)
    assert client.show("t").template == template


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ if .System }}{{ .System }}", "template error: template: :1: unexpected EOF"),
        ("{{ .Prompt", "template error: template: :1: unclosed action"),
        ("{{ upper .Prompt }}", 'template error: template: :1: function "upper" not defined'),
        ('{{ define "t" }}x{{ end }}{{ template "t" }}', "template error: undefined template specified"),
    ],
)
def test_templates_go_refuses_fail_with_a_400(fake, client, weights, template, error):
    digest = client.create_blob(weights)
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("t", files={"model.gguf": digest}, template=template)
    assert (refused.value.status_code, refused.value.error) == (400, error)
    with pytest.raises(ollama.ResponseError, match="template error"):
        list(client.create("t", files={"model.gguf": digest}, template=template, stream=True))
    assert "t:latest" not in fake.models


def test_template_functions_follow_the_version(fake, client, weights):
    fake.version = "0.11.0"  # currentDate arrived in 0.11.1
    with pytest.raises(ollama.ResponseError, match='function "currentDate" not defined'):
        client.create("t", files={"model.gguf": client.create_blob(weights)}, template="{{ currentDate }}")


def test_a_blob_uploaded_as_sha256_dash_is_a_digest_mismatch(fake, weights):
    """Ollama compares the name given with the computed sha256:<hex>, so only that spelling uploads."""
    hex_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    for wrong in (f"sha256-{hex_digest}", f"sha256:{hex_digest.upper()}"):
        response = requests.post(f"{fake.url}/api/blobs/{wrong}", data=weights.read_bytes(), timeout=5)
        assert response.status_code == 400
        assert response.json()["error"] == f'digest mismatch, expected "{wrong}", got "sha256:{hex_digest}"'
    assert not fake.blobs


def test_a_stored_blob_is_found_and_used_under_either_spelling(fake, client, weights):
    """Ollama's blob store maps sha256: to its sha256- file name; the hex is taken as given."""
    digest = client.create_blob(weights)
    dashed = digest.replace("sha256:", "sha256-")
    assert requests.head(f"{fake.url}/api/blobs/{dashed}", timeout=5).status_code == 200
    assert (
        requests.head(f"{fake.url}/api/blobs/{digest.upper().replace('SHA256', 'sha256')}", timeout=5).status_code
        == 404
    )
    assert requests.post(f"{fake.url}/api/blobs/{dashed}", data=b"ignored", timeout=5).status_code == 200
    client.create("dashed", files={"model.gguf": dashed})
    assert fake.models["dashed:latest"].files == {"model.gguf": dashed}
