"""Built-in rules for the documented error messages of the libraries and tools Airflow tasks use.

Every line below is a library's own message, as its source or official documentation words it (only names, hosts and
numbers are made up): the MySQL/MariaDB and SQL Server error references; PostgreSQL's server and libpq sources;
snowflake-connector-python, SQLAlchemy, psycopg2, pyodbc/unixODBC; botocore and the AWS API error references (S3,
Glue, DynamoDB, ECS, Athena, Redshift); google-api-core and BigQuery's error messages; Kubernetes (quota admission,
scheduler, kubelet); requests/urllib3, httpx, aiohttp; CPython (smtplib, gzip, csv), pandas, pyarrow, xlrd; paramiko;
dbt-core; Apache Spark and PySpark; librdkafka and kafka-python; pymongo; redis-py; Microsoft Entra ID and Azure
Storage error codes; Celery's billiard; Airflow itself and its providers (common.sql, Amazon, dbt Cloud, Azure Data
Factory, Docker, SSH, HTTP).

Each message sits in a small Airflow task log, as the exception that ended the task ("tb") or as a plain line of the
task's output ("plain") where the tool prints it rather than raising it; the heuristic analysis must give it the
category of docs/categories.md and name the rule that read it.  The look-alikes are messages of other categories that
the rules for these libraries must leave alone.
"""

from __future__ import annotations

import pytest

from dagnostics_provider.analysis.extraction import extract_text
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.rules import load_rules

TS = "[2024-01-01, 00:00:05 UTC]"
START = (
    f"{TS} {{taskinstance.py:1159}} INFO - Dependencies all met for dep_context=requeueable deps "
    "ti=<TaskInstance: etl.load scheduled__2024-01-01T00:00:00+00:00 [queued]>\n"
    f"{TS} {{taskinstance.py:1361}} INFO - Starting attempt 1 of 1\n"
    f"{TS} {{taskinstance.py:1382}} INFO - Executing <Task(PythonOperator): load> on 2024-01-01 00:00:00+00:00\n"
)
FAILED = (
    f"{TS} {{taskinstance.py:1400}} INFO - Marking task as FAILED. dag_id=etl, task_id=load, "
    "execution_date=20240101T000000, start_date=20240101T000001, end_date=20240101T000005\n"
)


def task_log(mode: str, message: str) -> str:
    """A failed task's log with ``message`` as the exception that ended it, or as a line of the task's output."""
    if mode == "tb":
        return (
            f"{START}{TS} {{taskinstance.py:1937}} ERROR - Task failed with exception\n"
            "Traceback (most recent call last):\n"
            '  File "/opt/airflow/dags/etl.py", line 42, in load\n'
            "    client.run(batch)\n"
            f"{message}\n{FAILED}"
        )
    return f"{START}{TS} {{subprocess.py:93}} INFO - {message}\n"


def diagnose(log: str) -> tuple[str, str | None]:
    extraction = extract_text(log, rules=load_rules(), max_context_chars=6000)
    best = extraction.best
    return analyze_heuristically(extraction).category, best.rule.id if best and best.rule else None


# (library, mode, message, category, rule id; None where any rule with the right category will do)
LIBRARY_MESSAGES = [
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        "MySQLdb.OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')",
        "resource_error",
        "db_deadlock",
        id="db_deadlock-1",
    ),
    pytest.param(
        "SQL Server (pyodbc)",
        "tb",
        (
            "pyodbc.OperationalError: ('HYT00', '[HYT00] [Microsoft][ODBC Driver 17 for SQL Server]Lock "
            "request time out period exceeded. (1222) (SQLExecDirectW)')"
        ),
        "resource_error",
        "db_deadlock",
        id="db_deadlock-2",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        "snowflake.connector.errors.ProgrammingError: 100038 (22018): Numeric value 'abc' is not recognized",
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-1",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 100071 (22000): "
            '01b2c3d4-0000-1111-0000-000123456789: Failed to cast variant value "2025-01-01 00:00:00.000" to '
            "DATE"
        ),
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-2",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 100080 (22000): Number of columns in file (11) "
            "does not match that of the corresponding table (10), use file format option "
            "error_on_column_count_mismatch=false to ignore this error"
        ),
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-3",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 100069 (22P02): Error parsing JSON: unknown "
            'keyword "All", pos 4'
        ),
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-4",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        "snowflake.connector.errors.IntegrityError: 100072 (22000): NULL result in a non-nullable column",
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-5",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 100016 (22000): Field delimiter ',' found while "
            "expecting record delimiter '\\n'"
        ),
        "data_quality",
        "snowflake_data_error",
        id="snowflake_data_error-6",
    ),
    pytest.param(
        "snowflake-connector-python",
        "tb",
        "snowflake.connector.errors.ProgrammingError: 001003 (42000): SQL compilation error:",
        "configuration_error",
        "snowflake_compilation",
        id="snowflake_compilation-1",
    ),
    pytest.param(
        "BigQuery (google-api-core)",
        "tb",
        (
            "google.api_core.exceptions.BadRequest: 400 Query exceeded limit for bytes billed: 1000000. "
            "20971520 or higher required."
        ),
        "resource_error",
        "bigquery_bytes_billed_limit",
        id="bigquery_bytes_billed_limit-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        "botocore.exceptions.ParamValidationError: Parameter validation failed:",
        "configuration_error",
        "botocore_param_validation",
        id="botocore_param_validation-1",
    ),
    pytest.param(
        "botocore",
        "plain",
        "Invalid type for parameter Key, value: None, type: <class 'NoneType'>, valid types: <class 'str'>",
        "configuration_error",
        "botocore_param_validation",
        id="botocore_param_validation-2",
    ),
    pytest.param(
        "requests / urllib3",
        "tb",
        (
            'requests.exceptions.ChunkedEncodingError: ("Connection broken: IncompleteRead(0 bytes read, 512 '
            'more expected)", IncompleteRead(0 bytes read, 512 more expected))'
        ),
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-1",
    ),
    pytest.param(
        "smtplib",
        "tb",
        (
            "smtplib.SMTPDataError: (554, b'Message rejected: Email address is not verified. The following "
            "identities failed the check in region EU-WEST-1: airflow@example.com')"
        ),
        "configuration_error",
        "smtp_rejected_address",
        id="smtp_rejected_address-1",
    ),
    pytest.param(
        "Amazon ECS",
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (InvalidParameterException) when calling the "
            "RunTask operation: ECS task stopped: CannotPullContainerError: pull image manifest has been "
            "retried 5 time(s): failed to resolve ref docker.io/acme/etl:1.4.2: docker.io/acme/etl:1.4.2: "
            "not found"
        ),
        "configuration_error",
        "ecs_cannot_pull_container",
        id="ecs_cannot_pull_container-1",
    ),
    pytest.param(
        "Amazon ECS",
        "plain",
        (
            "Stopped reason CannotPullContainerError: pull image manifest has been retried 5 time(s): failed "
            "to resolve ref docker.io/acme/etl:1.4.2: docker.io/acme/etl:1.4.2: not found"
        ),
        "configuration_error",
        "ecs_cannot_pull_container",
        id="ecs_cannot_pull_container-2",
    ),
    pytest.param(
        "Amazon Redshift",
        "tb",
        (
            "psycopg2.errors.InternalError_: Load into table 'sales' failed.  Check 'stl_load_errors' system "
            "table for details."
        ),
        "data_quality",
        "redshift_load_failed",
        id="redshift_load_failed-1",
    ),
    pytest.param(
        "Amazon Redshift",
        "tb",
        (
            "redshift_connector.error.ProgrammingError: {'S': 'ERROR', 'C': 'XX000', 'M': \"Load "
            "into table 'listing' failed.  Check 'stl_load_errors' system table for details.\", 'F': "
            "'../src/pg/src/backend/commands/commands_copy.c', 'L': '718', 'R': 'CheckMaxRowError'}"
        ),
        "data_quality",
        "redshift_load_failed",
        id="redshift_load_failed-2",
    ),
    pytest.param(
        "Amazon Redshift",
        "tb",
        (
            "psycopg2.errors.SerializationFailure: 1023 DETAIL: Serializable isolation violation on table - "
            "156362, transactions forming the cycle are: 1502, 1503 (pid:18762)"
        ),
        "resource_error",
        "db_deadlock",
        id="db_deadlock-3",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        (
            "psycopg2.errors.InFailedSqlTransaction: current transaction is aborted, commands ignored until "
            "end of transaction block"
        ),
        "unknown",
        "pg_transaction_aborted",
        id="pg_transaction_aborted-1",
    ),
    pytest.param(
        "SQLAlchemy",
        "tb",
        (
            "sqlalchemy.exc.PendingRollbackError: This Session's transaction has been rolled back due to a "
            "previous exception during flush. To begin a new transaction with this Session, first issue "
            "Session.rollback(). Original exception was: (psycopg2.errors.UniqueViolation) duplicate key "
            'value violates unique constraint "orders_pkey"'
        ),
        "data_quality",
        "sql_constraint_violation",
        id="sql_constraint_violation-1",
    ),
    pytest.param(
        "SQLAlchemy",
        "tb",
        (
            "sqlalchemy.exc.InvalidRequestError: This Session's transaction has been rolled back due to a "
            "previous exception during flush."
        ),
        "unknown",
        "sqlalchemy_rollback_wrapper",
        id="sqlalchemy_rollback_wrapper-1",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        (
            'psycopg2.OperationalError: connection to server at "pg-prod" (10.0.0.5), port 5432 failed: '
            'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "etl", database "dwh", no encryption'
        ),
        "permission_error",
        "pg_hba_rejected",
        id="pg_hba_rejected-1",
    ),
    pytest.param(
        "SQLAlchemy",
        "tb",
        (
            'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "pg-prod" '
            '(10.0.0.5), port 5432 failed: FATAL:  role "etl_loader" does not exist'
        ),
        "configuration_error",
        "pg_role_missing",
        id="pg_role_missing-1",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        "psycopg2.errors.ReadOnlySqlTransaction: cannot execute INSERT in a read-only transaction",
        "configuration_error",
        "db_read_only_target",
        id="db_read_only_target-1",
    ),
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        (
            "MySQLdb.OperationalError: (1290, 'The MySQL server is running with the --read-only option so it "
            "cannot execute this statement')"
        ),
        "configuration_error",
        "db_read_only_target",
        id="db_read_only_target-2",
    ),
    pytest.param(
        "redis-py",
        "tb",
        "redis.exceptions.ReadOnlyError: You can't write against a read only replica.",
        "configuration_error",
        "db_read_only_target",
        id="db_read_only_target-3",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        "psycopg2.errors.AdminShutdown: terminating connection due to administrator command",
        "dependency_failure",
        "pg_admin_shutdown",
        id="pg_admin_shutdown-1",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        'psycopg2.errors.CharacterNotInRepertoire: invalid byte sequence for encoding "UTF8": 0x00',
        "data_quality",
        "pg_bad_encoding",
        id="pg_bad_encoding-1",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        "psycopg2.errors.CardinalityViolation: more than one row returned by a subquery used as an expression",
        "data_quality",
        "sql_duplicate_rows",
        id="sql_duplicate_rows-1",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        "psycopg2.errors.CardinalityViolation: ON CONFLICT DO UPDATE command cannot affect row a second time",
        "data_quality",
        "sql_duplicate_rows",
        id="sql_duplicate_rows-2",
    ),
    pytest.param(
        "PostgreSQL (psycopg2)",
        "tb",
        "psycopg2.OperationalError: SSL SYSCALL error: EOF detected",
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-2",
    ),
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        "MySQLdb.OperationalError: (1130, \"Host '10.0.0.9' is not allowed to connect to this MySQL server\")",
        "permission_error",
        "mysql_host_not_allowed",
        id="mysql_host_not_allowed-1",
    ),
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        (
            "MySQLdb.OperationalError: (1227, 'Access denied; you need (at least one of) the SUPER "
            "privilege(s) for this operation')"
        ),
        "permission_error",
        "mysql_privilege_missing",
        id="mysql_privilege_missing-1",
    ),
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        (
            "MySQLdb.OperationalError: (3024, 'Query execution was interrupted, maximum statement execution "
            "time exceeded')"
        ),
        "timeout_error",
        "mysql_statement_time_exceeded",
        id="mysql_statement_time_exceeded-1",
    ),
    pytest.param(
        "MySQL (mysqlclient)",
        "tb",
        "MySQLdb.OperationalError: (1114, \"The table 'events' is full\")",
        "resource_error",
        "mysql_table_full",
        id="mysql_table_full-1",
    ),
    pytest.param(
        "unixODBC (pyodbc)",
        "tb",
        (
            "sqlalchemy.exc.DBAPIError: (pyodbc.Error) ('01000', \"[01000] [unixODBC][Driver Manager]Can't "
            "open lib 'ODBC Driver 17 for SQL Server' : file not found (0) (SQLDriverConnect)\")"
        ),
        "dependency_failure",
        "odbc_driver_missing",
        id="odbc_driver_missing-1",
    ),
    pytest.param(
        "unixODBC (pyodbc)",
        "tb",
        (
            "pyodbc.InterfaceError: ('IM002', '[IM002] [unixODBC][Driver Manager]Data source name not found "
            "and no default driver specified (0) (SQLDriverConnect)')"
        ),
        "configuration_error",
        "odbc_dsn_missing",
        id="odbc_dsn_missing-1",
    ),
    pytest.param(
        "google-api-core",
        "tb",
        (
            "google.api_core.exceptions.InternalServerError: 500 An internal error occurred and the request "
            "could not be completed."
        ),
        "dependency_failure",
        "gcp_server_error",
        id="gcp_server_error-1",
    ),
    pytest.param(
        "google-api-core",
        "tb",
        (
            "google.api_core.exceptions.Unauthenticated: 401 Request had invalid authentication credentials. "
            "Expected OAuth 2 access token, login cookie or other valid authentication credential."
        ),
        "permission_error",
        "gcp_unauthenticated",
        id="gcp_unauthenticated-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (RequestTimeTooSkewed) when calling the "
            "PutObject operation: The difference between the request time and the current time is too large."
        ),
        "configuration_error",
        "aws_clock_skew",
        id="aws_clock_skew-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (ProvisionedThroughputExceededException) "
            "when calling the PutItem operation (reached max retries: 9): The level of configured "
            "provisioned throughput for the table was exceeded. Consider increasing your provisioning level "
            "with the UpdateTable API."
        ),
        "resource_error",
        "aws_limit_exceeded_code",
        id="aws_limit_exceeded_code-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        (
            "botocore.errorfactory.ConcurrentRunsExceededException: An error occurred "
            "(ConcurrentRunsExceededException) when calling the StartJobRun operation: Concurrent runs "
            "exceeded for etl_job"
        ),
        "resource_error",
        "aws_limit_exceeded_code",
        id="aws_limit_exceeded_code-2",
    ),
    pytest.param(
        "botocore",
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (InternalError) when calling the PutObject "
            "operation (reached max retries: 4): We encountered an internal error. Please try again."
        ),
        "dependency_failure",
        "aws_internal_error_code",
        id="aws_internal_error_code-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        (
            "botocore.errorfactory.EntityNotFoundException: An error occurred (EntityNotFoundException) when "
            "calling the StartJobRun operation: Failed to start job run due to missing metadata"
        ),
        "configuration_error",
        "aws_named_resource_missing",
        id="aws_named_resource_missing-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        "botocore.exceptions.NoRegionError: You must specify a region.",
        "configuration_error",
        "aws_region_unset",
        id="aws_region_unset-1",
    ),
    pytest.param(
        "botocore",
        "tb",
        "botocore.exceptions.WaiterError: Waiter ClusterAvailable failed: Max attempts exceeded",
        "timeout_error",
        "aws_waiter_max_attempts",
        id="aws_waiter_max_attempts-1",
    ),
    pytest.param(
        "Airflow Amazon provider",
        "tb",
        "airflow.exceptions.AirflowException: Waiter error: max attempts reached",
        "timeout_error",
        "aws_waiter_max_attempts",
        id="aws_waiter_max_attempts-2",
    ),
    pytest.param(
        "Airflow Amazon provider (Glue)",
        "tb",
        "airflow.exceptions.AirflowException: Exiting Job jr_4c1f0e Run State: FAILED",
        "dependency_failure",
        "managed_job_run_failed",
        id="managed_job_run_failed-1",
    ),
    pytest.param(
        "Airflow Amazon provider (Glue)",
        "tb",
        "airflow.exceptions.AirflowException: Exiting Job jr_4c1f0e Run State: TIMEOUT",
        "timeout_error",
        "glue_job_timeout",
        id="glue_job_timeout-1",
    ),
    pytest.param(
        "Airflow Amazon provider (Athena)",
        "tb",
        (
            "Exception: Final state of Athena job is FAILED, query_execution_id is 3f1c-77aa. Error: "
            "HIVE_BAD_DATA: Error parsing field value '2024-13-01' for field 3: For input string: "
            '"2024-13-01"'
        ),
        "data_quality",
        "athena_bad_data",
        id="athena_bad_data-1",
    ),
    pytest.param(
        "Airflow Amazon provider (Athena)",
        "tb",
        (
            "Exception: Final state of Athena job is FAILED, query_execution_id is 3f1c-77aa. Error: Query "
            "exhausted resources at this scale factor"
        ),
        "resource_error",
        "athena_exhausted_resources",
        id="athena_exhausted_resources-1",
    ),
    pytest.param(
        "Airflow Amazon provider (Athena)",
        "tb",
        (
            "Exception: Final state of Athena job is FAILED, query_execution_id is 3f1c-77aa. Error: "
            "GENERIC_INTERNAL_ERROR: Number of partition values is greater than number of partition keys"
        ),
        "dependency_failure",
        "managed_job_run_failed",
        id="managed_job_run_failed-2",
    ),
    pytest.param(
        "Apache Spark",
        "tb",
        (
            "org.apache.spark.shuffle.MetadataFetchFailedException: Missing an output location for shuffle 4 "
            "partition 17"
        ),
        "resource_error",
        "spark_shuffle_fetch_failed",
        id="spark_shuffle_fetch_failed-1",
    ),
    pytest.param(
        "Apache Spark",
        "tb",
        ("org.apache.spark.shuffle.FetchFailedException: Failed to connect to ip-10-0-0-5.ec2.internal/10.0.0.5:7337"),
        "resource_error",
        "spark_shuffle_fetch_failed",
        id="spark_shuffle_fetch_failed-2",
    ),
    pytest.param(
        "Apache Spark",
        "tb",
        (
            "org.apache.spark.SparkException: Could not execute broadcast in 300 secs. You can increase the "
            "timeout for broadcasts via spark.sql.broadcastTimeout or disable broadcast join by setting "
            "spark.sql.autoBroadcastJoinThreshold to -1"
        ),
        "timeout_error",
        "spark_broadcast_timeout",
        id="spark_broadcast_timeout-1",
    ),
    pytest.param(
        "Apache Spark",
        "tb",
        (
            "pyspark.errors.exceptions.base.PySparkRuntimeError: [JAVA_GATEWAY_EXITED] Java gateway process "
            "exited before sending its port number."
        ),
        "dependency_failure",
        "spark_java_gateway_exited",
        id="spark_java_gateway_exited-1",
    ),
    pytest.param(
        "Apache Spark",
        "tb",
        "Exception: Java gateway process exited before sending the driver its port number",
        "dependency_failure",
        "spark_java_gateway_exited",
        id="spark_java_gateway_exited-2",
    ),
    pytest.param(
        "pandas",
        "tb",
        "ValueError: Usecols do not match columns, columns expected but not found: ['amount']",
        "data_quality",
        "pandas_input_shape",
        id="pandas_input_shape-1",
    ),
    pytest.param(
        "pandas",
        "tb",
        "ValueError: Missing column provided to 'parse_dates': 'event_date'",
        "data_quality",
        "pandas_input_shape",
        id="pandas_input_shape-2",
    ),
    pytest.param(
        "pandas",
        "tb",
        'ValueError: Unable to parse string "n/a" at position 3',
        "data_quality",
        "pandas_input_shape",
        id="pandas_input_shape-3",
    ),
    pytest.param(
        "pandas",
        "tb",
        "ValueError: Integer column has NA values in column 3",
        "data_quality",
        "pandas_input_shape",
        id="pandas_input_shape-4",
    ),
    pytest.param(
        "pandas",
        "tb",
        "ValueError: Excel file format cannot be determined, you must specify an engine manually.",
        "data_quality",
        "pandas_input_shape",
        id="pandas_input_shape-5",
    ),
    pytest.param(
        "xlrd",
        "tb",
        "xlrd.biffh.XLRDError: Excel xlsx file; not supported",
        "dependency_failure",
        "xlrd_xlsx_unsupported",
        id="xlrd_xlsx_unsupported-1",
    ),
    pytest.param(
        "CPython",
        "tb",
        "gzip.BadGzipFile: Not a gzipped file (b'<!')",
        "data_quality",
        "compressed_or_binary_input_bad",
        id="compressed_or_binary_input_bad-1",
    ),
    pytest.param(
        "CPython",
        "tb",
        "EOFError: Compressed file ended before the end-of-stream marker was reached",
        "data_quality",
        "compressed_or_binary_input_bad",
        id="compressed_or_binary_input_bad-2",
    ),
    pytest.param(
        "CPython",
        "tb",
        "_csv.Error: field larger than field limit (131072)",
        "data_quality",
        "compressed_or_binary_input_bad",
        id="compressed_or_binary_input_bad-3",
    ),
    pytest.param(
        "pyarrow",
        "tb",
        "OSError: Could not open Parquet input source '<Buffer>': Parquet file size is 0 bytes",
        "data_quality",
        "compressed_or_binary_input_bad",
        id="compressed_or_binary_input_bad-4",
    ),
    pytest.param(
        "httpx",
        "tb",
        "httpx.HTTPStatusError: Client error '404 Not Found' for url 'https://api.example.com/v1/items/42'",
        "dependency_failure",
        "http_404_variants",
        id="http_404_variants-1",
    ),
    pytest.param(
        "httpx",
        "tb",
        ("httpx.HTTPStatusError: Client error '422 Unprocessable Entity' for url 'https://api.example.com/v1/items'"),
        "dependency_failure",
        "http_4xx_variants",
        id="http_4xx_variants-1",
    ),
    pytest.param(
        "httpx",
        "tb",
        "httpx.RemoteProtocolError: Server disconnected without sending a response.",
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-3",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        "aiohttp.client_exceptions.ServerDisconnectedError: Server disconnected",
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-4",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        (
            "aiohttp.client_exceptions.ClientResponseError: 503, message='Service Unavailable', "
            "url='https://api.example.com/x'"
        ),
        "dependency_failure",
        None,
        id="dependency_failure-1",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        ("aiohttp.client_exceptions.ClientResponseError: 502, message='Bad Gateway', url='https://api.example.com/x'"),
        "dependency_failure",
        None,
        id="dependency_failure-2",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        ("aiohttp.client_exceptions.ClientResponseError: 401, message='Unauthorized', url='https://api.example.com/x'"),
        "permission_error",
        "aiohttp_401_403",
        id="aiohttp_401_403-1",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        (
            "aiohttp.client_exceptions.ClientResponseError: 429, message='Too Many Requests', "
            "url='https://api.example.com/x'"
        ),
        "resource_error",
        None,
        id="resource_error-1",
    ),
    pytest.param(
        "aiohttp",
        "tb",
        "aiohttp.client_exceptions.ClientResponseError: 404, message='Not Found', url='https://api.example.com/x'",
        "dependency_failure",
        "http_404_variants",
        id="http_404_variants-2",
    ),
    pytest.param(
        "Airflow HTTP provider",
        "tb",
        "airflow.exceptions.AirflowException: 404:NOT FOUND",
        "dependency_failure",
        "http_404_variants",
        id="http_404_variants-3",
    ),
    pytest.param(
        "Airflow HTTP provider",
        "tb",
        "airflow.exceptions.AirflowException: 401:UNAUTHORIZED",
        "permission_error",
        "http_401_403_ci",
        id="http_401_403_ci-1",
    ),
    pytest.param(
        "Airflow HTTP provider",
        "tb",
        "airflow.exceptions.AirflowException: 400:BAD REQUEST",
        "dependency_failure",
        "http_4xx_variants",
        id="http_4xx_variants-2",
    ),
    pytest.param(
        "Kubernetes API",
        "tb",
        (
            "HTTP response body: "
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods '
            '\\"etl-abc\\" is forbidden: exceeded quota: compute-resources, requested: limits.memory=8Gi, '
            'used: limits.memory=60Gi, limited: limits.memory=64Gi","reason":"Forbidden","code":403}'
        ),
        "resource_error",
        "k8s_resource_quota_exceeded",
        id="k8s_resource_quota_exceeded-1",
    ),
    pytest.param(
        "Kubernetes API",
        "tb",
        (
            "HTTP response body: "
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods '
            '\\"etl-abc\\" is forbidden: failed quota: compute-resources: must specify limits.cpu for: base; '
            'limits.memory for: base","reason":"Forbidden","code":403}'
        ),
        "configuration_error",
        "k8s_quota_needs_limits",
        id="k8s_quota_needs_limits-1",
    ),
    pytest.param(
        "kube-scheduler",
        "plain",
        (
            "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 "
            "nodes are available: 5 Preemption is not helpful for scheduling."
        ),
        "configuration_error",
        "k8s_unschedulable_by_spec",
        id="k8s_unschedulable_by_spec-1",
    ),
    pytest.param(
        "kube-scheduler",
        "plain",
        (
            "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node "
            "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for "
            "scheduling."
        ),
        "resource_error",
        "k8s_unschedulable",
        id="k8s_unschedulable-1",
    ),
    pytest.param(
        "kube-scheduler",
        "plain",
        (
            "0/3 nodes are available: 3 pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 "
            "nodes are available: 3 Preemption is not helpful for scheduling."
        ),
        "configuration_error",
        "k8s_unschedulable_by_spec",
        id="k8s_unschedulable_by_spec-2",
    ),
    pytest.param(
        "kubelet",
        "plain",
        'Back-off pulling image "registry.example.com/etl:1.4.2"',
        "configuration_error",
        "k8s_image_pull_backoff_event",
        id="k8s_image_pull_backoff_event-1",
    ),
    pytest.param(
        "kubelet",
        "plain",
        'MountVolume.SetUp failed for volume "data" : persistentvolumeclaim "etl-data" not found',
        "configuration_error",
        "k8s_pvc_missing",
        id="k8s_pvc_missing-1",
    ),
    pytest.param(
        "Kubernetes API",
        "tb",
        (
            "HTTP response body: "
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Pod '
            '\\"etl-abc\\" is invalid: spec.containers[0].name: Invalid value: \\"ETL\\": a lowercase RFC '
            "1123 label must consist of lower case alphanumeric characters or "
            '\'-\'","reason":"Invalid","code":422}'
        ),
        "configuration_error",
        "k8s_invalid_spec",
        id="k8s_invalid_spec-1",
    ),
    pytest.param(
        "Airflow Docker provider",
        "tb",
        (
            "airflow.providers.docker.exceptions.DockerContainerFailedException: Docker container failed: "
            "{'Error': None, 'StatusCode': 137}"
        ),
        "resource_error",
        "exit_code_137",
        id="exit_code_137-1",
    ),
    pytest.param(
        "Airflow Docker provider",
        "tb",
        (
            "airflow.providers.docker.exceptions.DockerContainerFailedException: Docker container failed: "
            "{'Error': None, 'StatusCode': 1}"
        ),
        "dependency_failure",
        "docker_container_failed",
        id="docker_container_failed-1",
    ),
    pytest.param(
        "dbt-core",
        "plain",
        "Database Error in model stg_orders (models/staging/stg_orders.sql)",
        "unknown",
        "dbt_failure",
        id="dbt_failure-1",
    ),
    pytest.param(
        "dbt-core",
        "plain",
        '  Credentials in profile "analytics", target "prod" invalid: \'host\' is a required property',
        "configuration_error",
        "dbt_profile_invalid",
        id="dbt_profile_invalid-1",
    ),
    pytest.param(
        "dbt-core",
        "plain",
        (
            "  dbt found 1 package(s) specified in packages.yml, but only 0 package(s) installed in "
            'dbt_packages. Run "dbt deps" to install package dependencies.'
        ),
        "dependency_failure",
        "dbt_packages_not_installed",
        id="dbt_packages_not_installed-1",
    ),
    pytest.param(
        "Airflow dbt Cloud provider",
        "tb",
        (
            "airflow.providers.dbt.cloud.hooks.dbt.DbtCloudJobRunException: Job run 70403104 has failed or "
            "has been cancelled."
        ),
        "dependency_failure",
        "managed_job_run_failed",
        id="managed_job_run_failed-3",
    ),
    pytest.param(
        "Airflow Azure Data Factory provider",
        "tb",
        (
            "airflow.providers.microsoft.azure.hooks.data_factory.AzureDataFactoryPipelineRunException: "
            "Pipeline run 8f1e-22 has failed or has been cancelled."
        ),
        "dependency_failure",
        "managed_job_run_failed",
        id="managed_job_run_failed-4",
    ),
    pytest.param(
        "Airflow common.sql",
        "tb",
        (
            "airflow.exceptions.AirflowException: The following query returned zero rows: SELECT COUNT(*) "
            "FROM sales WHERE dt = '2024-01-01'"
        ),
        "data_quality",
        "sql_check_operator_failed",
        id="sql_check_operator_failed-1",
    ),
    pytest.param(
        "Airflow common.sql",
        "plain",
        "The following tests have failed:",
        "data_quality",
        "sql_check_operator_failed",
        id="sql_check_operator_failed-2",
    ),
    pytest.param(
        "Airflow common.sql",
        "tb",
        'airflow.exceptions.AirflowException: Threshold Check: "check_row_count" failed.',
        "data_quality",
        "sql_check_operator_failed",
        id="sql_check_operator_failed-3",
    ),
    pytest.param(
        "paramiko",
        "tb",
        ("paramiko.ssh_exception.SSHException: Error reading SSH protocol banner[Errno 104] Connection reset by peer"),
        "dependency_failure",
        None,
        id="dependency_failure-3",
    ),
    pytest.param(
        "paramiko",
        "tb",
        "paramiko.ssh_exception.SSHException: Error reading SSH protocol banner",
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-5",
    ),
    pytest.param(
        "paramiko",
        "tb",
        (
            "paramiko.ssh_exception.BadHostKeyException: Host key for server 'sftp.partner.com' does not "
            "match: got 'AAAAB3NzaC1yc2E', expected 'AAAAC3NzaC1lZDI1'"
        ),
        "configuration_error",
        "paramiko_host_key",
        id="paramiko_host_key-1",
    ),
    pytest.param(
        "paramiko",
        "tb",
        "paramiko.ssh_exception.PasswordRequiredException: Private key file is encrypted",
        "configuration_error",
        "paramiko_key_unusable",
        id="paramiko_key_unusable-1",
    ),
    pytest.param(
        "paramiko",
        "tb",
        "paramiko.ssh_exception.SSHException: not a valid RSA private key file",
        "configuration_error",
        "paramiko_key_unusable",
        id="paramiko_key_unusable-2",
    ),
    pytest.param(
        "Airflow SSH provider",
        "tb",
        "airflow.exceptions.AirflowException: SSH operator error: exit status = 1",
        "unknown",
        "ssh_operator_exit_status",
        id="ssh_operator_exit_status-1",
    ),
    pytest.param(
        "Airflow SSH provider",
        "tb",
        "airflow.exceptions.AirflowException: SSH operator error: exit status = 137",
        "resource_error",
        "exit_code_137",
        id="exit_code_137-2",
    ),
    pytest.param(
        "smtplib",
        "tb",
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed",
        "dependency_failure",
        "connection_dropped_midstream",
        id="connection_dropped_midstream-6",
    ),
    pytest.param(
        "smtplib",
        "tb",
        (
            "smtplib.SMTPRecipientsRefused: {'ops@example.com': (550, b'5.1.1 <ops@example.com>: Recipient "
            "address rejected: User unknown in virtual mailbox table')}"
        ),
        "configuration_error",
        "smtp_rejected_address",
        id="smtp_rejected_address-2",
    ),
    pytest.param(
        "smtplib",
        "tb",
        "smtplib.SMTPNotSupportedError: SMTP AUTH extension not supported by server.",
        "configuration_error",
        "smtp_rejected_address",
        id="smtp_rejected_address-3",
    ),
    pytest.param(
        "confluent-kafka (librdkafka)",
        "tb",
        (
            'cimpl.KafkaException: KafkaError{code=TOPIC_AUTHORIZATION_FAILED,val=29,str="Broker: Topic '
            'authorization failed"}'
        ),
        "permission_error",
        "kafka_authorization_failed",
        id="kafka_authorization_failed-1",
    ),
    pytest.param(
        "confluent-kafka (librdkafka)",
        "tb",
        ('cimpl.KafkaException: KafkaError{code=UNKNOWN_TOPIC_OR_PART,val=3,str="Broker: Unknown topic or partition"}'),
        "configuration_error",
        "kafka_unknown_topic",
        id="kafka_unknown_topic-1",
    ),
    pytest.param(
        "kafka-python",
        "tb",
        "kafka.errors.UnknownTopicOrPartitionError: [Error 3] UnknownTopicOrPartitionError: etl-events",
        "configuration_error",
        "kafka_unknown_topic",
        id="kafka_unknown_topic-2",
    ),
    pytest.param(
        "confluent-kafka (librdkafka)",
        "tb",
        'cimpl.KafkaException: KafkaError{code=_ALL_BROKERS_DOWN,val=-187,str="1/1 brokers are down"}',
        "dependency_failure",
        "kafka_brokers_down",
        id="kafka_brokers_down-1",
    ),
    pytest.param(
        "confluent-kafka (librdkafka)",
        "tb",
        (
            'cimpl.KafkaException: KafkaError{code=_TRANSPORT,val=-195,str="FindCoordinator response error: '
            'Local: Broker transport failure"}'
        ),
        "dependency_failure",
        "kafka_brokers_down",
        id="kafka_brokers_down-2",
    ),
    pytest.param(
        "pymongo",
        "tb",
        (
            "pymongo.errors.OperationFailure: not authorized on analytics to execute command { insert: "
            "\"events\", ordered: true, $db: \"analytics\" }, full error: {'ok': 0.0, 'errmsg': 'not "
            'authorized on analytics to execute command { insert: "events", ordered: true, $db: "analytics" '
            "}', 'code': 13, 'codeName': 'Unauthorized'}"
        ),
        "permission_error",
        "mongo_not_authorized",
        id="mongo_not_authorized-1",
    ),
    pytest.param(
        "pymongo",
        "tb",
        (
            "pymongo.errors.BulkWriteError: batch op errors occurred, full error: {'writeErrors': [{'index': "
            "0, 'code': 11000, 'errmsg': 'E11000 duplicate key error collection: analytics.events index: "
            "_id_ dup key: { _id: 42 }'}]}"
        ),
        "data_quality",
        "sql_duplicate_rows",
        id="sql_duplicate_rows-3",
    ),
    pytest.param(
        "pymongo",
        "tb",
        (
            "pymongo.errors.DocumentTooLarge: BSON document too large (17825792 bytes) - the connected "
            "server supports BSON document sizes up to 16793598 bytes."
        ),
        "data_quality",
        "mongo_document_invalid",
        id="mongo_document_invalid-1",
    ),
    pytest.param(
        "pymongo",
        "tb",
        (
            "pymongo.errors.WriteError: Document failed validation, full error: {'index': 0, 'code': 121, "
            "'errmsg': 'Document failed validation'}"
        ),
        "data_quality",
        "mongo_document_invalid",
        id="mongo_document_invalid-2",
    ),
    pytest.param(
        "pymongo",
        "tb",
        "pymongo.errors.AutoReconnect: mongo-0.mongo:27017: connection closed",
        "dependency_failure",
        "mongo_primary_unavailable",
        id="mongo_primary_unavailable-1",
    ),
    pytest.param(
        "pymongo",
        "tb",
        (
            "pymongo.errors.NotPrimaryError: not primary, full error: {'ok': 0.0, 'errmsg': 'not primary', "
            "'code': 10107, 'codeName': 'NotWritablePrimary'}"
        ),
        "dependency_failure",
        "mongo_primary_unavailable",
        id="mongo_primary_unavailable-2",
    ),
    pytest.param(
        "redis-py",
        "tb",
        "redis.exceptions.BusyLoadingError: Redis is loading the dataset in memory",
        "dependency_failure",
        "redis_loading",
        id="redis_loading-1",
    ),
    pytest.param(
        "redis-py",
        "tb",
        (
            "redis.exceptions.ResponseError: MISCONF Redis is configured to save RDB snapshots, but it's "
            "currently unable to persist to disk. Commands that may modify the data set are disabled, "
            "because this instance is configured to report errors during writes if RDB snapshotting fails "
            "(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB "
            "error."
        ),
        "resource_error",
        "redis_misconf_persist",
        id="redis_misconf_persist-1",
    ),
    pytest.param(
        "azure-identity (Microsoft Entra ID)",
        "tb",
        (
            "azure.core.exceptions.ClientAuthenticationError: Authentication failed: AADSTS7000222: The "
            "provided client secret keys for app '6b2d1d92-7018-4182-b70e-821127bec509' are expired. Visit "
            "the Azure portal to create new keys for your app."
        ),
        "permission_error",
        "azure_client_secret_expired",
        id="azure_client_secret_expired-1",
    ),
    pytest.param(
        "azure-identity (Microsoft Entra ID)",
        "tb",
        (
            "azure.core.exceptions.ClientAuthenticationError: Authentication failed: AADSTS700016: "
            "Application with identifier '6b2d1d92-7018-4182-b70e-821127bec509' was not found in the "
            "directory 'contoso'."
        ),
        "configuration_error",
        "azure_app_not_found",
        id="azure_app_not_found-1",
    ),
    pytest.param(
        "Azure Storage",
        "tb",
        (
            "azure.core.exceptions.HttpResponseError: Operations per second is over the account "
            "limit.\nErrorCode:ServerBusy"
        ),
        "resource_error",
        "azure_server_busy",
        id="azure_server_busy-1",
    ),
    pytest.param(
        "Airflow scheduler",
        "plain",
        (
            "The executor reported that the task instance <TaskInstance: etl.load "
            "scheduled__2024-01-01T00:00:00+00:00 [queued]> finished with state failed, but the task "
            "instance's state attribute is queued. Learn more: "
            "https://airflow.apache.org/docs/apache-airflow/st"
            "able/troubleshooting.html#task-state-changed-externally"
        ),
        "resource_error",
        "airflow_executor_state_mismatch",
        id="airflow_executor_state_mismatch-1",
    ),
    pytest.param(
        "Airflow scheduler",
        "plain",
        (
            "Detected a task instance without a heartbeat: TaskCallbackRequest(filepath='etl.py') (See "
            "https://airflow.apache.org/docs/apache-airflow/st"
            "able/core-concepts/tasks.html#task-instance-heartbeat-timeout)"
        ),
        "resource_error",
        "airflow_executor_state_mismatch",
        id="airflow_executor_state_mismatch-2",
    ),
    pytest.param(
        "Airflow task SDK",
        "plain",
        "Server indicated the task shouldn't be running anymore. Terminating process",
        "unknown",
        "airflow_server_terminated_task",
        id="airflow_server_terminated_task-1",
    ),
    pytest.param(
        "Celery (billiard)",
        "tb",
        "billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 12.",
        "resource_error",
        "celery_worker_sigkill",
        id="celery_worker_sigkill-1",
    ),
    pytest.param(
        "SQLAlchemy",
        "tb",
        "sqlalchemy.exc.NoSuchModuleError: Can't load plugin: sqlalchemy.dialects:postgres",
        "configuration_error",
        "sqlalchemy_postgres_scheme",
        id="sqlalchemy_postgres_scheme-1",
    ),
]

# Look-alikes: messages of other categories that the rules above must leave alone.
LOOK_ALIKES = [
    pytest.param(
        "tb",
        "psycopg2.errors.QueryCanceled: canceling statement due to statement timeout",
        "timeout_error",
        id="timeout_error-1",
    ),
    pytest.param(
        "tb",
        "EXCEEDED_TIME_LIMIT: Query exceeded maximum time limit of 30.00m",
        "timeout_error",
        id="timeout_error-2",
    ),
    pytest.param(
        "tb",
        (
            'psycopg2.OperationalError: connection to server at "pg" (10.0.0.5), port 5432 failed: FATAL:  '
            'password authentication failed for user "etl"'
        ),
        "permission_error",
        id="permission_error-1",
    ),
    pytest.param(
        "tb",
        'psycopg2.errors.UndefinedTable: relation "products" does not exist',
        "configuration_error",
        id="configuration_error-1",
    ),
    pytest.param(
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 002003 (42S02): SQL compilation error: Object 'X' "
            "does not exist or not authorized."
        ),
        "configuration_error",
        id="configuration_error-2",
    ),
    pytest.param(
        "tb",
        (
            "snowflake.connector.errors.ProgrammingError: 000630 (57014): Statement reached its statement or "
            "warehouse timeout of 3600 second(s) and was canceled."
        ),
        "timeout_error",
        id="timeout_error-3",
    ),
    pytest.param(
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (NoSuchKey) when calling the GetObject "
            "operation: The specified key does not exist."
        ),
        "data_quality",
        id="data_quality-1",
    ),
    pytest.param(
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the GetObject "
            "operation: Access Denied"
        ),
        "permission_error",
        id="permission_error-2",
    ),
    pytest.param(
        "tb",
        (
            "botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling the "
            "StartQueryExecution operation (reached max retries: 4): Rate exceeded"
        ),
        "resource_error",
        id="resource_error-1",
    ),
    pytest.param(
        "tb",
        "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://api.example.com/v1",
        "dependency_failure",
        id="dependency_failure-1",
    ),
    pytest.param(
        "tb",
        "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.example.com/v1",
        "permission_error",
        id="permission_error-3",
    ),
    pytest.param(
        "plain",
        (
            "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: 4 No "
            "preemption victims found for incoming pod."
        ),
        "resource_error",
        id="resource_error-2",
    ),
    pytest.param(
        "tb",
        "pandas.errors.ParserError: Error tokenizing data. C error: Expected 5 fields in line 3, saw 6",
        "data_quality",
        id="data_quality-2",
    ),
    pytest.param(
        "tb",
        "kubernetes.client.exceptions.ApiException: (403)",
        "permission_error",
        id="permission_error-4",
    ),
    pytest.param(
        "tb",
        "ValueError: could not convert string to float: 'abc'",
        "data_quality",
        id="data_quality-3",
    ),
    pytest.param(
        "tb",
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        "data_quality",
        id="data_quality-4",
    ),
    pytest.param(
        "tb",
        "pymongo.errors.ServerSelectionTimeoutError: mongo:27017: [Errno 111] Connection refused",
        "dependency_failure",
        id="dependency_failure-2",
    ),
    pytest.param(
        "tb",
        (
            "airflow.exceptions.AirflowSensorTimeout: Sensor has timed out; run duration of 3600.12 seconds "
            "exceeds the specified timeout of 3600.0."
        ),
        "timeout_error",
        id="timeout_error-4",
    ),
    pytest.param(
        "tb",
        "airflow.exceptions.AirflowException: Bash command failed. The command returned a non-zero exit code 1.",
        "unknown",
        id="unknown-1",
    ),
    pytest.param(
        "tb",
        "ValueError: fail on purpose",
        "unknown",
        id="unknown-2",
    ),
    pytest.param(
        "plain",
        (
            "0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. "
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ),
        "resource_error",
        id="resource_error-node-not-ready-taint",
    ),
]


@pytest.mark.parametrize(("library", "mode", "message", "category", "rule_id"), LIBRARY_MESSAGES)
def test_library_message_gets_its_category(library, mode, message, category, rule_id):
    got_category, got_rule = diagnose(task_log(mode, message))
    assert got_category == category, f"{library}: {message!r} read by {got_rule}"
    if rule_id is not None:
        assert got_rule == rule_id, f"{library}: {message!r}"


@pytest.mark.parametrize(("mode", "message", "category"), LOOK_ALIKES)
def test_look_alike_keeps_its_category(mode, message, category):
    got_category, got_rule = diagnose(task_log(mode, message))
    assert got_category == category, f"{message!r} read by {got_rule}"


def _kubernetes_api_exception(body_message: str) -> str:
    """The kubernetes client's ApiException as it is printed: status, reason, headers, then the JSON body."""
    return (
        "kubernetes.client.exceptions.ApiException: (403)\n"
        "Reason: Forbidden\n"
        "HTTP response headers: HTTPHeaderDict({'Audit-Id': '5e1c', 'Content-Type': 'application/json'})\n"
        'HTTP response body: {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        f'"message":"pods \\"etl-abc\\" is forbidden: {body_message}","reason":"Forbidden","code":403}}'
    )


@pytest.mark.parametrize(
    ("body_message", "category", "rule_id"),
    [
        (
            "exceeded quota: compute-resources, requested: limits.memory=8Gi, used: limits.memory=60Gi, "
            "limited: limits.memory=64Gi",
            "resource_error",
            "k8s_resource_quota_exceeded",
        ),
        (
            "failed quota: compute-resources: must specify limits.cpu for: base; limits.memory for: base",
            "configuration_error",
            "k8s_quota_needs_limits",
        ),
    ],
    ids=["exceeded-quota", "quota-needs-limits"],
)
def test_quota_in_the_body_outranks_the_403_status(body_message, category, rule_id):
    assert diagnose(task_log("tb", _kubernetes_api_exception(body_message))) == (category, rule_id)


def test_bare_kubernetes_403_is_a_permission_error():
    log = task_log("tb", "kubernetes.client.exceptions.ApiException: (403)\nReason: Forbidden")
    assert diagnose(log)[0] == "permission_error"


def test_dbt_node_header_leaves_the_category_to_the_database_message():
    log = (
        f"{START}{TS} {{subprocess.py:93}} INFO - 10:02:11  Database Error in model stg_orders "
        "(models/staging/stg_orders.sql)\n"
        f'{TS} {{subprocess.py:93}} INFO -   relation "raw.orders" does not exist\n'
        f"{TS} {{subprocess.py:93}} INFO - 10:02:11  Done. PASS=3 WARN=0 ERROR=1 SKIP=0 TOTAL=4\n"
    )
    assert diagnose(log) == ("configuration_error", "sql_object_missing")


def test_mysql_lock_wait_timeout_is_contention_not_a_time_limit():
    message = "MySQLdb.OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')"
    result = analyze_heuristically(extract_text(task_log("tb", message), rules=load_rules(), max_context_chars=6000))
    assert result.category == "resource_error"
    assert "db_deadlock" in result.reasoning
