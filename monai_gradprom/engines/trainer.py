"""GradPromTrainer: one Ignite iteration for every strategy of task-driven image enhancement."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Events
from monai.data import MetaTensor
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn
from monai.handlers import LrScheduleHandler
from monai.utils import CommonKeys
from torch import nn
from torch.utils.data import DataLoader

from monai_gradprom.data.reproducible import RNGStates
from monai_gradprom.distributed import broadcast_buffers, is_distributed
from monai_gradprom.engines.calibration import CalibrationState, apply_calibration, gradient_norm_ratio
from monai_gradprom.engines.wiring import autocast, is_pretrained, make_teachers, mark_pretrained, recognition_losses
from monai_gradprom.engines.output import IterationOutput
from monai_gradprom.gradients import all_finite, all_reduce_mean_
from monai_gradprom.losses import default_vr_loss
from monai_gradprom.strategies import GradientTerms, PlainStrategy, StepContext, Strategy, build_strategy

__all__ = ["GradPromTrainer", "prepare_enhancement_batch", "mark_pretrained", "is_pretrained"]


def prepare_enhancement_batch(
    batchdata: Mapping[str, Any],
    device: torch.device | str | None = None,
    non_blocking: bool = False,
    keys: Sequence[str] = ("image", "target", "label", "seg"),
    **kwargs,
) -> dict[str, torch.Tensor]:
    """Move the keys of an enhancement batch that are present to ``device`` (others are dropped).

    MetaTensors become plain tensors: training needs no metadata, every op on a MetaTensor pays for its
    ``__torch_function__``, and gradients computed from them would be MetaTensors too.
    """
    if not isinstance(batchdata, Mapping):
        raise TypeError(f"GradPromTrainer expects dict batches, got {type(batchdata).__name__}")
    out = {}
    for key in keys:
        if key in batchdata:
            value = batchdata[key]
            value = value.as_tensor() if isinstance(value, MetaTensor) else torch.as_tensor(value)
            out[key] = value.to(device=device, non_blocking=non_blocking, **kwargs)
    return out


def as_task_dict(value: Any, default_task: str) -> dict[str, Any]:
    """``{task: value}`` for a single value (a network, loss, optimizer), the mapping itself for a multi-task one."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {default_task: value}


def _parameters(module: nn.Module | None) -> list[nn.Parameter]:
    return [] if module is None else [p for p in module.parameters() if p.requires_grad]


class GradPromTrainer(Trainer):
    """Trains an enhancement network IP, optionally with a recognition network VR, under one strategy.

    Args:
        device: device of the networks and batches.
        max_epochs: total number of epochs.
        train_data_loader: yields dict batches: ``image`` (degraded input), ``target`` (clean image) and the
            recognition targets (``label`` class index and/or ``seg`` mask).
        ip_network, ip_optimizer: the enhancement network and its optimizer.
        vr_network: a recognizer, or a dict ``{task_key: recognizer}`` for a multi-task VR (each task's
            gradient is gated on its own). A single recognizer is supervised by ``vr_target_key``.
        vr_optimizer: optimizer of VR's parameters (one for all tasks, or a dict per task); stepped only by
            strategies that train VR (``joint``, ``gradprom``, ``pcgrad``).
        strategy: ``plain``, ``joint``, ``frozen``, ``transformer``, ``gradprom``, ``pcgrad``, the cheaper
            GradProm modes ``gradprom_image`` / ``gradprom_every``, or a
            :class:`~monai_gradprom.strategies.Strategy` instance.
        strategy_options: the strategy's own keyword arguments, e.g. ``{"every": 8}`` for ``gradprom_every``,
            ``{"audit": True}`` to log the exact gate next to a cheaper mode's decision, or ``{"cos_ema": 0.9}``
            for a ``gradprom`` gate decided on a moving average of the cosine.
        lam: weight of the recognition loss (or gradient). gate: ``hard`` or ``soft`` (GradProm only).
        lam_ratio: state lam as "recognition gets ``lam_ratio`` times the pull of fidelity": when VR is first
            cascaded (at STARTED without warm-up, else at the start of epoch ``ip_warmup_epochs + 1``) lam is set
            to ``lam_ratio / r``, r the mean over ``calibration_batches`` training batches of
            ||G_VR|| / ||G_IP|| over IP's parameters (:meth:`measure_gradient_ratio`). **It wins over ``lam``**
            (an explicit ``lam`` is replaced). The result is ``trainer.calibration`` (``ratio``, ``lam``,
            ``lam_ratio``), logged at INFO and saved in checkpoints, so a resumed run keeps it. Ignored (with an
            INFO line) by strategies that do not use VR (``plain``). With warm-up, the batches are the last
            ones IP warmed up on, so the data stream is not touched; without, they are drawn from the loader
            with the RNGs restored afterwards.
        calibration_batches: how many training batches the ratio is averaged over.
        lr_schedulers: learning-rate schedulers (one, or a dict ``{name: scheduler}``, e.g. ``{"ip": ...,
            "vr": ...}``), each stepped after every epoch by MONAI's :class:`~monai.handlers.LrScheduleHandler`
            on every rank, and saved in :meth:`checkpoint_dict` (``lr_scheduler_<name>``) so that a resumed run
            keeps its schedule. Whatever the schedule, ``engine.state.learning_rate`` (IP's optimizer) and
            ``engine.state.vr_learning_rate`` (VR's, NaN without one) hold the rates of the current epoch, for
            ``TensorBoardStatsHandler(state_attributes=["learning_rate", ...])``.
        vr_supervision: ``supervised`` (L_VR against labels/masks) or ``unsupervised`` (L_VR = distance between
            VR(IP(x)) and a frozen teacher copy of the pretrained VR applied to the clean target).
        ip_loss_function: L_IP, called as ``loss(enhanced, target)``; default MSE.
        vr_loss_function: L_VR (or a dict per task), called as ``loss(prediction, target)``; defaults:
            cross-entropy for ``label``, Dice + CE for ``seg``, softmax L2 to the teacher when unsupervised.
        vr_target_key: the batch key supervising a single VR (default ``"label"``).
        transformer_network, transformer_optimizer: the RA transformer T (``transformer`` strategy).
        vr_teacher: frozen teacher(s) for unsupervised supervision; by default a copy of VR taken when the run
            starts, which requires VR to be pretrained (see :func:`mark_pretrained`).
        unsupervised_loss: ``l2`` (softmax L2, RA paper) or ``kl``.
        ip_warmup_epochs: epochs during which IP trains alone (plain) before VR is cascaded.
        vr_input_transform: optional callable applied to VR's input (e.g. a normalisation a pretrained VR
            expects); by default VR sees IP's output as it is. The teacher sees the same transform of the target.
        accumulation_steps: micro-batches whose gradients are averaged before the gate is decided and the
            optimizers step. When the epoch length is not a multiple, the epoch's last, shorter group steps
            too, with the mean over the micro-batches it holds (not the sum divided by
            ``accumulation_steps``): every step then has the scale of one micro-batch's mean-loss gradient.
        amp: mixed precision. On CUDA: float16 autocast with a gradient scaler (the cosine is scale invariant,
            and a step with inf/NaN gradients is skipped for every optimizer alike); on CPU: bfloat16 autocast.
        decollate: as in :class:`monai.engines.SupervisedTrainer` (default True), ``engine.state.output`` is a
            list of per-sample dicts with the scalars replicated, so MONAI's ``StatsHandler()``,
            ``TensorBoardStatsHandler()`` and ``from_engine(["loss"], first=True)`` log ``loss``, and
            ``postprocessing`` transforms see one sample at a time. That list is an
            :class:`~monai_gradprom.engines.output.IterationOutput`: ``output["cos"]`` still returns the batch
            value. ``engine.state.batch`` is left as the batch dict. With ``decollate=False`` the output is the
            plain batch dict.
        Other arguments are those of :class:`monai.engines.SupervisedTrainer`.

    Output keys (``engine.state.output[key]``, with or without decollation): ``loss_ip``, ``loss_vr`` (NaN while
    VR is unused), ``loss`` (= loss_ip + lam * loss_vr, the scalar to log), and for gating strategies ``cos`` and
    ``gate`` (NaN on accumulation micro-batches that do not step), plus the batch tensors and ``pred`` (IP's
    output). All values are tensors, left on the device; handlers read them after the step.

    Events: FORWARD_COMPLETED after IP's forward, LOSS_COMPLETED after the losses, BACKWARD_COMPLETED when
    ``p.grad`` of IP (and of VR / T where the strategy trains them) holds the gradient the optimizers are about
    to apply (gating, accumulation and all-reduce done; AMP-scaled with a scaler), so that clipping or
    gradient-norm handlers work as with MONAI's SupervisedTrainer; MODEL_COMPLETED after the step.
    """

    def __init__(
        self,
        device: torch.device | str,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        ip_network: nn.Module,
        ip_optimizer: torch.optim.Optimizer,
        vr_network: nn.Module | Mapping[str, nn.Module] | None = None,
        vr_optimizer: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer] | None = None,
        strategy: str | Strategy = "gradprom",
        lam: float = 1e-4,
        gate: str = "hard",
        vr_supervision: str = "supervised",
        ip_loss_function: Callable | None = None,
        vr_loss_function: Callable | Mapping[str, Callable] | None = None,
        vr_target_key: str = "label",
        transformer_network: nn.Module | None = None,
        transformer_optimizer: torch.optim.Optimizer | None = None,
        vr_teacher: nn.Module | Mapping[str, nn.Module] | None = None,
        unsupervised_loss: str = "l2",
        ip_warmup_epochs: int = 0,
        vr_input_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        accumulation_steps: int = 1,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_enhancement_batch,
        iteration_update: Callable | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = True,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
        image_key: str = "image",
        target_key: str = "target",
        strategy_options: Mapping[str, Any] | None = None,
        lam_ratio: float | None = None,
        calibration_batches: int = 4,
        lr_schedulers: Any = None,
    ) -> None:
        self.strategy = build_strategy(strategy, lam=lam, gate=gate, options=strategy_options)
        self._warmup_strategy = PlainStrategy(lam=self.strategy.lam)
        if vr_supervision not in ("supervised", "unsupervised"):
            raise ValueError(f"vr_supervision must be 'supervised' or 'unsupervised', got {vr_supervision!r}")
        if not isinstance(accumulation_steps, int) or accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be a positive integer, got {accumulation_steps!r}")
        if not isinstance(ip_warmup_epochs, int) or ip_warmup_epochs < 0:
            raise ValueError(f"ip_warmup_epochs must be a non-negative integer, got {ip_warmup_epochs!r}")
        if lam_ratio is not None and (
            isinstance(lam_ratio, bool) or not isinstance(lam_ratio, (int, float)) or not 0 <= lam_ratio < float("inf")
        ):
            raise ValueError(f"lam_ratio must be a non-negative finite number or None, got {lam_ratio!r}")
        if isinstance(calibration_batches, bool) or not isinstance(calibration_batches, int) or calibration_batches < 1:
            raise ValueError(f"calibration_batches must be a positive integer, got {calibration_batches!r}")

        self.vr_networks: dict[str, nn.Module] = as_task_dict(vr_network, vr_target_key)
        if self.strategy.uses_vr and not self.vr_networks:
            raise ValueError(f"strategy {self.strategy.name!r} needs a recognition network (vr_network=...)")
        if self.strategy.needs_transformer and transformer_network is None:
            raise ValueError(f"strategy {self.strategy.name!r} needs the RA transformer T (transformer_network=...)")
        if self.strategy.needs_transformer and transformer_optimizer is None:
            raise ValueError(f"strategy {self.strategy.name!r} needs transformer_optimizer for T")
        if self.strategy.trains_vr and vr_optimizer is None:
            raise ValueError(f"strategy {self.strategy.name!r} trains VR and needs vr_optimizer")

        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=train_handlers,
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.ip_network = ip_network
        self.ip_optimizer = ip_optimizer
        self.vr_network = vr_network
        self.vr_optimizer = vr_optimizer
        self.transformer_network = transformer_network
        self.transformer_optimizer = transformer_optimizer
        self.vr_supervision = vr_supervision
        self.vr_target_key = vr_target_key
        self.ip_warmup_epochs = ip_warmup_epochs
        self.vr_input_transform = vr_input_transform
        self.accumulation_steps = accumulation_steps
        self.optim_set_to_none = optim_set_to_none
        self.image_key, self.target_key = image_key, target_key
        self.ip_loss_function = ip_loss_function if ip_loss_function is not None else nn.MSELoss()
        losses = as_task_dict(vr_loss_function, vr_target_key)
        self.vr_loss_functions = {
            task: losses.get(task) or default_vr_loss(task, vr_supervision, unsupervised_loss)
            for task in self.vr_networks
        }
        self.vr_teachers: dict[str, nn.Module] = as_task_dict(vr_teacher, vr_target_key)
        self._accumulated: GradientTerms | None = None
        self._accumulated_count = 0  # micro-batches summed in _accumulated

        device_type = self.state.device.type if self.state.device is not None else "cpu"
        self.amp_device_type = device_type
        if amp and "dtype" not in self.amp_kwargs:
            self.amp_kwargs["dtype"] = torch.float16 if device_type == "cuda" else torch.bfloat16
        # A scaler only for float16 on CUDA; created here (not in run()) so that a checkpoint can restore it.
        use_scaler = amp and device_type == "cuda" and self.amp_kwargs["dtype"] == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

        self.lr_schedulers: dict[str, Any] = as_task_dict(lr_schedulers, "ip")
        for scheduler in self.lr_schedulers.values():
            LrScheduleHandler(scheduler, print_lr=False, epoch_level=True).attach(self)
        self.add_event_handler(Events.EPOCH_STARTED, GradPromTrainer._record_learning_rates)

        if vr_supervision == "unsupervised" and self.vr_networks:
            self.add_event_handler(Events.STARTED, GradPromTrainer._make_teachers)

        # lam calibration (lam_ratio): measured when VR is first cascaded, restored from checkpoints
        self.lam_ratio = None if lam_ratio is None else float(lam_ratio)
        self.calibration_batches = calibration_batches
        self.calibration: dict[str, float] | None = None
        self._calibration_state = CalibrationState(self)
        self._warmup_batches: deque = deque(maxlen=calibration_batches)
        if self.lam_ratio is not None and not self.strategy.uses_vr:
            self.logger.info("strategy %r does not use VR: lam_ratio=%s ignored", self.strategy.name, lam_ratio)
        elif self.lam_ratio is not None:
            self.add_event_handler(Events.STARTED, GradPromTrainer._calibrate_when_cascading, True)
            self.add_event_handler(Events.EPOCH_STARTED, GradPromTrainer._calibrate_when_cascading, False)
            if ip_warmup_epochs > 0:
                self.add_event_handler(Events.ITERATION_COMPLETED, GradPromTrainer._keep_warmup_batch)

    def _register_decollate(self) -> None:
        """MONAI's decollation at MODEL_COMPLETED (before ``postprocessing``), into an :class:`IterationOutput`:
        per-sample views without MONAI's ``.item()`` on every scalar (a host synchronisation per iteration), and
        still readable by key. The batch stays a dict (lam calibration reuses warm-up batches)."""

        @self.on(IterationEvents.MODEL_COMPLETED)
        def _decollate_output(engine: GradPromTrainer) -> None:
            if isinstance(engine.state.output, Mapping):
                engine.state.output = IterationOutput.decollate(engine.state.output)

    # -- properties ---------------------------------------------------------------------------------------------
    @property
    def network(self) -> nn.Module:
        """IP, under the name MONAI handlers look for."""
        return self.ip_network

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.ip_optimizer

    def _vr_optimizers(self) -> list[torch.optim.Optimizer]:
        if self.vr_optimizer is None:
            return []
        if isinstance(self.vr_optimizer, Mapping):
            return list(self.vr_optimizer.values())
        return [self.vr_optimizer]

    def _record_learning_rates(self) -> None:
        self.state.learning_rate = float(self.ip_optimizer.param_groups[0]["lr"])
        vr = self._vr_optimizers()
        self.state.vr_learning_rate = float(vr[0].param_groups[0]["lr"]) if vr else float("nan")

    def checkpoint_dict(self) -> dict[str, Any]:
        """Everything that must be saved to resume exactly: networks, optimizers, scaler and this engine."""
        out: dict[str, Any] = {"ip_network": self.ip_network, "ip_optimizer": self.ip_optimizer, "trainer": self}
        for task, net in self.vr_networks.items():
            out["vr_network" if len(self.vr_networks) == 1 else f"vr_network_{task}"] = net
        optimizers = self.vr_optimizer if isinstance(self.vr_optimizer, Mapping) else {"": self.vr_optimizer}
        for task, opt in optimizers.items():
            if opt is not None:
                out["vr_optimizer" + (f"_{task}" if task else "")] = opt
        if self.transformer_network is not None:
            out["transformer_network"] = self.transformer_network
            out["transformer_optimizer"] = self.transformer_optimizer
        if self.scaler is not None:
            out["scaler"] = self.scaler
        if self.strategy.stateful:  # e.g. gradprom_every's step counter, gradprom's cosine average
            out["strategy"] = self.strategy
        if self.lam_ratio is not None and self.strategy.uses_vr:
            out["calibration"] = self._calibration_state
        for name, scheduler in self.lr_schedulers.items():
            out[f"lr_scheduler_{name}"] = scheduler
        out["rng"] = RNGStates()
        return out

    def run(self) -> None:  # type: ignore[override]
        """Run training; unlike MONAI's Trainer the scaler made in ``__init__`` is kept (it may be restored)."""
        super(Trainer, self).run()

    # -- lam calibration ----------------------------------------------------------------------------------------
    def measure_gradient_ratio(self, batches: Iterable[dict], num_batches: int = 4) -> float:
        """Mean over the first ``num_batches`` of ``batches`` of ||G_VR|| / ||G_IP||, both w.r.t. IP's parameters,
        wired as this trainer's strategy trains (for ``transformer``: through T, without the detach). Changes
        no parameter, optimizer, buffer or RNG state; see :mod:`monai_gradprom.engines.calibration`."""
        return gradient_norm_ratio(self, batches, num_batches)

    def calibrate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Measure the ratio on ``calibration_batches`` of ``batches`` and set lam = lam_ratio / ratio."""
        if self.lam_ratio is None:
            raise ValueError("calibrate() needs lam_ratio (GradPromTrainer(..., lam_ratio=...))")
        return apply_calibration(self, self.measure_gradient_ratio(batches, self.calibration_batches), self.lam_ratio)

    def _keep_warmup_batch(self) -> None:
        if self.calibration is None and self.state.epoch == self.ip_warmup_epochs:
            self._warmup_batches.append(self.state.batch)

    def _calibrate_when_cascading(self, starting: bool) -> None:
        """At STARTED / EPOCH_STARTED: calibrate if the next iteration is VR's first and no calibration exists
        (a resumed run restored its own from the checkpoint)."""
        epoch = self.state.epoch + 1 if starting else self.state.epoch
        if self.calibration is not None or epoch <= self.ip_warmup_epochs:
            return
        batches = list(self._warmup_batches) or self.data_loader
        self._warmup_batches.clear()
        self.calibrate(batches)

    # -- the iteration ------------------------------------------------------------------------------------------
    def _make_teachers(self) -> None:
        make_teachers(self)

    def _active_strategy(self) -> Strategy:
        if self.strategy.uses_vr and self.state.epoch <= self.ip_warmup_epochs:
            return self._warmup_strategy
        return self.strategy

    def _autocast(self):
        return autocast(self)

    def _accumulation_flags(self) -> tuple[bool, bool]:
        """``(first micro-batch of a group, step after this one)``. Groups restart with every epoch, and the
        epoch's last micro-batch always steps, so no gradient is carried into the next epoch."""
        acc = self.accumulation_steps
        if acc == 1:
            return True, True
        epoch_length = self.state.epoch_length
        local = (self.state.iteration - 1) % epoch_length if epoch_length else self.state.iteration - 1
        last = epoch_length is not None and local + 1 == epoch_length
        return local % acc == 0, (local + 1) % acc == 0 or last

    def _recognition_losses(
        self, strategy: Strategy, enhanced: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return recognition_losses(self, strategy, enhanced, batch)

    def optimizers_to_step(self, strategy: Strategy | None = None) -> list[torch.optim.Optimizer]:
        """The optimizers that step under ``strategy`` (default: the one active now): IP's always, VR's when
        the strategy trains VR, T's for ``transformer``. Handlers on BACKWARD_COMPLETED (e.g. gradient clipping
        with :class:`~monai_gradprom.engines.ClipGradNorm`) act on their parameters."""
        strategy = self._active_strategy() if strategy is None else strategy
        optimizers = [self.ip_optimizer]
        if strategy.trains_vr:
            optimizers += self._vr_optimizers()
        if strategy.needs_transformer and self.transformer_optimizer is not None:
            optimizers.append(self.transformer_optimizer)
        return optimizers

    def _poison_nonfinite(self, optimizers: list[torch.optim.Optimizer], terms: GradientTerms) -> None:
        """With a gradient scaler, skip the step for every optimizer alike when any gradient is inf/NaN: poison
        all ``.grad`` so that each optimizer's ``unscale_`` finds an inf (device-side, no host synchronisation).
        Done before BACKWARD_COMPLETED so that a handler calling ``scaler.unscale_`` sees the poison too."""
        if self.scaler is None:
            return
        poison = torch.where(all_finite(*terms.lists()), 1.0, float("nan"))
        grads = [p.grad for opt in optimizers for group in opt.param_groups for p in group["params"]]
        grads = [g for g in grads if g is not None]
        if grads:
            torch._foreach_mul_(grads, poison)

    def _step_optimizers(self, optimizers: list[torch.optim.Optimizer]) -> None:
        if self.scaler is None:
            for opt in optimizers:
                opt.step()
            return
        for opt in optimizers:
            self.scaler.step(opt)  # unscales first, unless a handler already called scaler.unscale_(opt)
        self.scaler.update()

    def _iteration(self, engine: GradPromTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        if self.image_key not in batch or self.target_key not in batch:
            raise KeyError(
                f"GradPromTrainer batches need {self.image_key!r} (degraded input) and {self.target_key!r} "
                f"(clean image); got keys {sorted(batch)}"
            )
        strategy = engine._active_strategy()
        first_micro_batch, should_step = engine._accumulation_flags()

        engine.ip_network.train()
        for net in engine.vr_networks.values():
            net.train(strategy.trains_vr)
        if engine.transformer_network is not None:
            engine.transformer_network.train(strategy.needs_transformer)

        output: dict[str, Any] = {CommonKeys.IMAGE: batch[self.image_key], self.target_key: batch[self.target_key]}
        for task in engine.vr_networks:
            if task in batch:
                output[task] = batch[task]
        engine.state.output = output

        with engine._autocast():
            enhanced = engine.ip_network(batch[self.image_key])
            output[CommonKeys.PRED] = enhanced
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            loss_ip = engine.ip_loss_function(enhanced, batch[self.target_key])
            vr_losses = engine._recognition_losses(strategy, enhanced, batch) if strategy.uses_vr else {}
        output["loss_ip"] = loss_ip.detach()
        nan = torch.full((), float("nan"), device=loss_ip.device)
        loss_vr = torch.stack([v.detach().float() for v in vr_losses.values()]).sum() if vr_losses else nan
        output["loss_vr"] = loss_vr
        for task, value in vr_losses.items():
            if len(vr_losses) > 1:
                output[f"loss_vr_{task}"] = value.detach()
        output[CommonKeys.LOSS] = loss_ip.detach() + (strategy.lam * loss_vr if vr_losses else 0.0)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

        ctx = StepContext(
            ip_params=_parameters(engine.ip_network),
            loss_ip=loss_ip,
            lam=strategy.lam,
            vr_losses=vr_losses,
            vr_params={t: _parameters(n) for t, n in engine.vr_networks.items()} if strategy.trains_vr else {},
            transformer_params=_parameters(engine.transformer_network) if strategy.needs_transformer else [],
            enhanced=enhanced,
            scale=engine.scaler.scale if engine.scaler is not None else (lambda loss: loss),
        )
        terms = strategy.compute(ctx)
        if engine.accumulation_steps > 1:
            if first_micro_batch or engine._accumulated is None:
                engine._accumulated, engine._accumulated_count = terms, 1
            else:
                engine._accumulated.add_(terms)
                engine._accumulated_count += 1

        # BACKWARD_COMPLETED fires once p.grad holds exactly what the optimizers will apply: the strategy's
        # combination of the (accumulated, rank-averaged) gradients, still multiplied by the AMP scale when a
        # scaler is used. Handlers may change p.grad there (clipping; with a scaler call
        # engine.scaler.unscale_(opt) first). On an accumulation micro-batch that does not step, nothing is
        # applied: p.grad is None (zeros with optim_set_to_none=False) and the micro-batch's gradients wait in
        # the engine until the group's last micro-batch.
        stats: dict[str, torch.Tensor] = {}
        optimizers = engine.optimizers_to_step(strategy)
        for opt in [engine.ip_optimizer, *engine._vr_optimizers(), engine.transformer_optimizer]:
            if opt is not None:
                opt.zero_grad(set_to_none=engine.optim_set_to_none)
        if should_step:
            if engine.accumulation_steps > 1:
                # the mean over the micro-batches actually summed: a group cut short by the epoch's end
                # steps with the same scale as a full one
                terms, engine._accumulated = engine._accumulated.div_(engine._accumulated_count), None
            for grads in terms.lists():
                all_reduce_mean_(grads)
            stats = strategy.apply(terms, ctx)
            engine._poison_nonfinite(optimizers, terms)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if should_step:
            engine._step_optimizers(optimizers)
            if is_distributed():
                broadcast_buffers(engine.ip_network, *engine.vr_networks.values(), engine.transformer_network)
        if engine.strategy.reports_gate:  # NaN while warming up or between accumulation steps
            stats = {"cos": nan, "gate": nan, **stats}
        output.update(stats)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
