"""Train/validation split: grouped by failure fingerprint, stratified by category, deterministic for a seed.

A failure that repeats (same fingerprint) would otherwise sit on both sides and let validation reward
memorisation, so whole groups go to one side.  Each group is stratified under its majority category, and each
category gets its share of the validation examples (largest-remainder rounding, so the total matches
``ratio`` as closely as whole examples allow).  Within a category the groups are shuffled with a generator seeded
from ``seed`` and the category name, and taken into validation while they fit that category's share.  A category
with a single group (or groups too large for its share) stays in training: stratified "where possible".
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def _shuffled(items: list[int], seed: str) -> list[int]:
    """A reproducible shuffle: string seeds hash the same in every process (unlike ``hash()``)."""
    random.Random(seed).shuffle(items)  # noqa: S311  (reproducibility, not secrecy)
    return items


def _quotas(sizes_by_category: dict[int, int], ratio: float) -> dict[int, int]:
    """Validation examples per category: floor of each share, the remainder to the largest fractions."""
    total = round(sum(sizes_by_category.values()) * ratio)
    exact = {category: size * ratio for category, size in sizes_by_category.items()}
    quotas = {category: math.floor(share) for category, share in exact.items()}
    by_fraction = sorted(exact, key=lambda c: (-(exact[c] - quotas[c]), c))
    for category in by_fraction[: max(0, total - sum(quotas.values()))]:
        quotas[category] += 1
    return quotas


def validation_groups(
    group_sizes: Sequence[int], group_categories: Sequence[int], ratio: float, seed: int
) -> bytearray:
    """For each group (by index), 1 if it goes to validation, else 0.

    Groups are identified by index; ``group_categories[i]`` is group ``i``'s category as a small integer.  The
    result depends only on its arguments, so the same store content and seed give the same split.
    """
    chosen = bytearray(len(group_sizes))
    if ratio <= 0 or len(group_sizes) < 2:
        return chosen
    members: dict[int, list[int]] = {}
    for group, category in enumerate(group_categories):
        members.setdefault(category, []).append(group)
    quotas = _quotas({c: sum(group_sizes[g] for g in groups) for c, groups in members.items()}, ratio)
    for category in sorted(members):
        taken = 0
        for group in _shuffled(members[category], f"{seed}:{category}"):
            if taken + group_sizes[group] <= quotas[category]:
                chosen[group] = 1
                taken += group_sizes[group]
    if not any(chosen):
        # Every group was larger than its category's share: validate on the smallest group rather than on none.
        order = _shuffled(list(range(len(group_sizes))), f"{seed}:fallback")
        chosen[min(order, key=group_sizes.__getitem__)] = 1
    return chosen
