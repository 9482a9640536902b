"""Prepare `make train-cpu`'s data on a fresh machine: the real-failure corpus's dev split as reviewed feedback.

Into AIRFLOW_HOME (a throwaway one by default, see the Makefile): a migrated DAGnostics store holding every dev-split
log of tests/real_corpus, analysed by the heuristic analyzer and reviewed from its label as an engineer would
(benchmarks/learning_data.py), and a dataset version generated from those reviews.  Done once: a store that
already has a dataset is left alone.  The held-out split is never used here.  Usage: python scripts/corpus_dataset.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import learning_data  # noqa: E402


def main() -> None:
    from dagnostics_provider.store.datasets import latest_dataset_version
    from dagnostics_provider.store.migrate import upgrade
    from dagnostics_provider.training.dataset import DatasetOptions, generate_dataset

    upgrade()
    existing = latest_dataset_version()
    if existing is not None:
        print(f"dataset {existing.version} already in the store: {existing.uri}")
        return
    dev = learning_data.load_split("dev")
    learning_data.store_reviewed(dev)
    result = generate_dataset(options=DatasetOptions(min_examples=10))
    print(f"dataset {result.version}: {result.train_count} train, {result.validation_count} validation rows from "
          f"{len(dev)} reviewed dev-split logs of tests/real_corpus: {result.uri}")  # fmt: skip


if __name__ == "__main__":
    main()
