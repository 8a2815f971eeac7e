"""The comparison protocol: can the methods' effects be seen, on any bundle's data?

Small parts, each testable on a known answer: :mod:`.data` (a bundle's data as clean tensors, seeded streams),
:mod:`.recognizers` (judges trained until they recognise), :mod:`.schedule` (plain IP to a plateau, fine-tuning),
:mod:`.evaluation` (scores), :mod:`.controls` (matched lambdas, paired verdicts, Pareto front), :mod:`.report`
and :mod:`.protocol` (one seed end to end); ``python -m monai_gradprom.experiments compare`` on top.
"""

# the data sources' bundle configs call ``$monai_gradprom.experiments.mni152.datalists(...)``: imported here so
# the expression resolves in every process (a spawned worker imports nothing the parent imported)
from monai_gradprom.experiments import mni152  # noqa: F401
from monai_gradprom.experiments.controls import CLAIMS, matched_lambda, pareto_front, verdict
from monai_gradprom.experiments.settings import ProtocolSettings, preset

__all__ = ["CLAIMS", "matched_lambda", "pareto_front", "verdict", "ProtocolSettings", "preset"]
