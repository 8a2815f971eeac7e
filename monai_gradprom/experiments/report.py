"""``results.json`` / ``results.md`` and the figures of a comparison: the Pareto front of PSNR against the fixed
judge's recognition per strategy, and the fine-tuning curves that show whether the metrics had settled."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_gradprom.experiments.controls import CLAIM_METRICS, claim_table, pareto_front
from monai_gradprom.utils import atomic_write
from monai_gradprom.workflow import pyplot, save_figure, write_json

__all__ = ["aggregate", "compute_seconds", "format_mean_sd", "format_difference", "write_results", "plot_pareto",
           "plot_curves"]

_METRICS = ("psnr", "ssim", "fixed_vr", "unseen_vr", "own_vr", "gate_rate", "mean_gate_weight", "lam")


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds per (arm, strategy, rho), in the rows' order."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row.get("arm"), row["strategy"], row.get("rho")), []).append(row)
    out = []
    for (arm, strategy, rho), members in groups.items():
        entry: dict[str, Any] = {"arm": arm, "strategy": strategy, "rho": rho, "n": len(members)}
        for metric in _METRICS:
            entry[metric] = _mean_sd([m.get(metric) for m in members])
        out.append(entry)
    return out


def format_mean_sd(pair: tuple[float | None, float | None], digits: int) -> str:
    mean, sd = pair
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if not sd else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _signed(value: float, digits: int, sign: str = "+") -> str:
    # below the fixed-point resolution a verdict would stand next to "+0.000": show two significant digits instead
    if value != 0 and abs(value) < 0.5 * 10 ** -digits:
        return f"{value:{sign}.1e}"
    return f"{value:{sign}.{digits}f}"


def format_difference(mean: float | None, sd: float | None, digits: int) -> str:
    """A paired difference as ``+mean ± sd``: ``digits`` decimals, or two significant digits for a value too small
    to show with them (a difference of 4e-05 that *holds* must not read ``+0.000``)."""
    if mean is None:
        return "-"
    return _signed(mean, digits) + (f" ± {_signed(sd, digits, '')}" if sd else "")


def plot_pareto(summary: Sequence[Mapping[str, Any]], references: Mapping[str, Mapping[str, float]], path: Path,
                title: str) -> Path:
    """PSNR (x) against the fixed judge's score (y), one panel per arm, one line per strategy over rho; the
    non-dominated points ringed; plain, the noisy input and the clean image as references."""
    plt = pyplot()
    arms = list(dict.fromkeys(e.get("arm") for e in summary))
    fig, axes = plt.subplots(1, len(arms), figsize=(6.5 * len(arms), 4.5), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        _pareto_panel(ax, [e for e in summary if e.get("arm") == arm], references, f"{title}\n{arm}")
    return save_figure(fig, path)


def _pareto_panel(ax, summary: Sequence[Mapping[str, Any]], references: Mapping[str, Mapping[str, float]],
                  title: str) -> None:
    points = [(e["psnr"][0], e["fixed_vr"][0]) for e in summary if e["psnr"][0] is not None]
    front = {points[i] for i in pareto_front(points)}
    for strategy in dict.fromkeys(e["strategy"] for e in summary):
        entries = sorted((e for e in summary if e["strategy"] == strategy), key=lambda e: e["rho"] or 0)
        xs = [e["psnr"][0] for e in entries]
        ys = [e["fixed_vr"][0] for e in entries]
        marker = "*" if strategy == "plain" else "o"
        ax.plot(xs, ys, marker=marker, label=strategy, markersize=9 if strategy == "plain" else 5)
        for e, x, y in zip(entries, xs, ys):
            if e["rho"] is not None:
                ax.annotate(f"{e['rho']:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    if front:
        fx, fy = zip(*front)
        ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="black", linewidths=0.8, label="Pareto front")
    if "fixed_vr" in references.get("clean", {}):
        ax.axhline(references["clean"]["fixed_vr"], color="green", linestyle="--", linewidth=0.8, label="clean image")
    if "fixed_vr" in references.get("noisy", {}):
        ax.axhline(references["noisy"]["fixed_vr"], color="red", linestyle=":", linewidth=0.8, label="degraded input")
    ax.set_xlabel("PSNR (dB) of IP's output")
    ax.set_ylabel("fixed judge on IP's output")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="best")


def plot_curves(curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]], path: Path, title: str) -> Path:
    """Validation PSNR and fixed-judge score along training, per run (the first seed's), one row per arm:
    colour = strategy, line style = rho, plain drawn thick."""
    plt = pyplot()
    fig, grid = plt.subplots(len(curves), 2, figsize=(10, 3.8 * len(curves)), squeeze=False)
    for axes, (arm, arm_curves) in zip(grid, curves.items()):
        _curve_panels(plt, axes, arm_curves, arm)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def _curve_panels(plt, axes, curves: Mapping[str, Sequence[Mapping[str, float]]], arm: str) -> None:
    # one colour per strategy, one line style per rho: 17 runs stay tellable apart
    names = [tag.split("_rho")[0] for tag in curves]
    rhos = sorted({tag.split("_rho")[1] for tag in curves if "_rho" in tag}, key=float)
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(dict.fromkeys(names))}
    styles = ["-", "--", ":", "-."]
    for tag, curve in curves.items():
        name, _, rho = tag.partition("_rho")
        style = styles[rhos.index(rho) % len(styles)] if rho else "-"
        width = 2.0 if name == "plain" else 0.9
        steps = [p["step"] for p in curve]
        for ax, key in ((axes[0], "psnr"), (axes[1], "fixed_vr")):
            ax.plot(steps, [p[key] for p in curve], label=tag, linewidth=width, color=colours[name], linestyle=style)
    axes[0].set_ylabel(f"validation PSNR (dB)\n{arm}", fontsize=8)
    axes[1].set_ylabel("fixed judge, validation")
    for ax in axes:
        ax.set_xlabel("training step after the start")
    axes[1].legend(fontsize=5, ncol=2)


def _reading(claims: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for c in claims:
        parts = []
        for metric in CLAIM_METRICS:
            v = c.get(metric)
            if not v or v["mean"] is None:
                continue
            parts.append(f"{metric} {format_difference(v['mean'], v.get('sd'), 3)} ({v['verdict']})")
        lines.append(f"| {c['claim']} | {c['rho']:g} | " + "; ".join(parts) + " |")
    return lines


def compute_seconds(payload: Mapping[str, Any]) -> dict[str, float]:
    """Compute seconds by kind of piece, summed over seeds (each piece's first computation, in its process).
    Arms of one regime share the seed's starting IP, arms of one VR start its starting VR: each counts once."""
    out: dict[str, float] = {"judges": 0.0, "starting IP": 0.0, "runs": 0.0}
    arms = {a["name"]: a for a in payload["arms"]}
    for info in payload["per_seed"].values():
        out["judges"] += sum(j.get("seconds", 0.0) for j in info["judges"].values())
        shared: dict[tuple[str, str], float] = {}
        for name, arm in info["arms"].items():
            shared["ip", arms[name]["regime"]] = arm["start"].get("seconds", 0.0)
            shared["vr", arms[name]["vr_start"]] = arm["vr_start"].get("seconds", 0.0)
        out["starting IP"] += sum(shared.values())
    out["runs"] = sum(r.get("seconds", 0.0) for r in payload["rows"])
    return out


def _arm_setup(arm: Mapping[str, str], settings: Mapping[str, Any]) -> str:
    if arm["regime"] == "finetune":
        start = (f"plain IP trained to its PSNR plateau (Adam {settings['ip_lr']:g}, < {settings['plateau_db']} dB over "
                 f"{settings['patience']} evaluations {settings['eval_every']} steps apart, at most "
                 f"{settings['ip_max_steps']} steps), then {settings['finetune_steps']} steps per strategy")
    else:
        start = (f"plain IP warmed up for {settings['warmup_steps']} steps at Adam {settings['warmup_lr']:g} (shared), "
                 f"then {settings['cascade_steps']} steps of co-training per strategy")
    vr = ("the clean-trained fixed judge" if arm["vr_start"] == "judge" else
          ("a randomly initialised VR" if not settings["naive_vr_steps"] else
           f"a VR pretrained for only {settings['naive_vr_steps']} steps"))
    sup = ("labels / masks" if arm["vr_supervision"] == "supervised"
           else "the fixed judge's output on the clean image (unsupervised, softmax L2)")
    return (f"{start}; fresh Adam {settings['finetune_lr']:g} for IP (co-trained VR {settings['finetune_vr_lr']:g}); "
            f"the co-trained VR starts as {vr} and learns from {sup}; `frozen` trains through the fixed judge.")


def write_results(output_dir: Path, payload: Mapping[str, Any], command: str) -> dict[str, Path]:
    """Write ``results.json``, ``results.md``, ``pareto.png`` and ``curves.png`` into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows, references, settings = payload["rows"], payload["references"], payload["settings"]
    summary = aggregate(rows)
    claims = claim_table(rows, settings["rhos"])
    title = f"{payload['bundle']} ({payload['degradation']}, {payload['task_key']}), {len(settings['seeds'])} seed(s)"
    figures = {
        "pareto": plot_pareto(summary, references, output_dir / "pareto.png", title),
        "curves": plot_curves(payload["curves_first_seed"], output_dir / "curves.png", title + ", first seed"),
    }
    seconds = compute_seconds(payload)
    full = {**payload, "summary": summary, "claims": claims, "compute_seconds": seconds}
    json_path = write_json(output_dir / "results.json", full)

    compute = ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items())
    lines = [
        f"# Comparison on `{payload['bundle']}`",
        "",
        f"*Generated by `{command}`; do not edit by hand.* This invocation: {payload['wall_minutes']:.1f} min wall "
        f"with {payload['jobs']} process(es) on {payload['hardware']}; compute minutes per process summed over "
        f"pieces: {compute} (pieces reused from an earlier invocation count their first computation).",
        "",
        "## Setup",
        "",
        f"- Data: bundle `{payload['bundle']}`, degradation `{payload['degradation']}`, task `{payload['task_key']}` "
        f"({payload['num_classes']} classes); {payload['sizes']}. Validation and test images are degraded once "
        "with a fixed seed (the same for every strategy and seed); training batches depend only on (seed, step).",
        f"- Bundle overrides for this scale: `{settings['bundle_overrides']}`.",
        f"- Judges: the fixed VR (the bundle's `vr_network_def`) and an unseen recognizer of another family, both "
        f"trained on clean images until a clean validation score of {payload['min_clean_score']:.3f} "
        "(the run stops with an error when a judge does not reach it).",
        "- lambda = rho / r, r = ||grad L_VR|| / ||grad L_IP|| over IP's parameters through the VR that sends IP "
        "its recognition gradient: the fixed judge for `frozen`, the co-trained VR at its start for `joint` and "
        "GradProm (one network when it starts as the judge; a naive VR's gradients differ from the judge's by "
        "orders of magnitude, so one lambda for both would leave one of them without pull), "
        f"measured per seed and arm at the arm's starting IP on {settings['calibration_batches']} batches; rho in "
        f"{settings['rhos']}; matched-lambda controls at rho {settings['matched_rhos']}"
        + (f", smoothed gate (EMA {settings['smoothed_gate_beta']}) at rho {settings['smoothed_gate_rho']}"
           if settings.get("smoothed_gate_rho") is not None else "") + f"; batch {settings['batch_size']}.",
        "- Arms (regime / VR start / VR supervision):",
    ]
    for arm in payload["arms"]:
        lines.append(f"  - `{arm['name']}`: {_arm_setup(arm, settings)}")
    lines += [
        "- Verdicts: paired differences within a seed, then over seeds: *holds* / *reversed* when the mean is more "
        "than 2 standard errors from zero, *within spread* otherwise, *one seed* when there is no spread to judge by. "
        "`own_vr` is the recognizer each strategy co-trained, on its own IP's output (for `frozen`, the fixed judge).",
        "",
        "## Judges and references (test set, mean over seeds)",
        "",
        "| seed | fixed VR clean score (steps) | unseen clean score (steps) |",
        "|---|---|---|",
    ]
    for seed, info in payload["per_seed"].items():
        j = info["judges"]
        lines.append(f"| {seed} | {j['fixed_vr']['clean_score']:.3f} ({j['fixed_vr']['steps']}) | "
                     f"{j['unseen_vr']['clean_score']:.3f} ({j['unseen_vr']['steps']}) |")
    noisy, clean = references["noisy"], references["clean"]
    lines += [
        "",
        "| image | PSNR | SSIM | fixed VR | unseen VR |",
        "|---|---|---|---|---|",
        f"| degraded input | {noisy['psnr']:.2f} | {noisy['ssim']:.3f} | {noisy['fixed_vr']:.3f} | {noisy['unseen_vr']:.3f} |",
        f"| clean image | - | - | {clean['fixed_vr']:.3f} | {clean['unseen_vr']:.3f} |",
        "",
    ]
    for arm in payload["arms"]:
        name = arm["name"]
        lines += [f"## Arm `{name}`", "", "| seed | starting IP (val PSNR) | co-trained VR start, clean score | r judge / co-trained | "
                  "gate sign agreement | median abs cos |", "|---|---|---|---|---|---|"]
        for seed, info in payload["per_seed"].items():
            a = info["arms"].get(name)
            if a is None:
                continue
            start = a["start"]
            if "val_psnr" in start and isinstance(start["val_psnr"], list):
                desc = (f"plateau after {start['steps']} steps ({max(start['val_psnr']):.2f} dB"
                        f"{'' if start.get('plateaued') else ', no plateau'})")
            else:
                desc = f"warm-up {start['steps']} steps ({start['val_psnr']:.2f} dB)"
            noise = a["gate_noise"]
            lines.append(f"| {seed} | {desc} | {a['vr_start']['clean_score']:.3f} | {a['calibration']['ratio']:.3g} / "
                         f"{a['calibration'].get('ratio_cotrained', a['calibration']['ratio']):.3g} | "
                         f"{noise['agreement']:.2f} | {noise['median_abs_cos']:.3f} |")
        lines += ["", "| strategy | rho | lambda | PSNR | SSIM | fixed VR | unseen VR | own VR | gate open | mean gate weight |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for e in (e for e in summary if e.get("arm") == name):
            rho = "-" if e["rho"] is None else f"{e['rho']:g}"
            lam = "-" if e["lam"][0] is None else f"{e['lam'][0]:.3g}"
            lines.append(
                f"| {e['strategy']} | {rho} | {lam} | {format_mean_sd(e['psnr'], 2)} | {format_mean_sd(e['ssim'], 3)} | {format_mean_sd(e['fixed_vr'], 3)} | "
                f"{format_mean_sd(e['unseen_vr'], 3)} | {format_mean_sd(e['own_vr'], 3)} | {format_mean_sd(e['gate_rate'], 2)} | {format_mean_sd(e['mean_gate_weight'], 2)} |")
        lines += ["", "Claims (paired over seeds: better - worse):", "",
                  "| claim | rho | PSNR, fixed VR, unseen VR, own VR |", "|---|---|---|"]
        lines += _reading([c for c in claims if c.get("arm") == name])
        lines.append("")
    lines += ["![Pareto front](pareto.png)", "", "## Training curves (first seed)", "", "![curves](curves.png)", ""]
    if payload.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in payload["notes"]] + [""]
    md_path = output_dir / "results.md"
    atomic_write(md_path, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return {"json": json_path, "md": md_path, **figures}
