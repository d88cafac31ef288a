"""Full-ranking evaluation: target ranks, HR/NDCG/MRR@K, and the batched evaluation loop."""

from .full_ranking import evaluate
from .metrics import metrics_from_ranks, ranks_from_scores

__all__ = ["evaluate", "metrics_from_ranks", "ranks_from_scores"]
