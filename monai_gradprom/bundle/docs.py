"""The documents an exported bundle carries: ``docs/README.md`` written for the export, and the model zoo's
``large_files.yml`` (path, url, hash of each weight file)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["export_readme", "large_files_yml"]

_FOREIGN = ("bundles/", "smoke.json")  # paths of the source tree that an exported bundle does not hold
_FENCE = re.compile(r"^(```|~~~)")
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?:\.\./)+([^)]+)\)")  # [text](../../docs/x.md): outside the bundle


def _usage(name: str, metadata: Mapping[str, Any], models: Iterable[str], schema: str | None) -> str:
    dataset = "" if name == "demo" else " --dataset_dir /path/to/data"
    weights = "\n".join(f"- `models/{m}`" for m in models)
    verify = (
        f"\n# the metadata against its schema, offline (needs jsonschema: pip install monai_gradprom[bundle])\n"
        f"python -m monai.bundle verify_metadata --meta_file configs/metadata.json --filepath configs/{schema}"
        if schema else ""
    )
    return f"""## Using this exported bundle

This folder is a standard MONAI bundle exported by `python -m monai_gradprom.bundle export` from the
monai_gradprom bundle `{name}`. Its configs use MONAI's convention `"bundle_root": "."`: run the commands from this
folder (or pass `--bundle_root /path/to/this/folder`); the folder may be moved or renamed freely. The configs
import `monai_gradprom` (see `required_packages_version` in `configs/metadata.json`): install it where the bundle
runs.

Weights (listed with their hashes in `large_files.yml`, as in MONAI's model zoo):

{weights}

```bash
# evaluate the exported weights: writes outputs/<strategy>/metrics.json
python -m monai.bundle run --config_file "['configs/train.json','configs/evaluate.json']" \\
    --meta_file configs/metadata.json{dataset}
# enhance a folder of images
python -m monai.bundle run --config_file configs/inference.json --input_dir my_images
# train again from these configs (writes outputs/<strategy>/)
python -m monai.bundle run --config_file configs/train.json --meta_file configs/metadata.json{dataset}
# TorchScript of the enhancement network
python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt \\
    --meta_file configs/metadata.json --config_file configs/inference.json{verify}
```

```python
import monai.bundle
# NAME: this folder's name, PARENT: the folder that holds it; returns network_def with models/model.pt loaded
net = monai.bundle.load(NAME, bundle_dir=PARENT, device="cpu")
```

`configs/metadata.json` records, under `run_config`, the settings the weights were trained with; evaluation and
inference compare them with their own configs.
"""


def _outside_link(match: re.Match) -> str:
    """A link out of the bundle (into the source tree) as plain text naming the package's file."""
    text, target = match.group(1), match.group(2)
    where = f"monai_gradprom's `{target}`"
    return where if text.strip("`") == target else f"{text} ({where})"


def export_readme(
    source: str, name: str, metadata: Mapping[str, Any], models: Iterable[str], schema: str | None = None
) -> str:
    """``docs/README.md`` of an export: the source bundle's README without what only its source tree holds (code
    blocks and paragraphs naming ``bundles/...`` or ``smoke.json``, links out of the bundle), with the
    export's own usage section where the first such code block was (else after the introduction)."""
    usage = _usage(name, metadata, models, schema)
    blocks, current, fenced = [], [], False  # paragraphs and code blocks, each a list of lines
    for line in source.splitlines():
        if _FENCE.match(line.strip()):
            if not fenced:
                if current:
                    blocks.append(current)
                current, fenced = [line], True
            else:
                blocks.append([*current, line])
                current, fenced = [], False
        elif not fenced and not line.strip():
            if current:
                blocks.append(current)
            current = []
        else:
            current.append(line)
    if current:
        blocks.append(current)

    out: list[str] = []
    placed = False
    for block in blocks:
        text = "\n".join(block)
        if any(token in text for token in _FOREIGN):
            if _FENCE.match(block[0].strip()) and not placed:
                out.append(usage.rstrip())
                placed = True
            continue
        out.append(_RELATIVE_LINK.sub(_outside_link, text))
    # a heading left with nothing under it (its commands were removed) goes too
    kept = [b for i, b in enumerate(out)
            if not (b.startswith("#") and "\n" not in b and (i + 1 == len(out) or out[i + 1].startswith("#")))]
    if not placed:
        kept.insert(min(2, len(kept)), usage.rstrip())
    return "\n\n".join(kept) + "\n"


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def large_files_yml(root: Path, files: Iterable[str], url: str = "") -> str:
    """The model zoo's ``large_files.yml`` for ``files`` (relative to ``root``): path, url, md5 hash.

    ``url`` is empty until the weights are hosted somewhere (the model zoo downloads them from there); the hash
    lets ``monai.bundle`` / the zoo's scripts check a downloaded copy."""
    lines = [
        "# Weight files of this bundle, in the MONAI model zoo's format. Fill in each url where the file is hosted",
        "# when publishing; hash_val checks a downloaded copy.",
        "large_files:",
    ]
    for rel in files:
        lines += [
            f"  - path: {json.dumps(rel)}",
            f"    url: {json.dumps(url)}",
            f"    hash_val: {json.dumps(_md5(root / rel))}",
            '    hash_type: "md5"',
        ]
    return "\n".join(lines) + "\n"
