"""monai_gradprom: task-driven medical image quality enhancement for MONAI.

An enhancement network (IP) is trained together with a recognition network (VR). The training strategies
(``plain``, ``joint``, ``frozen``, ``transformer``, ``gradprom``) differ only in which gradients reach which
parameters; see :mod:`monai_gradprom.strategies` and :mod:`monai_gradprom.gradients`.
"""

__version__ = "0.1.0"
