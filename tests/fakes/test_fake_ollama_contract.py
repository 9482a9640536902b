"""The fake follows Ollama's contract: the official ``ollama`` client works against it, and fails where it would.

If these pass, the hooks' tests against the fake say something about real Ollama.
"""

from __future__ import annotations

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
