"""A throwaway Airflow installation for tests that need the real thing: metadata DB, api-server, DAG runs.

The log hook and readers depend on what the api-server actually does (auth managers, NDJSON streaming, where a
task's log lands on disk), so these tests run real Airflow processes instead of restating that behaviour in
fakes. Everything lives under one temporary AIRFLOW_HOME with a SQLite metadata DB; the outer environment's
``AIRFLOW*`` variables are dropped so a developer's own Airflow settings never leak in.

How a failed task gets a real log: ``dag.test()`` runs tasks in-process and sends their logs to stdout only, so
no log file is written and the api-server has nothing to serve. ``dag.test(use_executor=True)`` hands the tasks
to the LocalExecutor instead, whose supervisor writes ``logs/dag_id=…/run_id=…/task_id=…/attempt=N.log`` exactly
as in production; the supervised task talks to the execution API of the api-server started here
(``[core] execution_api_server_url``), so start the api-server before running a DAG.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import requests

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
AUTH_MANAGERS = {"fab": FAB_AUTH_MANAGER, "simple": SIMPLE_AUTH_MANAGER}

# Fixed secrets so tests can mint tokens the server accepts (e.g. an already expired one). Long enough for
# HS512, or PyJWT warns on every request.
JWT_SECRET = "dagnostics-tests-jwt-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
API_SECRET_KEY = "dagnostics-tests-api-secret-key-0123456789abcdef"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "Adm1n-Pa55word-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no output)"


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM the process group a test started (api-server workers, executor workers), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace_seconds)


@dataclass
class AirflowEnv:
    """One AIRFLOW_HOME with its settings; ``auth_manager`` is ``"fab"`` or ``"simple"``."""

    home: Path
    auth_manager: str = "fab"
    port: int = field(default_factory=free_port)
    username: str = ADMIN_USERNAME
    password: str = ADMIN_PASSWORD

    def __post_init__(self) -> None:
        if self.auth_manager not in AUTH_MANAGERS:
            raise ValueError(f"auth_manager must be one of {sorted(AUTH_MANAGERS)}, got {self.auth_manager!r}")
        self.home = self.home.resolve()
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.base_log_folder.mkdir(parents=True, exist_ok=True)
        if self.auth_manager == "simple":
            self.passwords_file.write_text(json.dumps({self.username: self.password}))

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def base_log_folder(self) -> Path:
        return self.home / "logs"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings(self) -> dict[str, str]:
        """The ``AIRFLOW*`` variables every process of this installation runs with."""
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGERS[self.auth_manager],
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.database}",
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__API__SECRET_KEY": API_SECRET_KEY,
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.base_log_folder),
            # LocalExecutor forks `parallelism` workers up front: 32 by default, 4 are plenty here.
            "AIRFLOW__CORE__PARALLELISM": "4",
            # The task supervisor notices a finished task only when its select() times out (5 s by default).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        }
        if self.auth_manager == "simple":
            settings["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{self.username}:admin"
            settings["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(self.passwords_file)
        return settings

    @property
    def env(self) -> dict[str, str]:
        """A subprocess environment: this one's settings, none of the caller's ``AIRFLOW*`` variables."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return {**inherited, **self.settings, "PYTHONUNBUFFERED": "1"}

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command; its output goes to ``<home>/cli.log`` and into the error on failure."""
        output = self.home / "cli.log"
        with output.open("a") as sink:
            sink.write(f"\n$ airflow {' '.join(args)}\n")
            sink.flush()
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {args[0]} failed with exit code {done.returncode}:\n{_tail(output)}")
        return done

    @property
    def database(self) -> Path:
        return self.home / "airflow.db"

    def migrate(self, cache_dir: Path | None = None) -> None:
        """``airflow db migrate``; with ``cache_dir``, copy a DB the same Airflow and FAB versions migrated before."""
        if cache_dir is None:
            self.airflow("db", "migrate")
            return
        versions = "-".join(version(dist) for dist in ("apache-airflow", "apache-airflow-providers-fab"))
        cached = cache_dir / f"airflow-{versions}-{self.auth_manager}.db"
        if cached.exists():
            shutil.copyfile(cached, self.database)
            return
        self.airflow("db", "migrate")
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        # SQLite's backup API copies a consistent DB even if a WAL file is still around; the rename is atomic.
        with sqlite3.connect(self.database) as source, sqlite3.connect(partial) as target:
            source.backup(target)
        os.replace(partial, cached)

    def create_admin(self) -> None:
        """FAB keeps users in the metadata DB; the simple auth manager's user is in its settings already."""
        if self.auth_manager == "fab":
            # The password goes through the CLI's arguments: fine for a throwaway test user.
            self.airflow(
                "users", "create", "--username", self.username, "--password", self.password,
                "--role", "Admin", "--firstname", "Test", "--lastname", "Admin", "--email", "admin@example.com",
            )  # fmt: skip

    def start_api_server(self) -> ApiServer:
        """Start ``airflow api-server`` in its own process group (its workers die with it)."""
        output = self.home / "api-server.log"
        with output.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return ApiServer(self, process, output)

    def token(self) -> str:
        """A JWT for the admin user, fetched the documented way."""
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def connection_uri(self, password: str | None = None, login: str | None = None) -> str:
        """An Airflow connection URI to this api-server (for ``AIRFLOW_CONN_<ID>``)."""
        from urllib.parse import quote

        user = quote(login or self.username, safe="")
        secret = quote(self.password if password is None else password, safe="")
        return f"http://{user}:{secret}@127.0.0.1:{self.port}"

    def start_dag_file(self, dag_file: Path) -> subprocess.Popen:
        """Run a DAG file as a script (it calls ``dag.test(use_executor=True)``) in its own process group."""
        output = self.home / f"{dag_file.stem}.out"
        with output.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, str(dag_file)],
                env=self.env,
                cwd=self.home,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@dataclass
class ApiServer:
    """A running ``airflow api-server``."""

    airflow: AirflowEnv
    process: subprocess.Popen
    output: Path

    def wait_healthy(self, timeout: float = 120) -> None:
        """Poll ``/api/v2/monitor/health`` (no auth needed) until the metadatabase reports healthy."""
        deadline = time.monotonic() + timeout
        url = f"{self.airflow.base_url}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"api-server exited with {self.process.returncode}:\n{_tail(self.output)}")
            try:
                response = requests.get(url, timeout=2)
                if response.ok and response.json()["metadatabase"]["status"] == "healthy":
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"api-server not healthy after {timeout}s:\n{_tail(self.output)}")

    def stop(self) -> None:
        stop_process_group(self.process)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` when it does not in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


# A DAG whose tasks fail in known ways; run it with AirflowEnv.start_dag_file(). ``boom`` fails with KNOWN_ERROR after
# FILLER_LINES log lines; ``mapped`` runs over [0, 1] and index 1 fails with MAPPED_ERROR; ``gated`` logs
# GATED_BEFORE, waits until the file ``<dag file>.gate`` exists, logs GATED_AFTER and fails with GATED_ERROR.
DAG_ID = "dagnostics_log_test"
KNOWN_ERROR = "DAGNOSTICS_KNOWN_ERROR: disk quota exceeded on /data/warehouse"
MAPPED_ERROR = "DAGNOSTICS_MAPPED_ERROR: bad record in item 1"
GATED_ERROR = "DAGNOSTICS_GATED_ERROR: failed after the gate opened"
GATED_BEFORE = "GATED_BEFORE: waiting at the gate"
GATED_AFTER = "GATED_AFTER: the gate opened"
FILLER_LINES = 2000

DAG_SOURCE = f"""
import logging
import time
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag, task

log = logging.getLogger("dagnostics.testdag")
GATE = Path(__file__).with_suffix(".gate")


@dag(dag_id={DAG_ID!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def dagnostics_log_test():
    @task(retries=0)
    def boom():
        for number in range({FILLER_LINES}):
            log.info("filler line %05d %s", number, "x" * 80)
        raise ValueError({KNOWN_ERROR!r})

    @task(retries=0)
    def mapped(item):
        if item == 1:
            raise RuntimeError({MAPPED_ERROR!r})
        log.info("item %s processed", item)

    @task(retries=0)
    def gated():
        log.info({GATED_BEFORE!r})
        deadline = time.monotonic() + 300
        while not GATE.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        log.info({GATED_AFTER!r})
        raise ValueError({GATED_ERROR!r})

    boom()
    mapped.expand(item=[0, 1])
    gated()


the_dag = dagnostics_log_test()

if __name__ == "__main__":
    run = the_dag.test(use_executor=True)
    print("DAGNOSTICS_RUN_ID=" + run.run_id)
"""
