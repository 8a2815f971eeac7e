"""The comparison's arithmetic on hand-computed cases: matched lambdas, paired verdicts, Pareto front, plateau."""

from __future__ import annotations

import math

import pytest

from monai_gradprom.experiments.controls import claim_table, matched_lambda, paired_differences, pareto_front, verdict
from monai_gradprom.experiments.schedule import plateau_reached
from monai_gradprom.experiments.settings import preset


def test_matched_lambda_gives_equal_average_pull():
    # joint (weight 1) against GradProm at lam 0.02 whose gate was open 40 % of the steps
    assert matched_lambda(0.02, 0.4) == pytest.approx(0.008)
    # hard gating (mean weight 0.8) matched to soft gating's mean weight 0.2 at lam 0.1: 0.1 * 0.2 / 0.8
    assert matched_lambda(0.1, 0.2, 0.8) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="mean gate weight"):
        matched_lambda(0.1, 1.5)
    with pytest.raises(ValueError, match="reference_weight"):
        matched_lambda(0.1, 0.5, 0.0)


def _rows():
    rows = [{"strategy": "plain", "seed": s, "rho": None, "psnr": 30.0 + s, "fixed_vr": 0.5} for s in range(3)]
    for s, (d_psnr, d_vr) in enumerate([(-0.1, 0.10), (-0.2, 0.12), (-0.3, 0.08)]):
        rows.append({"strategy": "frozen", "seed": s, "rho": 1.0, "psnr": 30.0 + s + d_psnr, "fixed_vr": 0.5 + d_vr})
        rows.append({"strategy": "joint", "seed": s, "rho": 1.0, "psnr": 30.0 + s + (0.1 if s else -0.1), "fixed_vr": 0.5})
    return rows


def test_paired_differences_pair_within_seed_and_plain_with_every_rho():
    diffs = paired_differences(_rows(), "frozen", "plain", "psnr", 1.0)
    assert diffs == pytest.approx([-0.1, -0.2, -0.3])
    assert paired_differences(_rows(), "frozen", "plain", "psnr", 0.3) == []


def test_verdict_relative_to_seed_spread():
    # mean 0.1, sd 0.02, se 0.02 / sqrt(3) = 0.01155: t = 8.66 -> holds
    v = verdict([0.10, 0.12, 0.08])
    assert v["verdict"] == "holds" and v["mean"] == pytest.approx(0.1) and v["sd"] == pytest.approx(0.02)
    assert verdict([-0.1, -0.2, -0.3])["verdict"] == "reversed"
    # -0.1, +0.1, +0.1: mean 0.033, sd 0.115, t = 0.5 -> within spread
    assert verdict([-0.1, 0.1, 0.1])["verdict"] == "within spread"
    assert verdict([0.0, 0.0])["verdict"] == "equal"
    assert verdict([0.4])["verdict"] == "one seed"
    assert verdict([])["verdict"] == "missing"


def test_claim_table_reads_the_ra_claim():
    table = claim_table(_rows(), [1.0], metrics=("psnr", "fixed_vr"))
    ra = next(c for c in table if c["claim"].startswith("RA"))
    assert ra["fixed_vr"]["verdict"] == "holds"
    assert ra["psnr"]["verdict"] == "reversed"
    assert math.isclose(ra["psnr"]["mean"], -0.2)
    assert not any(c["claim"].startswith("soft") for c in table)  # no soft runs: no such claim


def test_room_for_a_gate_is_two_sided():
    rows = [{"strategy": "plain", "seed": s, "rho": None, "psnr": 30.0, "fixed_vr": 0.5} for s in range(3)]
    rows += [{"strategy": "joint", "seed": s, "rho": 1.0, "psnr": 30.0 - d, "fixed_vr": 0.5 + 0.01 * (s - 1)}
             for s, d in enumerate([6.0, 5.0, 7.0])]
    room = next(c for c in claim_table(rows, [1.0], metrics=("psnr", "fixed_vr")) if c["claim"].startswith("joint"))
    # joint 6 dB below plain on every seed: the regime moves IP, whichever way; -0.01, 0, +0.01 does not
    assert room["psnr"]["verdict"] == "differs" and math.isclose(room["psnr"]["mean"], -6.0)
    assert room["fixed_vr"]["verdict"] == "within spread"


def test_pareto_front():
    assert pareto_front([(1, 1), (2, 0), (0, 2), (0.5, 0.5)]) == [0, 1, 2]
    assert pareto_front([(1, 1), (1, 1)]) == [0, 1]  # equal points do not dominate each other
    assert pareto_front([(1, 2), (2, 2)]) == [1]


def test_plateau_reached():
    assert plateau_reached([20.0, 21.0, 21.02, 21.03], 0.05, 2)
    assert not plateau_reached([20.0, 21.0, 21.02, 21.1], 0.05, 2)
    assert not plateau_reached([20.0, 20.01], 0.05, 2)  # too few evaluations to tell


def test_presets_reject_unknown_settings():
    assert preset("quick").seeds == (0,)
    assert preset("cpu", finetune_steps=10).finetune_steps == 10
    with pytest.raises(ValueError, match="finetune_stepz"):
        preset("cpu", finetune_stepz=10)
    with pytest.raises(ValueError, match="scale"):
        preset("huge")
