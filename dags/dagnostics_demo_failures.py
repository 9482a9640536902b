"""Demo DAG: tasks that fail the way production tasks do, so DAGnostics has something to analyse.

Each task reproduces one common failure for real (no fake log lines): a refused database connection, a missing
input file, a timeout, a permission error (HTTP 403), bad SQL, a process killed like the OOM killer does, a bad config
value. It runs every 30 minutes while the demo is up; retries are off so each run is a final failure.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from datetime import datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

with DAG(
    dag_id="dagnostics_demo_failures",
    description="Fails in realistic, varied ways so DAGnostics has failures to analyse",
    start_date=datetime(2026, 1, 1),
    schedule=timedelta(minutes=30),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args={"retries": 0},
    tags=["dagnostics", "demo"],
) as dag:

    @task
    def load_orders_from_postgres():
        """Database refused: nothing listens on the port."""
        import socket

        with socket.create_connection(("127.0.0.1", 1), timeout=5):
            pass

    @task
    def read_daily_extract():
        """Missing input file: the upstream export did not land."""
        path = os.path.join(tempfile.gettempdir(), "exports", "orders_2026-11-24.csv")
        with open(path) as handle:
            return sum(1 for _ in handle)

    @task(execution_timeout=timedelta(seconds=5))
    def wait_for_partner_api():
        """Timeout: the task exceeds its execution_timeout."""
        time.sleep(60)

    @task
    def publish_report():
        """Permission denied: the partner API rejects the token (a real HTTP 403 from a local server)."""
        import threading
        import urllib.request
        from http.server import BaseHTTPRequestHandler, HTTPServer

        class PartnerApi(BaseHTTPRequestHandler):
            def do_PUT(self):
                self.send_response(403)
                self.end_headers()
                self.wfile.write(b'{"error": "token lacks scope reports:write"}')

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), PartnerApi)
        threading.Thread(target=server.handle_request, daemon=True).start()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_port}/v1/reports/daily", data=b"day,total\n", method="PUT"
        )
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 (a fixed http:// URL)

    @task
    def aggregate_revenue():
        """Bad SQL: a typo in a query against a real database engine."""
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        connection.execute("SELEC SUM(amount) FROM orders")

    kill_like_oom = BashOperator(
        task_id="build_features_in_memory",
        # What the kernel's OOM killer does to a process that outgrows its cgroup: SIGKILL.
        bash_command='echo "Allocating feature matrix (48 GiB)..."; kill -9 $$',
    )

    @task
    def load_pipeline_config():
        """Bad config: an invalid JSON value where a setting is expected."""
        settings = json.loads('{"batch_size": 500, "target_table": orders}')
        return settings["batch_size"]

    (
        load_orders_from_postgres(),
        read_daily_extract(),
        wait_for_partner_api(),
        publish_report(),
        aggregate_revenue(),
        kill_like_oom,
        load_pipeline_config(),
    )
