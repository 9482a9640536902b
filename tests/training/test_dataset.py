"""Dataset generation against real stores (SQLite and PostgreSQL): split, determinism, rules, files, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagnostics_provider.analysis.schema import CATEGORIES, parse_analysis
from dagnostics_provider.prompt_format import INSTRUCTION, PROMPT_VERSION, chat_messages, render_input
from dagnostics_provider.store import datasets
from dagnostics_provider.store.migrate import upgrade
from dagnostics_provider.store.models import FailureStatus
from dagnostics_provider.training.dataset import (
    INFO_FILE,
    TRAIN_FILE,
    VALIDATION_FILE,
    DatasetOptions,
    NotEnoughExamples,
    generate_dataset,
)
from tests.training.dataset_factories import SCENARIOS, StoreFactory, fingerprint_of

# The store fixtures (store_url, migrated_store_url) over SQLite and PostgreSQL, shared with tests/store.
pytest_plugins = ["tests.store.conftest"]
ROW_KEYS = ["instruction", "input", "output", "prompt", "completion", "metadata"]
METADATA_KEYS = [
    "source",
    "reviewer",
    "rating",
    "fingerprint",
    "dag_id",
    "task_id",
    "failed_task_id",
    "analysis_id",
    "review_id",
    "prompt_version",
]
FEW = DatasetOptions(min_examples=1)


def rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def both(result) -> list[dict]:
    return rows(result.train_path) + rows(result.validation_path)


def test_split_never_puts_a_fingerprint_on_both_sides(migrated_store_url, tmp_path):
    StoreFactory(migrated_store_url).reviewed_failures(40, repeats=4)

    result = generate_dataset(tmp_path, DatasetOptions(min_examples=50), url=migrated_store_url)

    train, validation = rows(result.train_path), rows(result.validation_path)
    assert (len(train), len(validation)) == (result.train_count, result.validation_count)
    assert len(train) + len(validation) == 100
    train_fps = {r["metadata"]["fingerprint"] for r in train}
    validation_fps = {r["metadata"]["fingerprint"] for r in validation}
    assert train_fps and validation_fps and not train_fps & validation_fps
    assert 15 <= len(validation) <= 25  # 20% of 100, in whole fingerprint groups
    # Stratified: every category that has more than one group is represented in validation.
    assert {parse_analysis(r["output"]).category for r in validation} == set(CATEGORIES)
    info = json.loads(Path(result.info_path).read_text())
    assert info["counts"] == {"train": len(train), "validation": len(validation), "total": 100}
    assert sum(info["categories"]["validation"].values()) == len(validation)
    assert info["fingerprint_groups"]["train"] + info["fingerprint_groups"]["validation"] == 40


def test_same_seed_and_content_give_byte_identical_files(migrated_store_url, tmp_path):
    # The same feedback in a second store (SQLite), built independently: also checks the backends agree.
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other_url)
    for url in (migrated_store_url, other_url):
        StoreFactory(url).reviewed_failures(30, repeats=3)

    first = generate_dataset(tmp_path / "a", DatasetOptions(min_examples=10, seed=7), url=migrated_store_url)
    second = generate_dataset(tmp_path / "b", DatasetOptions(min_examples=10, seed=7), url=other_url)
    reseeded = generate_dataset(tmp_path / "c", DatasetOptions(min_examples=10, seed=8), url=other_url)

    for name in ("train_path", "validation_path"):
        assert Path(getattr(first, name)).read_bytes() == Path(getattr(second, name)).read_bytes()
    assert first.content_hash == second.content_hash
    assert reseeded.content_hash != second.content_hash  # another seed, another split


def test_rows_have_the_documented_format_and_valid_outputs(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    factory.reviewed_failures(14, repeats=2)

    result = generate_dataset(tmp_path, DatasetOptions(min_examples=5), url=migrated_store_url)

    lines = Path(result.train_path).read_text(encoding="utf-8").splitlines()
    assert lines and all(line.startswith('{"instruction":') and ": " not in line[:20] for line in lines)
    for row in both(result):
        assert list(row) == ROW_KEYS
        assert list(row["metadata"]) == METADATA_KEYS
        assert row["instruction"] == INSTRUCTION
        analysis = parse_analysis(row["output"])  # every output validates against the analysis schema
        assert row["output"] == analysis.to_json()
        assert row["completion"] == [{"role": "assistant", "content": row["output"]}]
        context = row["input"].removeprefix("Log Context:\n")
        assert row["input"] == render_input(context)
        assert row["prompt"] == chat_messages(context)
        assert row["metadata"]["prompt_version"] == PROMPT_VERSION
        assert row["metadata"]["source"] in ("user_feedback", "accepted_analysis")
    assert "naïve" in Path(result.train_path).read_text(encoding="utf-8") + Path(result.validation_path).read_text(
        encoding="utf-8"
    )  # UTF-8 as is, not \\u escapes


def test_reviews_below_min_rating_are_excluded(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    kept = [factory.review(factory.failure(s, variant=i), s, rating=3) for i, s in enumerate(SCENARIOS)]
    dropped = [factory.review(factory.failure(s, variant=10 + i), s, rating=2) for i, s in enumerate(SCENARIOS)]

    result = generate_dataset(tmp_path, DatasetOptions(min_examples=1, min_rating=3), url=migrated_store_url)

    included = {row["metadata"]["review_id"] for row in both(result)}
    assert included == set(kept)
    assert not included & set(dropped)
    info = json.loads(Path(result.info_path).read_text())
    assert info["selection"]["excluded"] == {"below_min_rating": len(dropped)}
    assert all(row["metadata"]["rating"] >= 3 for row in both(result))


def test_too_few_examples_raise_with_the_counts_and_write_nothing(migrated_store_url, tmp_path):
    StoreFactory(migrated_store_url).reviewed_failures(6, repeats=2)  # 9 reviews

    with pytest.raises(NotEnoughExamples) as raised:
        generate_dataset(tmp_path / "out", DatasetOptions(min_examples=50), url=migrated_store_url)

    assert str(raised.value) == "Only 9 reviewed examples (rating >= 3); at least 50 are needed."
    assert (raised.value.count, raised.value.needed) == (9, 50)
    assert not (tmp_path / "out").exists()
    assert datasets.latest_dataset_version(migrated_store_url) is None


def test_an_empty_store_is_too_few(migrated_store_url, tmp_path):
    with pytest.raises(NotEnoughExamples, match="Only 0 reviewed examples"):
        generate_dataset(tmp_path, url=migrated_store_url)


def test_latest_review_per_reviewer_then_highest_rating_wins(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    s = SCENARIOS[0]
    ids = factory.failure(s)
    factory.review(ids, s, reviewer="alice", rating=5, category="unknown")  # superseded by alice's next review
    alice = factory.review(ids, s, reviewer="alice", rating=4, category="dependency_failure")
    factory.review(ids, s, reviewer="bob", rating=3, category="configuration_error")
    # A tie on rating: the later review wins.
    tie = factory.failure(SCENARIOS[1], variant=1)
    factory.review(tie, SCENARIOS[1], reviewer="carol", rating=4, category="permission_error")
    dave = factory.review(tie, SCENARIOS[1], reviewer="dave", rating=4, category="configuration_error")
    # Two reviewers who agree are not a conflict.
    agree = factory.failure(SCENARIOS[2], variant=2)
    factory.review(agree, SCENARIOS[2], reviewer="erin", rating=3)
    frank = factory.review(agree, SCENARIOS[2], reviewer="frank", rating=5)

    result = generate_dataset(tmp_path, FEW, url=migrated_store_url)

    by_failure = {row["metadata"]["failed_task_id"]: row for row in both(result)}
    assert by_failure[ids[0]]["metadata"]["review_id"] == alice
    assert parse_analysis(by_failure[ids[0]]["output"]).category == "dependency_failure"
    assert by_failure[tie[0]]["metadata"]["review_id"] == dave
    assert by_failure[agree[0]]["metadata"]["review_id"] == frank
    selection = json.loads(Path(result.info_path).read_text())["selection"]
    assert selection["reviews_read"] == 7
    assert selection["items_reviewed"] == 3
    assert selection["superseded_reviews"] == 1
    assert selection["multi_reviewer_items"] == 3
    assert selection["conflicts"] == 2


def test_a_reviewer_who_lowers_their_rating_withdraws_the_example(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    ids = factory.failure()
    factory.review(ids, rating=5)
    factory.review(ids, rating=1)  # same reviewer, changed their mind
    kept = factory.review(factory.failure(SCENARIOS[1], variant=1), SCENARIOS[1])

    result = generate_dataset(tmp_path, FEW, url=migrated_store_url)

    assert [row["metadata"]["review_id"] for row in both(result)] == [kept]


def test_duplicates_ignored_failures_and_missing_context_are_counted_not_used(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    s = SCENARIOS[3]
    first = factory.review(factory.failure(s, context="same context"), s)
    factory.review(factory.failure(s, context="same context"), s)  # an exact duplicate of the first example
    factory.review(factory.failure(s, repeat=1, status=FailureStatus.ignored), s)
    factory.review(factory.failure(s, repeat=2, context=""), s)

    result = generate_dataset(tmp_path, FEW, url=migrated_store_url)

    assert [row["metadata"]["review_id"] for row in both(result)] == [first]
    excluded = json.loads(Path(result.info_path).read_text())["selection"]["excluded"]
    assert excluded == {"duplicate": 1, "failure_ignored": 1, "no_log_context": 1}


def test_confidence_left_empty_keeps_the_analysis_confidence(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    factory.review(factory.failure(ai_confidence=0.71), confidence=None)

    (row,) = both(generate_dataset(tmp_path, FEW, url=migrated_store_url))

    assert parse_analysis(row["output"]).confidence == 0.71


@pytest.mark.parametrize(
    ("include_feedback", "include_accepted", "sources"),
    [
        (True, True, {"user_feedback", "accepted_analysis"}),
        (False, True, {"accepted_analysis"}),
        (True, False, {"user_feedback"}),
    ],
)
def test_sources_follow_include_feedback_and_include_accepted(
    migrated_store_url, tmp_path, include_feedback, include_accepted, sources
):
    factory = StoreFactory(migrated_store_url)
    for i, s in enumerate(SCENARIOS):
        factory.review(factory.failure(s, variant=i), s, accepted=False)
        factory.review(factory.failure(s, variant=100 + i), s, accepted=True)
    options = DatasetOptions(min_examples=1, include_feedback=include_feedback, include_accepted=include_accepted)

    result = generate_dataset(tmp_path, options, url=migrated_store_url)

    assert {row["metadata"]["source"] for row in both(result)} == sources
    info = json.loads(Path(result.info_path).read_text())
    assert info["parameters"]["include_feedback"] is include_feedback
    assert result.train_count + result.validation_count == 7 * len(sources)


def test_without_feedback_the_too_few_message_names_what_counts(migrated_store_url, tmp_path):
    StoreFactory(migrated_store_url).reviewed_failures(3, repeats=1)  # one of three accepted as is

    with pytest.raises(NotEnoughExamples) as raised:
        generate_dataset(tmp_path, DatasetOptions(include_feedback=False), url=migrated_store_url)

    assert str(raised.value) == "Only 1 accepted-as-is examples (rating >= 3); at least 50 are needed."


def test_options_are_checked():
    with pytest.raises(ValueError, match="never trains on analyses nobody reviewed"):
        DatasetOptions(include_feedback=False, include_accepted=False)
    with pytest.raises(ValueError, match="validation_ratio"):
        DatasetOptions(validation_ratio=1.0)
    with pytest.raises(ValueError, match="min_rating"):
        DatasetOptions(min_rating=6)


def test_a_rerun_over_unchanged_feedback_returns_the_existing_version(migrated_store_url, tmp_path):
    out = tmp_path / "datasets"
    factory = StoreFactory(migrated_store_url)
    factory.reviewed_failures(10)
    first = generate_dataset(out, FEW, url=migrated_store_url)
    assert not first.reused
    assert first.version.startswith("ds-") and first.version.endswith(first.content_hash[:8])
    assert Path(first.uri) == out / first.version
    registered = datasets.latest_dataset_version(migrated_store_url)
    assert registered.version == first.version
    assert datasets.new_reviews_since(registered, url=migrated_store_url) == 0

    # A low-rated review is new feedback, but it does not change the data.
    factory.review(factory.failure(SCENARIOS[0], variant=99), rating=1)
    assert datasets.new_reviews_since(registered, url=migrated_store_url) == 1
    assert datasets.new_reviews_since(registered, min_rating=3, url=migrated_store_url) == 0
    again = generate_dataset(out, FEW, url=migrated_store_url)

    assert again.reused and again.version == first.version and again.train_path == first.train_path
    assert sorted(p.name for p in out.iterdir()) == [first.version]
    latest = datasets.latest_dataset_version(migrated_store_url)
    assert latest.version == first.version
    assert datasets.new_reviews_since(latest, url=migrated_store_url) == 0  # the build covered it

    # New qualifying feedback makes a new version next to the first.
    factory.review(factory.failure(SCENARIOS[4], variant=98), SCENARIOS[4])
    third = generate_dataset(out, FEW, url=migrated_store_url)
    assert not third.reused and third.version != first.version
    assert datasets.latest_dataset_version(migrated_store_url).version == third.version
    assert datasets.get_dataset_version(first.version, migrated_store_url).train_count == first.train_count


def test_a_registered_version_whose_files_are_gone_is_written_again(migrated_store_url, tmp_path):
    StoreFactory(migrated_store_url).reviewed_failures(5)
    first = generate_dataset(tmp_path, FEW, url=migrated_store_url)
    Path(first.info_path).unlink()  # an incomplete folder (no commit marker)

    again = generate_dataset(tmp_path, FEW, url=migrated_store_url)

    assert again.reused and again.version == first.version
    assert json.loads(Path(again.info_path).read_text())["version"] == first.version


def test_dataset_info_describes_the_version(migrated_store_url, tmp_path):
    StoreFactory(migrated_store_url).reviewed_failures(21, repeats=2)

    result = generate_dataset(tmp_path, DatasetOptions(min_examples=10, seed=3), url=migrated_store_url)

    info = json.loads(Path(result.info_path).read_text())
    assert info["version"] == result.version
    assert info["content_hash"] == result.content_hash
    assert info["created_at"].startswith("20")
    assert info["prompt_version"] == PROMPT_VERSION
    assert info["files"]["train"]["name"] == TRAIN_FILE and info["files"]["validation"]["name"] == VALIDATION_FILE
    assert set(info["categories"]["train"]) == set(CATEGORIES)
    assert sum(info["severities"]["train"].values()) == result.train_count
    assert sum(sum(split.values()) for split in info["sources"].values()) == info["counts"]["total"]
    assert info["parameters"] == {
        "min_examples": 10,
        "include_feedback": True,
        "include_accepted": True,
        "min_rating": 3,
        "validation_ratio": 0.2,
        "seed": 3,
    }
    assert info["selection"]["selected"] == info["counts"]["total"]
    registered = datasets.get_dataset_version(result.version, migrated_store_url)
    assert registered.info == info
    assert registered.last_review_id == info["selection"]["last_review_id"]
    assert sorted(p.name for p in Path(result.uri).iterdir()) == sorted([TRAIN_FILE, VALIDATION_FILE, INFO_FILE])


def test_groups_follow_the_fingerprint_not_the_dag(migrated_store_url, tmp_path):
    factory = StoreFactory(migrated_store_url)
    s = SCENARIOS[0]
    for repeat in range(12):  # one failure repeating twelve times: one group, so it cannot be split
        factory.review(factory.failure(s, variant=5, repeat=repeat), s)
    factory.review(factory.failure(SCENARIOS[1], variant=6), SCENARIOS[1])

    result = generate_dataset(tmp_path, FEW, url=migrated_store_url)

    train = {row["metadata"]["fingerprint"] for row in rows(result.train_path)}
    validation = {row["metadata"]["fingerprint"] for row in rows(result.validation_path)}
    assert not train & validation
    assert fingerprint_of(s, 5) in train | validation
