"""Which model the analyzer asks on an Ollama server: the one a deployment promoted there, if any.

A deployment copies the verified version to a stable alias (``[dagnostics] deploy_alias``) and records it in the
store; the analyzer looks that record up for the server its connection points at, so promoting or rolling back a
model changes what analyses use without editing connections or ``airflow.cfg`` on every worker. Without a record
(nothing deployed yet, another server, the store not created) the connection's or configured model is used.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from dagnostics_provider import config
from dagnostics_provider.store.engine import StoreConfigurationError

log = logging.getLogger(__name__)


def deployed_model(hook: Any) -> str | None:
    """The alias promoted on ``hook``'s server, or None to use the hook's own model.

    Off when ``[dagnostics] use_deployed_model`` is false. A store that cannot be read never stops an analysis:
    the configured model is used and the reason logged.
    """
    if not config.get_bool("use_deployed_model"):
        return None
    target = hook.base_url
    from dagnostics_provider.store.deployments import serving_deployment
    from dagnostics_provider.store.migrate import current_revision

    try:
        if current_revision() is None:  # no store yet (and asking must not create an empty SQLite file)
            return None
        serving = serving_deployment(target)
    except (SQLAlchemyError, StoreConfigurationError) as exc:
        log.warning("Cannot read deployments from the DAGnostics store (%s); using the configured model", exc)
        return None
    if serving is None:
        return None
    log.debug("Analysing with %s, deployed to %s as deployment %d", serving.alias, target, serving.id)
    return serving.alias
