"""The grouped, stratified split on its own: determinism, ratio, and the cases where stratifying is impossible."""

from __future__ import annotations

from dagnostics_provider.training.split import validation_groups


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    sizes, categories = [1, 2, 1, 3, 1, 1, 2, 1] * 10, [0, 1, 2, 3, 4, 5, 6, 0] * 10
    first = validation_groups(sizes, categories, 0.2, seed=42)
    assert validation_groups(sizes, categories, 0.2, seed=42) == first
    assert validation_groups(sizes, categories, 0.2, seed=43) != first


def test_every_category_gets_its_share():
    sizes, categories = [1] * 100, [i % 5 for i in range(100)]
    chosen = validation_groups(sizes, categories, 0.2, seed=1)
    assert sum(chosen) == 20
    for category in range(5):
        assert sum(chosen[g] for g in range(100) if categories[g] == category) == 4


def test_the_total_share_survives_rounding_in_small_categories():
    # Seven categories of three examples: 0.6 each, rounded by largest remainder to 4 in total (not 7 x 0 or 7 x 1).
    sizes, categories = [1] * 21, [i % 7 for i in range(21)]
    assert sum(validation_groups(sizes, categories, 0.2, seed=5)) == 4


def test_groups_too_large_for_any_share_still_leave_a_validation_group():
    chosen = validation_groups([30, 20, 25], [0, 0, 1], 0.2, seed=3)
    assert list(chosen) == [0, 1, 0]  # the smallest group


def test_nothing_to_split():
    assert list(validation_groups([5], [0], 0.2, seed=1)) == [0]
    assert list(validation_groups([1, 1, 1], [0, 1, 2], 0.0, seed=1)) == [0, 0, 0]
    assert list(validation_groups([], [], 0.2, seed=1)) == []
