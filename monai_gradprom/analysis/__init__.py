"""Evaluation and analysis tools: transferability, domain generalization, decision boundaries, CAMs, figures.

One module per job (see docs/analysis.md); every tool also runs as ``python -m monai_gradprom.analysis <tool>``.

- :mod:`~monai_gradprom.analysis.transfer`: outputs of each IP on other recognizers (RA paper Table 2);
- :mod:`~monai_gradprom.analysis.domain`: a checkpoint evaluated on another data set (GradProm Table 4);
- :mod:`~monai_gradprom.analysis.boundary`: boundary distances, inter-boundary distance, decision maps (RA sec. 5);
- :mod:`~monai_gradprom.analysis.cam`: MONAI Grad-CAM / CAM of VR on each strategy's outputs (GradProm Fig. 5);
- :mod:`~monai_gradprom.analysis.qualitative`, :mod:`~monai_gradprom.analysis.curves`,
  :mod:`~monai_gradprom.analysis.bars`: image grids, TensorBoard training curves, metric bars over seeds;
- :mod:`~monai_gradprom.analysis.gate_agreement`: how often a minibatch's gate agrees with the large-batch one;
- :mod:`~monai_gradprom.analysis.summary`: evaluation results side by side (the demo's table).

Names are imported lazily, so ``import monai_gradprom.analysis`` costs nothing, and matplotlib is imported
only when a figure is drawn (always on the non-interactive Agg backend).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "transfer_table": "transfer",
    "train_recognizers": "transfer",
    "recognition_scores": "transfer",
    "TransferTable": "transfer",
    "evaluate_checkpoint": "domain",
    "boundary_distance": "boundary",
    "inter_boundary_distance": "boundary",
    "decision_map": "boundary",
    "plot_decision_maps": "boundary",
    "ra_directions": "boundary",
    "random_directions": "boundary",
    "boundary_analysis": "boundary",
    "class_activation_maps": "cam",
    "plot_cam_grid": "cam",
    "plot_qualitative_grid": "qualitative",
    "image_quality": "qualitative",
    "read_scalars": "curves",
    "plot_training_curves": "curves",
    "plot_metric_bars": "bars",
    "summarize_metrics": "bars",
    "load_bundle_config": "_common",
    "load_split": "_common",
    "load_enhancer": "_common",
    "load_recognizer": "_common",
    "gate_sign_agreement": "gate_agreement",
    "summary_rows": "summary",
    "format_summary": "summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
