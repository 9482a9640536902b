"""GGUF export with llama.cpp's real converter, and the exported file run in llama.cpp itself.

The converter comes from the pinned llama-cpp-python source distribution (fetched through pip, as deployments
fetch it), into a cache of this test session's own.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from dagnostics_provider import prompt_format
from dagnostics_provider.deploy import architectures, llama_cpp_converter
from dagnostics_provider.deploy.bundle import build_bundle
from tests.deploy.test_modelfile import parse_modelfile


def test_the_pinned_converter_is_fetched_verified_and_extracted_once(pinned_script, converter_cache, monkeypatch):
    folder = pinned_script.parent
    assert pinned_script.name == "convert_hf_to_gguf.py"
    assert folder == converter_cache / f"llama.cpp-convert-{llama_cpp_converter.PINNED.version}"
    assert (folder / "conversion" / "base.py").is_file()
    assert (folder / "gguf-py" / "gguf" / "__init__.py").is_file()
    assert (folder / "LICENSE").is_file()
    assert not list(folder.glob("*.cpp")), "only the converter's parts are extracted"

    def no_download(*_args):
        raise AssertionError("the extracted converter must be reused")

    monkeypatch.setattr(llama_cpp_converter, "cache_dir", lambda: converter_cache)
    monkeypatch.setattr(llama_cpp_converter, "_download_sdist", no_download)
    assert llama_cpp_converter.pinned_converter() == pinned_script


def test_a_source_distribution_that_is_not_the_pinned_one_is_refused(tmp_path, monkeypatch):
    impostor = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text("print('not llama.cpp')\n")
    with tarfile.open(impostor, "w:gz") as tar:
        tar.add(script, arcname="llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py")
    monkeypatch.setattr(llama_cpp_converter, "cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(llama_cpp_converter.ConverterUnavailable, match=r"not the pinned llama-cpp-python 0\.3\.36"):
        llama_cpp_converter.pinned_converter(sdist=impostor)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_configured_converter_script_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMA_CPP_CONVERT_SCRIPT", str(tmp_path / "mine.py"))
    assert llama_cpp_converter.converter_script() == tmp_path / "mine.py"
    assert llama_cpp_converter.converter_script(str(tmp_path / "explicit.py")) == tmp_path / "explicit.py"


def test_the_default_bundle_is_one_gguf_file_that_llama_cpp_runs_like_transformers(trained, tiny_converter, tmp_path):
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bundle = build_bundle(trained.v10, convert_script=str(tiny_converter), output_dir=tmp_path / "bundle")
    assert bundle.route == architectures.GGUF and bundle.files == ("model.gguf",) and bundle.quantize is None
    assert parse_modelfile(bundle.modelfile.read_text())["FROM"] == ["./model.gguf"]

    directory = bundle.directory
    merged = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    info = json.loads((trained.v10 / "training_info.json").read_text())
    rope_theta = json.loads((directory / "config.json").read_text())["rope_parameters"]["rope_theta"]

    engine = Llama(model_path=str(directory / "model.gguf"), n_ctx=1024, logits_all=True, verbose=False)
    assert engine.metadata["tokenizer.chat_template"] == info["chat_template"]
    assert float(engine.metadata["llama.rope.freq_base"]) == rope_theta

    prompt = tokenizer.apply_chat_template(
        prompt_format.chat_messages("12| MemoryError: Unable to allocate {{rows}} 🚀"),
        tokenize=False,
        add_generation_prompt=True,
    )
    hf_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert engine.tokenize(prompt.encode(), add_bos=False, special=True) == hf_ids
    engine.eval(hf_ids)
    with torch.no_grad():
        expected = merged(torch.tensor([hf_ids])).logits[0].numpy()
    served = np.array(engine.scores[: len(hf_ids)])
    # f16 weights against float32: the same ranking, logits a rounding apart.
    assert np.abs(served - expected).max() < 0.05
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).mean() > 0.98


def test_the_safetensors_bundle_repeats_the_rope_settings_where_ollama_reads_them(trained, tmp_path):
    bundle = build_bundle(trained.v10, import_format="safetensors", output_dir=tmp_path / "bundle")
    assert bundle.route == architectures.SAFETENSORS
    settings = json.loads((bundle.directory / "config.json").read_text())
    assert settings["rope_theta"] == settings["rope_parameters"]["rope_theta"]
    assert "rope_scaling" not in settings or settings["rope_scaling"] is None


@pytest.fixture(scope="module")
def fluent(tmp_path_factory, offline):
    """A tiny Llama trained until it writes whole analyses under the grammar (about half a minute), and its
    validation split: agreement on category and error message needs answers that get that far."""
    from dagnostics_provider.training.trainer import train
    from tests.training import tiny_models

    root = tmp_path_factory.mktemp("fluent")
    base = tiny_models.llama(root / "base", hidden=64)
    train_file, validation_file = tiny_models.write_dataset(root / "data", train=32, validation=20)
    params = tiny_models.quick_params(base, epochs=12.0, max_length=1024)
    train(params, train_file, validation_file, root / "v", extra_info={"version": "dagnostics-slm-v1.0"})
    return root / "v", validation_file


def test_llama_cpp_answers_as_transformers_does_under_the_schema_grammar(fluent, tiny_converter, tmp_path):
    """train → merge → GGUF → llama.cpp with the Ollama TEMPLATE and the schema grammar: the same answers as the
    version gives in transformers under the same grammar, on the validation examples."""
    from dagnostics_provider.deploy.engine_agreement import compare_engines
    from dagnostics_provider.training import evaluation, sft_data
    from dagnostics_provider.training.trainer import read_lines

    version, validation_file = fluent
    examples = sft_data.read_examples(read_lines(validation_file))
    loaded = evaluation.load_version(version, device="cpu")
    max_new_tokens = evaluation.default_max_new_tokens(loaded.tokenizer, [e.output for e in examples])
    contexts = [e.context for e in examples]
    files = []
    for quantize in (None, "q8_0"):
        bundle = build_bundle(
            version, quantize=quantize, convert_script=str(tiny_converter), output_dir=tmp_path / f"{quantize}"
        )
        files.append(bundle.directory / "model.gguf")
    f16, q8_0 = compare_engines(version, files, contexts, max_new_tokens=max_new_tokens, loaded=loaded)
    print("f16", f16.summary(), "\nq8_0", q8_0.summary())
    for agreement, floor in ((f16, 0.95), (q8_0, 0.8)):
        assert len(agreement.examples) == 20
        assert agreement.prompt_mismatches == 0, "llama.cpp tokenized the rendered TEMPLATE differently"
        assert agreement.complete_rate >= 0.8, "the model should write whole analyses by now"
        assert agreement.rate >= floor, agreement.to_dict()


def test_evaluation_in_llama_cpp_scores_the_deployed_gguf_and_its_base_as_transformers_scores_the_weights(
    fluent, tiny_converter, tmp_path
):
    """``evaluate_version(engine="llamacpp")``: the version and its base, exported to GGUF and answering in llama.cpp,
    give the answers transformers gives from the trained weights; under the schema grammar the fine-tuned file
    writes whole analyses and its base does not; every answer lands in the predictions file; the exports are gone
    afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    from dagnostics_provider.training.evaluation import evaluate_version

    version, validation_file = fluent
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("dagnostics-gguf-evaluation-*"))
    results, answers = {}, {}
    for engine, constrained in (("transformers", False), ("llamacpp", False), ("llamacpp", True)):
        copy = shutil.copytree(version, tmp_path / f"{engine}-{constrained}")
        results[engine, constrained] = evaluate_version(
            copy, validation_file, engine=engine, schema_constrained=constrained, convert_script=str(tiny_converter)
        )
        assert results[engine, constrained]["engine"] == engine
        rows = [json.loads(line) for line in (copy / "evaluation_predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 20 and all({"fine_tuned", "base"} <= set(row) for row in rows)
        answers[engine, constrained] = [row["fine_tuned"]["answer"] for row in rows]
    print({key: (r["fine_tuned"], r["base"]) for key, r in results.items()})
    same = sum(a == b for a, b in zip(answers["transformers", False], answers["llamacpp", False], strict=True))
    assert same >= 16, f"only {same} of 20 answers are the same in both engines (f16 against float32)"
    served = results["llamacpp", True]
    assert served["schema_constrained"] and served["fine_tuned"]["schema_valid_rate"] >= 0.8
    assert served["base"]["schema_valid_rate"] < served["fine_tuned"]["schema_valid_rate"]
    assert set(scratch.glob("dagnostics-gguf-evaluation-*")) == before


def test_a_sequence_to_sequence_version_is_sent_to_the_transformers_engine():
    from dagnostics_provider.deploy.gguf_evaluation import GgufEvaluationError, check_supported

    with pytest.raises(GgufEvaluationError, match="transformers engine"):
        check_supported({"task_type": "SEQ_2_SEQ_LM", "base_model": "google/flan-t5-small"})
