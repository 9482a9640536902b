"""``dagnostics_provider.compat``: the one place where Airflow 3.1 and 3.3 differ (``make test-compat`` runs the
plugin, listener, notifier and trigger tests on 3.1 itself)."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer

from dagnostics_provider import compat


def test_moved_names_resolve_to_what_this_airflow_has():
    from airflow.sdk import BaseOperator

    assert issubclass(compat.AirflowSkipException, Exception)
    assert compat.AssetOrTimeSchedule.__name__ == "AssetOrTimeSchedule"
    assert compat.CronTriggerTimetable.__name__ == "CronTriggerTimetable"
    compat.CronTriggerTimetable("*/5 * * * *", timezone="UTC")  # the signature the analyze DAG uses
    assert BaseOperator  # the SDK names that did not move are imported directly
    with pytest.raises(AttributeError):
        compat.NoSuchName  # noqa: B018


@pytest.mark.parametrize(
    ("encodes", "value", "expected"),
    [
        (True, "manual__2026-01-01T00:00:00+00:00", "manual__2026-01-01T00:00:00+00:00"),
        # Airflow 3.1 puts the raw run id into the query string, where its "+" arrives as a space.
        (False, "manual__2026-01-01T00:00:00 00:00", "manual__2026-01-01T00:00:00+00:00"),
        (True, "{RUN_ID}", None),  # left unfilled
        (False, None, None),
    ],
)
def test_external_view_args_arrive_as_the_ids_they_were(monkeypatch, encodes, value, expected):
    monkeypatch.setattr(compat, "ui_encodes_href_placeholders", lambda: encodes)
    assert compat.external_view_arg(value, "{RUN_ID}") == expected


def test_log_paging_is_resumed_by_the_client_only_before_3_2():
    assert not compat.log_token_resumes("3.1.8")
    assert compat.log_token_resumes("3.2.0") and compat.log_token_resumes("3.3.2")
    assert compat.log_token_resumes("not-a-version")  # unknown: assume fixed
    token = URLSafeSerializer("server-secret").dumps({"end_of_log": False, "log_pos": 42})
    assert compat.log_messages_already_sent(token) == 42
    assert compat.log_messages_already_sent(URLSafeSerializer("s").dumps({"end_of_log": True})) == 0


def test_multi_team_and_dag_test_exceptions_follow_the_installed_versions():
    if compat.airflow_version() >= (3, 2, 0):
        assert compat.has_multi_team()
    else:
        assert not compat.has_multi_team() and not compat.multi_team_enabled()
    from airflow.sdk import __version__ as sdk_version

    assert compat.dag_test_passes_exception() == (tuple(int(p) for p in sdk_version.split(".")[:2]) >= (1, 3))
