"""The comparison's arithmetic: matched lambdas, paired differences over seeds, verdicts, the Pareto front.

Each claim of the papers is one pair of runs that differ in one thing, compared *within* a seed (same data, start
and noise) and then over seeds:

- RA processing: ``frozen`` against ``plain`` (the recognition term through a fixed recognizer);
- GradProm against ``joint`` at equal lambda, and at matched *effective* lambda: joint run at lambda x GradProm's
  mean gate weight, so that the gate, not a smaller average pull, is what differs;
- soft against hard gating, at equal lambda and with hard gating at lambda x (soft's mean weight / hard's mean
  weight), i.e. the same average pull;
- the smoothed (EMA) gate against the minibatch gate;
- ``joint`` against ``plain``: whether the regime leaves the recognition term any room at all (a gate can only
  matter where joint training moves IP away from plain training).

Claims are made within one arm (regime, VR start, VR supervision), on the fixed judge, the unseen judge and each
strategy's own co-trained VR (``own_vr``: the recognizer that strategy trained, on its IP's output; for ``frozen``
the fixed judge).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CLAIMS", "CLAIM_METRICS", "TWO_SIDED_CLAIMS", "matched_lambda", "paired_differences", "verdict", "pareto_front", "claim_table"]

# (claim, better run, worse run): "better" is the papers' expectation
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("RA: frozen > plain", "frozen", "plain"),
    ("GradProm (hard) > joint, equal lambda", "gradprom_hard", "joint"),
    ("GradProm (hard) > joint, matched effective lambda", "gradprom_hard", "joint_matched_hard"),
    ("GradProm (soft) > joint, matched effective lambda", "gradprom_soft", "joint_matched_soft"),
    ("soft > hard, equal lambda", "gradprom_soft", "gradprom_hard"),
    ("soft > hard, matched effective lambda", "gradprom_soft", "gradprom_hard_matched_soft"),
    ("smoothed gate > minibatch gate", "gradprom_hard_ema", "gradprom_hard"),
    ("GradProm (soft) > joint, equal lambda", "gradprom_soft", "joint"),
    ("GradProm (hard) > plain", "gradprom_hard", "plain"),
    ("joint differs from plain (room for a gate)", "joint", "plain"),
)
CLAIM_METRICS = ("psnr", "fixed_vr", "unseen_vr", "own_vr")
# claims that hold in either direction: a clear difference of either sign reads "differs"
TWO_SIDED_CLAIMS = frozenset({"joint differs from plain (room for a gate)"})


def matched_lambda(lam: float, mean_gate_weight: float, reference_weight: float = 1.0) -> float:
    """The lambda that gives a run whose gate weight is ``reference_weight`` the same average pull as a gated run
    at ``lam`` with mean gate weight ``mean_gate_weight``: ``lam * mean_gate_weight / reference_weight``.

    joint (weight 1) matched to GradProm at lam 0.02 with its gate open 40 % of the steps: 0.008.
    """
    if reference_weight <= 0:
        raise ValueError(f"reference_weight must be positive, got {reference_weight}")
    if not 0 <= mean_gate_weight <= 1:
        raise ValueError(f"a mean gate weight lies in [0, 1], got {mean_gate_weight}")
    return lam * mean_gate_weight / reference_weight


def paired_differences(rows: Sequence[Mapping[str, Any]], better: str, worse: str, metric: str,
                       rho: float | None, arm: str | None = None) -> list[float]:
    """``better - worse`` for ``metric`` in each seed that has both runs at ``rho`` (``plain`` has no rho and is
    paired with every rho of its seed), within ``arm`` when given (rows without an arm belong to every arm)."""
    def pick(strategy: str) -> dict[int, float]:
        out = {}
        for row in rows:
            if arm is not None and row.get("arm", arm) != arm:
                continue
            if row["strategy"] == strategy and (strategy == "plain" or row.get("rho") == rho):
                value = row.get(metric)
                if value is not None and value == value:
                    out[int(row["seed"])] = float(value)
        return out

    a, b = pick(better), pick(worse)
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def verdict(differences: Sequence[float], z: float = 2.0) -> dict[str, Any]:
    """Mean, sample standard deviation and a verdict of paired differences, relative to the seed-to-seed spread.

    ``holds`` when the mean is positive and more than ``z`` standard errors from zero, ``reversed`` when negative
    likewise, ``within spread`` otherwise; ``equal`` for identical runs; ``one seed`` when there is no spread to
    compare with (a single seed gives a difference, never a verdict).
    """
    n = len(differences)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "verdict": "missing"}
    mean = sum(differences) / n
    if all(abs(d) < 1e-12 for d in differences):
        return {"n": n, "mean": 0.0, "sd": 0.0, "verdict": "equal"}
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "verdict": "one seed"}
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    se = sd / math.sqrt(n)
    if se == 0:
        label = "holds" if mean > 0 else "reversed"
    elif mean / se > z:
        label = "holds"
    elif mean / se < -z:
        label = "reversed"
    else:
        label = "within spread"
    return {"n": n, "mean": mean, "sd": sd, "verdict": label}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated by any other (both coordinates larger is better), in input order.

    ``[(1, 1), (2, 0), (0, 2), (0.5, 0.5)]`` -> ``[0, 1, 2]``: (0.5, 0.5) is dominated by (1, 1).
    """
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (u >= x and v >= y) and (u > x or v > y) for j, (u, v) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def claim_table(rows: Sequence[Mapping[str, Any]], rhos: Sequence[float],
                metrics: Sequence[str] = CLAIM_METRICS) -> list[dict[str, Any]]:
    """Every claim of :data:`CLAIMS` in every arm at every rho where both runs exist: a verdict per metric."""
    arms = list(dict.fromkeys(row.get("arm") for row in rows))
    table = []
    for arm in arms:
        for claim, better, worse in CLAIMS:
            for rho in rhos:
                entry: dict[str, Any] = {"arm": arm, "claim": claim, "better": better, "worse": worse, "rho": rho}
                found = False
                for metric in metrics:
                    diffs = paired_differences(rows, better, worse, metric, rho, arm)
                    entry[metric] = verdict(diffs)
                    if claim in TWO_SIDED_CLAIMS and entry[metric]["verdict"] in ("holds", "reversed"):
                        entry[metric]["verdict"] = "differs"
                    found = found or bool(diffs)
                if found:
                    table.append(entry)
    return table
