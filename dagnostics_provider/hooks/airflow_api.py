"""Airflow's own REST API (v2), as DAGnostics uses it: task logs and failed task instances.

Task code may not touch the metadata DB in Airflow 3, and with remote logging or remote workers only the
api-server knows where a log lives, so everything DAGnostics reads from Airflow goes through the public API.

Behaviour this hook is built on (checked against Airflow 3.3.2 with the FAB and the simple auth manager):

* ``POST /auth/token`` with JSON ``{"username", "password"}`` answers 201 ``{"access_token": <JWT>}`` under both
  auth managers; the simple auth manager in ``simple_auth_manager_all_admins`` mode hands one out on
  ``GET /auth/token`` without credentials. A token lives ``[api_auth] jwt_expiration_time`` seconds (24 h by
  default); an expired one is answered 401 "Token Expired".
* ``GET …/taskInstances/{task_id}/logs/{try_number}`` with ``Accept: application/x-ndjson`` streams the whole log,
  one JSON object per line, without the api-server building it in memory. Its ``Airflow-Continuation-Token``
  header is computed before the stream is read, so it never advances: following it reads the log again from
  the start, and this hook ignores it. ``Accept: application/json`` returns ``{"content": [...],
  "continuation_token": ...}`` with the whole chunk in one body; its token does advance, and is only set while
  the try is still running. ``text/plain`` is refused with 406.
* Either format starts with a ``::group::Log message source details`` … ``::endgroup::`` block naming where the
  api-server looked (a local path, the worker's log server on port 8793, remote storage); when nothing was found
  that block is all there is.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from airflow.sdk import BaseHook  # in every Airflow DAGnostics supports (3.1 and later)

from dagnostics_provider import __version__, compat, config
from dagnostics_provider.logs import CHUNK_BYTES, bounded_chunks, split_lines

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
JSON = "application/json"
DEFAULT_BASE_URL = "http://localhost:8080"
# Refresh a token this long before it expires (capped at a tenth of its lifetime for short-lived tokens).
REFRESH_MARGIN_SECONDS = 60.0
# The api-server caps list pages at [api] maximum_page_limit, 100 by default.
PAGE_SIZE = 100
SOURCE_DETAILS_GROUP = "::group::Log message source details"


class AirflowApiError(RuntimeError):
    """A call to Airflow's REST API failed. ``status`` is the HTTP status, ``None`` when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message if status is None else f"{message} (HTTP {status})")
        self.message = message
        self.status = status


class TaskLogNotFound(AirflowApiError):
    """The api-server knows no log for the try: unknown task instance, or no source holds its log."""


@dataclass(frozen=True)
class LogPage:
    """One JSON page of a task log: lines ending in ``\\n`` and the token for the next page, if any."""

    lines: list[bytes]
    continuation_token: str | None


@dataclass(frozen=True)
class _Endpoint:
    base_url: str
    username: str | None
    password: str | None = field(repr=False)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float | None  # epoch seconds; None: keep it until the server rejects it

    @classmethod
    def parse(cls, value: str) -> _Token:
        """Read ``exp`` (and ``iat``) from the JWT payload; no signature check, the server does that."""
        try:
            payload = value.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return cls(value, None)
        expires = claims.get("exp") if isinstance(claims, dict) else None
        if not isinstance(expires, (int, float)):
            return cls(value, None)
        issued = claims.get("iat")
        margin = REFRESH_MARGIN_SECONDS
        if isinstance(issued, (int, float)) and expires > issued:
            margin = min(margin, (expires - issued) / 10)
        return cls(value, expires - margin)

    def usable(self) -> bool:
        return self.refresh_at is None or time.time() < self.refresh_at


def _quote(value: str | int) -> str:
    return quote(str(value), safe="")


def _describe(dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> str:
    mapped = f"[{map_index}]" if map_index >= 0 else ""
    return f"try {try_number} of {dag_id}/{run_id}/{task_id}{mapped}"


def _as_lines(item: Any) -> list[bytes]:
    """One ``content`` item of a JSON page as log lines: structured messages re-serialised, strings as text."""
    if isinstance(item, str):
        return list(split_lines([item.encode()]))
    return [json.dumps(item, separators=(",", ":")).encode() + b"\n"]


def _event(line: bytes) -> str | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message.get("event") if isinstance(message, dict) else None


def _without_source_details(lines: Iterator[bytes], description: str) -> Iterator[bytes]:
    """Drop the source-details block the api-server puts first; fail clearly when nothing follows it."""
    sources: list[str] = []
    in_block = False
    has_body = False
    for index, line in enumerate(lines):
        if index == 0 and _event(line) == SOURCE_DETAILS_GROUP:
            in_block = True
            # Earlier Airflow 3 releases list the sources in the group line itself; 3.3 sends a line per source.
            sources.extend(str(s) for s in (json.loads(line).get("sources") or []))
            continue
        if in_block:
            event = _event(line)
            if event == "::endgroup::":
                in_block = False
                log.debug("Log of %s read from: %s", description, "; ".join(sources))
            elif event:
                sources.append(event)
            continue
        has_body = True
        yield line
    if not has_body:
        where = "; ".join(sources) or "no source listed"
        raise TaskLogNotFound(f"Airflow has no log for {description} (log sources: {where})", 404)


class AirflowApiHook(BaseHook):
    """Talks to Airflow's REST API v2 with a cached JWT.

    The connection (``[dagnostics] airflow_api_conn_id``, default ``airflow_api_default``) is an HTTP connection:
    host (optionally a full URL with a base path), port, ``https`` as schema or connection type for TLS, and the
    login and password of a user who may read task logs. Without that connection the hook calls ``[api]
    base_url`` (or http://localhost:8080) without credentials.
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "airflow_api_default"
    conn_type = "http"
    hook_name = "Airflow REST API"

    def __init__(
        self,
        airflow_api_conn_id: str | None = None,
        *,
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_log_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id or config.get("airflow_api_conn_id")
        self.timeout = timeout
        self.max_log_bytes = config.get_int("max_log_bytes") if max_log_bytes is None else max_log_bytes
        self._token: _Token | None = None

    # -- connection and authentication -------------------------------------------------------------------------

    @cached_property
    def _endpoint(self) -> _Endpoint:
        from airflow.configuration import conf
        from airflow.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.airflow_api_conn_id)
        except AirflowNotFoundException:
            base_url = conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL
            log.info(
                "No connection %r; calling the Airflow API at %s without credentials",
                self.airflow_api_conn_id,
                base_url,
            )
            return _Endpoint(base_url.rstrip("/"), None, None)
        host = (conn.host or "").strip()
        if not host:
            raise AirflowApiError(f"connection {self.airflow_api_conn_id!r} names no host")
        schema = (conn.schema or "").strip().strip("/")
        if "://" not in host:
            scheme = "https" if "https" in (schema.lower(), (conn.conn_type or "").lower()) else "http"
            # An HTTP connection given as a URI keeps the URI's path in ``schema``: it is the base path.
            path = "" if schema.lower() in ("http", "https") else schema
            host = f"{scheme}://{host}/{path}"
        parts = urlsplit(host)
        if conn.port and not parts.port:
            parts = parts._replace(netloc=f"{parts.hostname}:{conn.port}")
        return _Endpoint(urlunsplit(parts).rstrip("/"), conn.login or None, conn.password or None)

    @property
    def base_url(self) -> str:
        """Where the api-server answers, e.g. ``http://localhost:8080`` (``[api] base_url`` may add a path)."""
        return self._endpoint.base_url

    @cached_property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = f"dagnostics/{__version__}"
        return session

    def get_conn(self) -> requests.Session:
        """The HTTP session all calls share (connection pooling; tests hook into it to watch the traffic)."""
        return self._session

    def _redact(self, text: str) -> str:
        """Servers echo request bodies in validation errors: never let a password or token reach a message."""
        for secret in (self._endpoint.password, self._token.value if self._token else None):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _detail(self, response: requests.Response) -> str:
        """The server's reason: FastAPI's JSON ``detail``, else the status reason (bodies may be HTML pages)."""
        try:
            body = response.json()
        except ValueError:
            return response.reason or "no reason given"
        detail = body.get("detail", body) if isinstance(body, dict) else body
        return self._redact(detail if isinstance(detail, str) else json.dumps(detail)[:300])

    def _fetch_token(self) -> _Token:
        endpoint = self._endpoint
        url = f"{endpoint.base_url}/auth/token"
        try:
            if endpoint.username:
                body = {"username": endpoint.username, "password": endpoint.password or ""}
                response = self._session.post(url, json=body, timeout=self.timeout)
            else:
                response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AirflowApiError(f"cannot reach the Airflow API at {endpoint.base_url}: {exc}") from None
        with response:
            if response.status_code in (200, 201):
                try:
                    token = response.json().get("access_token")
                except (ValueError, AttributeError):
                    token = None
                if not isinstance(token, str) or not token:
                    raise AirflowApiError(f"{url} answered without an access_token", response.status_code)
                log.debug("Fetched an Airflow API token for %s", endpoint.username or "(no credentials)")
                return _Token.parse(token)
            detail = self._detail(response)
        if not endpoint.username:
            raise AirflowApiError(
                f"the Airflow API at {endpoint.base_url} requires credentials ({detail}): give connection "
                f"{self.airflow_api_conn_id!r} the login and password of a user who may read task logs",
                response.status_code,
            )
        raise AirflowApiError(
            f"the Airflow API at {endpoint.base_url} refused the credentials of connection "
            f"{self.airflow_api_conn_id!r} for user {endpoint.username!r}: {detail}",
            response.status_code,
        )

    def _bearer(self) -> str:
        if self._token is None or not self._token.usable():
            self._token = self._fetch_token()
        return f"Bearer {self._token.value}"

    def _request(
        self,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        accept: str = JSON,
        stream: bool = False,
        not_found: type[AirflowApiError] = AirflowApiError,
    ) -> requests.Response:
        """GET ``path`` with the cached token; on 401 fetch a new token once and retry."""
        url = f"{self.base_url}{path}"
        for attempt in (1, 2):
            headers = {"Accept": accept, "Authorization": self._bearer()}
            try:
                response = self._session.get(url, params=params, headers=headers, stream=stream, timeout=self.timeout)
            except requests.RequestException as exc:
                raise AirflowApiError(f"cannot reach the Airflow API at {self.base_url} for {what}: {exc}") from None
            if response.status_code == 401 and attempt == 1:
                response.close()
                log.info("The Airflow API rejected the cached token; fetching a new one")
                self._token = None
                continue
            break
        if response.status_code < 400:
            return response
        with response:
            detail = self._detail(response)
        error = not_found if response.status_code == 404 else AirflowApiError
        raise error(f"reading {what} from the Airflow API failed: {detail}", response.status_code)

    @cached_property
    def server_version(self) -> str:
        """The api-server's Airflow version (``GET /api/v2/version``); empty when it does not say."""
        response = self._request("/api/v2/version", what="the Airflow version")
        with response:
            try:
                version = response.json().get("version")
            except (ValueError, AttributeError):
                version = None
        return version if isinstance(version, str) else ""

    # -- task logs -------------------------------------------------------------------------------------------------

    def _log_path(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        return (
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
            f"/logs/{_quote(try_number)}"
        )

    def task_log_url(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The API address of one try's log: a stable reference to where a log was read from."""
        url = f"{self.base_url}{self._log_path(dag_id, run_id, task_id, try_number)}"
        return f"{url}?map_index={map_index}" if map_index >= 0 else url

    def read_log_page(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        map_index: int = -1,
        continuation_token: str | None = None,
    ) -> LogPage:
        """One JSON page of a try's log, from the start or from where ``continuation_token`` left off.

        A page holds everything the api-server could read at that moment, in one body: prefer
        :meth:`iter_task_log`, which streams. Pages are for following a try that is still running: the page
        carries a token while it runs, and the next page returns only the lines written since.
        """
        params: dict[str, Any] = {"map_index": map_index}
        if continuation_token:
            params["token"] = continuation_token
        description = _describe(dag_id, run_id, task_id, try_number, map_index)
        response = self._request(
            self._log_path(dag_id, run_id, task_id, try_number),
            what=f"the log of {description}",
            params=params,
            not_found=TaskLogNotFound,
        )
        with response:
            body = response.json()
        items = body.get("content") or []
        if continuation_token and not compat.log_token_resumes(self.server_version):
            # Airflow 3.1 ignores where the token says the last page ended and sends the whole log again.
            items = items[compat.log_messages_already_sent(continuation_token) :]
        lines = [line for item in items for line in _as_lines(item)]
        return LogPage(lines=lines, continuation_token=body.get("continuation_token") or None)

    def _paged_lines(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int) -> Iterator[bytes]:
        token: str | None = None
        while True:
            page = self.read_log_page(dag_id, run_id, task_id, try_number, map_index, token)
            yield from page.lines
            if not page.continuation_token or not page.lines:
                return
            token = page.continuation_token

    def _streamed_lines(self, response: requests.Response, description: str) -> Iterator[bytes]:
        with response:
            try:
                yield from split_lines(response.iter_content(chunk_size=CHUNK_BYTES))
            except requests.RequestException as exc:
                raise AirflowApiError(
                    f"the log stream of {description} from {self.base_url} broke off: {exc}"
                ) from None

    def iter_task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> Iterator[bytes]:
        """Stream one try's log as line-aligned chunks of JSON lines (plain-text lines stay text).

        The request is made (and its errors raised) when this is called; the body is read as the caller
        iterates. At most ``max_log_bytes`` are read, then a truncation notice ends the log. The api-server's
        source-details block is dropped; when it is all the server has, iterating raises
        :class:`TaskLogNotFound`. A try that is still running yields what it has written so far.
        """
        description = _describe(dag_id, run_id, task_id, try_number, map_index)
        lines: Iterator[bytes]
        try:
            response = self._request(
                self._log_path(dag_id, run_id, task_id, try_number),
                what=f"the log of {description}",
                params={"map_index": map_index, "full_content": "true"},
                accept=NDJSON,
                stream=True,
                not_found=TaskLogNotFound,
            )
        except AirflowApiError as exc:
            if exc.status != 406:
                raise
            # api-servers without NDJSON log streaming (early 3.0 releases) refuse it: read JSON pages instead.
            lines = self._paged_lines(dag_id, run_id, task_id, try_number, map_index)
        else:
            lines = self._streamed_lines(response, description)
        return bounded_chunks(_without_source_details(lines, description), self.max_log_bytes)

    # -- task instances --------------------------------------------------------------------------------------------

    def get_task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The API's TaskInstanceResponse: state, try_number, start/end dates, hostname, executor…"""
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        response = self._request(path, what=f"task instance {dag_id}/{run_id}/{task_id}")
        with response:
            return response.json()

    def list_failed_task_instances(self, since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Failed task instances of every DAG, oldest end first, that ended at or after ``since``.

        Meant for backfilling failures the listener missed (a worker killed before it reported, the provider
        installed after the fact). ``since`` without a timezone is taken as UTC. Pages through the API at most
        ``limit`` results.
        """
        params: list[tuple[str, Any]] = [("state", "failed"), ("order_by", "end_date"), ("order_by", "id")]
        if since is not None:
            aware = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
            params.append(("end_date_gte", aware.isoformat()))
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            page_size = min(PAGE_SIZE, limit - len(found))
            response = self._request(
                "/api/v2/dags/~/dagRuns/~/taskInstances",
                what="failed task instances",
                params=[*params, ("limit", page_size), ("offset", len(found))],
            )
            with response:
                page = response.json().get("task_instances") or []
            found.extend(page)
            if len(page) < page_size:
                break
        return found
