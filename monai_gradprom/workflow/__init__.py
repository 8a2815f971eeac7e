"""Running a bundle's pieces outside its Ignite workflow: read its config, build and load its networks, run
them over image tensors, write the results atomically.

Shared by the analysis tools, the comparison protocol (:mod:`monai_gradprom.experiments`) and the exporter
(:mod:`monai_gradprom.bundle`); sits below all three and above the engines.

- :mod:`~monai_gradprom.workflow.config`: bundle configs, ``key=value`` overrides, data splits;
- :mod:`~monai_gradprom.workflow.networks`: networks from their definitions and checkpoints, batched IP / VR;
- :mod:`~monai_gradprom.workflow.outputs`: strict JSON, CSV and PNG figures, written atomically.
"""

from monai_gradprom.workflow.config import (
    get_config,
    load_bundle_config,
    parse_overrides,
    seed_transforms,
    split_items,
    task_of,
)
from monai_gradprom.workflow.networks import (
    NO_PROCESSING,
    build_network,
    enhance,
    load_enhancer,
    load_named_recognizers,
    load_recognizer,
    load_weights,
    predict,
    recognizer_arch,
)
from monai_gradprom.workflow.outputs import json_safe, pyplot, save_figure, write_csv, write_json

__all__ = [
    "load_bundle_config",
    "parse_overrides",
    "get_config",
    "split_items",
    "seed_transforms",
    "task_of",
    "NO_PROCESSING",
    "build_network",
    "load_weights",
    "load_enhancer",
    "load_recognizer",
    "load_named_recognizers",
    "recognizer_arch",
    "enhance",
    "predict",
    "json_safe",
    "pyplot",
    "save_figure",
    "write_csv",
    "write_json",
]
