"""The asset the analyze DAG is scheduled on: "failures are waiting for analysis".

Its watcher is :class:`~dagnostics_provider.triggers.new_failures.NewFailuresTrigger`, so Airflow's triggerer
turns every new failure into an asset event within ``poll_interval`` seconds.  One asset, defined once: a second
definition with other trigger arguments would register a second watcher and a second stream of events.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from dagnostics_provider.triggers.new_failures import NewFailuresTrigger

NEW_FAILURES_ASSET_NAME = "dagnostics_new_failures"

NEW_FAILURES = Asset(
    name=NEW_FAILURES_ASSET_NAME,
    uri=f"dagnostics://failures/{NEW_FAILURES_ASSET_NAME}",
    group="dagnostics",
    watchers=[AssetWatcher(name="dagnostics_new_failure_watcher", trigger=NewFailuresTrigger())],
)
