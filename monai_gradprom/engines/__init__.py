"""Ignite engines: the GradPromTrainer, the enhancement evaluator, VR pretraining and handlers."""

from monai_gradprom.distributed import broadcast_parameters
from monai_gradprom.engines.evaluator import (
    EnhancementEvaluator,
    TopOneAccuracy,
    enhancement_metrics,
    match_size,
    output_psnr,
)
from monai_gradprom.engines.handlers import (
    AtomicCheckpointSaver,
    ClipGradNorm,
    EnhancementImageHandler,
    MetricsJSONWriter,
    NanMean,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
    TrainingProgressBar,
    attach_checkpointing,
    scalar_outputs,
)
from monai_gradprom.engines.output import IterationOutput, batch_level
from monai_gradprom.engines.pretrain import load_network_weights, pretrain_recognizer
from monai_gradprom.engines.resume import latest_checkpoint, resume_from_checkpoint, resume_from_latest
from monai_gradprom.engines.trainer import GradPromTrainer, is_pretrained, mark_pretrained, prepare_enhancement_batch

__all__ = [
    "AtomicCheckpointSaver",
    "ClipGradNorm",
    "EnhancementImageHandler",
    "TopOneAccuracy",
    "output_psnr",
    "attach_checkpointing",
    "latest_checkpoint",
    "resume_from_checkpoint",
    "resume_from_latest",
    "broadcast_parameters",
    "GradPromTrainer",
    "IterationOutput",
    "batch_level",
    "EnhancementEvaluator",
    "enhancement_metrics",
    "match_size",
    "pretrain_recognizer",
    "load_network_weights",
    "mark_pretrained",
    "is_pretrained",
    "prepare_enhancement_batch",
    "scalar_outputs",
    "MetricsJSONWriter",
    "StopOnNonFiniteLoss",
    "NonFiniteLossError",
    "TrainingProgressBar",
    "NanMean",
]
