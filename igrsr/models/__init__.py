"""Models: IGR-SR and the baselines it is compared with."""

from .base import SequentialRecommender
from .igrsr import IGRSR
from .sasrec import SASRec

__all__ = ["IGRSR", "SASRec", "SequentialRecommender"]
