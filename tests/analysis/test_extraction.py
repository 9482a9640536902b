"""Root-cause extraction: the specific error over wrappers, the cause over its wrapper, a bounded context."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from dagnostics_provider.analysis.extraction import Extraction, extract, extract_text
from dagnostics_provider.analysis.fingerprint import fingerprint
from dagnostics_provider.analysis.rules import load_rules

RULES = load_rules()

PRE = "[2024-05-02, 10:15:30 UTC] {taskinstance.py:1979} INFO - "
OUT = "[2024-05-02, 10:15:31 UTC] {subprocess.py:93} INFO - "
FAILED = "[2024-05-02, 10:15:32 UTC] {taskinstance.py:2698} ERROR - Task failed with exception"
MARKED = "[2024-05-02, 10:15:32 UTC] {taskinstance.py:1138} INFO - Marking task as FAILED. dag_id=etl, task_id=load"

BASH_WRAPPER = f"""\
{FAILED}
Traceback (most recent call last):
  File "/home/airflow/.local/lib/python3.11/site-packages/airflow/operators/bash.py", line 243, in execute
    raise AirflowException(
airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.
{MARKED}
"""


def run(text: str, **kwargs) -> Extraction:
    kwargs.setdefault("rules", RULES)
    kwargs.setdefault("max_context_chars", 6000)
    return extract_text(text, **kwargs)


def root(text: str) -> str:
    extraction = run(text)
    assert extraction.root_cause is not None
    return extraction.root_cause.text


def bash_log(*output: str) -> str:
    lines = [f"{PRE}Dependencies all met for ti", f"{OUT}Output:", *(OUT + line for line in output)]
    lines.append(f"{OUT}Command exited with return code 1")
    return "\n".join(lines) + "\n" + BASH_WRAPPER


def test_tool_error_above_a_bash_wrapper_is_the_root_cause():
    log = bash_log(
        "Connecting to warehouse...",
        'ERROR:  relation "staging.orders" does not exist',
        "LINE 1: INSERT INTO staging.orders SELECT * FROM raw.orders",
    )
    extraction = run(log)
    assert extraction.root_cause.text == 'ERROR:  relation "staging.orders" does not exist'
    assert extraction.best.rule.id == "sql_object_missing"
    assert extraction.error_lines[0] == extraction.root_cause.text
    assert any("Bash command failed" in line for line in extraction.error_lines)


def test_a_lone_wrapper_is_still_reported():
    extraction = run(bash_log("Connecting to warehouse..."))
    assert "Bash command failed" in extraction.root_cause.text or "return code" in extraction.root_cause.text
    assert extraction.best.wrapper


def test_chained_exception_prefers_the_specific_cause_over_a_generic_wrapper():
    log = f"""\
{FAILED}
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 10, in fetch
    resp.raise_for_status()
requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.example.com/v1/orders?page=2

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 14, in run
    raise AirflowException("fetch failed") from exc
airflow.exceptions.AirflowException: Task failed
{MARKED}
"""
    extraction = run(log)
    assert extraction.root_cause.text.startswith("requests.exceptions.HTTPError: 401 Client Error")
    assert extraction.exception_type == "requests.exceptions.HTTPError"
    assert extraction.best.rule.category == "permission_error"


def test_in_a_chain_of_specific_errors_the_innermost_wins():
    log = f"""\
{FAILED}
Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/sqlalchemy/engine/base.py", line 1910, in _execute_context
psycopg2.errors.UndefinedTable: relation "staging.orders" does not exist
LINE 1: INSERT INTO staging.orders SELECT * FROM raw.orders
                    ^


The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 22, in load
sqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedTable) relation "staging.orders" does not exist
[SQL: INSERT INTO staging.orders SELECT * FROM raw.orders]
(Background on this error at: https://sqlalche.me/e/14/f405)
{MARKED}
"""
    assert root(log) == 'psycopg2.errors.UndefinedTable: relation "staging.orders" does not exist'


def test_during_handling_chains_are_followed_too():
    log = """\
Traceback (most recent call last):
  File "x.py", line 1, in f
FileNotFoundError: [Errno 2] No such file or directory: '/data/in/2024-05-02.csv'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "x.py", line 3, in f
RuntimeError: failed
"""
    assert root(log) == "FileNotFoundError: [Errno 2] No such file or directory: '/data/in/2024-05-02.csv'"


def test_spark_py4j_wrapper_yields_the_java_cause():
    log = f"""\
{FAILED}
Traceback (most recent call last):
  File "/opt/spark/python/pyspark/sql/readwriter.py", line 1463, in save
    self._jwrite.save(path)
py4j.protocol.Py4JJavaError: An error occurred while calling o123.save.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 2.0 failed 4 times
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2454)
\tat org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:2403)
Caused by: java.lang.OutOfMemoryError: Java heap space
\tat java.util.Arrays.copyOf(Arrays.java:3236)
\t... 25 more
{MARKED}
"""
    extraction = run(log)
    assert extraction.root_cause.text == "Caused by: java.lang.OutOfMemoryError: Java heap space"
    assert extraction.exception_type == "java.lang.OutOfMemoryError"
    assert extraction.best.rule.category == "resource_error"


def test_spark_analysis_exception_and_yarn_kill():
    analysis = f"""\
{FAILED}
Traceback (most recent call last):
  File "/opt/airflow/dags/spark_job.py", line 30, in run
pyspark.sql.utils.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `sales`.`daily` cannot be found.
"""
    assert root(analysis).startswith("pyspark.sql.utils.AnalysisException")
    yarn = bash_log(
        "24/05/02 10:15:32 WARN TaskSetManager: Lost task 1.0 in stage 3.0 (TID 7, node-3, executor 2): "
        "ExecutorLostFailure (executor 2 exited caused by one of the running tasks) Reason: Container killed by "
        "YARN for exceeding memory limits. 5.5 GB of 5.5 GB physical memory used.",
        "24/05/02 10:15:40 ERROR SparkSubmit: Job aborted due to stage failure",
    )
    assert "Container killed by YARN" in root(yarn)


@pytest.mark.parametrize(
    ("output", "expected", "category"),
    [
        (["/tmp/run.sh: line 4: dbt: command not found"], "dbt: command not found", "dependency_failure"),
        (["cp: cannot stat '/data/in.csv': No such file or directory"], "No such file or directory", None),
        (["*** Failure 3807 Object 'EDW.SALES_STG' does not exist.", "*** Exiting BTEQ..."], "Failure 3807", None),
        (["TPT_INFRA: TPT04183: Error: Line 12 of Local Job Variable File:"], "TPT04183", None),
        (["Killed"], "Killed", "resource_error"),
        (
            ["botocore.errorfactory.NoSuchKey: An error occurred (NoSuchKey) when calling the GetObject operation"],
            "NoSuchKey",
            "data_quality",
        ),
        (
            ["google.api_core.exceptions.Forbidden: 403 GET https://storage.googleapis.com/b/o: no access"],
            "403",
            "permission_error",
        ),
        (["mysql: [ERROR] Access denied for user 'etl'@'10.0.0.3' (using password: YES)"], "Access denied", None),
    ],
)
def test_tool_errors_beat_the_wrapper(output, expected, category):
    extraction = run(bash_log("starting", *output))
    assert expected in extraction.root_cause.text
    if category:
        assert extraction.best.rule.category == category


def test_kubernetes_pod_failure_reports_the_container_reason():
    log = f"""\
[2024-05-02, 10:15:31 UTC] {{pod_manager.py:410}} INFO - Pod etl-load-abc123 has phase Running
[2024-05-02, 10:15:40 UTC] {{pod.py:978}} ERROR - container base terminated: reason=OOMKilled exit_code=137
{FAILED}
Traceback (most recent call last):
  File "/home/airflow/.local/lib/python3.11/site-packages/airflow/providers/cncf/kubernetes/operators/pod.py", line 1
airflow.exceptions.AirflowException: Pod etl-load-abc123 returned a failure.
"""
    assert "OOMKilled" in root(log)


def test_retried_warnings_rank_below_the_final_error():
    log = "\n".join(
        [
            "[2024-05-02, 10:15:31 UTC] {http.py:10} WARNING - ReadTimeout: read timed out, retrying in 5s",
            "[2024-05-02, 10:15:41 UTC] {http.py:10} WARNING - ReadTimeout: read timed out, retrying in 5s",
            FAILED,
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in f',
            "KeyError: 'customer_id'",
        ]
    )
    extraction = run(log)
    assert extraction.root_cause.text == "KeyError: 'customer_id'"
    timeouts = [c for c in extraction.candidates if "ReadTimeout" in c.line.text]
    assert timeouts and timeouts[0].count == 2


def test_errors_of_failure_side_effects_are_not_the_cause():
    log = (
        bash_log("Killed")
        + """\
[2024-05-02, 10:15:33 UTC] {taskinstance.py:1400} ERROR - Failed to send email to: ['oncall@example.com']
Traceback (most recent call last):
  File "/home/airflow/.local/lib/python3.11/site-packages/airflow/utils/email.py", line 270, in send_mime_email
ConnectionRefusedError: [Errno 111] Connection refused
"""
    )
    extraction = run(log)
    assert extraction.root_cause.text == "Killed"
    assert "Connection refused" not in " ".join(extraction.error_lines)


def test_what_follows_a_stop_is_a_consequence_until_the_next_try():
    """After "Received SIGTERM" the killed process's own errors are not the cause; a new try in the file is."""
    stopped = """\
[2024-05-02, 10:15:30 UTC] {local_task_job.py:208} WARNING - State of this instance has been externally set to \
failed. Terminating instance.
[2024-05-02, 10:15:30 UTC] {taskinstance.py:1517} ERROR - Received SIGTERM. Terminating subprocesses.
[2024-05-02, 10:15:31 UTC] {taskinstance.py:1455} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 40, in load
    conn.sendall(payload)
py4j.protocol.Py4JNetworkError: Error while sending or receiving
"""
    extraction = run(stopped)
    assert extraction.root_cause.text.startswith("State of this instance has been externally set to failed")
    assert not any("Py4JNetworkError" in line for line in extraction.error_lines)

    next_try = """\
[2024-05-02, 10:20:00 UTC] {taskinstance.py:1357} INFO - Starting attempt 2 of 2
[2024-05-02, 10:20:05 UTC] {taskinstance.py:1455} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 22, in load
psycopg2.errors.UndefinedTable: relation "staging.orders" does not exist
"""
    assert run(stopped + next_try).root_cause.text.endswith('relation "staging.orders" does not exist')


def test_json_and_text_logs_of_one_failure_agree():
    text_log = f"""\
{OUT}Loading orders
{FAILED}
Traceback (most recent call last):
  File "/opt/airflow/dags/etl.py", line 22, in load
    cursor.execute(sql)
psycopg2.errors.UndefinedColumn: column "amount_usd" does not exist
{MARKED}
"""
    detail = [
        {
            "exc_type": "UndefinedColumn",
            "exc_value": 'column "amount_usd" does not exist',
            "is_cause": False,
            "frames": [{"filename": "/opt/airflow/dags/etl.py", "lineno": 22, "name": "load"}],
        }
    ]
    records = [
        {"timestamp": "2025-05-02T10:15:31Z", "level": "info", "event": "Loading orders", "logger": "task.stdout"},
        {
            "timestamp": "2025-05-02T10:15:32Z",
            "level": "error",
            "event": "Task failed with exception",
            "logger": "task",
        },
        {"timestamp": "2025-05-02T10:15:32Z", "level": "info", "event": "Marking task as FAILED.", "logger": "task"},
    ]
    records[1]["error_detail"] = detail
    json_log = "".join(json.dumps(r) + "\n" for r in records)

    from_text, from_json = run(text_log), run(json_log)

    assert from_text.root_cause.text.endswith('column "amount_usd" does not exist')
    assert from_json.root_cause.text == 'UndefinedColumn: column "amount_usd" does not exist'
    assert from_text.best.rule.id == from_json.best.rule.id == "sql_column_missing"
    message = 'column "amount_usd" does not exist'
    assert fingerprint(from_text.exception_type, message) == fingerprint(from_json.exception_type, message)
    for extraction in (from_text, from_json):
        assert "Task failed with exception" not in extraction.context
        assert "Marking task as FAILED" not in extraction.context
        assert 'File "/opt/airflow/dags/etl.py", line 22, in load' in extraction.context


def test_context_is_bounded_deterministic_and_free_of_boilerplate():
    noise = [f"processed batch {i} of 5000 rows={i * 7}" for i in range(3000)]
    log = bash_log(*noise[:1500], 'ERROR:  duplicate key value violates unique constraint "orders_pkey"', *noise[1500:])
    first, second = run(log, max_context_chars=2000), run(log, max_context_chars=2000)
    assert first.context == second.context
    assert len(first.context) <= 2000
    assert 'duplicate key value violates unique constraint "orders_pkey"' in first.context
    assert "Dependencies all met" not in first.context
    assert "Task failed with exception" not in first.context
    assert "..." in first.context  # gaps between the excerpts are marked
    assert first.total_lines == len(log.splitlines())

    tiny = run(log, max_context_chars=40)
    root = tiny.root_cause.number
    assert len(tiny.context) <= 40 and tiny.context.startswith(f"{root}| ERROR:  duplicate key")  # gutter counted
    assert tiny.truncated


def test_context_budget_comes_from_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DAGNOSTICS__MAX_CONTEXT_CHARS", "300")
    extraction = extract_text(bash_log(*(f"line {i} error" for i in range(100))), rules=RULES)
    assert 0 < len(extraction.context) <= 300


def test_a_log_without_errors_has_no_root_cause():
    extraction = run(f"{PRE}Starting attempt 1 of 1\n{OUT}all good\n{OUT}done\n")
    assert extraction.root_cause is None
    assert extraction.error_lines == [] and extraction.exception_type is None
    assert "all good" in extraction.context


@pytest.mark.parametrize(
    "chunks",
    [
        [],
        [b""],
        [bytes(range(256)) * 400],
        [b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc" * 1000 + b"\n"],
        [b"\x00" * 10_000],
    ],
    ids=["no-chunks", "zero-bytes", "binary", "invalid-utf8", "nul-bytes"],
)
def test_junk_input_gives_a_clear_result(chunks):
    extraction = extract(chunks, rules=RULES, max_context_chars=6000)
    assert isinstance(extraction, Extraction)
    assert len(extraction.context) <= 6000


def test_a_single_50_mb_line_is_handled_in_bounded_memory():
    def stream():
        yield b"FATAL: out of memory while sorting "
        for _ in range(50):
            yield b"z" * (1 << 20)

    tracemalloc.start()
    try:
        extraction = extract(stream(), rules=RULES, max_context_chars=6000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert extraction.root_cause.text.startswith("FATAL: out of memory")
    assert extraction.truncated and extraction.total_lines == 1
    assert peak < 8 * (1 << 20)


def test_a_long_log_is_scanned_in_bounded_memory():
    line = OUT.replace("{", "{{").replace("}", "}}") + "processed batch {} rows={} from s3://lake/raw/part-{}.parquet\n"

    def stream():
        for block in range(100):
            yield "".join(line.format(i, i * 3, i) for i in range(block * 500, (block + 1) * 500))
        yield 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nMemoryError\n'
        yield BASH_WRAPPER.replace("Bash command failed.", "Bash command failed. MemoryError raised.")

    tracemalloc.start()
    try:
        extraction = extract(stream(), rules=RULES, max_context_chars=6000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert extraction.root_cause.text == "MemoryError"
    assert extraction.total_lines > 50_000
    assert peak < 16 * (1 << 20)


def test_many_distinct_errors_keep_a_bounded_candidate_list():
    lines = [
        f"{OUT}ERROR: widget-{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)} broke" for i in range(3000)
    ]
    extraction = run("\n".join(lines) + "\n" + BASH_WRAPPER)
    assert len(extraction.candidates) <= 20
    assert extraction.truncated


HANDLED_THEN_FAILED = """\
Traceback (most recent call last):
  File "/opt/airflow/dags/features.py", line 52, in load
FileNotFoundError: [Errno 2] No such file or directory: '/mnt/cache/features.parquet'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/opt/airflow/dags/features.py", line 60, in load
{outer}
"""


def test_during_handling_the_later_failure_wins_unless_it_is_a_bug_in_the_handler():
    rebuilt = HANDLED_THEN_FAILED.format(outer="ValueError: could not convert string to float: 'N/A'")
    assert root(rebuilt) == "ValueError: could not convert string to float: 'N/A'"
    handler_bug = HANDLED_THEN_FAILED.format(outer="NameError: name 'cache_path' is not defined")
    assert root(handler_bug).startswith("FileNotFoundError")


def test_warnings_and_handled_problems_do_not_win():
    log = bash_log(
        "2024-05-02 10:00:01,000 WARNING loader: column 'fax' missing, using default",
        'NOTICE:  table "tmp_orders" does not exist, skipping',
        "24/05/02 10:00:03 WARN NativeCodeLoader: Unable to load native-hadoop library",
        "Traceback (most recent call last):",
        '  File "/opt/etl/load.py", line 3, in <module>',
        "KeyError: 'customer_id'",
    )
    assert root(log) == "KeyError: 'customer_id'"


def test_airflow3_json_bash_output_is_read_like_text():
    hook = "airflow.task.hooks.airflow.providers.standard.hooks.subprocess.SubprocessHook"
    events = [
        ("info", "Output:", hook),
        ("info", "Starting export", hook),
        ("info", "/usr/bin/bash: line 1: /opt/scripts/export.sh: Permission denied", hook),
        ("info", "Command exited with return code 126", hook),
        ("error", "Task failed with exception", "task"),
        ("info", "Failure caused by Bash command failed. The command returned a non-zero exit code 126.", "task"),
    ]
    records = [{"timestamp": "2025-05-02T10:00:00Z", "level": lv, "event": ev, "logger": lg} for lv, ev, lg in events]
    records[4]["error_detail"] = [
        {
            "exc_type": "AirflowException",
            "exc_value": "Bash command failed. The command returned a non-zero exit code 126.",
            "is_cause": False,
            "frames": [{"filename": "/opt/airflow/bash.py", "lineno": 1, "name": "execute"}],
        }
    ]
    extraction = run("".join(json.dumps(r) + "\n" for r in records))
    assert extraction.root_cause.text.endswith("export.sh: Permission denied")
    assert extraction.best.rule.category == "permission_error"
    assert extraction.total_lines == len(records)
