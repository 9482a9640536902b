"""Deploy fixtures: model versions trained for real (tiny random models, seconds each), a fresh store per test, the
strict fake Ollama server as the deployment target, and a fake llama.cpp converter.

Versions are trained once per session by the real trainer, so the deploy step reads exactly what training writes;
each test registers them in its own store, so promotions and deployments never leak between tests.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagnostics_provider.analysis.schema import AnalysisResult
from dagnostics_provider.training.layout import ADAPTER_DIR, TOKENIZER_DIR, TRAINING_INFO_FILE
from tests.fakes.fake_ollama import FakeOllama
from tests.training import tiny_models

V10, V11, V20 = "dagnostics-slm-v1.0", "dagnostics-slm-v1.1", "dagnostics-slm-v2.0"
TAG10, TAG11 = "dagnostics-slm:v1.0", "dagnostics-slm:v1.1"
ALIAS = "dagnostics-slm:latest"
ANALYSIS = AnalysisResult(
    error_message="MemoryError: Unable to allocate 3.2 GiB",
    category="resource_error",
    severity="high",
    confidence=0.9,
    reasoning="The worker ran out of memory.",
    error_lines=["MemoryError: Unable to allocate 3.2 GiB"],
    suggested_actions=["Give the worker more memory."],
)


@dataclass(frozen=True)
class TrainedDirs:
    """Version directories as the trainer writes them (not registered anywhere yet)."""

    llama_base: Path
    v10: Path
    v11: Path
    gpt2_base: Path
    gpt2: Path


@pytest.fixture(scope="session")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def trained(tmp_path_factory, offline) -> TrainedDirs:
    """v1.0 trained for real; v1.1 its copy with other adapter weights; a GPT-2 version with an untrained adapter.

    One real run is enough to read what the trainer writes; the others only need different weights or another
    architecture, and training them too would cost most of this suite's time.
    """
    from dagnostics_provider.training.trainer import train

    root = tmp_path_factory.mktemp("trained")
    data = tiny_models.write_dataset(root / "data", train=8, validation=4)
    llama_base, gpt2_base = tiny_models.llama(root / "llama"), tiny_models.gpt2(root / "gpt2")
    v10 = root / "models" / V10
    train(tiny_models.quick_params(llama_base), *data, v10, extra_info={"version": V10})
    return TrainedDirs(
        llama_base=llama_base,
        v10=v10,
        v11=_variant(v10, root / "models" / V11, V11),
        gpt2_base=gpt2_base,
        gpt2=_gpt2_version(gpt2_base, v10, root / "models" / "gpt2" / V20, V20),
    )


def _write_info(source: Path, target: Path, **changes) -> None:
    info = json.loads((source / TRAINING_INFO_FILE).read_text())
    (target / TRAINING_INFO_FILE).write_text(json.dumps({**info, **changes}))


def _variant(source: Path, target: Path, version: str) -> Path:
    """Another version of the same base: the adapter of ``source`` with different weights."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))
    weights_file = target / ADAPTER_DIR / "adapter_model.safetensors"
    weights = load_file(weights_file)
    torch.manual_seed(11)
    save_file({name: tensor + 0.05 * torch.randn_like(tensor) for name, tensor in weights.items()}, weights_file)
    _write_info(source, target, version=version)
    return target


def _gpt2_version(base: Path, like: Path, target: Path, version: str) -> Path:
    """A GPT-2 (DialoGPT) version: no chat template, so it was trained on the plain prompt."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from dagnostics_provider import prompt_format
    from dagnostics_provider.training import model_loading

    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", fan_in_fan_out=True, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(target / ADAPTER_DIR)
    tokenizer = model_loading.load_tokenizer(str(base))
    tokenizer.save_pretrained(target / TOKENIZER_DIR, save_jinja_files=False)
    _write_info(
        like,
        target,
        version=version,
        base_model=str(base),
        architecture="gpt2",
        prompt_style="plain",
        chat_template=None,
        plain_template=prompt_format.PLAIN_TEMPLATE,
        eos_token=tokenizer.eos_token,
    )
    return target


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A migrated store and artifact root of this test's own; the registry and deployments use them."""
    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    from dagnostics_provider.store.migrate import upgrade

    upgrade(url)
    return url


def register(version_dir: Path) -> str:
    """Register a trained directory as the registry does after training; returns the version it was given."""
    from dagnostics_provider.training import registry

    info = json.loads((version_dir / TRAINING_INFO_FILE).read_text())
    record = registry.reserve_version(info["base_model"], f"run-{info['version']}")
    assert record.version == info["version"], "register versions in the order of their numbers"
    registry.record_trained(record.version, uri=str(version_dir), training_info=info, metrics={})
    return record.version


@pytest.fixture
def registered(store, trained) -> TrainedDirs:
    """v1.0 and v1.1 of the Llama base registered (neither promoted)."""
    register(trained.v10)
    register(trained.v11)
    return trained


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeOllama]:
    """The fake Ollama server, as the ``ollama_default`` connection the analyzer and the deploy step use.

    Every model answers a valid analysis unless a test scripts otherwise.
    """
    with FakeOllama() as server:
        monkeypatch.setenv("AIRFLOW_CONN_OLLAMA_DEFAULT", json.dumps({"conn_type": "ollama", "host": server.url}))
        for name in (TAG10, TAG11, ALIAS, "dagnostics-slm:v2.0"):
            server.answers[name] = lambda request: ANALYSIS.to_json()
        yield server


@pytest.fixture(autouse=True)
def _gguf_export_with_the_real_converter(tiny_converter, monkeypatch) -> None:
    """Every deployment in these tests exports GGUF with llama.cpp's converter, as deployments do by default."""
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMA_CPP_CONVERT_SCRIPT", str(tiny_converter))


@pytest.fixture
def converter(tmp_path) -> Path:
    """A stand-in for llama.cpp's convert_hf_to_gguf.py: it records its arguments and writes a file with GGUF's
    magic number. No real conversion happens; the test checks how the deploy step drives the script."""
    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from pathlib import Path
            args = sys.argv[1:]
            outfile = Path(args[args.index("--outfile") + 1])
            Path(str(outfile) + ".args.json").write_text(json.dumps(args))
            print("INFO:hf-to-gguf:Loading model:", Path(args[0]).name)
            outfile.write_bytes(b"GGUF" + b"\\x03\\x00\\x00\\x00" + bytes(64))
            """
        )
    )
    return script
