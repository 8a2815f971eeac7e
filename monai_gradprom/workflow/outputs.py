"""Result files written atomically: strict JSON (NaN / inf as ``null``), CSV tables, PNG figures."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_gradprom.utils import atomic_write

__all__ = ["json_safe", "write_json", "write_csv", "pyplot", "save_figure"]


def json_safe(obj: Any) -> Any:
    """JSON-safe copy: tensors become numbers / lists, NaN and inf become ``None`` (strict JSON has neither)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented strict JSON, atomically."""
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and not math.isfinite(v) else v for v in row])
    text = buffer.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    plt = pyplot()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)
