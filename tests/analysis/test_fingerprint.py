"""Fingerprints group repeats of one failure and keep different failures apart."""

from __future__ import annotations

import pytest

from dagnostics_provider.analysis.extraction import extract_text
from dagnostics_provider.analysis.fingerprint import fingerprint, normalise_message
from dagnostics_provider.analysis.heuristic import analyze_heuristically
from dagnostics_provider.analysis.rules import load_rules


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('relation "orders_2024" does not exist', "relation '<str>' does not exist"),
        ("user bob@example.com denied", "user <email> denied"),
        ("run 7f9c2b1a-1234-4abc-9def-0123456789ab failed", "run <uuid> failed"),
        ("at 2024-05-02T10:15:32.123Z and 10:15:33", "at <ts> and <ts>"),
        ("connect to 10.0.0.5:5432 refused", "connect to <ip> refused"),
        ("No such file or directory: /data/in/part-0001.csv", "No such file or directory: <path>"),
        ("401 Client Error: Unauthorized for url: https://api.x.com/v1/items?token=abc", None),
        ("object at 0x7f3a2b1c fingerprint deadbeef0123", "object at <hex> fingerprint <hex>"),
        ("Lost task 3.3 in stage 2.0 (TID 45)", "Lost task <n> in stage <n> (TID <n>)"),
    ],
)
def test_run_specific_details_are_masked(message, expected):
    normalised = normalise_message(message)
    if expected is not None:
        assert normalised == expected
    else:
        assert "abc" not in normalised and "401 Client Error" in normalised and "api.x.com" in normalised


def test_error_codes_and_names_survive():
    assert normalise_message("[Errno 13] Permission denied") == "[Errno 13] Permission denied"
    assert normalise_message("ORA-00942: table or view does not exist") == "ORA-00942: table or view does not exist"
    assert (
        normalise_message("*** Failure 3807 Object 'x' does not exist.")
        == "*** Failure 3807 Object '<str>' does not exist."
    )
    assert (
        normalise_message("py4j.protocol.Py4JJavaError: on s3://bucket/x")
        == "py4j.protocol.Py4JJavaError: on s3://bucket/<url>"
    )


def test_fingerprint_shape_and_type_spelling():
    value = fingerprint("psycopg2.errors.UndefinedTable", 'relation "a" does not exist')
    assert len(value) == 64 and int(value, 16) >= 0
    assert value == fingerprint("UndefinedTable", 'relation "b" does not exist')
    assert value != fingerprint("UndefinedColumn", 'relation "a" does not exist')
    assert fingerprint(None, "x") == fingerprint("", "x")


def test_different_errors_fingerprint_apart():
    messages = [
        "401 Client Error: Unauthorized for url: https://api.x.com/v1",
        "403 Client Error: Forbidden for url: https://api.x.com/v1",
        "[Errno 2] No such file or directory: '/a/b'",
        "[Errno 13] Permission denied: '/a/b'",
        'relation "a" does not exist',
        'column "a" does not exist',
    ]
    assert len({fingerprint("E", m) for m in messages}) == len(messages)


TEMPLATE = """\
[{date}, 10:15:{sec} UTC] {{taskinstance.py:1979}} INFO - Starting attempt 1 run_id=scheduled__{date}T00:00:00+00:00
[{date}, 10:15:{sec} UTC] {{subprocess.py:93}} INFO - Loading s3://lake/raw/dt={date}/part-{part}.csv (job {job})
[{date}, 10:16:{sec} UTC] {{taskinstance.py:2698}} ERROR - Task failed with exception
Traceback (most recent call last):
  File "/opt/airflow/dags/load.py", line {lineno}, in load
botocore.errorfactory.NoSuchKey: An error occurred (NoSuchKey) when calling the GetObject operation: \
key raw/dt={date}/part-{part}.csv, request {req}
"""


def _fingerprint_of(log: str) -> str:
    extraction = extract_text(log, rules=load_rules(), max_context_chars=6000)
    result = analyze_heuristically(extraction)
    return fingerprint(extraction.exception_type, result.error_message)


def test_two_logs_of_one_failure_differing_only_in_ids_and_times_group_together():
    first = TEMPLATE.format(date="2024-05-02", sec="01", part="0001", job=1234, lineno=10, req="8f1e2d3c4b5a6978")
    second = TEMPLATE.format(date="2024-06-17", sec="59", part="0042", job=98765, lineno=10, req="0a1b2c3d4e5f6071")
    assert _fingerprint_of(first) == _fingerprint_of(second)


def test_two_different_failures_do_not_group():
    first = TEMPLATE.format(date="2024-05-02", sec="01", part="0001", job=1234, lineno=10, req="8f1e2d3c4b5a6978")
    other = first.replace("NoSuchKey: An error occurred (NoSuchKey)", "ClientError: An error occurred (AccessDenied)")
    assert _fingerprint_of(first) != _fingerprint_of(other)
