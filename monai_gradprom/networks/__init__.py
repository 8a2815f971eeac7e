"""Networks: the enhancement network IP (SRResNet), the recognizer factory for VR, and the RA transformer T."""

from monai_gradprom.networks.compilation import compiled
from monai_gradprom.networks.ra_transformer import RATransformer
from monai_gradprom.networks.recognizers import (
    RECOGNIZER_ARCHS,
    RECOGNIZER_BACKENDS,
    RECOGNIZER_TASKS,
    SEGMENTATION_DIVISOR,
    RequireDivisibleInput,
    build_recognizer,
)
from monai_gradprom.networks.srresnet import SRResidualBlock, SRResNet

__all__ = [
    "SRResNet",
    "SRResidualBlock",
    "RATransformer",
    "build_recognizer",
    "RECOGNIZER_ARCHS",
    "RECOGNIZER_TASKS",
    "RECOGNIZER_BACKENDS",
    "SEGMENTATION_DIVISOR",
    "RequireDivisibleInput",
    "compiled",
]

