"""Seeded, reproducible splits: every loader splits with the same rule, grouped by patient and stratified by
class where asked, so a split depends only on the items' ids, the seed and the fractions."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["allocate", "random_split"]


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` into counts proportional to ``fractions`` (largest remainders), giving every part with a
    positive fraction at least one element when ``n`` allows: a 20 % validation split of 4 patients is 1, not 0."""
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {tuple(fractions)}")
    total = float(sum(fractions))
    exact = [n * f / total for f in fractions]
    counts = [int(math.floor(e)) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(counts)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts


def random_split(
    items: Sequence[dict],
    fractions: Sequence[float],
    seed: int = 0,
    *,
    group_key: str | None = None,
    stratify_key: str | None = None,
) -> list[list[dict]]:
    """Seeded split of ``items`` into ``len(fractions)`` parts.

    ``group_key``: items sharing its value (e.g. a patient) stay in one part, so no patient is in two splits.
    ``stratify_key``: each part gets about its fraction of every value (e.g. each class), by spreading each
    stratum evenly over the shuffled order before cutting it. The result depends only on the items' group ids,
    ``seed`` and ``fractions``, not on file system order.
    """
    groups: dict[Hashable, list[dict]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item[group_key] if group_key else index, []).append(item)
    names = sorted(groups, key=str)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    if stratify_key is not None:
        strata: dict[Hashable, list[Hashable]] = {}
        for name in order:
            strata.setdefault(groups[name][0].get(stratify_key), []).append(name)
        jitter = {name: rng.random() * 1e-6 for name in order}
        position = {name: (rank + 0.5) / len(members) + jitter[name]
                    for members in strata.values() for rank, name in enumerate(members)}
        order = sorted(order, key=lambda name: position[name])
    parts, start = [], 0
    for count in allocate(len(order), fractions):
        parts.append([item for name in order[start:start + count] for item in groups[name]])
        start += count
    return parts
