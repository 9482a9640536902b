"""Build a training dataset from reviewed feedback: select, split, write, register.

The build has three steps, each with bounded memory however large the store grows:

1. :func:`~dagnostics_provider.training.selection.select_examples` streams the chosen examples; each is written
   to a local spool file at once, and only a few bytes per example (its group, category, severity, source) stay
   in memory for the split.
2. :func:`~dagnostics_provider.training.split.validation_groups` assigns whole fingerprint groups to a side; the
   spool is then read back line by line into local train and validation files, hashing them on the way.
3. The content hash names the version.  Content that is already registered is not written again (the existing
   version is returned); new content is copied to ``<output_dir>/<version>/`` file by file with atomic renames,
   ``dataset_info.json`` last as the commit marker, and then registered in the store.

Files are JSON lines in a fixed key order with compact separators, in store order, so the same store content,
parameters and seed give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from array import array
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagnostics_provider import artifacts
from dagnostics_provider.analysis.schema import CATEGORIES, SEVERITIES
from dagnostics_provider.prompt_format import PROMPT_VERSION
from dagnostics_provider.store import datasets
from dagnostics_provider.store.models import DatasetVersion
from dagnostics_provider.store.reviews import DEFAULT_MIN_RATING
from dagnostics_provider.training.selection import (
    SOURCE_ACCEPTED,
    SOURCE_FEEDBACK,
    SelectionStats,
    select_examples,
)
from dagnostics_provider.training.split import validation_groups

log = logging.getLogger(__name__)

TRAIN_FILE = "train_dataset.jsonl"
VALIDATION_FILE = "validation_dataset.jsonl"
INFO_FILE = "dataset_info.json"
SPLITS = ("train", "validation")
SOURCES = (SOURCE_FEEDBACK, SOURCE_ACCEPTED)
ROW_FIELDS = ("instruction", "input", "output", "prompt", "completion", "metadata")


@dataclass(frozen=True)
class DatasetOptions:
    """What goes into a dataset and how it is split; the guide's defaults."""

    min_examples: int = 50
    include_feedback: bool = True  # reviewers' corrections (source user_feedback)
    include_accepted: bool = True  # analyses a reviewer accepted unchanged (source accepted_analysis)
    min_rating: int = DEFAULT_MIN_RATING
    validation_ratio: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        if self.min_examples < 1:
            raise ValueError(f"min_examples must be 1 or more, got {self.min_examples}")
        if not 1 <= self.min_rating <= 5:
            raise ValueError(f"min_rating must be between 1 and 5, got {self.min_rating}")
        if not 0 <= self.validation_ratio < 1:
            raise ValueError(f"validation_ratio must be at least 0 and below 1, got {self.validation_ratio}")
        if not (self.include_feedback or self.include_accepted):
            raise ValueError(
                "include_feedback and include_accepted are both false, so no review can become an example; "
                "DAGnostics never trains on analyses nobody reviewed"
            )

    def sources(self) -> tuple[str, ...]:
        """The kinds of review that may become examples."""
        return tuple(
            source
            for source, included in ((SOURCE_FEEDBACK, self.include_feedback), (SOURCE_ACCEPTED, self.include_accepted))
            if included
        )

    def describe(self) -> str:
        kinds = {
            (True, True): "reviewed",
            (True, False): "corrected",
            (False, True): "accepted-as-is",
        }[(self.include_feedback, self.include_accepted)]
        return f"{kinds} examples (rating >= {self.min_rating})"


class NotEnoughExamples(Exception):
    """Fewer examples than ``min_examples``: building (and training on) this little data is pointless."""

    def __init__(self, count: int, needed: int, options: DatasetOptions) -> None:
        super().__init__(f"Only {count} {options.describe()}; at least {needed} are needed.")
        self.count = count
        self.needed = needed


@dataclass(frozen=True)
class DatasetResult:
    """Where a dataset version is; what the operator pushes to XCom (paths as strings: local paths or URLs)."""

    version: str
    uri: str
    train_path: str
    validation_path: str
    info_path: str
    train_count: int
    validation_count: int
    content_hash: str
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Index:
    """Per-example facts for the split and the statistics: four small integers each, in compact arrays."""

    def __init__(self) -> None:
        self.groups: dict[str, int] = {}
        self.group_of = array("l")
        self.category = array("b")
        self.severity = array("b")
        self.source = array("b")

    def add(self, group: str, category: str, severity: str, source: str) -> None:
        self.group_of.append(self.groups.setdefault(group, len(self.groups)))
        self.category.append(CATEGORIES.index(category))
        self.severity.append(SEVERITIES.index(severity))
        self.source.append(SOURCES.index(source))

    def __len__(self) -> int:
        return len(self.group_of)

    def group_sizes_and_categories(self) -> tuple[list[int], list[int]]:
        """Each group's size and majority category (ties: the category listed first in the schema)."""
        counts = array("l", bytes(8 * len(self.groups) * len(CATEGORIES)))
        for group, category in zip(self.group_of, self.category, strict=True):
            counts[group * len(CATEGORIES) + category] += 1
        sizes, categories = [], []
        for group in range(len(self.groups)):
            row = counts[group * len(CATEGORIES) : (group + 1) * len(CATEGORIES)]
            sizes.append(sum(row))
            categories.append(max(range(len(CATEGORIES)), key=lambda c: (row[c], -c)))
        return sizes, categories


class _SplitWriter:
    """Writes one split's lines to a local file, hashing and counting them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.examples = 0
        self.groups: set[int] = set()
        self.categories: Counter[str] = Counter()
        self.severities: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()

    def write(self, line: bytes, index: _Index, i: int) -> None:
        self.handle.write(line)
        self.sha256.update(line)
        self.examples += 1
        self.groups.add(index.group_of[i])
        self.categories[CATEGORIES[index.category[i]]] += 1
        self.severities[SEVERITIES[index.severity[i]]] += 1
        self.sources[SOURCES[index.source[i]]] += 1

    def close(self) -> None:
        self.handle.close()


def _dumps(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _spool(options: DatasetOptions, stats: SelectionStats, path: Path, url: str | None) -> _Index:
    index = _Index()
    with path.open("wb") as spool:
        for example in select_examples(options.min_rating, options.sources(), stats, url):
            spool.write(_dumps(example.row))
            index.add(example.group, example.category, example.severity, example.source)
    return index


def _split(index: _Index, options: DatasetOptions, spool: Path, workdir: Path) -> dict[str, _SplitWriter]:
    sizes, categories = index.group_sizes_and_categories()
    to_validation = validation_groups(sizes, categories, options.validation_ratio, options.seed)
    writers = {"train": _SplitWriter(workdir / TRAIN_FILE), "validation": _SplitWriter(workdir / VALIDATION_FILE)}
    try:
        with spool.open("rb") as lines:
            for i, line in enumerate(lines):
                side = "validation" if to_validation[index.group_of[i]] else "train"
                writers[side].write(line, index, i)
    finally:
        for writer in writers.values():
            writer.close()
    return writers


def _content_hash(writers: dict[str, _SplitWriter]) -> str:
    """One hash over both files, so moving an example between splits is a different dataset."""
    digests = "\n".join(f"{writers[side].path.name}:{writers[side].sha256.hexdigest()}" for side in SPLITS)
    return hashlib.sha256(digests.encode()).hexdigest()


def version_id(created_at: datetime, digest: str) -> str:
    """``ds-YYYYMMDD-HHMMSS-<hash8>``: sorts by time, and the hash prefix ties the name to the content."""
    return f"ds-{created_at:%Y%m%d-%H%M%S}-{digest[:8]}"


def _distribution(counter: Counter[str], names: tuple[str, ...]) -> dict[str, int]:
    return {name: counter[name] for name in names}


def _info(
    version: str,
    created_at: datetime,
    digest: str,
    writers: dict[str, _SplitWriter],
    stats: SelectionStats,
    options: DatasetOptions,
) -> dict[str, Any]:
    return {
        "version": version,
        "created_at": created_at.isoformat(),
        "content_hash": digest,
        "prompt_version": PROMPT_VERSION,
        "row_fields": list(ROW_FIELDS),
        "files": {
            side: {"name": w.path.name, "examples": w.examples, "sha256": w.sha256.hexdigest()}
            for side, w in writers.items()
        },
        "counts": {side: w.examples for side, w in writers.items()}
        | {"total": sum(w.examples for w in writers.values())},
        "fingerprint_groups": {side: len(w.groups) for side, w in writers.items()},
        "categories": {side: _distribution(w.categories, CATEGORIES) for side, w in writers.items()},
        "severities": {side: _distribution(w.severities, SEVERITIES) for side, w in writers.items()},
        "sources": {side: _distribution(w.sources, SOURCES) for side, w in writers.items()},
        "selection": stats.as_dict(),
        "parameters": asdict(options),
    }


def _publish(writers: dict[str, _SplitWriter], info: dict[str, Any], target: artifacts.ArtifactPath) -> None:
    for writer in writers.values():
        artifacts.copy_file(writer.path, target / writer.path.name)
    with artifacts.atomic_writer(target / INFO_FILE, "w") as out:
        out.write(json.dumps(info, ensure_ascii=False, indent=2) + "\n")


def _result(row: DatasetVersion, reused: bool) -> DatasetResult:
    location = artifacts.to_path(row.uri)
    return DatasetResult(
        version=row.version,
        uri=row.uri,
        train_path=artifacts.to_uri(location / TRAIN_FILE),
        validation_path=artifacts.to_uri(location / VALIDATION_FILE),
        info_path=artifacts.to_uri(location / INFO_FILE),
        train_count=row.train_count,
        validation_count=row.validation_count,
        content_hash=row.content_hash,
        reused=reused,
    )


def generate_dataset(
    output_dir: str | os.PathLike[str] | artifacts.ArtifactPath | None = None,
    options: DatasetOptions | None = None,
    *,
    url: str | None = None,
) -> DatasetResult:
    """Build, write and register a dataset version from the store's reviews; see the module docstring.

    ``output_dir`` defaults to ``<artifact root>/data/training``; the version's files go into a folder named
    after the version inside it.  Raises :class:`NotEnoughExamples` (before writing anything) when fewer than
    ``options.min_examples`` examples qualify.
    """
    options = options or DatasetOptions()
    output = artifacts.to_path(output_dir) if output_dir is not None else artifacts.datasets_dir()
    stats = SelectionStats()
    with tempfile.TemporaryDirectory(prefix="dagnostics-dataset-") as tmp:
        workdir = Path(tmp)
        index = _spool(options, stats, workdir / "examples.jsonl", url)
        if len(index) < options.min_examples:
            raise NotEnoughExamples(len(index), options.min_examples, options)
        writers = _split(index, options, workdir / "examples.jsonl", workdir)
        digest = _content_hash(writers)
        created_at = datetime.now(timezone.utc).replace(microsecond=0)
        existing = datasets.dataset_version_by_hash(digest, url)
        version = existing.version if existing is not None else version_id(created_at, digest)
        target = artifacts.to_path(existing.uri) if existing is not None else output / version
        info = _info(version, created_at, digest, writers, stats, options)
        if existing is None or not (target / INFO_FILE).exists():
            _publish(writers, info, target)
            log.info("Dataset %s written to %s", version, artifacts.to_uri(target))
        candidate = DatasetVersion(
            version=version,
            uri=artifacts.to_uri(target),
            content_hash=digest,
            train_count=writers["train"].examples,
            validation_count=writers["validation"].examples,
            parameters=asdict(options),
            info=info,
            last_review_id=stats.last_review_id,
            created_at=created_at,
        )
    row, created = datasets.register_dataset_version(candidate, url)
    log.info(
        "Dataset %s: %d train / %d validation examples (%s)",
        row.version,
        row.train_count,
        row.validation_count,
        "new version" if created else "existing version, content unchanged",
    )
    return _result(row, reused=not created)
