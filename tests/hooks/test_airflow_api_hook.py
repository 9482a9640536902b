"""AirflowApiHook against a real api-server (FAB and simple auth manager) and real task logs."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jwt
import pytest

from dagnostics_provider.hooks import airflow_api
from dagnostics_provider.hooks.airflow_api import AirflowApiError, AirflowApiHook, TaskLogNotFound, _Token
from dagnostics_provider.logs import TRUNCATION_LOGGER
from tests.airflow_env import (
    FILLER_LINES,
    GATED_AFTER,
    GATED_BEFORE,
    GATED_ERROR,
    JWT_SECRET,
    KNOWN_ERROR,
    MAPPED_ERROR,
    free_port,
)

if TYPE_CHECKING:
    from tests.airflow_fixtures import FailedDagRun, RunningAirflow

pytest_plugins = ["tests.airflow_fixtures"]
pytestmark = pytest.mark.slow

CONN_ID = "airflow_api_test"


@pytest.fixture
def hook(airflow_api_server: RunningAirflow, monkeypatch: pytest.MonkeyPatch) -> AirflowApiHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", airflow_api_server.airflow.connection_uri())
    return AirflowApiHook(CONN_ID)


def record_requests(hook: AirflowApiHook) -> list[str]:
    """Every response the hook's session receives, as ``"<status> <METHOD> <path>"``."""
    seen: list[str] = []
    hook.get_conn().hooks["response"].append(
        lambda response, *args, **kwargs: seen.append(
            f"{response.status_code} {response.request.method} {urlsplit(response.url).path}"
        )
    )
    return seen


def token_calls(seen: list[str]) -> list[str]:
    return [entry for entry in seen if entry.endswith("/auth/token")]


def messages(chunks) -> list[dict]:
    return [json.loads(line) for chunk in chunks for line in chunk.splitlines()]


def minted_token(hook: AirflowApiHook, **claims) -> str:
    """A token signed with the server's secret, with some claims changed (the server verifies it for real)."""
    real = hook._bearer().removeprefix("Bearer ")
    header = jwt.get_unverified_header(real)
    payload = {**jwt.decode(real, options={"verify_signature": False}), **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm=header["alg"], headers={"kid": header.get("kid")})


def test_one_token_serves_many_requests(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    seen = record_requests(hook)
    run = failed_dag_run

    instance = hook.get_task_instance(run.dag_id, run.run_id, "boom")
    hook.get_task_instance(run.dag_id, run.run_id, "mapped", map_index=1)
    hook.list_failed_task_instances(limit=5)
    b"".join(hook.iter_task_log(run.dag_id, run.run_id, "boom", instance["try_number"]))

    assert token_calls(seen) == ["201 POST /auth/token"]
    assert len(seen) == 5
    assert instance["state"] == "failed"


def test_failed_try_log_streams_with_the_error(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    chunks = list(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 1))

    assert len(chunks) > 1, "a long log arrives in several chunks"
    assert all(chunk.endswith(b"\n") for chunk in chunks), "chunks end at line boundaries"
    log = messages(chunks)
    assert log[0]["event"] != "::group::Log message source details", "the api-server's source block is dropped"
    assert sum(m["event"].startswith("filler line") for m in log) == FILLER_LINES
    failure = next(m for m in log if m.get("error_detail"))
    assert failure["level"] == "error"
    assert failure["error_detail"][0]["exc_value"] == KNOWN_ERROR


def test_json_pages_stand_in_when_the_server_refuses_ndjson(
    hook: AirflowApiHook, failed_dag_run: FailedDagRun, monkeypatch: pytest.MonkeyPatch
):
    streamed = list(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 1))
    # What an api-server without NDJSON log streaming does: answer 406 to the streaming request.
    monkeypatch.setattr(airflow_api, "NDJSON", "text/plain")
    seen = record_requests(hook)

    paged = list(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 1))

    assert [entry.split(" ", 1)[0] for entry in seen] == ["406", "200"]
    assert [(m["event"], m.get("level")) for m in messages(paged)] == [
        (m["event"], m.get("level")) for m in messages(streamed)
    ]


def test_mapped_task_logs_are_per_map_index(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    failed = b"".join(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "mapped", 1, map_index=1))
    passed = b"".join(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "mapped", 1, map_index=0))

    assert MAPPED_ERROR.encode() in failed
    assert b"item 0 processed" in passed
    assert MAPPED_ERROR.encode() not in passed


def test_log_pages_follow_a_running_try(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    run = failed_dag_run
    assert hook.get_task_instance(run.dag_id, run.run_id, "gated")["state"] == "running"

    first = hook.read_log_page(run.dag_id, run.run_id, "gated", 1)
    assert first.continuation_token, "a running try's page carries a continuation token"
    first_events = [m["event"] for m in messages(first.lines)]
    assert GATED_BEFORE in first_events
    assert GATED_AFTER not in first_events

    run.wait_finished()
    second = hook.read_log_page(run.dag_id, run.run_id, "gated", 1, continuation_token=first.continuation_token)

    second_events = [m["event"] for m in messages(second.lines)]
    assert GATED_AFTER in second_events
    assert GATED_BEFORE not in second_events, "the next page starts where the last one ended"
    assert GATED_ERROR.encode() in b"".join(second.lines)
    assert second.continuation_token is None, "a finished try's log ends"


def test_list_failed_task_instances_pages_and_filters(
    hook: AirflowApiHook, failed_dag_run: FailedDagRun, monkeypatch: pytest.MonkeyPatch
):
    failed = hook.list_failed_task_instances()
    ours = {(ti["task_id"], ti["map_index"]) for ti in failed if ti["dag_run_id"] == failed_dag_run.run_id}
    assert {("boom", -1), ("mapped", 1)} <= ours
    assert all(ti["state"] == "failed" for ti in failed)
    end_dates = [ti["end_date"] for ti in failed]
    assert end_dates == sorted(end_dates), "oldest failure first"

    monkeypatch.setattr(airflow_api, "PAGE_SIZE", 1)
    seen = record_requests(hook)
    two = hook.list_failed_task_instances(limit=2)
    assert [ti["id"] for ti in two] == [ti["id"] for ti in failed[:2]]
    assert sum("taskInstances" in entry for entry in seen) == 2, "one request per page"

    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert hook.list_failed_task_instances(since=later) == []
    naive_past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=1)  # naive is taken as UTC
    assert len(hook.list_failed_task_instances(since=naive_past)) == len(failed)


def test_expired_token_is_replaced_once(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    # Past the server's 10 s jwt_leeway, but the hook does not know: it has to learn it from the 401.
    hook._token = _Token(minted_token(hook, exp=int(time.time()) - 3600), refresh_at=None)
    seen = record_requests(hook)

    hook.get_task_instance(failed_dag_run.dag_id, failed_dag_run.run_id, "boom")

    assert [entry.split(" ", 1)[0] for entry in seen] == ["401", "201", "200"]
    assert token_calls(seen) == ["201 POST /auth/token"]


def test_token_close_to_expiry_is_replaced_before_use(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    now = int(time.time())
    hook._token = _Token.parse(minted_token(hook, iat=now - 86_370, exp=now + 30))
    assert not hook._token.usable(), "30 s left of a day-long token is inside the refresh margin"
    seen = record_requests(hook)

    hook.get_task_instance(failed_dag_run.dag_id, failed_dag_run.run_id, "boom")

    assert [entry.split(" ", 1)[0] for entry in seen] == ["201", "200"]


def test_wrong_password_is_a_clear_error_without_the_password(
    airflow_api_server: RunningAirflow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    wrong = "Wr0ng-Pa55word-never-shown"
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_WRONG", airflow_api_server.airflow.connection_uri(password=wrong))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AirflowApiError) as raised:
        AirflowApiHook("airflow_api_wrong").list_failed_task_instances()

    assert raised.value.status == 401
    assert "refused the credentials" in str(raised.value)
    assert "'admin'" in str(raised.value)
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert wrong not in text
        assert airflow_api_server.password not in text


def test_without_a_connection_the_hook_uses_api_base_url(
    airflow_api_server: RunningAirflow, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", airflow_api_server.base_url + "/")
    hook = AirflowApiHook("no_such_connection")

    assert hook.base_url == airflow_api_server.base_url
    with pytest.raises(AirflowApiError, match="requires credentials") as raised:
        hook.list_failed_task_instances()
    assert "no_such_connection" in str(raised.value)


def test_unreachable_api_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_DOWN", f"http://admin:secret-pw@127.0.0.1:{free_port()}")

    with pytest.raises(AirflowApiError, match="cannot reach the Airflow API") as raised:
        AirflowApiHook("airflow_api_down").list_failed_task_instances()
    assert raised.value.status is None
    assert "secret-pw" not in str(raised.value)


def test_max_log_bytes_truncates_the_stream(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    hook.max_log_bytes = 50_000
    chunks = list(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 1))

    log = messages(chunks)
    assert log[-1]["logger"] == TRUNCATION_LOGGER
    assert "50000 bytes" in log[-1]["event"]
    assert sum(len(chunk) for chunk in chunks) - len(chunks[-1].splitlines(keepends=True)[-1]) <= 50_000
    assert KNOWN_ERROR.encode() not in b"".join(chunks)


def test_max_log_bytes_comes_from_config(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__MAX_LOG_BYTES", "1234")
    assert AirflowApiHook("whatever").max_log_bytes == 1234


def test_unknown_try_is_task_log_not_found(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    with pytest.raises(TaskLogNotFound) as raised:
        hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 7)
    assert raised.value.status == 404
    assert "try 7 of" in str(raised.value)


def test_missing_log_file_is_task_log_not_found(hook: AirflowApiHook, failed_dag_run: FailedDagRun):
    log_file = failed_dag_run.log_file("mapped", map_index=0)
    hidden = log_file.with_name("hidden.log")
    log_file.rename(hidden)
    try:
        chunks = hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "mapped", 1, map_index=0)
        with pytest.raises(TaskLogNotFound, match=r"has no log for try 1 of .*mapped\[0\]") as raised:
            list(chunks)
    finally:
        hidden.rename(log_file)
    assert "Could not read served logs" in str(raised.value), "the api-server's own explanation is kept"


def test_simple_auth_manager(
    simple_auth_api_server: RunningAirflow, failed_dag_run: FailedDagRun, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_SIMPLE", simple_auth_api_server.airflow.connection_uri())
    hook = AirflowApiHook("airflow_api_simple")
    seen = record_requests(hook)

    failed = hook.list_failed_task_instances()
    log = b"".join(hook.iter_task_log(failed_dag_run.dag_id, failed_dag_run.run_id, "boom", 1))

    assert ("boom", failed_dag_run.run_id) in {(ti["task_id"], ti["dag_run_id"]) for ti in failed}
    assert KNOWN_ERROR.encode() in log
    assert token_calls(seen) == ["201 POST /auth/token"]

    # The simple auth manager only hands out tokens without credentials in its all-admins mode.
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API_NOBODY", f"http://127.0.0.1:{urlsplit(hook.base_url).port}")
    with pytest.raises(AirflowApiError, match="requires credentials") as raised:
        AirflowApiHook("airflow_api_nobody").list_failed_task_instances()
    assert raised.value.status == 403
