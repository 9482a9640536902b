"""Task log retrieval: the local log folder, the API-first choice with its fallback, and the stream contract."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dagnostics_provider.hooks.airflow_api import AirflowApiHook
from dagnostics_provider.logs import (
    TRUNCATION_LOGGER,
    LogUnavailableError,
    bounded_chunks,
    split_lines,
)
from dagnostics_provider.logs.local import LocalLogNotFound, iter_local_task_log, task_log_path
from dagnostics_provider.logs.retrieval import TaskRef, open_task_log
from tests.airflow_env import FILLER_LINES, KNOWN_ERROR, MAPPED_ERROR, free_port

if TYPE_CHECKING:
    from tests.airflow_fixtures import FailedDagRun

pytest_plugins = ["tests.airflow_fixtures"]

CONN_ID = "airflow_api_retrieval"


def messages(chunks) -> list[dict]:
    return [json.loads(line) for chunk in chunks for line in chunk.splitlines()]


def comparable(message: dict) -> tuple:
    """What must agree between the file and the API, which re-serialises (key order, timestamp format)."""
    timestamp = message.get("timestamp")
    parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) if timestamp else None
    return parsed, message.get("level"), message["event"], json.dumps(message.get("error_detail"))


def boom(run: FailedDagRun, try_number: int = 1) -> TaskRef:
    return TaskRef(dag_id=run.dag_id, task_id="boom", run_id=run.run_id, try_number=try_number)


@pytest.fixture
def airflow_settings(failed_dag_run: FailedDagRun, monkeypatch: pytest.MonkeyPatch) -> FailedDagRun:
    """This process reads the test installation's log folder and reaches its api-server through a connection."""
    airflow = failed_dag_run.airflow.airflow
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(airflow.base_log_folder))
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__AIRFLOW_API_CONN_ID", CONN_ID)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", airflow.connection_uri())
    return failed_dag_run


@pytest.fixture
def api_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", f"http://admin:pw@127.0.0.1:{free_port()}")


# -- the local log folder --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_local_reader_returns_what_the_api_serves(failed_dag_run: FailedDagRun, monkeypatch: pytest.MonkeyPatch):
    run = failed_dag_run
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", run.airflow.airflow.connection_uri())
    folder = run.airflow.airflow.base_log_folder

    local = list(iter_local_task_log(run.dag_id, run.run_id, "boom", 1, base_log_folder=folder))
    served = list(AirflowApiHook(CONN_ID).iter_task_log(run.dag_id, run.run_id, "boom", 1))

    assert all(chunk.endswith(b"\n") for chunk in local)
    assert len(local) > 1, "read in chunks, not whole"
    assert [comparable(m) for m in messages(local)] == [comparable(m) for m in messages(served)]
    assert sum(m["event"].startswith("filler line") for m in messages(local)) == FILLER_LINES
    assert KNOWN_ERROR.encode() in b"".join(local)


@pytest.mark.slow
def test_local_path_follows_the_filename_template(failed_dag_run: FailedDagRun):
    run = failed_dag_run
    folder = run.airflow.airflow.base_log_folder

    path = task_log_path(run.dag_id, run.run_id, "mapped", 1, map_index=1, base_log_folder=folder)

    assert path == run.log_file("mapped", map_index=1)
    assert path.relative_to(folder).parts[-2:] == ("map_index=1", "attempt=1.log")
    assert MAPPED_ERROR.encode() in b"".join(
        iter_local_task_log(run.dag_id, run.run_id, "mapped", 1, map_index=1, base_log_folder=folder)
    )


def test_missing_local_log_is_reported_at_once(tmp_path: Path):
    with pytest.raises(LocalLogNotFound, match=r"no log file at .*attempt=3\.log"):
        iter_local_task_log("a_dag", "a_run", "a_task", 3, base_log_folder=tmp_path)


def test_empty_local_log_is_missing(tmp_path: Path):
    path = task_log_path("a_dag", "a_run", "a_task", 1, base_log_folder=tmp_path)
    path.parent.mkdir(parents=True)
    path.touch()
    with pytest.raises(LocalLogNotFound, match="is empty"):
        iter_local_task_log("a_dag", "a_run", "a_task", 1, base_log_folder=tmp_path)


def test_ids_cannot_leave_the_log_folder(tmp_path: Path):
    with pytest.raises(LocalLogNotFound, match="outside"):
        task_log_path("a_dag", "r/../../../../outside", "a_task", 1, base_log_folder=tmp_path / "logs")


def test_template_that_needs_the_metadata_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE", "{{ ti.dag_id }}/{{ ts }}/{{ try_number }}.log")
    with pytest.raises(LocalLogNotFound, match="cannot be rendered without the metadata DB"):
        task_log_path("a_dag", "a_run", "a_task", 1, base_log_folder=tmp_path)


def test_legacy_format_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE", "{dag_id}/{task_id}/{run_id}/{try_number}.log")
    path = task_log_path("a_dag", "a_run", "a_task", 2, base_log_folder=tmp_path)
    assert path == tmp_path.resolve() / "a_dag/a_task/a_run/2.log"


def test_local_log_is_capped_at_max_log_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = task_log_path("a_dag", "a_run", "a_task", 1, base_log_folder=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(b'{"event": "line %d"}\n' % n for n in range(10_000)))
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__MAX_LOG_BYTES", "5000")

    log = b"".join(iter_local_task_log("a_dag", "a_run", "a_task", 1, base_log_folder=tmp_path))

    *kept, notice = log.splitlines()
    assert len(b"\n".join(kept)) < 5000
    assert json.loads(notice)["logger"] == TRUNCATION_LOGGER
    assert [json.loads(line)["event"] for line in kept] == [f"line {n}" for n in range(len(kept))]


# -- the stream contract ----------------------------------------------------------------------------------------


def test_split_lines_recuts_chunks_into_bounded_lines():
    chunks = [b"first li", b"ne\nsecond\nthi", b"rd" + b"x" * 25, b"\nno newline at the end"]

    lines = list(split_lines(chunks, max_line_bytes=10))

    assert lines[:2] == [b"first line\n", b"second\n"]
    assert all(line.endswith(b"\n") and len(line) <= 11 for line in lines)
    assert b"".join(lines).replace(b"\n", b"") == b"".join(chunks).replace(b"\n", b"")


def test_bounded_chunks_closes_its_source_when_the_budget_is_spent():
    closed = []

    def source():
        try:
            for n in range(1000):
                yield b"%04d\n" % n
        finally:
            closed.append(True)

    chunks = list(bounded_chunks(source(), max_bytes=50, chunk_bytes=20))

    assert closed == [True]
    assert all(len(chunk) <= 25 or TRUNCATION_LOGGER.encode() in chunk for chunk in chunks)
    assert b"".join(chunks).startswith(b"0000\n0001\n")


# -- choosing a source ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_auto_reads_through_the_api_first(airflow_settings: FailedDagRun):
    chunks, reference = open_task_log(boom(airflow_settings))

    assert reference == AirflowApiHook(CONN_ID).task_log_url(
        airflow_settings.dag_id, airflow_settings.run_id, "boom", 1
    )
    assert reference.startswith(airflow_settings.airflow.base_url + "/api/v2/dags/")
    assert KNOWN_ERROR.encode() in b"".join(chunks)


@pytest.mark.slow
def test_auto_falls_back_to_the_local_folder(
    airflow_settings: FailedDagRun, api_down: None, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)

    chunks, reference = open_task_log(boom(airflow_settings))

    assert reference == airflow_settings.log_file("boom").as_uri()
    assert KNOWN_ERROR.encode() in b"".join(chunks)
    assert "trying the local folder" in caplog.text
    assert "pw@" not in caplog.text


@pytest.mark.slow
def test_local_source_skips_the_api(airflow_settings: FailedDagRun, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__LOG_SOURCE", "local")
    chunks, reference = open_task_log(boom(airflow_settings))
    assert reference.startswith("file://")
    assert KNOWN_ERROR.encode() in b"".join(chunks)


@pytest.mark.slow
def test_api_source_does_not_fall_back(airflow_settings: FailedDagRun, api_down: None):
    with pytest.raises(LogUnavailableError, match="unavailable from the Airflow API: cannot reach"):
        open_task_log(boom(airflow_settings), source="api")


@pytest.mark.slow
def test_a_log_no_source_has_is_a_clear_error(airflow_settings: FailedDagRun):
    with pytest.raises(LogUnavailableError) as raised:
        open_task_log(boom(airflow_settings, try_number=4))
    message = str(raised.value)
    assert "Airflow API: reading the log of try 4 of" in message
    assert "TaskInstance not found (HTTP 404)" in message
    assert "local folder: no log file at" in message


def test_unknown_log_source_is_rejected():
    with pytest.raises(ValueError, match="log_source must be one of auto, api, local"):
        open_task_log(TaskRef(dag_id="d", task_id="t", run_id="r", try_number=1), source="s3")


@pytest.mark.slow
def test_task_ref_from_the_api(airflow_settings: FailedDagRun):
    failed = AirflowApiHook(CONN_ID).list_failed_task_instances()
    refs = {TaskRef.from_api(ti) for ti in failed}
    assert TaskRef(dag_id=airflow_settings.dag_id, task_id="mapped", run_id=airflow_settings.run_id, map_index=1,
                   try_number=1) in refs  # fmt: skip
