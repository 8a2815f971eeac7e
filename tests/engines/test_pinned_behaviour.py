"""Behaviours that silently change reported numbers when broken (issue 14, points 11-16), each pinned against a
value computed by hand from networks small enough to differentiate on paper."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events
from torch import nn

from monai_gradprom.engines import EnhancementEvaluator, GradPromTrainer, mark_pretrained
from monai_gradprom.losses import SoftmaxL2Loss
from tests.conftest import NoBNClassifier

LR = 0.1


# -- tiny networks whose gradients and answers are known exactly -------------------------------------------------
class ChannelShift(nn.Module):
    """IP = input + theta (one trainable offset per channel): d mean((x + theta - t)^2) / d theta is linear."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.theta.view(1, -1, *([1] * (x.ndim - 2)))


class Affine(nn.Module):
    """An unbounded IP, ``a x + b`` (a user's IP need not end in a sigmoid or a clamp)."""

    def __init__(self, a: float = 2.0, b: float = -0.4) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


class Halve(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class MeanThreshold(nn.Module):
    """Classifier: class 1 iff the image's mean intensity exceeds ``threshold`` (logits ``[0, mean - thr]``)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.float().mean(dim=tuple(range(1, x.ndim))) - self.threshold
        return torch.stack([torch.zeros_like(score), score], 1)


class Scale(nn.Module):
    """VR = s * x with one trainable scalar (s = 1): with the loss ``sum(pred * t)`` its gradient w.r.t. the
    IP output is exactly ``t``."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * x


class RecordingClassifier(nn.Module):
    """Mean intensity -> BatchNorm -> Dropout -> linear; records every call's input and training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(1, 2)
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), self.training))
        return self.fc(self.drop(self.bn(x.mean(dim=(1, 2, 3))[:, None])))


def _dot_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction * target).sum()


def _constant_batches(values, targets, labels, size: int = 16, per_batch: int = 2) -> list[dict]:
    """Images that are constant per sample (so means and errors are the listed values); 16 x 16 because
    SSIM's 11 x 11 window needs room."""
    image = torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    target = torch.tensor(targets, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    label = torch.tensor(labels)
    return [
        {"image": image[i : i + per_batch], "target": target[i : i + per_batch], "label": label[i : i + per_batch]}
        for i in range(0, len(values), per_batch)
    ]


def _psnr(errors) -> float:
    """Mean over images of the PSNR of a constant absolute error (max value 1)."""
    return sum(-20 * math.log10(e) for e in errors) / len(errors)


# -- 11. unsupervised teacher ------------------------------------------------------------------------------------
def test_unsupervised_teacher_sees_the_clean_target_in_eval_mode():
    """The teacher must label the *clean* image (labelling the degraded input would teach VR the degradation)
    and stay frozen in eval mode: no dropout noise in the reference, no BatchNorm statistics drifting."""
    torch.manual_seed(0)
    batches = _constant_batches([0.1, 0.9, 0.3, 0.7], [0.2, 0.8, 0.4, 0.6], [0, 1, 0, 1])
    vr = mark_pretrained(RecordingClassifier())  # a fresh module: train mode, as after pretraining
    ip = ChannelShift()
    trainer = GradPromTrainer(
        "cpu", 1, batches, ip, torch.optim.SGD(ip.parameters(), lr=LR), vr, torch.optim.SGD(vr.parameters(), lr=LR),
        strategy="joint", lam=10.0, vr_supervision="unsupervised",
    )
    trainer.run()
    teacher = trainer.vr_teachers["label"]
    assert len(teacher.calls) == len(batches)
    for (seen, training), batch in zip(teacher.calls, batches):
        assert torch.equal(seen, batch["target"])  # not batch["image"]
        assert training is False
    assert int(teacher.bn.num_batches_tracked) == 0 and float(teacher.bn.running_mean) == 0.0
    # the student did train: its calls were in train mode on IP's output
    assert all(training for _, training in vr.calls) and int(vr.bn.num_batches_tracked) == len(batches)


def test_a_teacher_given_by_the_user_is_frozen_in_eval_mode_too():
    """``vr_teacher=...`` passed in train mode with trainable parameters must be used exactly like the default
    copy: eval mode (no dropout, no BatchNorm drift) and no gradient."""
    torch.manual_seed(0)
    batches = _constant_batches([0.1, 0.9, 0.3, 0.7], [0.2, 0.8, 0.4, 0.6], [0, 1, 0, 1])
    vr, teacher = mark_pretrained(RecordingClassifier()), RecordingClassifier().train()
    ip = ChannelShift()
    trainer = GradPromTrainer(
        "cpu", 1, batches, ip, torch.optim.SGD(ip.parameters(), lr=LR), vr, torch.optim.SGD(vr.parameters(), lr=LR),
        strategy="joint", lam=10.0, vr_supervision="unsupervised", vr_teacher=teacher,
    )
    trainer.run()
    assert [training for _, training in teacher.calls] == [False] * len(batches)
    assert int(teacher.bn.num_batches_tracked) == 0
    assert not any(p.requires_grad for p in teacher.parameters())


def test_unsupervised_loss_is_against_the_teacher_on_the_target():
    """Hand value of the first step's L_VR: softmax L2 between the student on IP(x) and the eval-mode teacher
    on the target (a deterministic network without BatchNorm/Dropout, IP the identity at theta = 0)."""
    torch.manual_seed(0)
    batches = _constant_batches([0.1, 0.9], [0.8, 0.2], [0, 1], per_batch=2)
    vr = mark_pretrained(NoBNClassifier())
    ip = ChannelShift()
    with torch.no_grad():
        expected = SoftmaxL2Loss()(vr(batches[0]["image"]), vr(batches[0]["target"]))
        wrong = SoftmaxL2Loss()(vr(batches[0]["image"]), vr(batches[0]["image"]))
    assert float(wrong) == 0.0 and float(expected) > 1e-6
    trainer = GradPromTrainer(
        "cpu", 1, batches, ip, torch.optim.SGD(ip.parameters(), lr=LR), vr, torch.optim.SGD(vr.parameters(), lr=LR),
        strategy="frozen", lam=10.0, vr_supervision="unsupervised",
    )
    trainer.run()
    assert float(trainer.state.output["loss_vr"]) == pytest.approx(float(expected), rel=1e-5)


# -- 12. input_* baselines ---------------------------------------------------------------------------------------
def test_input_baselines_come_from_the_unprocessed_input():
    """IP halves the image; VR says class 1 iff the mean exceeds 0.5. Inputs 0.2/0.4/0.6/0.8 -> input answers
    0,0,1,1 (3 of labels 0,1,1,1 right); outputs 0.1..0.4 -> all 0 (1 of 4 right). Target 0.35: input errors
    0.15/0.05/0.25/0.45, output errors 0.25/0.15/0.05/0.05."""
    data = _constant_batches([0.2, 0.4, 0.6, 0.8], [0.35] * 4, [0, 1, 1, 1])
    evaluator = EnhancementEvaluator("cpu", data, Halve(), vr_network=MeanThreshold(0.5))
    evaluator.run()
    m = evaluator.state.metrics
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["input_accuracy"] == pytest.approx(0.75)
    assert m["psnr"] == pytest.approx(_psnr([0.25, 0.15, 0.05, 0.05]), rel=1e-4)
    assert m["input_psnr"] == pytest.approx(_psnr([0.15, 0.05, 0.25, 0.45]), rel=1e-4)


# -- 13. Dice without background, mIoU with it -------------------------------------------------------------------
GT = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2]])
PRED = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 2], [0, 1, 2, 2]])




def _upscale(mask: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Each cell as a ``factor`` x ``factor`` block (16 x 16 for SSIM's window); every count scales by
    ``factor ** 2``, so Dice and IoU do not change."""
    return mask.repeat_interleave(factor, 0).repeat_interleave(factor, 1)


class FixedSegmenter(nn.Module):
    """Predicts ``PRED`` (upscaled) whatever the image (one-hot logits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.nn.functional.one_hot(_upscale(PRED), 3).permute(2, 0, 1).float() * 10
        return logits.unsqueeze(0).repeat(len(x), 1, 1, 1)


def test_dice_excludes_background_and_miou_includes_it():
    """Per class (|gt|, |pred|, |both|): background (8, 9, 7), class 1 (4, 4, 3), class 2 (4, 3, 3).
    Dice = 2|both| / (|gt| + |pred|): 14/17, 6/8, 6/7; IoU = |both| / |union|: 7/10, 3/5, 3/4.
    Reported: dice = mean(6/8, 6/7) (with background it would be 0.8102), miou = mean(7/10, 3/5, 3/4)
    (without background 0.675)."""
    image = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    data = [{"image": image, "target": image.clone(), "seg": _upscale(GT).view(1, 1, 16, 16)}]
    evaluator = EnhancementEvaluator("cpu", data, Identity(), vr_network=FixedSegmenter(), vr_target_key="seg",
                                     num_classes=3)
    evaluator.run()
    m = evaluator.state.metrics
    assert m["dice"] == pytest.approx((6 / 8 + 6 / 7) / 2, abs=1e-6)
    assert m["miou"] == pytest.approx((7 / 10 + 3 / 5 + 3 / 4) / 3, abs=1e-6)
    assert m["input_dice"] == pytest.approx(m["dice"]) and m["input_miou"] == pytest.approx(m["miou"])


# -- 14. gradient accumulation with a partial last group ---------------------------------------------------------
def test_partial_accumulation_group_steps_with_its_own_mean():
    """accumulation_steps=3 over an epoch of 4 micro-batches: a step after micro-batch 3 with the mean of
    three gradients, and one after micro-batch 4 (the epoch's end) with that micro-batch's gradient alone,
    divided by 1 (the micro-batches actually accumulated), not by 3.

    IP = x + theta, image 0, one-pixel targets c: grad = 2 (theta - c). lr 0.1, c = 0.3, 0.6, 0.9, 1.0:
    theta1 = 0 - 0.1 * 2 * (0 - 0.6) = 0.12; theta2 = 0.12 - 0.1 * 2 * (0.12 - 1.0) = 0.296 (dividing by 3
    would give 0.1787). Epoch 2 starts a new group: theta3 = 0.296 - 0.2 * (0.296 - 0.6) = 0.3568,
    theta4 = 0.3568 - 0.2 * (0.3568 - 1.0) = 0.48544."""
    c = [0.3, 0.6, 0.9, 1.0]
    data = [{"image": torch.zeros(1, 1, 1, 1), "target": torch.full((1, 1, 1, 1), v)} for v in c]
    ip = ChannelShift()
    trainer = GradPromTrainer("cpu", 2, data, ip, torch.optim.SGD(ip.parameters(), lr=LR), strategy="plain",
                              accumulation_steps=3)
    thetas: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: thetas.append(float(ip.theta.detach())))
    trainer.run()
    expected = [0.0, 0.0, 0.12, 0.296, 0.296, 0.296, 0.3568, 0.48544]
    assert thetas == pytest.approx(expected, abs=1e-6)


# -- 15. multi-task gating does not depend on the order of the tasks ---------------------------------------------
@pytest.mark.parametrize("order", [("label", "seg"), ("seg", "label")])
def test_multitask_gate_is_independent_of_task_order(order):
    """Each auxiliary gradient is gated against the *original* G_IP. G_IP = [1, 0]; the aligned task's
    G_VR = [0.2, 1] (cos > 0), the conflicting one's [-0.3, 1] (cos < 0). lam = 1, lr = 0.1:
    theta = -0.1 * ([1, 0] + [0.2, 1]) = [-0.12, -0.1] in either order. Gating against the running sum would
    let the conflicting task through when the aligned one comes first ([1.2, 1] . [-0.3, 1] > 0)."""
    aux = {"label": torch.tensor([0.2, 1.0]), "seg": torch.tensor([-0.3, 1.0])}
    batch = {"image": torch.zeros(1, 2, 1, 1), "target": torch.tensor([-1.0, 0.0]).view(1, 2, 1, 1)}
    batch.update({task: g.view(1, 2, 1, 1) for task, g in aux.items()})
    ip = ChannelShift(channels=2)
    vr = {task: Scale() for task in order}
    trainer = GradPromTrainer(
        "cpu", 1, [batch], ip, torch.optim.SGD(ip.parameters(), lr=LR), vr,
        torch.optim.SGD([p for net in vr.values() for p in net.parameters()], lr=LR),
        strategy="gradprom", lam=1.0, gate="hard", vr_loss_function={task: _dot_loss for task in order},
    )
    trainer.run()
    torch.testing.assert_close(ip.theta.detach(), torch.tensor([-0.12, -0.1]), atol=1e-6, rtol=0)
    out = trainer.state.output
    assert float(out["gate_label"]) == 1.0 and float(out["gate_seg"]) == 0.0
    assert float(out["cos_label"]) == pytest.approx(0.2 / math.sqrt(1.04), abs=1e-6)
    assert float(out["cos_seg"]) == pytest.approx(-0.3 / math.sqrt(1.09), abs=1e-6)


# -- 16. clamping in evaluation, not in training; the logged total loss includes lam -----------------------------
def test_evaluation_clamps_an_unbounded_ip_output_before_metrics_and_recognition():
    """IP = 2x - 0.4 on inputs 0.1/0.3/0.6/0.8 gives -0.2/0.2/0.8/1.2, clamped to 0/0.2/0.8/1.0 (images live in
    [0, 1], and so do the metrics' max value and a pretrained VR's inputs). Against target 0.5 the errors are
    0.5/0.3/0.3/0.5 (unclamped: 0.7/0.3/0.3/0.7); VR (mean > 1.05) answers 0,0,0,0 on the clamped output
    (unclamped it would say 1 for the last) -> accuracy 3/4 against labels 0,0,0,1."""
    data = _constant_batches([0.1, 0.3, 0.6, 0.8], [0.5] * 4, [0, 0, 0, 1])
    evaluator = EnhancementEvaluator("cpu", data, Affine(2.0, -0.4), vr_network=MeanThreshold(1.05))
    evaluator.run()
    m = evaluator.state.metrics
    assert m["psnr"] == pytest.approx(_psnr([0.5, 0.3, 0.3, 0.5]), rel=1e-4)
    assert m["accuracy"] == pytest.approx(0.75)
    pred = evaluator.state.output["pred"]
    assert float(pred.min()) >= 0.0 and float(pred.max()) <= 1.0


def test_training_vr_sees_raw_ip_output_and_logged_loss_includes_lam():
    """Training deliberately does *not* clamp VR's input: clamp has zero gradient outside [0, 1], so the
    recognition gradient would vanish exactly on the pixels IP gets most wrong, and the DESIGN's contract is
    that VR sees IP's output as it is (``vr_input_transform`` is the hook for a user who wants a clamp).
    The logged ``loss`` is ``loss_ip + lam * loss_vr`` (lam = 0.5 here, so forgetting lam shows)."""
    torch.manual_seed(0)
    data = _constant_batches([0.1, 0.8], [0.2, 0.7], [0, 1], per_batch=2)
    ip, vr = Affine(2.0, -0.4), NoBNClassifier()
    seen: list[torch.Tensor] = []
    vr.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        raw = ip(data[0]["image"])  # -0.2 and 1.2: outside [0, 1]
        loss_ip = float(nn.functional.mse_loss(raw, data[0]["target"]))
        loss_vr = float(nn.functional.cross_entropy(vr(raw), data[0]["label"]))
    seen.clear()
    trainer = GradPromTrainer("cpu", 1, data, ip, torch.optim.SGD(ip.parameters(), lr=LR), vr,
                              torch.optim.SGD(vr.parameters(), lr=LR), strategy="joint", lam=0.5)
    trainer.run()
    torch.testing.assert_close(seen[0], raw)
    assert float(seen[0].min()) < 0.0 and float(seen[0].max()) > 1.0
    out = trainer.state.output
    assert float(out["loss_ip"]) == pytest.approx(loss_ip, rel=1e-6)
    assert float(out["loss_vr"]) == pytest.approx(loss_vr, rel=1e-6)
    assert float(out["loss"]) == pytest.approx(loss_ip + 0.5 * loss_vr, rel=1e-6)
