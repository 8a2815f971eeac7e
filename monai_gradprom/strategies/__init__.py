"""Training strategies, selectable by name. See :mod:`monai_gradprom.strategies.base` for the interface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monai_gradprom.strategies.base import GradientTerms, StepContext, Strategy
from monai_gradprom.strategies.cheap import ImageSpaceGradPromStrategy, PeriodicGradPromStrategy
from monai_gradprom.strategies.gated import GradPromStrategy, PCGradStrategy
from monai_gradprom.strategies.simple import FrozenStrategy, JointStrategy, PlainStrategy, TransformerStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        PlainStrategy,
        JointStrategy,
        FrozenStrategy,
        TransformerStrategy,
        GradPromStrategy,
        PCGradStrategy,
        ImageSpaceGradPromStrategy,
        PeriodicGradPromStrategy,
    )
}


def build_strategy(
    name: str | Strategy, lam: float = 1e-4, gate: str = "hard", options: Mapping[str, Any] | None = None
) -> Strategy:
    """Strategy instance from its config name (an instance is returned as is). ``options`` are the strategy's
    own keyword arguments (e.g. ``{"every": 8}`` for ``gradprom_every``, ``{"audit": True}``)."""
    if isinstance(name, Strategy):
        return name
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    try:
        return STRATEGIES[name](lam=lam, gate=gate, **dict(options or {}))
    except TypeError as error:
        raise ValueError(f"invalid strategy_options {dict(options or {})} for strategy {name!r}: {error}") from error


__all__ = [
    "STRATEGIES",
    "build_strategy",
    "Strategy",
    "StepContext",
    "GradientTerms",
    "PlainStrategy",
    "JointStrategy",
    "FrozenStrategy",
    "TransformerStrategy",
    "GradPromStrategy",
    "PCGradStrategy",
    "ImageSpaceGradPromStrategy",
    "PeriodicGradPromStrategy",
]
