"""Models: IGR-SR and the baselines it is compared with."""

from .base import SequentialRecommender
from .bert4rec import BERT4Rec
from .igrsr import IGRSR
from .lightrec import LightRec
from .pop import Popularity
from .rearec import ReaRecERL, ReaRecPRL
from .sasrec import SASRec
from .ssept import SSEPT

__all__ = [
    "BERT4Rec",
    "IGRSR",
    "LightRec",
    "Popularity",
    "ReaRecERL",
    "ReaRecPRL",
    "SASRec",
    "SSEPT",
    "SequentialRecommender",
]
