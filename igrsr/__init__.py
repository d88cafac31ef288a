"""igrsr: intent-guided sequential recommendation (IGR-SR), its baselines, and fast layers."""

__version__ = "0.2.0"

from . import nn, ops  # noqa: E402
from .models import IGRSR, SASRec  # noqa: E402

__all__ = ["IGRSR", "SASRec", "__version__", "nn", "ops"]
