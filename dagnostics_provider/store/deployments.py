"""Deployments of model versions to Ollama servers, as recorded in the store.

Every attempt is a row that starts as ``started`` and ends ``succeeded`` or ``failed`` with the reason; a rollback
marks the row it replaces ``rolled_back`` and adds a ``succeeded`` row for the version it returns to. So the
newest succeeded row with an alias is, per server, the model the analyzer should ask, and the rows together are
the server's deployment history.
"""

from __future__ import annotations

from sqlalchemy import select

from dagnostics_provider.store.engine import session_scope
from dagnostics_provider.store.models import Deployment, DeploymentStatus, ModelVersion, utcnow

_MAX_DETAIL_CHARS = 4000


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
            target=target,
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
            target=target,
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
        row = session.scalars(
            select(Deployment)
            .where(
                Deployment.target == target,
                Deployment.status == DeploymentStatus.succeeded,
                Deployment.alias.is_not(None),
            )
            .order_by(Deployment.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def succeeded_deployment(model_version_id: int, target: str, url: str | None = None) -> Deployment | None:
    """The newest successful deployment of a version on ``target`` (whose tag a rollback can return to)."""
    with session_scope(url) as session:
        row = session.scalars(
            select(Deployment)
            .where(
                Deployment.model_version_id == model_version_id,
                Deployment.target == target,
                Deployment.status.in_((DeploymentStatus.succeeded, DeploymentStatus.rolled_back)),
            )
            .order_by(Deployment.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def get_deployment(deployment_id: int, url: str | None = None) -> Deployment:
    with session_scope(url) as session:
        row = session.get(Deployment, deployment_id)
        if row is None:
            raise LookupError(f"no deployment with id {deployment_id} in the DAGnostics store")
        session.expunge(row)
        return row
