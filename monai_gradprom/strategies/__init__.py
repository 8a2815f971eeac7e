"""Training strategies, selectable by name. See :mod:`monai_gradprom.strategies.base` for the interface."""

from __future__ import annotations

from monai_gradprom.strategies.base import GradientTerms, StepContext, Strategy
from monai_gradprom.strategies.gated import GradPromStrategy, PCGradStrategy
from monai_gradprom.strategies.simple import FrozenStrategy, JointStrategy, PlainStrategy, TransformerStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (PlainStrategy, JointStrategy, FrozenStrategy, TransformerStrategy, GradPromStrategy, PCGradStrategy)
}


def build_strategy(name: str | Strategy, lam: float = 1e-4, gate: str = "hard") -> Strategy:
    """Strategy instance from its config name (an instance is returned as is)."""
    if isinstance(name, Strategy):
        return name
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](lam=lam, gate=gate)


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
]
