"""Degradation transforms (array and dictionary forms) usable in MONAI pipelines; see docs/transforms.md."""

from monai_gradprom.transforms.array import *  # noqa: F403
from monai_gradprom.transforms.array import Identity  # noqa: F401  deprecated; kept out of __all__ (no shadowing)
from monai_gradprom.transforms.array import __all__ as _array_all
from monai_gradprom.transforms.dictionary import *  # noqa: F403
from monai_gradprom.transforms.dictionary import __all__ as _dict_all

__all__ = list(_array_all) + list(_dict_all)
