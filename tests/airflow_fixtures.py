"""Pytest fixtures over :mod:`tests.airflow_env`: a real api-server per session and a DAG run with failed tasks.

Load them in a test module with ``pytest_plugins = ["tests.airflow_fixtures"]``.

* ``airflow_api_server`` (session): a migrated SQLite AIRFLOW_HOME with the FAB auth manager, an admin user and a
  running ``airflow api-server``; yields a :class:`RunningAirflow` (``base_url``, ``username``, ``password``,
  ``airflow_home``, and the :class:`AirflowEnv` to start more processes with the same settings).
* ``simple_auth_api_server`` (session): a second api-server over the same installation with the simple auth
  manager (user from settings, password in a file); same DB, same DAG runs and logs.
* ``failed_dag_run`` (session, on ``airflow_api_server``): one run of :data:`tests.airflow_env.DAG_SOURCE` through
  the LocalExecutor, so task logs are real files; its ``gated`` task is left *running* until a test calls
  :meth:`FailedDagRun.release_gate` (or the session ends), for tests of logs of a running try.

Test modules import the DAG's constants from :mod:`tests.airflow_env` and this module's classes only for type
hints: a module imported before pytest loads it as a plugin cannot get pytest's assertion rewriting.

Startup times are printed in the terminal summary line ``airflow test env: …``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
import requests

from tests.airflow_env import (
    DAG_ID,
    DAG_SOURCE,
    GATED_BEFORE,
    AirflowEnv,
    ApiServer,
    stop_process_group,
    wait_for,
)


@dataclass
class RunningAirflow:
    """A running api-server and the installation behind it."""

    airflow: AirflowEnv
    server: ApiServer
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.airflow.base_url

    @property
    def username(self) -> str:
        return self.airflow.username

    @property
    def password(self) -> str:
        return self.airflow.password

    @property
    def airflow_home(self) -> Path:
        return self.airflow.home

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path as the admin (a fresh token each time: for test set-up, not for the code under test)."""
        response = requests.get(
            f"{self.base_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.airflow.token()}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@dataclass
class FailedDagRun:
    """The run of :data:`DAG_ID` that ``failed_dag_run`` started."""

    airflow: RunningAirflow
    run_id: str
    process: Popen
    gate: Path
    dag_id: str = DAG_ID

    def release_gate(self) -> None:
        self.gate.touch()

    def wait_finished(self, timeout: float = 120) -> None:
        """Release the gate and wait until ``dag.test()`` has run every task and exited."""
        self.release_gate()
        self.process.wait(timeout=timeout)

    def log_file(self, task_id: str, map_index: int = -1, try_number: int = 1) -> Path:
        mapped = f"map_index={map_index}/" if map_index >= 0 else ""
        return (
            self.airflow.airflow.base_log_folder
            / f"dag_id={self.dag_id}/run_id={self.run_id}/task_id={task_id}/{mapped}attempt={try_number}.log"
        )


def _report(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        request.config.add_cleanup(lambda: reporter.write_line(line))


def _serve(airflow: AirflowEnv, request: pytest.FixtureRequest, *, fresh_home: bool) -> Iterator[RunningAirflow]:
    started = time.monotonic()
    if fresh_home:
        # A copy of a DB this Airflow version migrated before, kept in pytest's cache: ~5 s saved per session.
        airflow.migrate(cache_dir=request.config.cache.mkdir("dagnostics-airflow-db"))
    migrated = time.monotonic()
    server = airflow.start_api_server()
    try:
        server.wait_healthy()
        if fresh_home:
            # After the api-server is up: FAB's user creation also syncs permissions, and doing that while the
            # booting api-server registers the plugin's permissions can collide on the same rows.
            airflow.create_admin()
        ready = time.monotonic()
        _report(
            request,
            f"airflow test env ({airflow.auth_manager} auth manager): ready in {ready - started:.1f}s "
            f"(db migrate {migrated - started:.1f}s, api-server{' + admin user' if fresh_home else ''} "
            f"{ready - migrated:.1f}s)",
        )
        yield RunningAirflow(airflow, server, {"migrate": migrated - started, "total": ready - started})
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow_api_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    yield from _serve(AirflowEnv(tmp_path_factory.mktemp("airflow-home")), request, fresh_home=True)


@pytest.fixture(scope="session")
def simple_auth_api_server(airflow_api_server: RunningAirflow, request: pytest.FixtureRequest):
    """A second api-server over the same installation (DB, logs, DAG runs) with the simple auth manager.

    Sharing the home saves a migration; the FAB tables in the DB are simply unused by the simple auth manager.
    """
    airflow = AirflowEnv(airflow_api_server.airflow_home, auth_manager="simple")
    yield from _serve(airflow, request, fresh_home=False)


def _states(airflow: RunningAirflow) -> tuple[str | None, dict[tuple[str, int], str | None]]:
    """The run id of the DAG's (only) run and its task instances' states, keyed by (task_id, map_index)."""
    instances = airflow.get(f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances")["task_instances"]
    run_ids = {ti["dag_run_id"] for ti in instances}
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in instances}
    return (run_ids.pop() if len(run_ids) == 1 else None), states


@pytest.fixture(scope="session")
def failed_dag_run(airflow_api_server: RunningAirflow, request: pytest.FixtureRequest) -> Iterator[FailedDagRun]:
    airflow = airflow_api_server.airflow
    dag_file = airflow.dags_folder / f"{DAG_ID}.py"
    dag_file.write_text(DAG_SOURCE)
    gate = dag_file.with_suffix(".gate")
    started = time.monotonic()
    process = airflow.start_dag_file(dag_file)
    output = airflow.home / f"{dag_file.stem}.out"
    expected = {("boom", -1): "failed", ("mapped", 0): "success", ("mapped", 1): "failed", ("gated", -1): "running"}
    found: dict[str, Any] = {}

    def settled() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dag.test() exited early ({process.returncode}):\n{output.read_text()[-4000:]}")
        try:
            run_id, states = _states(airflow_api_server)
        except requests.HTTPError as exc:  # 404 until dag.test() has written the DAG to the DB
            if exc.response is None or exc.response.status_code != 404:
                raise
            return False
        if run_id is None or any(states.get(key) != state for key, state in expected.items()):
            return False
        found["run"] = FailedDagRun(airflow_api_server, run_id, process, gate)
        gated_log = found["run"].log_file("gated")
        return gated_log.exists() and GATED_BEFORE in gated_log.read_text(errors="replace")

    try:
        wait_for(settled, timeout=180, what=f"the tasks of {DAG_ID} to fail (output in {output})", interval=0.5)
        _report(request, f"airflow test env: DAG run with failed tasks ready in {time.monotonic() - started:.1f}s")
        yield found["run"]
    finally:
        gate.touch()
        try:
            process.wait(timeout=60)
        finally:
            stop_process_group(process)
