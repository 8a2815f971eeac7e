"""Is GradProm's gate deciding on signal or on noise? Compare minibatch cosines with a large-batch reference.

GradProm (Lemma 3.1) argues about the cosine of the *expected* gradients of L_IP and L_VR; the hard gate decides
on the cosine of one minibatch's. When a task's minibatch cosine is mostly noise (small |cos|, its sign
flipping from step to step) the gate opens and shuts at random. This measures it: for each minibatch the
cosine cos(G_IP, G_VR) over IP's parameters, and the reference cosine of the gradients summed over many batches
(an estimate of the expected gradients' cosine); ``agreement`` is the share of minibatches whose hard-gate
decision (cos >= 0 opens) equals the reference's. An agreement near 0.5 and a small ``median_abs_cos`` say the
gate is noise; smoothing (``strategy_options={"cos_ema": 0.9}``) or gradient accumulation are the remedies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from monai_gradprom.engines.calibration import preserved_training_state, recognition_gradients
from monai_gradprom.gradients import cosine

__all__ = ["gate_sign_agreement"]


def _accumulate(total: list[torch.Tensor] | None, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    if total is None:
        return [g.detach().clone() for g in grads]
    torch._foreach_add_(total, grads)
    return total


def gate_sign_agreement(
    trainer: Any,
    batches: Iterable[Mapping[str, Any]],
    reference_batches: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per-minibatch cosines on ``batches`` against the reference cosine of the gradients summed over
    ``reference_batches`` (default: the same ``batches``), for a :class:`~monai_gradprom.engines.GradPromTrainer`
    as it stands (its IP, VR, losses, supervision mode and strategy wiring; G_VR is the gradient of the total
    recognition loss, i.e. summed over tasks for a multi-task VR). Changes no parameter, optimizer, buffer or
    RNG state.

    Returns ``{"agreement": share of minibatches with (cos >= 0) == (reference_cos >= 0), "median_abs_cos":
    median of |cos|, "reference_cos": float, "cosines": [float per minibatch], "n_batches": int}``.
    """
    cosines = []
    sum_ip = sum_vr = None
    with preserved_training_state(trainer):
        for batchdata in batches:
            g_ip, g_vr = recognition_gradients(trainer, batchdata)
            cosines.append(cosine(g_ip, g_vr))
            if reference_batches is None:
                sum_ip, sum_vr = _accumulate(sum_ip, g_ip), _accumulate(sum_vr, g_vr)
        if not cosines:
            raise ValueError("gate_sign_agreement needs at least one batch")
        if reference_batches is not None:
            for batchdata in reference_batches:
                g_ip, g_vr = recognition_gradients(trainer, batchdata)
                sum_ip, sum_vr = _accumulate(sum_ip, g_ip), _accumulate(sum_vr, g_vr)
            if sum_ip is None:
                raise ValueError("reference_batches is empty: give at least one batch or leave it None")
    reference = float(cosine(sum_ip, sum_vr))
    values = torch.stack(cosines).double().cpu()
    agree = (values >= 0) == (reference >= 0)
    return {
        "agreement": float(agree.double().mean()),
        "median_abs_cos": float(values.abs().quantile(0.5)),  # the mean of the middle two for an even count
        "reference_cos": reference,
        "cosines": [float(v) for v in values],
        "n_batches": len(values),
    }
