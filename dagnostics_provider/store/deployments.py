"""Deployments of model versions to Ollama servers, as recorded in the store.

Every attempt is a row that starts as ``started`` and ends ``succeeded`` or ``failed`` with the reason; a rollback
marks the row it replaces ``rolled_back`` and adds a ``succeeded`` row for the version it returns to. So the
newest succeeded row with an alias is, per server, the model the analyzer should ask, and the rows together are
the server's deployment history.

A server is named by its base URL, and one server has many spellings: the deploy step may have been pointed at
``http://localhost:11434/`` and the analyzer's connection at ``http://127.0.0.1:11434``. Rows are written with the
URL normalised (:func:`normalised_target`) and matched by :func:`server_key`, which also counts every loopback name
as the same host; matching compares keys in Python, so rows written before targets were normalised still match.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Deployment, DeploymentStatus, ModelVersion, utcnow

_MAX_DETAIL_CHARS = 4000
_DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOST = "localhost"


def normalised_target(target: str) -> str:
    """``target`` spelled one way: scheme and host in lower case, no default port, user info or trailing slash.

    The host is kept as given (``127.0.0.1`` stays), so a row still says which address the deployment used. A target
    that is not a URL is kept as it is (stripped): it can only match itself.
    """
    parts = _url_parts(target)
    return target.strip() if parts is None else _join(*parts)


def server_key(target: str) -> str:
    """What identifies the server at ``target``: its normalised URL with any loopback address as ``localhost``.

    ``localhost``, ``127.0.0.1`` (all of 127.0.0.0/8) and ``::1`` all name the machine the caller runs on, so they
    are one server wherever ``localhost`` already was: an Ollama on the Airflow host, addressed either way.
    """
    parts = _url_parts(target)
    if parts is None:
        return target.strip()
    scheme, host, port, path = parts
    return _join(scheme, LOOPBACK_HOST if _is_loopback(host) else host, port, path)


def _url_parts(target: str) -> tuple[str, str, int | None, str] | None:
    """Scheme, host (lower case, without IPv6 brackets), port and path without its trailing slash; None if no URL."""
    text = target.strip()
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        return None
    if not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname, port, parts.path.rstrip("/")


def _join(scheme: str, host: str, port: int | None, path: str) -> str:
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, path, "", ""))


def _is_loopback(host: str) -> bool:
    if host == LOOPBACK_HOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _newest_on_server(session: Session, query: Select, target: str) -> Deployment | None:
    """The newest row of ``query`` on the server at ``target``, detached from the session.

    Keys are compared in Python, not SQL, because rows written before targets were normalised hold them as they
    were spelled then; a store holds few deployments, so reading them newest first until one matches is cheap.
    """
    key = server_key(target)
    for row in session.scalars(query.order_by(Deployment.id.desc())):
        if server_key(row.target) == key:
            session.expunge(row)
            return row
    return None


def model_version_id(version: str, url: str | None = None) -> int:
    """The store id of a registered model version (deployments refer to it)."""
    with session_scope(url) as session:
        found = session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))
        if found is None:
            raise LookupError(f"no model version {version!r} in the DAGnostics store")
        return found


def start_deployment(model_version_id: int, target: str, ollama_model: str, url: str | None = None) -> int:
    """Record a deployment attempt before anything changes on the server; returns its id."""
    with session_scope(url) as session:
        row = Deployment(
            model_version_id=model_version_id,
            target=normalised_target(target),
            ollama_model=ollama_model,
            status=DeploymentStatus.started,
        )
        session.add(row)
        session.flush()
        return row.id


def finish_deployment(
    deployment_id: int,
    status: DeploymentStatus,
    *,
    detail: str | None = None,
    alias: str | None = None,
    url: str | None = None,
) -> None:
    """Close an attempt: ``succeeded`` (with the alias it now serves under, if promoted) or ``failed``."""
    with session_scope(url) as session:
        row = session.get(Deployment, deployment_id)
        if row is None:
            raise LookupError(f"no deployment with id {deployment_id} in the DAGnostics store")
        row.status = status
        row.detail = None if detail is None else detail[:_MAX_DETAIL_CHARS]
        row.alias = alias
        row.finished_at = utcnow()


def record_rollback(
    rolled_back_id: int | None, model_version_id: int, target: str, ollama_model: str, alias: str, detail: str, url=None
) -> int:
    """In one transaction: mark the serving deployment ``rolled_back`` and add the row of the version now serving."""
    with session_scope(url) as session:
        if rolled_back_id is not None:
            previous = session.get(Deployment, rolled_back_id)
            if previous is not None:
                previous.status = DeploymentStatus.rolled_back
        row = Deployment(
            model_version_id=model_version_id,
            target=normalised_target(target),
            ollama_model=ollama_model,
            alias=alias,
            status=DeploymentStatus.succeeded,
            detail=detail[:_MAX_DETAIL_CHARS],
            finished_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


def serving_deployment(target: str, url: str | None = None) -> Deployment | None:
    """The newest succeeded, promoted deployment on the server at ``target``: what its alias points at."""
    with session_scope(url) as session:
        query = select(Deployment).where(Deployment.status == DeploymentStatus.succeeded, Deployment.alias.is_not(None))
        return _newest_on_server(session, query, target)


def succeeded_deployment(model_version_id: int, target: str, url: str | None = None) -> Deployment | None:
    """The newest successful deployment of a version on ``target`` (whose tag a rollback can return to)."""
    with session_scope(url) as session:
        query = select(Deployment).where(
            Deployment.model_version_id == model_version_id,
            Deployment.status.in_((DeploymentStatus.succeeded, DeploymentStatus.rolled_back)),
        )
        return _newest_on_server(session, query, target)


def get_deployment(deployment_id: int, url: str | None = None) -> Deployment:
    with session_scope(url) as session:
        row = session.get(Deployment, deployment_id)
        if row is None:
            raise LookupError(f"no deployment with id {deployment_id} in the DAGnostics store")
        session.expunge(row)
        return row
