"""The ``llamacpp`` analyzer: real llama.cpp (llama-cpp-python) in this process, on tiny GGUF files built here.

A random tiny model cannot write a valid analysis, so what is checked on real generations is what the engine does
with our request (prompt, stops, grammar, limits) and that every way of failing ends in the heuristic result with a
reason; the success path is checked with the engine's answer replaced, everything else real.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import llama_cpp
import pytest

from dagnostics_provider.analysis.llm import LLMAnalyzer, build_llm_analyzer
from dagnostics_provider.analysis.schema import AnalysisResult, json_schema
from dagnostics_provider.deploy import modelfile
from dagnostics_provider.deploy.bundle import BUNDLE_DIR, GGUF_FILE
from dagnostics_provider.hooks import llamacpp
from dagnostics_provider.hooks.llamacpp import LlamaCppHook
from dagnostics_provider.hooks.llamacpp_source import NO_MODEL
from dagnostics_provider.hooks.llm_errors import LLMRequestInvalid, LLMUnavailable
from dagnostics_provider.prompt_format import PROMPT_VERSION, chat_messages, render_plain_prompt
from tests.training import tiny_gguf

CONTEXT = (
    '12| [2024-05-01 02:00:14] ERROR - psycopg2.OperationalError: connection to server at "db" failed\n'
    '13|   File "/opt/airflow/dags/etl.py", line 22, in load {{ rows }}'
)
ANALYSIS = AnalysisResult(
    error_message='psycopg2.OperationalError: connection to server at "db" failed',
    category="dependency_failure",
    severity="high",
    confidence=0.9,
    reasoning="The warehouse database refused the connection.",
    error_lines=['[2024-05-01 02:00:14] ERROR - psycopg2.OperationalError: connection to server at "db" failed'],
    suggested_actions=["Check that the warehouse database is up"],
)
HEURISTIC = AnalysisResult(
    error_message="psycopg2.OperationalError", category="unknown", severity="medium", confidence=0.3
)


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory):
    """ChatML with EOS = end of turn (SmolLM2's layout), ChatML with another EOS (Qwen2.5's), and no template."""
    directory = tmp_path_factory.mktemp("gguf")
    return {
        "chatml": tiny_gguf.build(directory, filename="chatml.gguf").path,
        "qwen": tiny_gguf.build(directory, filename="qwen.gguf", eos_token="<|endoftext|>").path,
        "plain": tiny_gguf.build(directory, filename="plain.gguf", chat_template=None).path,
    }


@pytest.fixture(autouse=True)
def _fresh_models():
    llamacpp.clear_cache()
    yield
    llamacpp.clear_cache()


def hook(path: Path | str, **settings) -> LlamaCppHook:
    return LlamaCppHook(str(path), **{"n_ctx": 2048, "max_tokens": 32, "timeout": 60, **settings})


def analyzer(the_hook: LlamaCppHook, max_retries: int = 0) -> LLMAnalyzer:
    return LLMAnalyzer("llamacpp", the_hook, temperature=0.0, max_retries=max_retries, sleep=_no_sleep)


def _no_sleep(seconds: float) -> None:
    raise AssertionError("in-process generation must not back off between attempts")


# The prompt and where answers end


def test_llama_cpp_renders_the_training_prompt_from_the_ggufs_own_template(ggufs):
    """Training rendered ``apply_chat_template(chat_messages(ctx), add_generation_prompt=True)``; so does llama.cpp."""
    from transformers import AutoTokenizer

    path = ggufs["chatml"]
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)  # the template from the GGUF
    loaded = hook(path).loaded()
    expected = tokenizer.apply_chat_template(chat_messages(CONTEXT), tokenize=False, add_generation_prompt=True)
    rendered = loaded.prompt.render(chat_messages(CONTEXT))
    assert rendered == expected
    assert rendered.endswith("<|im_start|>assistant\n")
    # ...and tokenizes it to the ids training fed the model.
    training_ids = tokenizer.apply_chat_template(
        chat_messages(CONTEXT), tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert loaded.llama.tokenize(rendered.encode(), add_bos=loaded.prompt.add_bos, special=True) == list(training_ids)


def test_answers_stop_at_the_end_of_turn_marker_even_where_eos_is_another_token(ggufs):
    from transformers import AutoTokenizer

    path = ggufs["qwen"]
    loaded = hook(path).loaded()
    assert loaded.prompt.stop == ("<|endoftext|>", "<|im_end|>", "<|im_start|>user")
    # The stop sequences of the Ollama Modelfile of the same model, derived from the transformers tokenizer.
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    assert loaded.prompt.stop == modelfile.chat_template_prompt(tokenizer).stop
    assert hook(ggufs["chatml"]).loaded().prompt.stop == ("<|im_end|>", "<|im_start|>user")


def test_a_gguf_without_a_chat_template_gets_the_plain_prompt(ggufs):
    loaded = hook(ggufs["plain"]).loaded()
    assert loaded.prompt.render(chat_messages(CONTEXT)) == render_plain_prompt(CONTEXT)
    assert loaded.prompt.stop == modelfile.plain_prompt("<|im_end|>").stop
    assert loaded.prompt.add_bos


def test_the_request_llama_cpp_gets_and_a_valid_answer_is_a_llamacpp_analysis(ggufs, monkeypatch):
    the_hook = hook(ggufs["chatml"], max_tokens=300)
    loaded = the_hook.loaded()
    sent = {}

    def answer(**request):
        sent.update(request)
        return {
            "choices": [{"text": ANALYSIS.to_json(), "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(request["prompt"]), "completion_tokens": 90},
        }

    monkeypatch.setattr(loaded.llama, "create_completion", answer)
    outcome = analyzer(the_hook).analyze(CONTEXT, HEURISTIC)
    assert (outcome.analyzer, outcome.result, outcome.model) == ("llamacpp", ANALYSIS, str(ggufs["chatml"]))
    assert outcome.prompt_version == PROMPT_VERSION and outcome.fallback_reason is None
    assert outcome.raw_response == ANALYSIS.to_json()
    rendered = loaded.prompt.render(chat_messages(CONTEXT))
    assert sent["prompt"] == loaded.llama.tokenize(rendered.encode(), add_bos=False, special=True)
    assert sent["stop"] == ["<|im_end|>", "<|im_start|>user"]
    assert sent["max_tokens"] == 300 and sent["temperature"] == 0.0
    assert isinstance(sent["grammar"], llama_cpp.LlamaGrammar)
    expected = llamacpp.schema_grammar(llama_cpp, json.dumps(json_schema()))
    assert sent["grammar"]._grammar == expected._grammar  # the analysis schema, fields in its order
    assert llamacpp.STRICT_CHAR_RULE in expected._grammar


# Real generations


def test_real_generation_follows_the_schema_and_a_cut_off_answer_falls_back_with_the_limit(ggufs):
    outcome = analyzer(hook(ggufs["chatml"], max_tokens=24), max_retries=1).analyze(CONTEXT, HEURISTIC)
    assert (outcome.analyzer, outcome.result, outcome.model) == ("heuristic", HEURISTIC, None)
    assert outcome.fallback_reason.startswith(
        f"model {ggufs['chatml']}: invalid answer, cut off at the token limit "
        "([dagnostics] llamacpp_max_tokens = 24, llamacpp_n_ctx = 2048): "
    )
    assert outcome.fallback_reason.endswith("(after 2 attempts)")
    # The grammar made the model start the analysis object, field by field in schema order.
    assert outcome.raw_response.replace(" ", "").startswith('{"error_message":"')


def test_finished_answers_are_json_because_the_grammar_keeps_control_characters_out_of_strings(ggufs):
    """llama-cpp-python's own schema grammar lets strings hold raw control characters, which JSON forbids."""
    the_hook = hook(ggufs["chatml"], n_ctx=4096, max_tokens=1500)
    answers = [the_hook.chat(chat_messages(CONTEXT), json_schema=json_schema(), temperature=0.1) for _ in range(3)]
    finished = [answer.content for answer in answers if answer.finish_reason == "stop"]
    assert finished, "the random model never closed the analysis object"
    for content in finished:
        assert set(json.loads(content)) == set(AnalysisResult.model_fields)


def test_each_request_gets_its_own_seed_so_a_retry_is_a_new_sample(ggufs):
    the_hook = hook(ggufs["chatml"], max_tokens=12)
    answers = {the_hook.chat(chat_messages(CONTEXT), temperature=1.0).content for _ in range(3)}
    assert len(answers) > 1


def test_a_prompt_longer_than_the_context_window_falls_back_at_once(ggufs):
    outcome = analyzer(hook(ggufs["chatml"], n_ctx=512), max_retries=2).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "heuristic"
    assert "llamacpp cannot run the request: the prompt is " in outcome.fallback_reason
    assert "more than the 512-token context window; raise [dagnostics] llamacpp_n_ctx" in outcome.fallback_reason
    assert "attempts" not in outcome.fallback_reason


def test_a_schema_llama_cpp_cannot_compile_is_refused_instead_of_crashing_the_process(ggufs):
    """llama.cpp refuses large repetition bounds; sampling with the refused grammar would segfault."""
    huge = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5000}}, "required": ["a"]}
    with pytest.raises(LLMRequestInvalid, match="cannot compile the grammar"):
        hook(ggufs["chatml"]).chat(chat_messages(CONTEXT), json_schema=huge)


def test_a_slow_generation_stops_at_the_timeout(ggufs):
    outcome = analyzer(hook(ggufs["chatml"], max_tokens=500, timeout=0.001)).analyze(CONTEXT, HEURISTIC)
    assert outcome.analyzer == "heuristic"
    assert "llama.cpp did not finish the answer within 0.001s" in outcome.fallback_reason


def test_the_model_is_loaded_once_for_two_analyses_and_again_when_the_file_changes(ggufs, monkeypatch, tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(ggufs["chatml"].read_bytes())
    loads = []
    real = llamacpp.new_llama
    monkeypatch.setattr(llamacpp, "new_llama", lambda *a, **kw: loads.append(a) or real(*a, **kw))
    first = analyzer(hook(path)).analyze(CONTEXT, HEURISTIC)
    second = analyzer(hook(path)).analyze(CONTEXT, HEURISTIC)  # another analyzer, as the next batch builds
    assert len(loads) == 1
    assert first.raw_response.startswith("{") and second.raw_response.startswith("{")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a re-deployed file
    analyzer(hook(path)).analyze(CONTEXT, HEURISTIC)
    assert len(loads) == 2


def test_one_model_at_a_time_a_closed_one_is_loaded_again_when_asked(ggufs):
    chatml, qwen = hook(ggufs["chatml"]), hook(ggufs["qwen"])
    first = chatml.loaded()
    qwen.loaded()
    assert first.closed  # two models' weights are never kept
    assert chatml.chat(chat_messages(CONTEXT), json_schema=json_schema()).content.startswith("{")
    assert chatml.loaded() is not first and not chatml.loaded().closed


def test_concurrent_analyses_share_the_model_one_generation_at_a_time(ggufs):
    the_hook = hook(ggufs["chatml"], max_tokens=8)
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(analyzer(the_hook).analyze(CONTEXT, HEURISTIC)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 3
    assert all("cut off at the token limit" in o.fallback_reason for o in outcomes)


# Which model, and what happens without one


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'dagnostics.db'}"
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", url)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MODEL", raising=False)
    return url


def test_without_a_configured_file_or_a_production_version_analyses_fall_back_and_say_what_to_set(store, caplog):
    the_hook = LlamaCppHook()
    first = analyzer(the_hook).analyze(CONTEXT, HEURISTIC)
    second = analyzer(the_hook).analyze(CONTEXT, HEURISTIC)
    for outcome in (first, second):
        assert (outcome.analyzer, outcome.model) == ("heuristic", None)
        assert outcome.fallback_reason == f"llamacpp unavailable: {NO_MODEL}"
    assert NO_MODEL == "no GGUF model: set [dagnostics] llamacpp_model or deploy a version"
    explained = [r for r in caplog.records if r.name == llamacpp.__name__ and "has no model" in r.getMessage()]
    assert len(explained) == 1  # explained once, not for every failure

    from dagnostics_provider.store.migrate import upgrade

    upgrade(store)  # a store without any version says the same
    assert analyzer(LlamaCppHook()).analyze(CONTEXT, HEURISTIC).fallback_reason == f"llamacpp unavailable: {NO_MODEL}"


def _production_version(tmp_path: Path, gguf: Path | None) -> str:
    from dagnostics_provider.store.migrate import upgrade
    from dagnostics_provider.training import registry

    upgrade(os.environ["AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN"])
    record = registry.reserve_version("smol", "run-1")
    registry.record_trained(record.version, uri=record.uri, training_info={"base_model": "smol"}, metrics={})
    registry.promote(record.version)
    if gguf is not None:
        bundle = Path(record.uri) / BUNDLE_DIR
        bundle.mkdir(parents=True)
        (bundle / GGUF_FILE).write_bytes(gguf.read_bytes())
    return record.version


def test_the_production_versions_deployed_gguf_is_the_default(store, tmp_path, ggufs):
    version = _production_version(tmp_path, ggufs["chatml"])
    the_hook = LlamaCppHook(n_ctx=2048, max_tokens=8)
    assert the_hook.model == version == "dagnostics-slm-v1.0"
    assert the_hook.gguf.path == tmp_path / "artifacts" / "models" / version / BUNDLE_DIR / GGUF_FILE
    outcome = analyzer(the_hook).analyze(CONTEXT, HEURISTIC)
    assert outcome.fallback_reason.startswith(f"model {version}: invalid answer, cut off at the token limit")


def test_a_production_version_never_deployed_says_so(store, tmp_path):
    version = _production_version(tmp_path, None)
    outcome = analyzer(LlamaCppHook()).analyze(CONTEXT, HEURISTIC)
    expected = tmp_path / "artifacts" / "models" / version / BUNDLE_DIR / GGUF_FILE
    assert outcome.fallback_reason == (
        f"llamacpp unavailable: production version {version}: {expected} does not exist; "
        "deploy it with [dagnostics] deploy_import_format = gguf (dagnostics training deploy-ollama) or set "
        "[dagnostics] llamacpp_model"
    )


def test_a_configured_file_wins_over_production(store, tmp_path, ggufs, monkeypatch):
    _production_version(tmp_path, None)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MODEL", str(ggufs["qwen"]))
    assert LlamaCppHook().model == str(ggufs["qwen"])


def test_a_missing_file_and_a_file_that_is_not_gguf_are_explained(tmp_path):
    missing = tmp_path / "nope.gguf"
    outcome = analyzer(LlamaCppHook(str(missing))).analyze(CONTEXT, HEURISTIC)
    assert outcome.fallback_reason == (
        f"llamacpp unavailable: [dagnostics] llamacpp_model: {missing} does not exist; "
        "set [dagnostics] llamacpp_model to a GGUF file"
    )
    safetensors = tmp_path / "model.safetensors"
    safetensors.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    outcome = analyzer(LlamaCppHook(str(safetensors))).analyze(CONTEXT, HEURISTIC)
    assert outcome.fallback_reason.startswith(
        f"llamacpp unavailable: [dagnostics] llamacpp_model: {safetensors} is not a GGUF file"
    )
    with pytest.raises(LLMUnavailable, match="is not a file"):
        LlamaCppHook(str(tmp_path)).chat(chat_messages(CONTEXT))


def test_a_gguf_on_object_storage_is_downloaded_once(ggufs, monkeypatch):
    from dagnostics_provider import artifacts

    url = f"memory://dagnostics-gguf-{os.getpid()}/models/tiny.gguf"
    with artifacts.atomic_writer(artifacts.to_path(url)) as out:
        out.write(ggufs["chatml"].read_bytes())
    the_hook = hook(url)
    assert the_hook.model == url
    local = the_hook.gguf.path
    assert local.read_bytes() == ggufs["chatml"].read_bytes()
    mtime = local.stat().st_mtime_ns
    assert hook(url).gguf.path == local and local.stat().st_mtime_ns == mtime  # not downloaded again
    assert hook(url).chat(chat_messages(CONTEXT), json_schema=json_schema()).content.startswith("{")


# Configuration


def test_build_llm_analyzer_llamacpp(monkeypatch, ggufs):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_PROVIDER", "llamacpp")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MODEL", "/models/v1.gguf")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_N_CTX", "8192")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_N_THREADS", "3")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MAX_TOKENS", "700")
    built = build_llm_analyzer()
    assert built.provider == "llamacpp" and isinstance(built.hook, LlamaCppHook)
    assert (built.hook.n_ctx, built.hook.n_threads, built.hook.max_tokens) == (8192, 3, 700)
    assert built.analyze(CONTEXT, HEURISTIC).fallback_reason == (
        "llamacpp unavailable: [dagnostics] llamacpp_model: /models/v1.gguf does not exist; "
        "set [dagnostics] llamacpp_model to a GGUF file"
    )
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_N_THREADS", "0")
    assert build_llm_analyzer().hook.n_threads is None  # llama-cpp-python's default

    # End to end on the real engine, as the analysis DAG builds it.
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MODEL", str(ggufs["chatml"]))
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_N_CTX", "2048")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLAMACPP_MAX_TOKENS", "16")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_RETRIES", "0")
    outcome = build_llm_analyzer().analyze(CONTEXT, HEURISTIC)
    assert outcome.fallback_reason.startswith(
        f"model {ggufs['chatml']}: invalid answer, cut off at the token limit "
        "([dagnostics] llamacpp_max_tokens = 16, llamacpp_n_ctx = 2048)"
    )

    monkeypatch.setattr(llamacpp, "llama_cpp_installed", lambda: False)
    with pytest.raises(ImportError, match=r"\[serving\] extra .*airflow-provider-dagnostics\[serving\]"):
        build_llm_analyzer()


def test_option_values_are_checked():
    with pytest.raises(ValueError, match="llamacpp_max_tokens must be at least 1"):
        LlamaCppHook("x.gguf", max_tokens=0)
    with pytest.raises(ValueError, match="llamacpp_n_ctx must be 0 or more"):
        LlamaCppHook("x.gguf", n_ctx=-1)
