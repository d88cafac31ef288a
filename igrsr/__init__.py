"""igrsr: intent-guided sequential recommendation (IGR-SR), its baselines, and fast layers."""

__version__ = "0.1.0"

from . import nn, ops  # noqa: E402

__all__ = ["__version__", "nn", "ops"]
