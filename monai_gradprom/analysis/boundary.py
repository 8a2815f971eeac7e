"""Decision-boundary analysis of recognition-aware processing (Liu et al., "Transferable Recognition-Aware Image
Processing", section 5).

Why does an IP trained with one recognizer also help others? The paper's answer: from the plain-processed image
``x = P_plain(input)``, the RA direction ``d = (P_RA(input) - x) / ||P_RA(input) - x||`` crosses the decision
boundaries of *different* recognizers at nearly the same distance, much more so than a random direction does.

- ``BD(R, x, d)``: the smallest ``t > 0`` with ``argmax R(x + t d) != argmax R(x)``, found on a grid of
  ``grid_steps`` points in ``(0, max_distance]`` and refined by bisection. A boundary narrower than the grid
  spacing can be missed (as with any line search); no crossing within ``max_distance`` is reported as
  ``max_distance`` with ``found = False`` (never inf / NaN).
- ``IBD(R_s, R_t, x, d) = |BD(R_s, x, d) - BD(R_t, x, d)|``, averaged, as in the paper, over the images on
  which both recognizers make the *same wrong* prediction at ``x`` (``R_s(x) = R_t(x) != label``: a crossing
  is what RA processing needs, and only from a shared class do the two BDs measure boundaries of the same
  region; with more than 2 classes this is stricter than "both wrong") and where both boundaries were found.
  The mean BDs reported next to an IBD are over the same images.
- the decision map: the class each recognizer predicts on the plane spanned by the RA direction (horizontal) and
  a random direction orthogonal to it (vertical), centred on ``x``.

Classification recognizers only (the class is the argmax of ``(B, K)`` logits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from monai_gradprom.analysis._common import progress
from monai_gradprom.workflow import pyplot, save_figure

__all__ = [
    "BoundaryDistance",
    "unit_directions",
    "random_directions",
    "ra_directions",
    "boundary_distance",
    "inter_boundary_distance",
    "decision_map",
    "plot_decision_maps",
    "boundary_analysis",
]


@dataclass
class BoundaryDistance:
    """Per-image boundary distances: ``distance`` (N,) (``max_distance`` where not found), ``found`` (N,) bool,
    ``base_class`` (N,) the class predicted at the starting point."""

    distance: torch.Tensor
    found: torch.Tensor
    base_class: torch.Tensor


def unit_directions(direction: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Each sample's direction scaled to unit L2 norm; an all-zero direction stays zero (never NaN)."""
    flat = direction.float().reshape(len(direction), -1)
    norm = flat.norm(dim=1, keepdim=True)
    return torch.where(norm > eps, flat / norm.clamp_min(eps), torch.zeros_like(flat)).reshape(direction.shape)


def random_directions(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Isotropic random unit directions (normalised Gaussian noise), one per sample of ``like``."""
    noise = torch.randn(like.shape, generator=generator, dtype=torch.float32)
    return unit_directions(noise).to(like.device)


def ra_directions(ra_output: torch.Tensor, plain_output: torch.Tensor) -> torch.Tensor:
    """The RA direction: recognition-aware output minus plain output, per sample, normalised."""
    if ra_output.shape != plain_output.shape:
        raise ValueError(f"RA output {tuple(ra_output.shape)} and plain output {tuple(plain_output.shape)} differ")
    return unit_directions(ra_output.float() - plain_output.float())


@torch.no_grad()
def _classes(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    out = [model(images[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def boundary_distance(
    model: nn.Module,
    x: torch.Tensor,
    direction: torch.Tensor,
    max_distance: float = 10.0,
    grid_steps: int = 32,
    bisection_steps: int = 20,
    batch_size: int = 64,
) -> BoundaryDistance:
    """``BD(model, x, d)`` for each sample of ``x`` (N, C, *spatial) along ``direction`` (same shape; normalised
    here). Accuracy: ``max_distance / grid_steps / 2 ** bisection_steps``. The model is put in eval mode."""
    if x.shape != direction.shape:
        raise ValueError(f"x {tuple(x.shape)} and direction {tuple(direction.shape)} must have the same shape")
    if max_distance <= 0 or grid_steps < 1 or bisection_steps < 0:
        raise ValueError("need max_distance > 0, grid_steps >= 1 and bisection_steps >= 0")
    model.eval()
    x = x.float().cpu()
    d = unit_directions(direction.cpu())
    n = len(x)
    shape = (n,) + (1,) * (x.ndim - 1)
    base = _classes(model, x, batch_size)
    found = torch.zeros(n, dtype=torch.bool)
    lo = torch.zeros(n)
    hi = torch.full((n,), float(max_distance))
    previous = 0.0
    for t in torch.linspace(0, max_distance, grid_steps + 1)[1:].tolist():
        todo = (~found).nonzero().reshape(-1)
        if len(todo) == 0:
            break
        changed = _classes(model, x[todo] + t * d[todo], batch_size) != base[todo]
        hit = todo[changed]
        found[hit] = True
        lo[hit], hi[hit] = previous, t
        previous = t
    idx = found.nonzero().reshape(-1)
    for _ in range(bisection_steps if len(idx) else 0):
        mid = (lo[idx] + hi[idx]) / 2
        changed = _classes(model, x[idx] + mid.reshape((-1,) + shape[1:]) * d[idx], batch_size) != base[idx]
        hi[idx] = torch.where(changed, mid, hi[idx])
        lo[idx] = torch.where(changed, lo[idx], mid)
    distance = torch.where(found, hi, torch.full_like(hi, float(max_distance)))
    return BoundaryDistance(distance=distance, found=found, base_class=base)


def inter_boundary_distance(
    source: nn.Module,
    target: nn.Module,
    x: torch.Tensor,
    direction: torch.Tensor,
    labels: torch.Tensor | None = None,
    source_bd: BoundaryDistance | None = None,
    **kwargs,
) -> dict:
    """``IBD = mean |BD_source - BD_target|`` along ``direction``, over the images selected as in the RA paper,
    ``R_s(x) = R_t(x) != label`` (without ``labels``: ``R_s(x) = R_t(x)``), whose boundaries both were found
    within ``max_distance``.

    Returns ``ibd`` (NaN when no image qualifies), ``bd_source`` / ``bd_target`` (mean BDs over the same images),
    the counts ``n_images`` (averaged over), ``n_selected`` (the paper's selection, before the found filter),
    ``n_misclassified_both`` (both wrong, possibly with different classes; None without labels),
    ``n_not_found`` (selected but a boundary not found), the per-image tensors and the ``valid`` mask.
    ``kwargs`` go to :func:`boundary_distance`; ``source_bd`` reuses a computed source result.
    """
    bd_s = source_bd if source_bd is not None else boundary_distance(source, x, direction, **kwargs)
    bd_t = boundary_distance(target, x, direction, **kwargs)
    selected = bd_s.base_class == bd_t.base_class
    both_wrong = None
    if labels is not None:
        labels = labels.reshape(-1).cpu().long()
        if labels.shape != bd_s.base_class.shape:
            raise ValueError(f"labels {tuple(labels.shape)} do not match the {len(bd_s.base_class)} images")
        both_wrong = (bd_s.base_class != labels) & (bd_t.base_class != labels)
        selected = selected & both_wrong
    valid = selected & bd_s.found & bd_t.found
    gap = (bd_s.distance - bd_t.distance).abs()
    nan = float("nan")
    return {
        "ibd": float(gap[valid].mean()) if valid.any() else nan,
        "bd_source": float(bd_s.distance[valid].mean()) if valid.any() else nan,
        "bd_target": float(bd_t.distance[valid].mean()) if valid.any() else nan,
        "n_images": int(valid.sum()),
        "n_selected": int(selected.sum()),
        "n_misclassified_both": None if both_wrong is None else int(both_wrong.sum()),
        "n_not_found": int((selected & ~(bd_s.found & bd_t.found)).sum()),
        "source": bd_s,
        "target": bd_t,
        "valid": valid,
    }


@torch.no_grad()
def decision_map(
    model: nn.Module,
    x: torch.Tensor,
    horizontal: torch.Tensor,
    vertical: torch.Tensor,
    extent: float | tuple[float, float] = 10.0,
    resolution: int = 41,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Classes predicted on the plane ``x + a h + b v`` for one image ``x`` (C, *spatial): ``h`` is the unit
    ``horizontal`` direction, ``v`` the ``vertical`` one made orthogonal to ``h`` (Gram-Schmidt) and
    normalised. ``a`` and ``b`` run over ``[-extent, extent]`` (``extent`` may be ``(horizontal, vertical)``).
    Returns ``(a (R,), b (R,), classes (R_b, R_a))``."""
    model.eval()
    h = unit_directions(horizontal.unsqueeze(0).cpu())[0]
    v = vertical.float().cpu() - (vertical.float().cpu() * h).sum() * h
    v = unit_directions(v.unsqueeze(0))[0]
    ex, ey = (extent, extent) if isinstance(extent, (int, float)) else extent
    a = torch.linspace(-ex, ex, resolution)
    b = torch.linspace(-ey, ey, resolution)
    bb, aa = torch.meshgrid(b, a, indexing="ij")
    shape = (-1,) + (1,) * x.ndim
    points = x.float().cpu().unsqueeze(0) + aa.reshape(shape) * h + bb.reshape(shape) * v
    return a, b, _classes(model, points, batch_size).reshape(resolution, resolution)


def plot_decision_maps(
    maps: Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    path: str | os.PathLike,
    num_classes: int,
    marks: Mapping[str, tuple[float, float]] | None = None,
    label: int | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """One panel per recognizer: its decision regions on the (RA, random) plane, with ``marks`` (e.g. the plain
    output at (0, 0) and the RA output at (||P_RA - P_plain||, 0)) and the true class named in the title."""
    plt = pyplot()
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    palette = plt.get_cmap("tab10").colors
    cmap = ListedColormap([palette[i % 10] for i in range(num_classes)])
    norm = BoundaryNorm([i - 0.5 for i in range(num_classes + 1)], num_classes)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.3), squeeze=False)
    names = class_names or [str(i) for i in range(num_classes)]
    for ax, (name, (a, b, classes)) in zip(axes.flat, maps.items()):
        ax.imshow(classes.numpy(), origin="lower", cmap=cmap, norm=norm, interpolation="nearest", aspect="auto",
                  extent=(float(a[0]), float(a[-1]), float(b[0]), float(b[-1])))
        for mark, (mx, my) in (marks or {}).items():
            ax.plot([mx], [my], marker="o" if mark == "plain" else "*", color="k", ms=7 if mark == "plain" else 11,
                    markerfacecolor="white" if mark == "plain" else "k", linestyle="none", label=mark)
        ax.axhline(0, color="k", linewidth=0.5, alpha=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("RA direction", fontsize=8)
        ax.set_ylabel("random direction", fontsize=8)
    handles = [Patch(color=cmap(i), label=names[i] if i < len(names) else str(i)) for i in range(num_classes)]
    handles += [h for h in axes.flat[0].get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, -0.08))
    if title or label is not None:
        fig.suptitle((title or "") + (f"  (true class: {names[label] if label < len(names) else label})" if label is not None else ""), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def boundary_analysis(
    source: nn.Module,
    targets: Mapping[str, nn.Module],
    plain_output: torch.Tensor,
    ra_output: torch.Tensor,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    max_distance: float = 10.0,
    grid_steps: int = 32,
    bisection_steps: int = 20,
    batch_size: int = 64,
    show_progress: bool = True,
) -> dict:
    """BD of the source and every target recognizer along the RA and a random direction from the plain output,
    and the IBD between source and each target: ``{"ra": {...}, "random": {...}}`` of JSON-ready numbers.

    Per target, ``ibd``, ``bd_source``, ``bd_target`` and ``bd_mean`` (= ``bd_target``) are means over the same
    images: IBD's selection (:func:`inter_boundary_distance`), as in the paper's Table 6. The source entry's
    ``bd_mean`` is over every image whose source boundary was found (it belongs to no single target)."""
    generator = torch.Generator().manual_seed(seed)
    directions = {"ra": ra_directions(ra_output, plain_output), "random": random_directions(plain_output, generator)}
    kwargs = dict(max_distance=max_distance, grid_steps=grid_steps, bisection_steps=bisection_steps, batch_size=batch_size)
    out: dict = {}
    jobs = [(kind, name) for kind in directions for name in targets]
    bar = iter(progress(jobs, "boundary distances", total=len(jobs), enable=show_progress))
    for kind, d in directions.items():
        src = boundary_distance(source, plain_output, d, **kwargs)
        entry = {
            "source": {"bd_mean": float(src.distance[src.found].mean()) if src.found.any() else float("nan"),
                       "found": int(src.found.sum()), "n": len(src.found)},
            "targets": {},
        }
        for name, target in targets.items():
            next(bar, None)
            res = inter_boundary_distance(source, target, plain_output, d, labels=labels, source_bd=src, **kwargs)
            tgt = res["target"]
            entry["targets"][name] = {
                "ibd": res["ibd"],
                "bd_source": res["bd_source"],
                "bd_target": res["bd_target"],
                "n_images": res["n_images"],
                "n_selected": res["n_selected"],
                "n_misclassified_both": res["n_misclassified_both"],
                "n_not_found": res["n_not_found"],
                "bd_mean": res["bd_target"],  # over IBD's images, like ibd and bd_source
                "found": int(tgt.found.sum()),
            }
        out[kind] = entry
    out["settings"] = dict(kwargs, seed=seed, n=len(plain_output))
    return out

