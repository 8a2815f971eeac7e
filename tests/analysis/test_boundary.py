"""Decision-boundary distances against the analytic answers of a linear two-class model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from monai_gradprom.analysis.boundary import (
    boundary_analysis,
    boundary_distance,
    decision_map,
    inter_boundary_distance,
    plot_decision_maps,
    ra_directions,
    random_directions,
    unit_directions,
)


class Linear2(nn.Module):
    """Logits ``[0, w.x + b]``: class 1 where ``w.x + b > 0``; the boundary is the hyperplane ``w.x + b = 0``."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.reshape(-1).clone())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x):
        score = x.reshape(len(x), -1) @ self.w + self.b
        return torch.stack([torch.zeros_like(score), score], 1)


def _linear(seed: int = 0, bias: float = 0.3) -> Linear2:
    g = torch.Generator().manual_seed(seed)
    return Linear2(torch.randn(1, 4, 4, generator=g), bias)


def analytic_bd(model: Linear2, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """t with w.(x + t d) + b = 0, i.e. -(w.x + b) / (w.d), where it is positive; inf otherwise."""
    w = model.w.detach()
    score = x.reshape(len(x), -1) @ w + model.b.detach()
    slope = unit_directions(d).reshape(len(d), -1) @ w
    t = -score / slope
    return torch.where(t > 0, t, torch.full_like(t, math.inf))


def test_bd_equals_distance_to_hyperplane():
    model = _linear()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(24, 1, 4, 4, generator=g)
    d = torch.randn(24, 1, 4, 4, generator=g)
    max_distance, grid, bisect = 20.0, 40, 30
    result = boundary_distance(model, x, d, max_distance=max_distance, grid_steps=grid, bisection_steps=bisect)
    expected = analytic_bd(model, x, d)
    reachable = expected <= max_distance
    assert reachable.sum() >= 5 and (~reachable).sum() >= 1  # the random draw covers both cases
    assert torch.equal(result.found, reachable)
    tol = max_distance / grid / 2**bisect + 1e-4
    assert torch.allclose(result.distance[reachable], expected[reachable], atol=tol)
    # not found: the bounded maximum, flagged, never inf or NaN
    assert torch.all(result.distance[~reachable] == max_distance)
    assert torch.isfinite(result.distance).all()


def test_bd_along_the_normal_is_the_point_to_plane_distance():
    model = _linear(bias=-0.2)
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    w = model.w.detach()
    score = x.reshape(6, -1) @ w + model.b.detach()
    d = (-torch.sign(score)[:, None] * w[None]).reshape(x.shape)  # straight towards the plane
    result = boundary_distance(model, x, d, max_distance=20.0, grid_steps=20, bisection_steps=30)
    assert result.found.all()
    assert torch.allclose(result.distance, score.abs() / w.norm(), atol=1e-4)
    assert torch.equal(result.base_class, (score > 0).long())


def test_zero_direction_is_not_found_without_nan():
    model = _linear()
    x = torch.rand(3, 1, 4, 4)
    result = boundary_distance(model, x, torch.zeros_like(x), max_distance=5.0, grid_steps=4, bisection_steps=3)
    assert not result.found.any()
    assert torch.all(result.distance == 5.0)


def test_ibd_of_a_model_with_itself_is_zero():
    model = _linear()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(16, 1, 4, 4, generator=g)
    d = random_directions(x, g)
    labels = 1 - model(x).argmax(1)  # every image misclassified
    res = inter_boundary_distance(model, model, x, d, labels=labels, max_distance=20.0, grid_steps=16, bisection_steps=10)
    assert res["n_misclassified_both"] == 16
    assert res["n_images"] == int(res["source"].found.sum()) > 0
    assert res["ibd"] == 0.0


def test_ibd_between_two_planes_matches_the_analytic_gap():
    source, target = _linear(bias=0.3), _linear(bias=0.1)  # same normal, shifted plane
    g = torch.Generator().manual_seed(4)
    x = torch.rand(32, 1, 4, 4, generator=g)
    d = torch.randn(32, 1, 4, 4, generator=g)
    res = inter_boundary_distance(source, target, x, d, max_distance=50.0, grid_steps=50, bisection_steps=30)
    same = source(x).argmax(1) == target(x).argmax(1)  # without labels: the images both classify alike
    both = (analytic_bd(source, x, d) <= 50) & (analytic_bd(target, x, d) <= 50) & same
    assert (~same).any() and both.sum() >= 5  # the draw covers both cases
    assert torch.equal(res["valid"], both) and res["n_selected"] == int(same.sum())
    gap = (analytic_bd(source, x, d) - analytic_bd(target, x, d)).abs()[both].mean()
    assert res["ibd"] == pytest.approx(float(gap), abs=1e-3)
    # only the images both misclassify count
    labels = torch.ones(32, dtype=torch.long)
    res = inter_boundary_distance(source, target, x, d, labels=labels, max_distance=50.0, grid_steps=50)
    wrong = (source(x).argmax(1) == 0) & (target(x).argmax(1) == 0)
    assert res["n_misclassified_both"] == int(wrong.sum())


def test_ra_direction_and_empty_ibd():
    plain = torch.zeros(2, 1, 4, 4)
    ra = plain.clone()
    ra[0] += 2.0
    d = ra_directions(ra, plain)
    assert d[0].norm() == pytest.approx(1.0) and d[1].abs().sum() == 0
    model = _linear()
    labels = model(plain).argmax(1)  # nothing misclassified: no image qualifies
    res = inter_boundary_distance(model, model, plain, d, labels=labels, grid_steps=2, bisection_steps=1)
    assert res["n_images"] == 0 and math.isnan(res["ibd"])


def test_decision_map_matches_the_linear_rule(tmp_path):
    model = _linear()
    x = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(5))
    h = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(6))
    v = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(7))
    a, b, classes = decision_map(model, x, h, v, extent=(3.0, 2.0), resolution=9)
    assert classes.shape == (9, 9) and a[-1] == 3.0 and b[0] == -2.0
    hu = unit_directions(h[None])[0]
    vu = v - (v * hu).sum() * hu
    vu = vu / vu.norm()
    assert abs(float((hu * vu).sum())) < 1e-6
    w, bias = model.w.detach(), float(model.b.detach())
    for i in (0, 4, 8):
        for j in (0, 3, 8):
            point = x + a[j] * hu + b[i] * vu
            assert int(classes[i, j]) == int(float(point.reshape(-1) @ w) + bias > 0)
    plot_decision_maps({"source": (a, b, classes), "target": (a, b, 1 - classes)}, tmp_path / "map.png", 2,
                       marks={"plain": (0.0, 0.0), "RA": (1.0, 0.0)}, label=1)
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_boundary_analysis_summary():
    source = _linear(bias=0.3)
    plain = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(8))
    ra = plain + 0.5 * torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(9))
    out = boundary_analysis(source, {"same": source}, plain, ra, labels=None, max_distance=10.0, grid_steps=8,
                            bisection_steps=4, show_progress=False)
    for kind in ("ra", "random"):
        entry = out[kind]["targets"]["same"]
        assert entry["n_selected"] == 8 and entry["n_misclassified_both"] is None  # no labels: all agree
        assert entry["n_images"] == entry["found"] == out[kind]["source"]["found"]
        assert entry["ibd"] == 0.0 if entry["n_images"] else math.isnan(entry["ibd"])
    assert out["settings"]["max_distance"] == 10.0


def test_bd_reports_a_point_where_the_class_has_changed_even_without_bisection():
    """1-pixel images, class 1 where x > 3. From x = 0 and x = -4 along +1 the boundary is at t = 3 and t = 7;
    the grid over (0, 10] in 4 steps is 2.5, 5, 7.5, 10. Without bisection BD is the first grid point past the
    boundary (5.0, 7.5), never the last one before it (2.5, 5.0, where the class is still the base class);
    one bisection step halves the bracket and keeps its changed end: (2.5, 5] -> 3.75, (5, 7.5] -> 7.5."""
    model = Linear2(torch.tensor([1.0]), -3.0)
    x = torch.tensor([0.0, -4.0]).view(2, 1, 1, 1)
    d = torch.ones_like(x)
    for steps, expected in ((0, [5.0, 7.5]), (1, [3.75, 7.5])):
        result = boundary_distance(model, x, d, max_distance=10.0, grid_steps=4, bisection_steps=steps)
        assert result.found.all()
        assert result.distance.tolist() == expected
        at_distance = model(x + result.distance.view(-1, 1, 1, 1) * d).argmax(1)
        assert torch.all(at_distance != result.base_class)


class Threshold3(nn.Module):
    """Three classes on images ``(N, 1, 1, 3)``: logit 0 is ``x0 - threshold``; the other logits are fixed
    (source: ``[., 0, -1]``, class 1 below the threshold) or follow x2 (target: ``[., x2, -x2]``, class 1
    where x2 > 0, else 2). Along d = (1, 0, 0) the boundary to class 0 is at ``t = max(logits 1, 2) - logit 0``."""

    def __init__(self, threshold: float, follow_x2: bool):
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))
        self.follow_x2 = follow_x2

    def forward(self, x):
        x = x.reshape(len(x), 3)
        score = x[:, 0] - self.threshold
        if self.follow_x2:
            return torch.stack([score, x[:, 2], -x[:, 2]], 1)
        return torch.stack([score, torch.zeros_like(score), torch.full_like(score, -1.0)], 1)


def test_ibd_selects_the_same_wrong_prediction_not_just_both_wrong():
    source, target = Threshold3(1.0, follow_x2=False), Threshold3(2.0, follow_x2=True)
    # image: (source class, BD_s) / (target class, BD_t), label 0 everywhere
    x = torch.tensor([
        [0.0, 0.0, 0.5],    # 1, 1.0 / 1, 2.5   same wrong class: selected, gap 1.5
        [0.5, 0.0, 0.25],   # 1, 0.5 / 1, 1.75  same wrong class: selected, gap 1.25
        [0.8, 0.0, -0.1],   # 1, 0.2 / 2, 1.3   both wrong but different: "both wrong" would take gap 1.1
        [1.5, 0.0, 0.5],    # 0 = label: correct, excluded
    ]).reshape(4, 1, 1, 3)
    labels = torch.zeros(4, dtype=torch.long)
    d = torch.tensor([1.0, 0.0, 0.0]).expand(4, 3).reshape(4, 1, 1, 3)
    kwargs = dict(max_distance=4.0, grid_steps=40, bisection_steps=24)
    res = inter_boundary_distance(source, target, x, d, labels=labels, **kwargs)
    assert res["n_misclassified_both"] == 3 and res["n_selected"] == 2 and res["n_images"] == 2
    assert res["valid"].tolist() == [True, True, False, False]
    assert res["ibd"] == pytest.approx((1.5 + 1.25) / 2, abs=1e-4)  # "both wrong" would give 1.2833
    assert res["bd_source"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-4)
    assert res["bd_target"] == pytest.approx((2.5 + 1.75) / 2, abs=1e-4)
    # the summary's bd_mean is over the same images as its IBD (over every found image it would be 1.6375)
    out = boundary_analysis(source, {"target": target}, x, x + d, labels=labels, show_progress=False, **kwargs)
    entry = out["ra"]["targets"]["target"]
    assert entry["ibd"] == pytest.approx(1.375, abs=1e-4) and entry["bd_mean"] == pytest.approx(2.125, abs=1e-4)
    assert entry["n_images"] == 2 and entry["n_selected"] == 2 and entry["n_misclassified_both"] == 3
