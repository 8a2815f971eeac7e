"""One page over several comparisons (``docs/results.md``): per source and arm, what each strategy reached and
the verdict of every claim, with a table of the GradProm verdicts across sources and arms at the top.

Built from the comparisons' ``results.json`` files only, so the page can be regenerated without training:

    python -m monai_gradprom.experiments overview outputs/compare/*/results.json --out docs/results.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_gradprom.experiments.controls import CLAIM_METRICS, claim_table
from monai_gradprom.experiments.report import aggregate, compute_seconds, format_difference, format_mean_sd
from monai_gradprom.utils import atomic_write

__all__ = ["load_results", "overview_lines", "write_overview", "HEADLINE_CLAIMS"]

# the claims the top table follows across sources: GradProm against joint training, and whether there was room
HEADLINE_CLAIMS = (
    "joint differs from plain (room for a gate)",
    "GradProm (hard) > joint, equal lambda",
    "GradProm (soft) > joint, equal lambda",
    "GradProm (hard) > joint, matched effective lambda",
    "GradProm (soft) > joint, matched effective lambda",
    "RA: frozen > plain",
)
_METRIC_NAMES = {"psnr": "PSNR (dB)", "fixed_vr": "fixed judge", "unseen_vr": "unseen judge", "own_vr": "own VR"}


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """A comparison's ``results.json``, refused with the file's name when it is not one."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable results.json ({err})") from err
    missing = [k for k in ("bundle", "rows", "settings", "references") if k not in payload]
    if missing:
        raise ValueError(f"{path}: not a comparison's results.json (no {', '.join(missing)})")
    return payload


def _cell(value: Mapping[str, Any] | None, digits: int) -> str:
    if not value or value.get("mean") is None:
        return "-"
    return f"{format_difference(value['mean'], value.get('sd'), digits)} *{value['verdict']}*"


def _digits(metric: str) -> int:
    return 2 if metric == "psnr" else 3


def _claims(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    # recomputed from the rows: the verdicts follow today's rules, whichever version wrote the file
    return claim_table(payload["rows"], payload["settings"]["rhos"])


def _timing(payload: Mapping[str, Any]) -> str:
    # a rerun that reused stored pieces took less wall time than the comparison: say which is which (the compute
    # minutes recomputed, like the claims, so a file from an older version is counted by today's rules)
    compute = sum(compute_seconds(payload).values()) / 60
    text = (f"The last invocation took {payload.get('wall_minutes', 0):.0f} min wall with {payload.get('jobs', 1)} "
            f"process(es) on {payload.get('hardware', '?')}")
    return text + (f"; all pieces together {compute:.0f} compute-min." if compute else ".")


def headline_lines(payloads: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`HEADLINE_CLAIMS` per source and arm, on PSNR, the fixed and unseen judges and the own VR."""
    lines = ["| source | arm | claim | rho | PSNR (dB) | fixed judge | unseen judge | own VR |",
             "|---|---|---|---|---|---|---|---|"]
    for payload in payloads:
        claims = _claims(payload)
        for arm in payload.get("arms", []):
            for name in HEADLINE_CLAIMS:
                for c in (c for c in claims if c["arm"] == arm["name"] and c["claim"] == name):
                    cells = " | ".join(_cell(c.get(m), _digits(m)) for m in CLAIM_METRICS)
                    lines.append(f"| `{payload['bundle']}` | `{arm['name']}` | {name} | {c['rho']:g} | {cells} |")
    return lines


def source_lines(payload: Mapping[str, Any], link: str | None = None) -> list[str]:
    """One source's section: data, judges, then per arm the strategies' scores and every claim's verdict."""
    settings, refs = payload["settings"], payload["references"]
    judges = [info["judges"] for info in payload.get("per_seed", {}).values()]
    clean = ", ".join(f"{j['fixed_vr']['clean_score']:.2f}" for j in judges)
    lines = [f"## Source `{payload['bundle']}`", ""]
    if link:
        lines += [f"Full report: [{link}]({link}).", ""]
    lines += [
        f"Degradation `{payload['degradation']}`, task `{payload['task_key']}` ({payload['num_classes']} classes); "
        f"{payload['sizes']}; {len(settings['seeds'])} seeds; fixed judge's clean validation score per seed {clean}; "
        f"fixed judge on the degraded test input {refs['noisy'].get('fixed_vr', float('nan')):.3f}, on the clean "
        f"image {refs['clean'].get('fixed_vr', float('nan')):.3f}; degraded input {refs['noisy']['psnr']:.2f} dB. "
        f"{_timing(payload)}",
        "",
    ]
    summary, claims = aggregate(payload["rows"]), _claims(payload)
    for arm in payload.get("arms", []):
        name = arm["name"]
        steps = (f"{settings['finetune_steps']} fine-tuning steps from the plain IP's plateau"
                 if arm["regime"] == "finetune" else
                 f"{settings['warmup_steps']} warm-up steps, then {settings['cascade_steps']} co-training steps")
        lines += [f"### `{payload['bundle']}`, arm `{name}`", "",
                  f"{steps}; the co-trained VR starts as {'the fixed judge' if arm['vr_start'] == 'judge' else 'a naive VR'}, "
                  f"{arm['vr_supervision']}. Mean ± sd over seeds (test set):", "",
                  "| strategy | rho | PSNR (dB) | fixed judge | unseen judge | own VR | gate open |",
                  "|---|---|---|---|---|---|---|"]
        for e in (e for e in summary if e.get("arm") == name):
            rho = "-" if e["rho"] is None else f"{e['rho']:g}"
            lines.append(f"| {e['strategy']} | {rho} | {format_mean_sd(e['psnr'], 2)} | "
                         f"{format_mean_sd(e['fixed_vr'], 3)} | {format_mean_sd(e['unseen_vr'], 3)} | "
                         f"{format_mean_sd(e['own_vr'], 3)} | {format_mean_sd(e['gate_rate'], 2)} |")
        lines += ["", "Claims, paired within a seed (better - worse, mean ± sd over seeds, verdict):", "",
                  "| claim | rho | " + " | ".join(_METRIC_NAMES[m] for m in CLAIM_METRICS) + " |",
                  "|---|---|" + "---|" * len(CLAIM_METRICS)]
        for c in (c for c in claims if c["arm"] == name):
            cells = " | ".join(_cell(c.get(m), _digits(m)) for m in CLAIM_METRICS)
            lines.append(f"| {c['claim']} | {c['rho']:g} | {cells} |")
        lines.append("")
    return lines


def overview_lines(payloads: Sequence[Mapping[str, Any]], links: Sequence[str | None] | None = None,
                   command: str = "") -> list[str]:
    links = list(links or [None] * len(payloads))
    lines = [
        "# Comparison results",
        "",
        f"*Generated by `{command or 'python -m monai_gradprom.experiments overview'}` from the comparisons' "
        "`results.json`; do not edit by hand.* Verdicts: *holds* / *reversed* (*differs* for a two-sided claim) when "
        "the mean paired difference is more than 2 standard errors from zero over the seeds, *within spread* "
        "otherwise. How the comparison is "
        "built, and what these numbers can and cannot say: [experiments.md](experiments.md).",
        "",
        "## GradProm against joint training, per source and arm",
        "",
    ]
    lines += headline_lines(payloads) + [""]
    for payload, link in zip(payloads, links):
        lines += source_lines(payload, link)
    return lines


def write_overview(results: Sequence[str | os.PathLike], out: str | os.PathLike,
                   links: Sequence[str | None] | None = None, command: str = "") -> Path:
    """Write the overview of the ``results.json`` files to ``out`` (atomically); ``links``: each source's report."""
    payloads = [load_results(p) for p in results]
    out = Path(out)
    text = "\n".join(overview_lines(payloads, links, command))
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    return out
