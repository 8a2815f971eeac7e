"""Hand a trained bundle on in MONAI's standard layout: ``python -m monai_gradprom.bundle export ...``.

Inside the ``monai_gradprom`` namespace, so it never shadows ``monai.bundle``.
"""

from monai_gradprom.bundle.export import (
    CONFIG_FILES,
    RECOGNIZER_FILES,
    bundles_root,
    export_bundle,
    parse_overrides,
    resolve_bundle,
    split_checkpoint,
)

__all__ = [
    "CONFIG_FILES",
    "RECOGNIZER_FILES",
    "bundles_root",
    "export_bundle",
    "parse_overrides",
    "resolve_bundle",
    "split_checkpoint",
]
