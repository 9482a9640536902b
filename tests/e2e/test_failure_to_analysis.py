"""A real failed task, end to end: dag.test() → listener → store → REST log → extraction → LLM → stored analysis.

The DAG runs through the LocalExecutor of a real Airflow (``dag.test(use_executor=True)``, so the task's log is a
real file that the api-server serves); the LLM is the strict fake Ollama server.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from dagnostics_provider import prompt_format
from dagnostics_provider.analysis.schema import json_schema
from dagnostics_provider.operators.analyze import AnalyzeFailuresOperator
from dagnostics_provider.prompt_format import chat_messages
from dagnostics_provider.store import failures
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import Analysis, FailedTask, FailureStatus
from tests.airflow_env import stop_process_group, wait_for
from tests.fakes.fake_ollama import FakeOllama

if TYPE_CHECKING:
    from tests.airflow_fixtures import RunningAirflow

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.slow

DAG_ID = "dagnostics_e2e_orders"
ROOT_CAUSE = "ConnectionRefusedError: [Errno 111] Connection refused"
DAG_SOURCE = f"""
import socket
from datetime import datetime

from airflow.sdk import dag, task


class OrdersLoadError(RuntimeError):
    pass


@dag(dag_id={DAG_ID!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def orders():
    @task(retries=0)
    def load_orders():
        try:
            socket.create_connection(("127.0.0.1", 1), timeout=5)
        except OSError as exc:
            raise OrdersLoadError("could not load orders from the warehouse") from exc

    load_orders()


the_dag = orders()

if __name__ == "__main__":
    the_dag.test(use_executor=True)
"""
MODEL = "llama3.2:3b"
ANSWER = {
    "error_message": ROOT_CAUSE,
    "category": "dependency_failure",
    "severity": "high",
    "confidence": 0.9,
    "reasoning": "Nothing listens on the warehouse port.",
    "error_lines": [ROOT_CAUSE],
    "suggested_actions": ["Check that the warehouse is up"],
}


@pytest.fixture(scope="module")
def failed_try(airflow_api_server: RunningAirflow, tmp_path_factory) -> tuple[str, int]:
    """Run the DAG once; returns the store URL and the id of the failure the listener recorded."""
    airflow = airflow_api_server.airflow
    store_url = f"sqlite:///{airflow.home / 'dagnostics.db'}"
    upgrade(store_url)  # the listener in the task process writes to the default store under AIRFLOW_HOME
    dag_file = airflow.dags_folder / f"{DAG_ID}.py"
    dag_file.write_text(DAG_SOURCE)
    process = airflow.start_dag_file(dag_file)

    def recorded() -> bool:
        if process.poll() not in (None, 0):
            raise RuntimeError((airflow.home / f"{DAG_ID}.out").read_text()[-4000:])
        with session_scope(store_url) as session:
            return session.scalars(select(FailedTask).where(FailedTask.dag_id == DAG_ID)).first() is not None

    try:
        wait_for(recorded, timeout=180, what="the listener to record the failure")
    finally:
        # dag.test(use_executor=True) sometimes hangs in the LocalExecutor's shutdown after the run finished.
        stop_process_group(process)
    with session_scope(store_url) as session:
        (failure,) = session.scalars(select(FailedTask).where(FailedTask.dag_id == DAG_ID)).all()
        return store_url, failure.id


@pytest.fixture
def dagnostics_env(monkeypatch, airflow_api_server: RunningAirflow, failed_try):
    store_url, _ = failed_try
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN", store_url)
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_DEFAULT", airflow_api_server.airflow.connection_uri())
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LOG_SOURCE", "api")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_PROVIDER", "ollama")
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MODEL", MODEL)
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_MAX_RETRIES", "0")
    return store_url


def _analyses(store_url: str, failure_id: int) -> list[Analysis]:
    with session_scope(store_url) as session:
        return session.scalars(
            select(Analysis).where(Analysis.failed_task_id == failure_id).order_by(Analysis.id)
        ).all()


def test_listener_recorded_the_failed_try(failed_try):
    store_url, failure_id = failed_try
    failure = failures.get_failure(failure_id, store_url)
    assert (failure.task_id, failure.try_number, failure.task_state, failure.marked_by_user) == (
        "load_orders",
        1,
        "failed",
        False,
    )
    assert failure.operator == "@task"
    assert failure.error_type.endswith("OrdersLoadError")
    assert ROOT_CAUSE in failure.error_text


def test_analysed_through_ollama_structured_output_then_with_ollama_down(dagnostics_env, failed_try, monkeypatch):
    store_url, failure_id = failed_try
    with FakeOllama(models=[MODEL]) as fake:
        fake.answers[MODEL] = lambda request: json.dumps(ANSWER)
        monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LLM_BASE_URL", fake.url)
        failures.request_reanalysis([failure_id], store_url)
        summary = AnalyzeFailuresOperator(task_id="analyze").execute(context={})
        assert summary["analyzed"] >= 1 and summary["by_llm"] >= 1 and summary["failed"] == 0

        (chat,) = [r for r in fake.json_requests("/api/chat")]
        failure = failures.get_failure(failure_id, store_url)
        # The structured-output path: the schema as `format`, the project's prompt around the stored excerpt.
        assert chat["format"] == json_schema()
        assert chat["messages"] == chat_messages(failure.log_excerpt)
        assert chat["options"]["temperature"] == pytest.approx(0.1)
        assert ROOT_CAUSE in failure.log_excerpt
        assert "/api/v2/dags/dagnostics_e2e_orders/" in failure.log_reference
        assert failure.status is FailureStatus.analyzed
        assert failure.fingerprint and len(failure.fingerprint) == 64

        (llm,) = _analyses(store_url, failure_id)
        assert (llm.analyzer, llm.model, llm.category.value, llm.error_message) == (
            "ollama",
            MODEL,
            "dependency_failure",
            ROOT_CAUSE,
        )
        assert llm.prompt_version == prompt_format.PROMPT_VERSION
        assert json.loads(llm.raw_response) == ANSWER
        assert llm.latency_ms is not None and llm.fallback_reason is None

        fake.stop()  # Ollama down: the heuristic analysis is stored, marked as a fallback
        failures.request_reanalysis([failure_id], store_url)
        summary = AnalyzeFailuresOperator(task_id="analyze").execute(context={})
        assert summary["by_heuristic"] >= 1

    first, fallback = _analyses(store_url, failure_id)
    assert first.analyzer == "ollama"  # the earlier analysis is kept as it was
    assert fallback.analyzer == "heuristic"
    assert "unavailable" in fallback.fallback_reason
    assert ROOT_CAUSE in fallback.error_message
    assert fallback.category.value == "dependency_failure"


def _dagnostics(airflow_api_server: RunningAirflow, store_url: str, *args: str, stdin: bytes | None = None):
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **airflow_api_server.airflow.env,
        "AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN": store_url,
        "AIRFLOW_CONN_AIRFLOW_API_DEFAULT": airflow_api_server.airflow.connection_uri(),
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("dagnostics")), *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_cli_analyze_prints_one_json_object_and_stores_the_analysis(airflow_api_server, failed_try):
    store_url, failure_id = failed_try
    failure = failures.get_failure(failure_id, store_url)
    before = len(_analyses(store_url, failure_id))
    done = _dagnostics(
        airflow_api_server,
        store_url,
        "analyze",
        DAG_ID,
        "load_orders",
        failure.run_id,
        "1",
        "--llm",
        "heuristic",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr.decode()
    payload = json.loads(done.stdout)  # exactly one JSON object: anything else on stdout fails here
    assert set(payload) == set(ANSWER) | {"fingerprint", "analyzer"}
    assert payload["analyzer"] == "heuristic"
    assert ROOT_CAUSE in payload["error_message"]
    assert len(_analyses(store_url, failure_id)) == before + 1


def test_cli_analyze_log_reads_stdin_and_a_file(airflow_api_server, failed_try, tmp_path):
    store_url, _ = failed_try
    log_text = f"[2026-11-25, 10:00:00 UTC] {{taskinstance.py:1}} ERROR - Task failed\n{ROOT_CAUSE}\n".encode()
    from_stdin = _dagnostics(airflow_api_server, store_url, "analyze-log", "--llm", "heuristic", stdin=log_text)
    assert from_stdin.returncode == 0, from_stdin.stderr.decode()
    assert f"Root cause:  {ROOT_CAUSE}" in from_stdin.stdout.decode()
    (tmp_path / "task.log").write_bytes(log_text)
    from_file = _dagnostics(
        airflow_api_server,
        store_url,
        "analyze-log",
        str(tmp_path / "task.log"),
        "--llm",
        "heuristic",
        "--format",
        "json",
    )
    assert json.loads(from_file.stdout)["category"] == "dependency_failure"
    missing = _dagnostics(airflow_api_server, store_url, "analyze-log", str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert b"cannot read" in missing.stderr


def test_cli_analyze_refuses_an_unmigrated_store(airflow_api_server, tmp_path):
    done = _dagnostics(
        airflow_api_server, f"sqlite:///{tmp_path / 'empty.db'}", "analyze", DAG_ID, "load_orders", "r", "1"
    )
    assert done.returncode == 2
    assert b"dagnostics db migrate" in done.stderr


def test_cli_failures_list_shows_the_latest_analysis(airflow_api_server, failed_try):
    store_url, failure_id = failed_try
    failures.request_reanalysis([failure_id], store_url)
    _dagnostics(airflow_api_server, store_url, "analyze", DAG_ID, "load_orders", _run_id(store_url, failure_id), "1",
                "--llm", "heuristic")  # fmt: skip
    done = _dagnostics(airflow_api_server, store_url, "failures", "list", "--dag-id", DAG_ID, "--format", "json")
    (listed,) = json.loads(done.stdout)
    assert (listed["id"], listed["status"], listed["analyzer"]) == (failure_id, "analyzed", "heuristic")
    assert ROOT_CAUSE in listed["error_message"]
    text = _dagnostics(airflow_api_server, store_url, "failures", "list").stdout.decode()
    assert f"#{failure_id} {DAG_ID}.load_orders try 1" in text


def _run_id(store_url: str, failure_id: int) -> str:
    return failures.get_failure(failure_id, store_url).run_id
