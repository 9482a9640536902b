"""``GenerateDatasetOperator``: turn reviewed feedback into a versioned training dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class GenerateDatasetOperator(BaseOperator):
    """Build ``train_dataset.jsonl``, ``validation_dataset.jsonl`` and ``dataset_info.json`` and register the version.

    Returns (XCom) the version, its folder and the three file paths as strings (local paths or object storage
    URLs), the split sizes, the content hash and ``reused`` (true when the feedback has not changed since an
    existing version, which is then returned instead of a copy).  With fewer than ``min_examples`` examples the
    task is skipped, and the message says how many there are. The work lives in
    :mod:`dagnostics_provider.training.dataset`; see docs/dataset.md for the selection rules.

    :param output_dir: folder for dataset versions; default ``<[dagnostics] artifact_root>/data/training``.
    :param min_examples: skip below this many examples.
    :param include_feedback: use reviewers' corrections.
    :param include_accepted: use analyses reviewers accepted unchanged.
    :param min_rating: lowest review rating (1-5) that counts.
    :param validation_ratio: share of examples (whole fingerprint groups) held out for validation.
    :param seed: seed of the split; same seed and store content give byte-identical files.
    """

    template_fields: Sequence[str] = ("output_dir", "min_examples", "min_rating", "validation_ratio", "seed")
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        output_dir: str | None = None,
        min_examples: int = 50,
        include_feedback: bool = True,
        include_accepted: bool = True,
        min_rating: int = 3,
        validation_ratio: float = 0.2,
        seed: int = 42,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_dir = output_dir
        self.min_examples = min_examples
        self.include_feedback = include_feedback
        self.include_accepted = include_accepted
        self.min_rating = min_rating
        self.validation_ratio = validation_ratio
        self.seed = seed

    def execute(self, context: Any) -> dict[str, Any]:
        from dagnostics_provider.compat import AirflowSkipException
        from dagnostics_provider.training.dataset import DatasetOptions, NotEnoughExamples, generate_dataset

        options = DatasetOptions(
            min_examples=int(self.min_examples),
            include_feedback=bool(self.include_feedback),
            include_accepted=bool(self.include_accepted),
            min_rating=int(self.min_rating),
            validation_ratio=float(self.validation_ratio),
            seed=int(self.seed),
        )
        try:
            result = generate_dataset(self.output_dir or None, options)
        except NotEnoughExamples as exc:
            raise AirflowSkipException(str(exc)) from exc
        self.log.info(
            "Dataset %s (%s): %d train, %d validation examples at %s",
            result.version,
            "unchanged, existing version" if result.reused else "new version",
            result.train_count,
            result.validation_count,
            result.uri,
        )
        return result.to_dict()
