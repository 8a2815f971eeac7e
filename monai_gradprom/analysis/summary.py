"""A table of evaluation results side by side: recognition on the degraded input, on each IP's output and on the
clean image, read from the ``metrics.json`` files the bundles' evaluation writes.

    python -m monai_gradprom.analysis.summary outputs/demo/plain/metrics.json outputs/demo/gradprom/metrics.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["summary_rows", "format_summary", "main"]

_RECOGNITION = ("accuracy", "dice", "miou")


def _load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path} (run the bundle's evaluation first)")
    return json.loads(path.read_text())


def summary_rows(metrics: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{"image", "psnr", "ssim", <recognition metrics>}``: the degraded input (from the first file), each
    run's output (named by its strategy), and the clean image (``target_*``, from the first file that has them)."""
    if not metrics:
        raise ValueError("no metrics given")
    names = [m for m in _RECOGNITION if m in metrics[0]]
    first = metrics[0]
    rows = [{"image": "degraded input", "psnr": first.get("input_psnr"), "ssim": first.get("input_ssim"),
             **{m: first.get(f"input_{m}") for m in names}}]
    for m in metrics:
        rows.append({"image": f"{m.get('strategy', '?')} output", "psnr": m.get("psnr"), "ssim": m.get("ssim"),
                     **{n: m.get(n) for n in names}})
    target = next((m for m in metrics if any(f"target_{n}" in m for n in names)), None)
    if target is not None:
        rows.append({"image": "clean image", "psnr": None, "ssim": None, **{n: target.get(f"target_{n}") for n in names}})
    return rows


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`summary_rows`."""
    keys = [k for k in rows[0] if k != "image"]
    lines = ["| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        cells = ["-" if row.get(k) is None else f"{row[k]:.3f}" if k != "psnr" else f"{row[k]:.2f}" for k in keys]
        lines.append(f"| {row['image']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    files = list(sys.argv[1:] if argv is None else argv)
    if not files:
        print(__doc__)
        return 2
    print(format_summary(summary_rows([_load(f) for f in files])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
