"""A real failing task calls the notifier: ``dag.test()`` on a migrated metadata DB runs the task through Airflow's
task runner, whose ``finalize`` calls ``on_failure_callback`` (then the listener), and the e-mail arrives at the SMTP
server on localhost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from dagnostics_provider import compat
from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import FailedTask
from tests.airflow_env import AirflowEnv
from tests.notifications.conftest import html_body

pytestmark = pytest.mark.slow

DAG_ID = "dagnostics_alert_test"
DAG_SOURCE = f"""
from datetime import datetime

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import dag, task

from dagnostics_provider.notifications import DagnosticsNotifier


@dag(dag_id={DAG_ID!r}, schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def alert_test():
    wrapping = DagnosticsNotifier(SmtpNotifier(to="data-oncall@example.com"), wait_seconds=1)
    # Next to it: callbacks share one context, so a notifier listed after it can use the diagnosis.
    next_to = [
        DagnosticsNotifier(wait_seconds=1),
        SmtpNotifier(
            to="data-team@example.com",
            subject="{{{{ dagnostics.subject }}}}",
            html_content="{{{{ dagnostics.html }}}}",
        ),
    ]

    @task(retries=0, on_failure_callback=wrapping)
    def load_orders():
        raise ConnectionRefusedError("[Errno 111] Connection refused: warehouse.internal:5432")

    @task(retries=0, on_failure_callback=next_to)
    def load_customers():
        raise PermissionError("[Errno 13] Permission denied: '/data/customers.csv'")

    load_orders()
    load_customers()


the_dag = alert_test()

if __name__ == "__main__":
    print("DAGNOSTICS_RUN_STATE=" + str(the_dag.test().state))
"""


@pytest.mark.skipif(
    not compat.dag_test_passes_exception(), reason="dag.test() passes callbacks the exception from task SDK 1.3"
)
def test_a_failing_task_in_dag_test_sends_the_diagnosis(tmp_path, request, smtp_server):
    airflow = AirflowEnv(tmp_path / "home")
    airflow.migrate(cache_dir=request.config.cache.mkdir("dagnostics-airflow-db"))
    store_url = f"sqlite:///{airflow.home / 'dagnostics.db'}"
    upgrade(store_url)
    dag_file = airflow.dags_folder / f"{DAG_ID}.py"
    dag_file.write_text(DAG_SOURCE)
    env = {
        **airflow.env,
        "AIRFLOW_CONN_SMTP_DEFAULT": os.environ["AIRFLOW_CONN_SMTP_DEFAULT"],
        "AIRFLOW__DAGNOSTICS__SQL_ALCHEMY_CONN": store_url,
    }

    done = subprocess.run(
        [sys.executable, str(dag_file)], env=env, cwd=airflow.home, capture_output=True, text=True, timeout=300
    )

    output = done.stdout + done.stderr
    assert "DAGNOSTICS_RUN_STATE=failed" in output, output[-6000:]
    assert output.count("DAGnostics diagnosis of this failure:") == 2  # written to the tasks' logs
    assert output.count("DAGnostics recorded failed try 1") == 2  # the listener, after the callbacks
    received = zip(smtp_server.recipients, smtp_server.messages, strict=True)
    mail = {recipients[0]: message for recipients, message in received}
    assert set(mail) == {"data-oncall@example.com", "data-team@example.com"}
    for message in mail.values():
        print(f"\n--- received by the SMTP server ---\nSubject: {message['Subject']}\n\n{html_body(message)}\n---")
    wrapped = html_body(mail["data-oncall@example.com"])
    assert "ConnectionRefusedError: [Errno 111] Connection refused: warehouse.internal:5432" in wrapped
    assert "dependency_failure" in wrapped
    assert "heuristic analysis computed on the spot" in wrapped  # no analysis DAG runs here
    assert f"{airflow.base_url}/dags/{DAG_ID}/runs/" in wrapped
    next_to = mail["data-team@example.com"]
    assert next_to["Subject"].startswith(f"[DAGnostics] {DAG_ID}.load_customers failed: permission_error")
    assert "PermissionError: [Errno 13] Permission denied: &#x27;/data/customers.csv&#x27;" in html_body(next_to)
    with session_scope(store_url) as session:
        rows = session.scalars(select(FailedTask).order_by(FailedTask.task_id)).all()
    # One row per failed task: the notifier recorded it, the listener found it.
    assert [(r.task_id, r.error_type) for r in rows] == [
        ("load_customers", "PermissionError"),
        ("load_orders", "ConnectionRefusedError"),
    ]
